import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * An API key with agents:run starts a run with ?async=true and is told "GET the run for its outcome": the run's reads
 * (one run, the list, the usage report) and its cancel are open to it. A key reads and cancels the runs it started, and
 * no other: a run holds what its tools read with its starter's claims or scopes (another key's run, a person's run:
 * 404 run.not_found, as for a member). The database records the key on the run and decides it (ai.runs.api_key_id).
 */
describe('API keys read and cancel the runs they started', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let org: string;
  let agent: string;
  let ownerRun: string;
  let keyA: { id: string; auth: Record<string, string> };
  let keyB: { id: string; auth: Record<string, string> };
  let reader: Record<string, string>;

  const createKey = async (scopes: string[]) => {
    const res = await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth).send({ name: `k${scopes.join()}`, scopes }).expect(201);
    return { id: res.body.id as string, auth: { Authorization: `Bearer ${res.body.secret}` } };
  };
  const answer = (content: string) => llm.enqueue({ kind: 'text', content, usage: { prompt: 10, completion: 1 } });
  const startAsync = async (auth: Record<string, string>) =>
    (await t.http.post(agentsUrl(org, `/${agent}/runs?async=true`)).set(auth).send({ messages: [{ role: 'user', content: 'hi' }] }).expect(202)).body.id as string;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '30000', AI_MAX_RETRIES: '2', REDIS_URL: '' });
    (t.app.get(Sleeper) as Sleeper).sleep = async () => {};
    owner = await registerUser(t, 'keyruns-owner');
    org = await createOrg(t, owner, 'KeyRuns');
    await onEnterprisePlan(t, org);
    agent = (await t.http.post(agentsUrl(org)).set(owner.auth).send({ name: 'K', type: 'accountant', modelId: 'gpt-4o', maxSteps: 2, tools: [] }).expect(201)).body.id;
    answer('for the owner');
    ownerRun = (await t.http.post(agentsUrl(org, `/${agent}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'mine' }] }).expect(200)).body.id;
    keyA = await createKey(['agents:run']);
    keyB = await createKey(['agents:run']);
    reader = (await createKey(['ledger:read'])).auth;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('a key that started a run ?async=true reads its outcome, lists it and counts it in the usage report; another key sees none of it', async () => {
    answer('for key A');
    const runId = await startAsync(keyA.auth);
    await t.app.get(OutboxRelay).drain();
    const got = await t.http.get(agentsUrl(org, `/${agent}/runs/${runId}`)).set(keyA.auth);
    expect([got.status, got.body.error?.code]).toEqual([200, undefined]);
    expect(got.body).toMatchObject({ id: runId, status: 'succeeded', output: 'for key A', trigger: 'async', startedBy: null });
    expect(got.body.trace.map((s: any) => s.kind)).toEqual(['llm_call']);
    // the database recorded the key on its run, and no key on the owner's
    const { rows } = await t.db.admin.query(`SELECT id::text, api_key_id::text FROM ai.runs WHERE org_id = $1 ORDER BY started_at`, [org]);
    expect(rows).toEqual([{ id: ownerRun, api_key_id: null }, { id: runId, api_key_id: keyA.id }]);

    const listA = await t.http.get(agentsUrl(org, `/${agent}/runs`)).set(keyA.auth).expect(200);
    expect(listA.body.items.map((r: any) => r.id)).toEqual([runId]);
    expect((await t.http.get(`/v1/orgs/${org}/ai/usage`).set(keyA.auth).expect(200)).body.runs).toBe(1);

    // another key: neither this run nor the owner's (what their tools read is not its to read)
    for (const id of [runId, ownerRun]) {
      const other = await t.http.get(agentsUrl(org, `/${agent}/runs/${id}`)).set(keyB.auth).expect(404);
      expect(other.body.error.code).toBe('run.not_found');
      expect(JSON.stringify(other.body)).not.toContain('for ');
    }
    expect((await t.http.get(agentsUrl(org, `/${agent}/runs`)).set(keyB.auth).expect(200)).body.items).toEqual([]);
    expect((await t.http.get(`/v1/orgs/${org}/ai/usage`).set(keyB.auth).expect(200)).body.runs).toBe(0);
    // the owner still sees every run
    expect((await t.http.get(agentsUrl(org, `/${agent}/runs`)).set(owner.auth).expect(200)).body.items.map((r: any) => r.id).sort()).toEqual([ownerRun, runId].sort());
    expect((await t.http.get(`/v1/orgs/${org}/ai/usage`).set(owner.auth).expect(200)).body.runs).toBe(2);
  });

  it('a key cancels its running run (audited as the key); another key gets 404 and changes nothing; a key without agents:run gets 403 naming it', async () => {
    const runId = await startAsync(keyA.auth);
    const refused = await t.http.post(agentsUrl(org, `/${agent}/runs/${runId}/cancel`)).set(keyB.auth).expect(404);
    expect(refused.body.error.code).toBe('run.not_found');
    const missing = await t.http.post(agentsUrl(org, `/${agent}/runs/${runId}/cancel`)).set(reader).expect(403);
    expect(missing.body.error).toMatchObject({ code: 'api_keys.scope_missing', details: { scope: 'agents:run' } });
    expect((await t.http.get(agentsUrl(org, `/${agent}/runs/${runId}`)).set(reader).expect(403)).body.error.code).toBe('api_keys.scope_missing');
    expect((await t.db.admin.query(`SELECT status FROM ai.runs WHERE id = $1`, [runId])).rows).toEqual([{ status: 'running' }]);

    const cancelled = await t.http.post(agentsUrl(org, `/${agent}/runs/${runId}/cancel`)).set(keyA.auth);
    expect([cancelled.status, cancelled.body.error?.code]).toEqual([200, undefined]);
    expect(cancelled.body).toMatchObject({ id: runId, status: 'cancelled', errorClass: 'cancelled' });
    expect((await t.db.admin.query(`SELECT status, stop_reason FROM ai.runs WHERE id = $1`, [runId])).rows).toEqual([{ status: 'cancelled', stop_reason: 'cancelled' }]);
    const audit = await t.db.admin.query(`SELECT principal_type, actor_id FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_cancelled' AND entity_id = $2`, [org, runId]);
    expect(audit.rows).toEqual([{ principal_type: 'service', actor_id: `api_key:${keyA.id}` }]);
    // its job, delivered later, leaves the cancelled run alone
    await t.app.get(OutboxRelay).drain();
    expect((await t.db.admin.query(`SELECT status FROM ai.runs WHERE id = $1`, [runId])).rows).toEqual([{ status: 'cancelled' }]);
  });

  it('the key on a run cannot be forged nor changed (SQL as the owner)', async () => {
    // as the API opens a request (begin_request): the owner may insert and update runs
    const asOwner = (sql: string, params: unknown[] = []) => t.db.asApi({ sub: owner.id, org_id: org }, 'authenticated', sql, params);
    const insert = `INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, input, api_key_id) VALUES ($1, $2, 'gpt-4o', $3, '{}', $4) RETURNING api_key_id`;
    await expect(asOwner(insert, [org, agent, owner.id, keyA.id])).rejects.toThrow(/row-level security/);
    // the same run without a key is the owner's to insert
    expect(await asOwner(insert, [org, agent, owner.id, null])).toEqual([{ api_key_id: null }]);
    // the owner's run still running: only the column's own trigger stands in the way
    const running = await startAsync(owner.auth);
    await expect(asOwner(`UPDATE ai.runs SET api_key_id = $2 WHERE id = $1`, [running, keyB.id])).rejects.toThrow(/not allowed/);
    expect((await t.db.admin.query(`SELECT status, api_key_id FROM ai.runs WHERE id = $1`, [running])).rows).toEqual([{ status: 'running', api_key_id: null }]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM ai.runs WHERE org_id = $1 AND api_key_id = $2`, [org, keyA.id])).rows).toEqual([{ n: 2 }]);
  });

  it('the document declares agents:run on the run reads, the usage report and the cancel, with api_keys.scope_missing', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const ops: [string, string][] = [
      ['/v1/orgs/{orgId}/agents/{agentId}/runs', 'get'], ['/v1/orgs/{orgId}/agents/{agentId}/runs/{runId}', 'get'],
      ['/v1/orgs/{orgId}/agents/{agentId}/runs/{runId}/cancel', 'post'], ['/v1/orgs/{orgId}/ai/usage', 'get'],
    ];
    for (const [path, method] of ops) {
      const op = doc.paths[path][method];
      const codes = (op['x-error-codes'] ?? []).map((c: { code: string }) => c.code);
      expect({ path, scope: op['x-omnizen-api-key-scope'], missing: codes.includes('api_keys.scope_missing'), closed: codes.includes('api_keys.route_closed') })
        .toEqual({ path, scope: 'agents:run', missing: true, closed: false });
    }
  });
});
