import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * GET /ai/provider-key: whether the organization has its own provider key. Owner and admin see its last four
 * characters and endpoint, never the key; other roles are refused; another organization's key is not there.
 */
describe('agents: reading the organization\'s provider key', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let stranger: TestUser;
  let strangerOrg: string;
  const keyUrl = (org = orgId) => `/v1/orgs/${org}/ai/provider-key`;
  const stored = async (org = orgId) => (await t.db.admin.query(
    'SELECT key_hint, base_url, updated_at, secret::text AS secret FROM ai.provider_keys WHERE org_id = $1', [org])).rows;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env });
    ({ orgId, users } = await orgWithRoles(t, 'Key Ltd'));
    await onPlan(t, orgId, 'professional');
    stranger = await registerUser(t, 'stranger');
    strangerOrg = await createOrg(t, stranger, 'Stranger Ltd');
    await onPlan(t, strangerOrg, 'professional');
  });
  afterAll(() => t.close());

  it('answers owner and admin the hint, endpoint and time of the stored key, never the key; a replaced key reads as the new one', async () => {
    expect((await t.http.get(keyUrl()).set(users.owner.auth).expect(404)).body.error.code).toBe('provider_key.not_found');

    await t.http.put(keyUrl()).set(users.owner.auth).send({ apiKey: 'sk-org-secret-first-1111', baseUrl: 'https://llm.example.com/v1' }).expect(200);
    const [row] = await stored();
    for (const who of [users.owner, users.admin]) {
      const res = await t.http.get(keyUrl()).set(who.auth).expect(200);
      expect(res.body).toEqual({ keyHint: '1111', baseUrl: 'https://llm.example.com/v1', updatedAt: row.updated_at.toISOString() });
      expect(res.text).not.toContain('sk-org-secret');
    }
    expect(row).toMatchObject({ key_hint: '1111', base_url: 'https://llm.example.com/v1' });
    expect(row.secret).not.toContain('sk-org-secret'); // sealed

    await t.http.put(keyUrl()).set(users.admin.auth).send({ apiKey: 'sk-org-secret-second-2222' }).expect(200);
    const replaced = await t.http.get(keyUrl()).set(users.owner.auth).expect(200);
    expect(replaced.body).toMatchObject({ keyHint: '2222', baseUrl: null });
    expect(replaced.text).not.toContain('sk-org-secret');
    expect(await stored()).toEqual([expect.objectContaining({ key_hint: '2222', base_url: null })]);
    const audit = await t.db.admin.query(`SELECT action, before::text AS b, after::text AS a FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ai.provider_key%' ORDER BY id`, [orgId]);
    expect(audit.rows.map((r) => r.action)).toEqual(['ai.provider_key_set', 'ai.provider_key_replaced']);
    expect(JSON.stringify(audit.rows)).not.toContain('sk-org-secret');
  });

  it('refuses accountants, members and viewers (403), strangers (404) and the anonymous (401); a removed key is not found', async () => {
    // a hint no answer can hold by chance: '3333' could be in an answer's random request id (15 places of a UUID)
    await t.http.put(keyUrl()).set(users.owner.auth).send({ apiKey: 'sk-org-secret-third-QZQZ' }).expect(200);
    for (const who of [users.accountant, users.member, users.viewer]) {
      const res = await t.http.get(keyUrl()).set(who.auth).expect(403);
      expect(res.body.error.code).toBe('forbidden.role');
      expect(res.text).not.toContain('QZQZ');
    }
    const stranger404 = await t.http.get(keyUrl()).set(stranger.auth).expect(404);
    expect(stranger404.body.error.code).toBe('organization.not_found');
    expect(stranger404.text).not.toContain('QZQZ');
    await t.http.get(keyUrl()).expect(401);
    // the stranger's own organization has no key: Key Ltd's is not visible from there
    expect((await t.http.get(keyUrl(strangerOrg)).set(stranger.auth).expect(404)).body.error.code).toBe('provider_key.not_found');
    expect(await stored(strangerOrg)).toEqual([]);

    await t.http.delete(keyUrl()).set(users.admin.auth).expect(204);
    expect((await t.http.get(keyUrl()).set(users.owner.auth).expect(404)).body.error.code).toBe('provider_key.not_found');
    expect(await stored()).toEqual([]);
  });
});
