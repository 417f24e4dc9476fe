import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { booksWithEntry, semanticUrl } from '../agents/agents-support.js';

/**
 * The plan's `api_access` is checked on every request made with an API key, not only when the key is created: a key
 * made on enterprise is refused (402 billing.feature_not_in_plan) once the organization is on starter, on reads, writes
 * and preflight routes alike, writes nothing, and works again after an upgrade. A read-only (canceled, unpaid,
 * paused) enterprise subscription keeps the key's reads, as it keeps a person's, and refuses its writes as a person's.
 */
describe('API keys: the plan is checked on use', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let secret: string;
  let keyId: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'plan-key-owner');
    orgId = await createOrg(t, owner, 'Downgraded Ltd');
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, owner);
    const key = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth)
      .send({ name: 'integration', scopes: ['ledger:read', 'ledger:write', 'semantic:read'] }).expect(201);
    ({ secret, id: keyId } = key.body);
  });
  afterAll(() => t.close());

  const bearer = () => ({ Authorization: `Bearer ${secret}` });
  const accountsWithCode = async (code: string) =>
    (await t.db.admin.query('SELECT count(*)::int AS n FROM finance.accounts WHERE org_id = $1 AND code = $2', [orgId, code])).rows[0].n;
  const keyedAudit = async () =>
    (await t.db.admin.query('SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND actor_id = $2', [orgId, `api_key:${keyId}`])).rows[0].n;
  const entries = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId])).rows[0].n;
  const expectNoApiAccess = (res: { body: any }) => {
    expect(res.body.error).toEqual({
      code: 'billing.feature_not_in_plan',
      message: 'API keys need a plan with API access: the starter plan does not include api access; upgrade to enterprise',
      details: { app: 'omnizen', feature: 'api_access', plan: 'starter', upgradeTo: 'enterprise' },
    });
  };

  it('refuses the key after a downgrade (402 on a read, a write, a posting and a preflight route, nothing written) and lets it in again after an upgrade', async () => {
    await t.http.get(ledgerUrl(orgId, 'accounts')).set(bearer()).expect(200);
    await t.http.post(ledgerUrl(orgId, 'accounts')).set(bearer()).send({ code: '1191', name: 'Before the downgrade', type: 'asset' }).expect(201);
    expect(await accountsWithCode('1191')).toBe(1);

    await onPlan(t, orgId, 'starter');
    // a new key is refused, as before
    const create = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'another', scopes: ['ledger:read'] }).expect(402);
    expect(create.body.error.code).toBe('billing.feature_not_in_plan');
    // and so is the one made on enterprise, on every kind of route
    const auditBefore = await keyedAudit();
    const entriesBefore = await entries();
    expectNoApiAccess(await t.http.get(ledgerUrl(orgId, 'accounts')).set(bearer()).expect(402));
    expectNoApiAccess(await t.http.post(ledgerUrl(orgId, 'accounts')).set(bearer()).send({ code: '1192', name: 'After the downgrade', type: 'asset' }).expect(402));
    expectNoApiAccess(await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(bearer())
      .send({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10' }, { accountId: acc['1100'], credit: '10' }] }).expect(402));
    expectNoApiAccess(await t.http.post(semanticUrl(orgId)).set(bearer()).send({ sql: 'SELECT count(*) AS n FROM semantic.v_gl_fact' }).expect(402));
    expect(await accountsWithCode('1192')).toBe(0);
    expect(await entries()).toBe(entriesBefore);
    expect(await keyedAudit()).toBe(auditBefore);
    // the people of the organization are not API keys: the owner still reads and writes on starter
    await t.http.get(ledgerUrl(orgId, 'accounts')).set(owner.auth).expect(200);

    await onEnterprisePlan(t, orgId);
    const read = await t.http.get(ledgerUrl(orgId, 'accounts')).set(bearer()).expect(200);
    expect(read.body.map((a: any) => a.code)).toContain('1191');
    const written = await t.http.post(ledgerUrl(orgId, 'accounts')).set(bearer()).send({ code: '1192', name: 'After the upgrade', type: 'asset' }).expect(201);
    const { rows } = await t.db.admin.query('SELECT name FROM finance.accounts WHERE org_id = $1 AND id = $2', [orgId, written.body.id]);
    expect(rows).toEqual([{ name: 'After the upgrade' }]);
    expect(await keyedAudit()).toBe(auditBefore + 1);
  });

  // What the check on use must not do: treat the key's api_access like a route's @RequiresFeature, which also refuses a
  // read-only subscription. The plan of a lapsed subscription still has API access, so the key reads on (a read-only
  // subscription keeps every reader's reads) and its writes are refused by the route's own subscription check, with
  // its words, not as a key the plan refuses. Fails without `readOnlyPasses` (the key's reads 402 subscription_inactive,
  // its write's message "API keys need a plan with API access"), and fails without the check on use (the last step:
  // on starter the key still reads).
  it('keeps a key\'s reads on a read-only enterprise subscription (canceled, unpaid, paused); its writes are refused by the subscription as a person\'s; on a read-only starter subscription the plan refuses it', async () => {
    const org = await createOrg(t, owner, 'Lapsed Ltd');
    await onEnterprisePlan(t, org);
    await booksWithEntry(t, org, owner, '5.00', 'lapsed capital');
    const key = (await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth)
      .send({ name: 'lapsed', scopes: ['ledger:read', 'ledger:write', 'semantic:read'] }).expect(201)).body;
    const auth = { Authorization: `Bearer ${key.secret}` };
    const accounts1193 = async () =>
      (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.accounts WHERE org_id = $1 AND code = '1193'`, [org])).rows[0].n;
    for (const status of ['canceled', 'unpaid', 'paused']) {
      await onPlan(t, org, 'enterprise', status);
      // a read in the request's transaction, and one on a preflight route
      const read = await t.http.get(ledgerUrl(org, 'accounts')).set(auth);
      expect({ status, code: read.status }).toEqual({ status, code: 200 });
      expect(read.body.map((a: any) => a.code)).toEqual(expect.arrayContaining(['1100', '3100']));
      const query = await t.http.post(semanticUrl(org)).set(auth).send({ sql: 'SELECT memo, base_amount FROM semantic.v_gl_fact ORDER BY base_amount' });
      expect({ status, code: query.status }).toEqual({ status, code: 200 });
      expect(query.body.rows).toEqual([['lapsed capital', '-5.0000'], ['lapsed capital', '5.0000']]);
      const write = await t.http.post(ledgerUrl(org, 'accounts')).set(auth).send({ code: '1193', name: 'x', type: 'asset' }).expect(402);
      expect(write.body.error).toEqual({
        code: 'billing.subscription_inactive',
        message: `the omnizen subscription of this organization is read-only: the subscription is ${status}; renew or upgrade it to make changes`,
        details: { app: 'omnizen', plan: 'enterprise', status },
      });
      expect(await accounts1193()).toBe(0);
    }
    // read-only on a plan without API access: the plan refuses the key, on reads too; its people still read
    await onPlan(t, org, 'starter', 'canceled');
    expectNoApiAccess(await t.http.get(ledgerUrl(org, 'accounts')).set(auth).expect(402));
    await t.http.get(ledgerUrl(org, 'accounts')).set(owner.auth).expect(200);
  });
});
