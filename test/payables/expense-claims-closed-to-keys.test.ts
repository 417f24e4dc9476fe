import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ModulesContainer, Reflector } from '@nestjs/core';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import type { OpenAPIObject } from '@nestjs/swagger';
import { API_KEY_SCOPE } from '../../src/platform/auth/api-key-scopes.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { onEnterprisePlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from './payables-support.js';

/**
 * An expense claim is a person's own (its claimant is the caller), so drafting, editing, submitting and voiding one
 * are closed to API keys: 403 api_keys.route_closed, nothing written, and the document declares no key scope there.
 * They were documented open to keys (payables:write, with the keyed 402) while their roles left out the role a key
 * gets (`service`), so a key always met 403 forbidden.role. No route of the API may be open to keys and refuse
 * their role: checked over every handler.
 */
describe('payables: expense claims and API keys', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let key: Record<string, string>;
  let claimId: string;
  let doc: OpenAPIObject;
  const url = (p: string) => payablesUrl(orgId, p);
  const claimBody = (amount: string) => ({
    claimDate: '2026-02-03', currency: 'EUR', memo: 'trip', lines: [{ accountId: acc['5200'], amount, currency: 'EUR', date: '2026-02-03', description: 'train' }],
  });
  const claims = async () => (await t.db.admin.query(
    `SELECT id, status, total::text, memo, updated_at FROM finance.bills WHERE org_id = $1 AND kind = 'expense_claim' ORDER BY id`, [orgId])).rows;

  const audited = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1`, [orgId])).rows[0].n as number;

  const CLOSED = [
    ['post', '/v1/orgs/{orgId}/payables/expense-claims', 'createExpenseClaim'],
    ['patch', '/v1/orgs/{orgId}/payables/expense-claims/{claimId}', 'updateExpenseClaim'],
    ['post', '/v1/orgs/{orgId}/payables/expense-claims/{claimId}/submit', 'submitExpenseClaim'],
    ['post', '/v1/orgs/{orgId}/payables/expense-claims/{claimId}/void', 'voidExpenseClaim'],
  ] as const;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Claims By Key Ltd'));
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, users.owner);
    claimId = (await t.http.post(url('expense-claims')).set(users.member.auth).send(claimBody('12.50')).expect(201)).body.id;
    const secret = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(users.owner.auth)
      .send({ name: 'payables', scopes: ['payables:read', 'payables:write'] }).expect(201)).body.secret;
    key = { Authorization: `Bearer ${secret}` };
    doc = (await t.http.get('/docs-json').expect(200)).body;
  });
  afterAll(() => t.close());

  it('a key holding payables:write cannot draft, edit, submit or void a claim: 403 api_keys.route_closed, nothing written', async () => {
    const before = await claims();
    const auditedBefore = await audited();
    expect(before).toEqual([expect.objectContaining({ id: claimId, status: 'draft', total: '12.5000', memo: 'trip' })]);
    const answers = await Promise.all([
      t.http.post(url('expense-claims')).set(key).send(claimBody('99.00')),
      t.http.patch(url(`expense-claims/${claimId}`)).set(key).send({ ...claimBody('99.00'), memo: 'changed by a key' }),
      t.http.post(url(`expense-claims/${claimId}/submit`)).set(key),
      t.http.post(url(`expense-claims/${claimId}/void`)).set(key).send({ reason: 'by a key' }),
    ]);
    expect(answers.map((r) => ({ status: r.status, code: r.body.error?.code }))).toEqual(Array(4).fill({ status: 403, code: 'api_keys.route_closed' }));
    expect(await claims()).toEqual(before);
    expect(await audited()).toBe(auditedBefore);
  });

  it('the same key still reads claims and writes the rest of payables; the claimant still submits theirs', async () => {
    const read = (await t.http.get(url(`expense-claims/${claimId}`)).set(key).expect(200)).body;
    expect(read).toMatchObject({ id: claimId, kind: 'expense_claim', status: 'draft', total: '12.50' });
    expect((await t.http.get(url('expense-claims')).set(key).expect(200)).body.items.map((c: any) => c.id)).toEqual([claimId]);
    const vendor = (await t.http.post(url('vendors')).set(key).send({ name: 'Keyed Vendor' }).expect(201)).body;
    expect((await t.db.admin.query(`SELECT name FROM finance.vendors WHERE org_id = $1 AND id = $2`, [orgId, vendor.id])).rows).toEqual([{ name: 'Keyed Vendor' }]);
    expect((await t.http.post(url(`expense-claims/${claimId}/submit`)).set(users.member.auth).expect(200)).body.status).toBe('submitted');
  });

  it('the document: the four declare no key scope and answer api_keys.route_closed (no keyed 402); reading a claim stays open to keys', () => {
    for (const [method, path, operationId] of CLOSED) {
      const op: any = doc.paths[path][method];
      const codes = (op['x-error-codes'] ?? []).map((c: { code: string }) => c.code);
      expect({ operationId: op.operationId, keyScope: op['x-omnizen-api-key-scope'], closed: codes.includes('api_keys.route_closed'), scopeMissing: codes.includes('api_keys.scope_missing') })
        .toEqual({ operationId, keyScope: undefined, closed: true, scopeMissing: false });
      expect(JSON.stringify(op)).not.toContain('API keys need a plan with API access');
    }
    const get: any = doc.paths['/v1/orgs/{orgId}/payables/expense-claims/{claimId}'].get;
    expect(get['x-omnizen-api-key-scope']).toBe('payables:read');
  });

  it('no handler of the API is open to API keys while its roles leave out the key\'s role (service)', () => {
    const reflector = t.app.get(Reflector);
    const mismatched: string[] = [];
    let keyed = 0;
    for (const mod of t.app.get(ModulesContainer).values()) {
      for (const wrapper of mod.controllers.values()) {
        const cls = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
        if (!cls?.prototype) continue;
        for (const name of Object.getOwnPropertyNames(cls.prototype)) {
          const handler = cls.prototype[name];
          if (name === 'constructor' || typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
          const scope = reflector.getAllAndOverride<string | null | undefined>(API_KEY_SCOPE, [handler, cls]);
          if (!scope) continue;
          keyed++;
          const roles = reflector.getAllAndOverride<string[] | undefined>('omnizen:required-roles', [handler, cls]);
          if (roles && !roles.includes('service')) mismatched.push(`${cls.name}.${name} (${scope}; ${roles.join(', ')})`);
        }
      }
    }
    expect(keyed).toBeGreaterThan(100);
    expect(mismatched).toEqual([]);
  });
});
