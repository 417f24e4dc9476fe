import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { addMember, createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * Error codes the OpenAPI document declares for one operation each, produced over real HTTP (the coverage recorder had
 * never seen them): every refusal answers its status, code and message, and writes nothing (every table of the
 * database, count and content, is as it was before the refused requests).
 */
describe('documented error codes of platform, analytics, agents, webhooks, settings and api keys, as answered', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let serviceAuth: { Authorization: string };

  /** Every base table: row count and content. */
  const snapshot = () => tableContents(t.db.admin);

  /** Runs the refused requests, then asserts that no table changed. */
  async function writesNothing<T>(refuse: () => Promise<T>): Promise<T> {
    const before = await snapshot();
    const out = await refuse();
    const after = await snapshot();
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
    return out;
  }

  const errorOf = (res: { status: number; body: { error?: { code: string; message: string } } }) => [res.status, res.body.error?.code, res.body.error?.message];

  beforeAll(async () => {
    // no platform AI key: a run of an organization without its own is refused (ai.no_provider_key); no private webhook
    // addresses (webhooks.url_not_public)
    t = await createTestApp({
      RATE_LIMITS_ENABLED: 'false', AI_API_KEY: '', OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'false', SECRETS_KEYS: testKeys('codes').env,
    });
    owner = await registerUser(t, 'codes-owner');
    orgId = await createOrg(t, owner, 'Codes Ltd');
    await onEnterprisePlan(t, orgId);
    const key = jwt.sign({ role: 'service_role', service: 'documented-codes' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
  });
  afterAll(() => t?.close());

  it('declares no code its operation cannot produce (each was declared once, and no request could answer it)', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const declares = (method: string, path: string, code: string) =>
      ((doc.paths[path][method]['x-error-codes'] ?? []) as { code: string }[]).some((c) => c.code === code);
    expect([
      // logging out revokes the session of the access token: it reads no refresh token
      declares('post', '/v1/auth/logout', 'auth.refresh_token_missing'),
      // an integration is created without credentials: nothing is checked or sealed until PUT .../secret
      declares('post', '/v1/me/integrations', 'integration.secret_invalid'),
      declares('post', '/v1/me/integrations', 'secrets.not_configured'),
      // the portal answers the session Stripe created as it is (only a checkout session can come without a URL)
      declares('post', '/v1/me/billing/portal', 'billing.stripe_no_url'),
      declares('post', '/v1/orgs/{orgId}/billing/portal', 'billing.stripe_no_url'),
    ]).toEqual([false, false, false, false, false]);
    // what they do declare, they answer (PUT .../secret: tested in documented-codes-races-and-secrets.test.ts)
    expect(declares('put', '/v1/me/integrations/{id}/secret', 'integration.secret_invalid')).toBe(true);
    expect(declares('post', '/v1/me/billing/checkout', 'billing.stripe_no_url')).toBe(true);
  });

  it('analytics.range: from after to, or a range over 400 days, on the daily counts, the top events, the active users and the usage by plan', async () => {
    const base = `/v1/orgs/${orgId}/analytics`;
    const answers = await writesNothing(() => Promise.all([
      t.http.get(`${base}/events/daily?from=2026-02-01&to=2026-01-01`).set(owner.auth),
      t.http.get(`${base}/events/top?from=2024-01-01&to=2026-01-01`).set(owner.auth),
      t.http.get(`${base}/active-users?from=2026-02-01&to=2026-01-01`).set(owner.auth),
      t.http.get('/v1/analytics/feature-usage?from=2026-02-01&to=2026-01-01').set(serviceAuth),
    ]));
    expect(answers.map(errorOf)).toEqual([
      [400, 'analytics.range', 'from is after to'],
      [400, 'analytics.range', 'the range is longer than 400 days'],
      [400, 'analytics.range', 'from is after to'],
      [400, 'analytics.range', 'from is after to'],
    ]);
  });

  it('ai.range: the AI usage report of a range whose from is after its to', async () => {
    const res = await writesNothing(() => t.http.get(`/v1/orgs/${orgId}/ai/usage?from=2026-02-01&to=2026-01-01`).set(owner.auth));
    expect(errorOf(res)).toEqual([400, 'ai.range', 'from is after to']);
  });

  it('availability.duration_invalid: a slot length outside 15 to 240 minutes, before the provider is looked up', async () => {
    const res = await writesNothing(() => t.http.get('/v1/public/providers/nobody-here/availability?from=2030-03-09&to=2030-03-11&duration=300'));
    expect(errorOf(res)).toEqual([400, 'availability.duration_invalid', 'duration must be between 15 and 240 minutes']);
  });

  it('notification.preference_repeated: the same category and channel twice in one update', async () => {
    const res = await writesNothing(() => t.http.patch('/v1/me/notification-preferences').set(owner.auth).send({
      items: [{ category: 'finance', channel: 'email', enabled: true, digest: false }, { category: 'finance', channel: 'email', enabled: false, digest: false }],
    }));
    expect(errorOf(res)).toEqual([400, 'notification.preference_repeated', 'the same category and channel appear twice']);
  });

  it('updateAgent: ai.unknown_model, ai.unknown_tool and ai.agent_name_taken', async () => {
    const agents = `/v1/orgs/${orgId}/agents`;
    await t.http.post(agents).set(owner.auth).send({ name: 'Taken', type: 'assistant', modelId: 'gpt-4o' }).expect(201);
    const agentId = (await t.http.post(agents).set(owner.auth).send({ name: 'Renamed', type: 'assistant', modelId: 'gpt-4o' }).expect(201)).body.id;
    const answers = await writesNothing(async () => [
      await t.http.patch(`${agents}/${agentId}`).set(owner.auth).send({ modelId: 'no-such-model' }),
      await t.http.patch(`${agents}/${agentId}`).set(owner.auth).send({ tools: ['no_such_tool'] }),
      await t.http.patch(`${agents}/${agentId}`).set(owner.auth).send({ name: ' Taken ' }),
    ]);
    expect(answers.map(errorOf)).toEqual([
      [422, 'ai.unknown_model', 'model no-such-model is not a chat model of the catalog (GET /ai/models)'],
      [422, 'ai.unknown_tool', 'unknown or not installed tool(s): no_such_tool (GET /ai/tools lists them)'],
      [409, 'ai.agent_name_taken', 'an agent named "Taken" already exists'],
    ]);
    expect(answers[1].body.error.details).toEqual({ tools: ['no_such_tool'] });
    expect((await t.db.admin.query('SELECT name, model_id, tools FROM ai.agents WHERE org_id = $1 AND id = $2', [orgId, agentId])).rows)
      .toEqual([{ name: 'Renamed', model_id: 'gpt-4o', tools: [] }]);
  });

  it('ai.no_provider_key: a run of an organization with no provider key when the platform has none', async () => {
    const agentId = (await t.http.post(`/v1/orgs/${orgId}/agents`).set(owner.auth).send({ name: 'Keyless', type: 'assistant', modelId: 'gpt-4o' }).expect(201)).body.id;
    const res = await writesNothing(() => t.http.post(`/v1/orgs/${orgId}/agents/${agentId}/runs`).set(owner.auth)
      .send({ messages: [{ role: 'user', content: 'What is our cash balance?' }] }));
    expect(errorOf(res)).toEqual([422, 'ai.no_provider_key',
      'no provider key: the platform has none (AI_API_KEY) and the organization has not stored its own (PUT /ai/provider-key)']);
  });

  it('setSettings: settings.invalid_scope, settings.invalid_key and settings.empty', async () => {
    const answers = await writesNothing(() => Promise.all([
      t.http.patch(`/v1/orgs/${orgId}/settings/Not-A-Scope`).set(owner.auth).send({ values: { timezone: 'Europe/Berlin' } }),
      t.http.patch(`/v1/orgs/${orgId}/settings/org`).set(owner.auth).send({ values: { timezone: 'Europe/Berlin', 'Bad Key': 1 } }),
      t.http.patch(`/v1/orgs/${orgId}/settings/org`).set(owner.auth).send({ values: {} }),
    ]));
    expect(answers.map(errorOf)).toEqual([
      [400, 'settings.invalid_scope', 'scope "Not-A-Scope" must be \'org\' or an app code (lowercase letters, digits, _)'],
      [400, 'settings.invalid_key', 'invalid key(s) Bad Key: keys are lowercase letters, digits, _ and ., starting with a letter, at most 128'],
      [400, 'settings.empty', 'values must name at least one setting'],
    ]);
  });

  it('updateWebhookEndpoint: webhooks.url_invalid, webhooks.url_not_public and webhooks.unknown_event_type', async () => {
    const endpoints = `/v1/orgs/${orgId}/webhooks/endpoints`;
    const id = (await t.http.post(endpoints).set(owner.auth).send({ url: 'https://hooks.example.com/codes' }).expect(201)).body.id;
    const answers = await writesNothing(() => Promise.all([
      t.http.patch(`${endpoints}/${id}`).set(owner.auth).send({ url: 'ftp://hooks.example.com/x' }),
      t.http.patch(`${endpoints}/${id}`).set(owner.auth).send({ url: 'https://10.0.0.7/hook' }),
      t.http.patch(`${endpoints}/${id}`).set(owner.auth).send({ eventTypes: ['journal_entry.posted', 'nothing.happened'] }),
    ]));
    expect(answers.map(errorOf)).toEqual([
      [400, 'webhooks.url_invalid', 'url must use https or http, got ftp:'],
      [400, 'webhooks.url_not_public', 'url names 10.0.0.7, which is not a public address'],
      [400, 'webhooks.unknown_event_type', 'unknown event types: nothing.happened (see GET /v1/webhooks/event-types)'],
    ]);
    expect(answers[2].body.error.details).toEqual({ unknown: ['nothing.happened'] });
  });

  it('workspace.name_taken: renaming a workspace to the name of another', async () => {
    const ws = `/v1/orgs/${orgId}/workspaces`;
    await t.http.post(ws).set(owner.auth).send({ name: 'North' }).expect(201);
    const south = (await t.http.post(ws).set(owner.auth).send({ name: 'South' }).expect(201)).body.id;
    const res = await writesNothing(() => t.http.put(`${ws}/${south}`).set(owner.auth).send({ name: 'North' }));
    expect(errorOf(res)).toEqual([409, 'workspace.name_taken', 'a workspace named "North" already exists']);
  });

  it('membership.last_owner: the only owner removing their own membership', async () => {
    const res = await writesNothing(() => t.http.delete(`/v1/orgs/${orgId}/members/${owner.id}`).set(owner.auth));
    expect(errorOf(res)).toEqual([409, 'membership.last_owner', 'an organization must keep at least one owner: make another member owner first']);
  });

  it('createApiKey: api_keys.expiry_past, and billing.subscription_inactive on a canceled subscription', async () => {
    const refused = await writesNothing(() => t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth)
      .send({ name: 'Past', scopes: ['ledger:read'], expiresAt: '2020-01-01T00:00:00Z' }));
    expect(errorOf(refused)).toEqual([400, 'api_keys.expiry_past', 'expiresAt must be in the future']);

    const canceled = await createOrg(t, owner, 'Canceled Ltd');
    await onPlan(t, canceled, 'enterprise', 'canceled');
    const res = await writesNothing(() => t.http.post(`/v1/orgs/${canceled}/api-keys`).set(owner.auth).send({ name: 'Late', scopes: ['ledger:read'] }));
    expect(res.status).toBe(402);
    expect(res.body.error.code).toBe('billing.subscription_inactive');
    expect(res.body.error.message).toMatch(/canceled/);
  });

  it('privacy.export_in_progress: an export of the organization while one is being prepared', async () => {
    const first = await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(202);
    const res = await writesNothing(() => t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth));
    expect(errorOf(res)).toEqual([409, 'privacy.export_in_progress', 'an export of this organization is being prepared: wait for it to finish']);
    expect((await t.db.admin.query(`SELECT id FROM core.data_exports WHERE org_id = $1 AND kind = 'organization'`, [orgId])).rows).toEqual([{ id: first.body.id }]);
  });

  it('app.not_found: the entitlements of an app that does not exist, for the person and for a service key', async () => {
    const member = await registerUser(t, 'codes-member');
    await addMember(t, orgId, member, 'member');
    const answers = await writesNothing(() => Promise.all([
      t.http.get('/v1/me/entitlements?app=no_such_app').set(owner.auth),
      t.http.get(`/v1/billing/users/${member.id}/entitlements?app=no_such_app`).set(serviceAuth),
    ]));
    expect(answers.map(errorOf)).toEqual([
      [404, 'app.not_found', 'app no_such_app was not found'],
      [404, 'app.not_found', 'app no_such_app was not found'],
    ]);
  });

  it('knowledge.version_not_found: restoring a version the document never had', async () => {
    const collectionId = (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(owner.auth).send({ name: 'Handbook' }).expect(201)).body.id;
    const documentId = (await t.http.post(`/v1/orgs/${orgId}/knowledge/documents`).set(owner.auth)
      .send({ collectionId, title: 'Note', text: 'Expenses are approved by the office manager.' }).expect(201)).body.id;
    const res = await writesNothing(() => t.http.post(`/v1/orgs/${orgId}/knowledge/documents/${documentId}/versions/7/restore`).set(owner.auth));
    expect(errorOf(res)).toEqual([404, 'knowledge.version_not_found', `document ${documentId} has no version 7`]);
  });
});
