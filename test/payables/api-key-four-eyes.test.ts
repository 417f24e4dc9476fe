import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { apiKeyPrincipal } from '../../src/modules/api-keys/api-key-secret.js';
import { PayablesService } from '../../src/modules/payables/payables.service.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, onEnterprisePlan, orgWithRoles, registerUser, verifyEmailOf, type RoleUsers, type TestUser } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from './payables-support.js';

/**
 * Four eyes through an API key (review r2). What a key writes is recorded as `api_key:<key id>`, and the own-bill check
 * compared that with the approver's user id: an admin whose key created and submitted a bill approved it themselves (200,
 * posted). A key acts for the person who created it, so the check compares the people behind the actors, both ways, even
 * for an approver who may not read the organization's keys (an accountant). Approving and rejecting are closed to keys.
 */
describe('payables: four eyes through an API key', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let adminKey: { Authorization: string; secret: string; id: string };
  let doc: OpenAPIObject;
  const url = (p: string) => payablesUrl(orgId, p);
  const OWNER_OR_ADMIN = [{ above: '0', approvals: 1, roles: ['owner', 'admin'] }];
  const ANY_BOOKKEEPER = [{ above: '0', approvals: 1, roles: ['owner', 'admin', 'accountant'] }];
  const setRules = async (approvalRules: object[]) =>
    t.http.put(url('settings')).set(users.owner.auth).send({ apAccountId: acc['2100'], approvalRules }).expect(200);

  async function keyOf(who: TestUser, name: string) {
    const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(who.auth).send({ name, scopes: ['payables:read', 'payables:write'] }).expect(201);
    return { Authorization: `Bearer ${res.body.secret}`, secret: res.body.secret as string, id: res.body.id as string };
  }
  async function billBy(auth: Record<string, string>, memo: string): Promise<string> {
    const vendorId = (await t.http.post(url('vendors')).set(auth).send({ name: `Vendor ${memo}` }).expect(201)).body.id;
    return (await t.http.post(url('bills')).set(auth).send({ vendorId, billDate: '2026-02-02', memo, lines: [{ accountId: acc['5200'], unitPrice: '250.00' }] }).expect(201)).body.id;
  }
  /** The bill's row, its decisions and its audit rows: what a refused approval must leave as it was. */
  async function state(billId: string) {
    const [bill] = (await t.db.admin.query(`SELECT status, created_by, journal_entry_id FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, billId])).rows;
    const decisions = (await t.db.admin.query(
      `SELECT decision, actor_id FROM finance.bill_decisions WHERE org_id = $1 AND bill_id = $2 ORDER BY created_at, decision`, [orgId, billId])).rows;
    const audited = (await t.db.admin.query(
      `SELECT action, actor_id FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY occurred_at, id`, [orgId, billId])).rows;
    return { bill, decisions, audited };
  }

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Four Eyes Keys Ltd'));
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, users.owner);
    await verifyEmailOf(t, users.admin);
    adminKey = await keyOf(users.admin, 'admin bookkeeping sync');
    doc = (await t.http.get('/docs-json').expect(200)).body;
  });
  afterAll(() => t.close());

  it('a bill the admin\'s key created and submitted: the admin may not approve it (403 payables.own_bill, still submitted, nothing posted); the owner may', async () => {
    await setRules(OWNER_OR_ADMIN);
    const billId = await billBy(adminKey, 'keyed');
    expect((await t.http.post(url(`bills/${billId}/submit`)).set(adminKey).expect(200)).body.status).toBe('submitted');
    const before = await state(billId);
    expect(before.bill).toEqual({ status: 'submitted', created_by: `api_key:${adminKey.id}`, journal_entry_id: null });

    const refused = await t.http.post(url(`bills/${billId}/approve`)).set(users.admin.auth).send({ comment: 'looks fine' });
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'payables.own_bill']);
    expect(refused.body.error.message).toBe(`you created bill ${billId} (through the API key ${adminKey.id}): another approver must approve it`);
    expect(await state(billId)).toEqual(before);
    expect(before.audited.map((a: { action: string }) => a.action)).not.toContain('payables.bill_approved');

    const approved = await t.http.post(url(`bills/${billId}/approve`)).set(users.owner.auth).send({}).expect(200);
    expect(approved.body.status).toBe('posted');
    const after = await state(billId);
    expect(after.bill).toMatchObject({ status: 'posted', journal_entry_id: expect.any(String) });
    expect(after.decisions.slice(-1)).toEqual([{ decision: 'approve', actor_id: users.owner.id }]);
    expect(after.audited.filter((a: { action: string }) => a.action === 'payables.bill_approved')).toEqual([{ action: 'payables.bill_approved', actor_id: users.owner.id }]);
  });

  it('a bill an accountant created, the admin\'s key last edited and the accountant submitted: the admin may not approve it', async () => {
    await setRules(OWNER_OR_ADMIN);
    const billId = await billBy(users.accountant.auth, 'edited by a key');
    await t.http.patch(url(`bills/${billId}`)).set(adminKey)
      .send({ billDate: '2026-02-02', memo: 'changed by the key', lines: [{ accountId: acc['5200'], unitPrice: '260.00' }] }).expect(200);
    await t.http.post(url(`bills/${billId}/submit`)).set(users.accountant.auth).expect(200);
    const before = await state(billId);
    expect(before.decisions).toEqual([{ decision: 'edit', actor_id: `api_key:${adminKey.id}` }, { decision: 'submit', actor_id: users.accountant.id }]);

    const refused = await t.http.post(url(`bills/${billId}/approve`)).set(users.admin.auth).send({});
    expect([refused.status, refused.body.error?.code, refused.body.error?.message])
      .toEqual([403, 'payables.own_bill', `you last edited bill ${billId} (through the API key ${adminKey.id}): another approver must approve it`]);
    expect(await state(billId)).toEqual(before);
  });

  it('an accountant (who may not read the organization\'s keys) whose key, made while admin, wrote the bill may not approve it', async () => {
    await setRules(ANY_BOOKKEEPER);
    const demoted = await registerUser(t, 'demoted');
    await addMember(t, orgId, demoted, 'admin');
    await verifyEmailOf(t, demoted);
    const key = await keyOf(demoted, 'made while admin');
    const billId = await billBy(key, 'by a demoted admin');
    await t.http.post(url(`bills/${billId}/submit`)).set(key).expect(200);
    // the demotion revokes the key (20270210160100), not what it wrote
    await t.db.admin.query(`UPDATE core.memberships SET role = 'accountant' WHERE org_id = $1 AND user_id = $2`, [orgId, demoted.id]);
    expect((await t.db.admin.query(`SELECT revoked_at IS NOT NULL AS revoked FROM core.api_keys WHERE id = $1`, [key.id])).rows).toEqual([{ revoked: true }]);
    const before = await state(billId);

    const refused = await t.http.post(url(`bills/${billId}/approve`)).set(demoted.auth).send({});
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'payables.own_bill']);
    expect(await state(billId)).toEqual(before);
    // another accountant approves it
    expect((await t.http.post(url(`bills/${billId}/approve`)).set(users.accountant.auth).send({}).expect(200)).body.status).toBe('posted');
  });

  it('the reverse (a key approving what its creator wrote) is refused as the creator\'s own, before its role; nothing written', async () => {
    await setRules(OWNER_OR_ADMIN);
    const billId = await billBy(users.admin.auth, 'by the admin');
    await t.http.post(url(`bills/${billId}/submit`)).set(users.admin.auth).expect(200);
    const before = await state(billId);
    // no route lets a key approve (closed below): the service's own rule, with the key's verified transaction
    const approveWith = (auth: string) => t.app.get(DatabaseService).tenant(apiKeyPrincipal(auth)!, orgId, { requestId: 'h4-four-eyes' },
      (tx) => t.app.get(PayablesService).approve(tx, billId, 'bill'));
    await expect(approveWith(adminKey.Authorization)).rejects.toMatchObject({ code: 'payables.own_bill', status: 403 });
    // another person's key is not the author: it meets the role the rule asks for instead
    await verifyEmailOf(t, users.owner);
    const ownerKey = await keyOf(users.owner, 'owner sync');
    await expect(approveWith(ownerKey.Authorization)).rejects.toMatchObject({ code: 'payables.role_not_allowed', status: 403 });
    expect(await state(billId)).toEqual(before);
  });

  it('the creators of keys are read for bookkeepers only; a key whose creator was deleted stands for nobody, and what it wrote is approved', async () => {
    await setRules(OWNER_OR_ADMIN);
    const leaver = await registerUser(t, 'leaver');
    await addMember(t, orgId, leaver, 'admin');
    await verifyEmailOf(t, leaver);
    const leaverKey = await keyOf(leaver, 'leaver key');
    const billId = await billBy(leaverKey, 'by a leaver');
    await t.http.post(url(`bills/${billId}/submit`)).set(leaverKey).expect(200);
    const ask = (user: TestUser) => t.db.asApi({ sub: user.id, org_id: orgId }, 'authenticated',
      `SELECT key_id, created_by FROM core.api_key_creators($1::uuid[]) ORDER BY key_id`, [[adminKey.id, leaverKey.id]]);
    const both = [{ key_id: adminKey.id, created_by: users.admin.id }, { key_id: leaverKey.id, created_by: leaver.id }].sort((a, b) => (a.key_id < b.key_id ? -1 : 1));
    expect(await ask(users.accountant)).toEqual(both);
    expect(await ask(users.member)).toEqual([]);
    expect(await ask(users.viewer)).toEqual([]);
    // over Supabase's REST API (claims begin_request did not verify), an owner's too: nothing
    expect(await t.db.as({ sub: users.owner.id, org_id: orgId, role: 'authenticated' }, 'authenticated',
      `SELECT key_id, created_by FROM core.api_key_creators($1::uuid[])`, [[adminKey.id, leaverKey.id]])).toEqual([]);
    // the creator's user row deleted (their personal organization handed over first, as test/api-keys does): the key,
    // revoked, names nobody; nobody who can still sign in wrote the bill, so it does not stay unapprovable
    const heir = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [heir, `${heir}@example.test`]);
    await t.db.admin.query('UPDATE core.organizations SET owner_user_id = $2 WHERE id = $1', [leaver.personalOrgId, heir]);
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [leaver.personalOrgId, heir]);
    await t.db.admin.query(`DELETE FROM core."User" WHERE id = $1`, [leaver.id]);
    expect((await ask(users.accountant)).find((r: { key_id: string }) => r.key_id === leaverKey.id)).toEqual({ key_id: leaverKey.id, created_by: null });
    expect((await t.http.post(url(`bills/${billId}/approve`)).set(users.admin.auth).send({}).expect(200)).body.status).toBe('posted');
    expect((await state(billId)).bill).toMatchObject({ status: 'posted', created_by: `api_key:${leaverKey.id}` });
  });

  it('approve and reject (bills and claims) are closed to keys: 403 api_keys.route_closed, nothing written, declared so', async () => {
    await setRules(OWNER_OR_ADMIN);
    const billId = await billBy(users.accountant.auth, 'closed routes');
    await t.http.post(url(`bills/${billId}/submit`)).set(users.accountant.auth).expect(200);
    const claimId = (await t.http.post(url('expense-claims')).set(users.member.auth).send({
      claimDate: '2026-02-03', currency: 'EUR', memo: 'trip', lines: [{ accountId: acc['5200'], amount: '12.50', currency: 'EUR', date: '2026-02-03', description: 'train' }],
    }).expect(201)).body.id;
    await t.http.post(url(`expense-claims/${claimId}/submit`)).set(users.member.auth).expect(200);
    const before = [await state(billId), await state(claimId)];
    const answers = await Promise.all([
      t.http.post(url(`bills/${billId}/approve`)).set(adminKey).send({}),
      t.http.post(url(`bills/${billId}/reject`)).set(adminKey).send({ reason: 'by a key' }),
      t.http.post(url(`expense-claims/${claimId}/approve`)).set(adminKey).send({}),
      t.http.post(url(`expense-claims/${claimId}/reject`)).set(adminKey).send({ reason: 'by a key' }),
    ]);
    expect(answers.map((r) => [r.status, r.body.error?.code])).toEqual(Array(4).fill([403, 'api_keys.route_closed']));
    expect([await state(billId), await state(claimId)]).toEqual(before);

    for (const [path, operationId] of [['bills/{billId}/approve', 'approveBill'], ['bills/{billId}/reject', 'rejectBill'],
      ['expense-claims/{claimId}/approve', 'approveExpenseClaim'], ['expense-claims/{claimId}/reject', 'rejectExpenseClaim']]) {
      const op: any = doc.paths[`/v1/orgs/{orgId}/payables/${path}`].post;
      const codes = (op['x-error-codes'] ?? []).map((c: { code: string }) => c.code);
      expect({ operationId: op.operationId, keyScope: op['x-omnizen-api-key-scope'], closed: codes.includes('api_keys.route_closed'), scopeMissing: codes.includes('api_keys.scope_missing') })
        .toEqual({ operationId, keyScope: undefined, closed: true, scopeMissing: false });
    }
  });
});
