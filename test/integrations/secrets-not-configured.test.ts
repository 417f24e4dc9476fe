import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';

/**
 * SECRETS_KEYS is optional at boot: the routes that seal a secret answer 503 `secrets.not_configured` when it is not set,
 * write nothing, and their OpenAPI operations say so (every answer of this app is checked against the document, so an
 * undeclared code here would fail the test).
 */
describe('routes that seal a secret, on a server without SECRETS_KEYS', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const count = async (sql: string) => (await t.db.admin.query(sql, [orgId])).rows[0].n;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: '', REDIS_URL: '' });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'No Keys Ltd');
    await onPlan(t, orgId, 'professional');
  });
  afterAll(() => t.close());

  const refused = { code: 'secrets.not_configured', message: 'no encryption key for secrets is configured on this server (SECRETS_KEYS)' };

  it('a webhook endpoint: 503, no endpoint and no audit row', async () => {
    const res = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'https://hooks.example.com/x' }).expect(503);
    expect(res.body.error).toMatchObject(refused);
    expect(await count('SELECT count(*)::int AS n FROM core.webhook_endpoints WHERE org_id = $1')).toBe(0);
    expect(await count(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'webhook_endpoint.%'`)).toBe(0);
  });

  it("the organization's AI provider key: 503, nothing stored", async () => {
    const res = await t.http.put(`/v1/orgs/${orgId}/ai/provider-key`).set(owner.auth).send({ apiKey: 'sk-org-own-key-1234' }).expect(503);
    expect(res.body.error).toMatchObject(refused);
    expect(await count('SELECT count(*)::int AS n FROM ai.provider_keys WHERE org_id = $1')).toBe(0);
  });

  it('every operation that seals a secret declares the code', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const declares = (method: string, path: string) =>
      (doc.paths[path][method]['x-error-codes'] as { code: string; status: number }[]).some((c) => c.code === 'secrets.not_configured' && c.status === 503);
    expect([
      declares('post', '/v1/orgs/{orgId}/webhooks/endpoints'),
      declares('post', '/v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/rotate-secret'),
      declares('put', '/v1/orgs/{orgId}/ai/provider-key'),
    ]).toEqual([true, true, true]);
  });
});
