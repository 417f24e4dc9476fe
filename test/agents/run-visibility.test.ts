import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';

/**
 * A run keeps what its tools read with the claims of the person who started it (here: passages of an owner-only
 * knowledge collection). The database shows a run and its steps only to its starter, owners, admins and API keys:
 * a viewer cannot read an owner's trace (the review's repro), by the API nor by SQL as the viewer.
 */
describe('who reads a run and its trace', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let admin: TestUser;
  let viewer: TestUser;
  let org: string;
  let agent: string;
  let ownerRun: string;
  let viewerRun: string;
  const secret = 'The merger with Globex Holdings was approved in secret.';

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '30000', AI_MAX_RETRIES: '2', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env,
      AI_EMBEDDING_MODEL: 'double-embedding', AI_EMBEDDING_DIMENSIONS: '8',
    });
    (t.app.get(Sleeper) as Sleeper).sleep = async () => {};
    owner = await registerUser(t, 'runvis-owner');
    admin = await registerUser(t, 'runvis-admin');
    viewer = await registerUser(t, 'runvis-viewer');
    org = await createOrg(t, owner, 'RunVis');
    await onEnterprisePlan(t, org);
    await addMember(t, org, admin, 'admin');
    await addMember(t, org, viewer, 'viewer');
    // an owner-only collection (readRoles: [] → owner and admin)
    const board = (await t.http.post(`/v1/orgs/${org}/knowledge/collections`).set(owner.auth).send({ name: 'Board', readRoles: [] }).expect(201)).body.id;
    await t.http.post(`/v1/orgs/${org}/knowledge/documents`).set(owner.auth).send({ collectionId: board, title: 'Board minutes', text: secret }).expect(201);
    await t.app.get(OutboxRelay).drain();
    agent = (await t.http.post(agentsUrl(org)).set(owner.auth)
      .send({ name: 'K', type: 'accountant', modelId: 'gpt-4o', maxSteps: 2, tools: ['search_knowledge'] }).expect(201)).body.id;
    const searchThenAnswer = () => llm.enqueue(
      { kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [{ name: 'search_knowledge', arguments: JSON.stringify({ query: 'merger', k: 5 }) }] },
      { kind: 'text', content: 'done', usage: { prompt: 10, completion: 1 } },
    );
    searchThenAnswer();
    const ran = await t.http.post(agentsUrl(org, `/${agent}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'board minutes?' }] }).expect(200);
    ownerRun = ran.body.id;
    // the owner's own run answers with the passage (what the owner may read)
    expect(JSON.stringify(ran.body.trace)).toContain('Globex');
    searchThenAnswer();
    viewerRun = (await t.http.post(agentsUrl(org, `/${agent}/runs`)).set(viewer.auth).send({ messages: [{ role: 'user', content: 'my question' }] }).expect(200)).body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('answers a viewer 404 for an owner\'s run (no trace, no output), and the owner and an admin the full trace', async () => {
    // the trace in the database holds the passage of the owner-only collection
    const stored = await t.db.admin.query(`SELECT detail::text AS d FROM ai.run_steps WHERE run_id = $1 AND kind = 'retrieval'`, [ownerRun]);
    expect(stored.rows[0].d).toContain('Globex');

    const seen = await t.http.get(agentsUrl(org, `/${agent}/runs/${ownerRun}`)).set(viewer.auth).expect(404);
    expect(seen.body.error).toMatchObject({ code: 'run.not_found' });
    expect(JSON.stringify(seen.body)).not.toContain('Globex');

    for (const reader of [owner, admin]) {
      const full = await t.http.get(agentsUrl(org, `/${agent}/runs/${ownerRun}`)).set(reader.auth).expect(200);
      expect(full.body).toMatchObject({ id: ownerRun, startedBy: owner.id, status: 'succeeded', output: 'done' });
      const tool = full.body.trace.find((s: any) => s.kind === 'retrieval');
      expect(tool.detail.result.items.map((i: any) => i.text).join()).toContain('Globex');
    }
  });

  it('refuses a viewer\'s cancel of an owner\'s run as a role matter (403), whether or not the run exists, changing nothing', async () => {
    const refused = await t.http.post(agentsUrl(org, `/${agent}/runs/${ownerRun}/cancel`)).set(viewer.auth).expect(403);
    expect(refused.body.error).toMatchObject({ code: 'forbidden.role', message: expect.stringContaining('only the person who started the run') });
    const unknown = await t.http.post(agentsUrl(org, `/${agent}/runs/00000000-0000-4000-8000-000000000000/cancel`)).set(viewer.auth).expect(403);
    expect(unknown.body.error.code).toBe('forbidden.role');
    // their own finished run: the run's own rule answers
    expect((await t.http.post(agentsUrl(org, `/${agent}/runs/${viewerRun}/cancel`)).set(viewer.auth).expect(409)).body.error.code).toBe('ai.run_finished');
    const { rows } = await t.db.admin.query(`SELECT status, error_message FROM ai.runs WHERE id = $1`, [ownerRun]);
    expect(rows).toEqual([{ status: 'succeeded', error_message: null }]);
    const audits = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_cancelled'`, [org]);
    expect(audits.rows[0].n).toBe(0);
  });

  it('lists the runs a viewer started, and every run to an owner or admin', async () => {
    const listed = async (u: TestUser) => (await t.http.get(agentsUrl(org, `/${agent}/runs`)).set(u.auth).expect(200)).body;
    const mine = await listed(viewer);
    expect(mine.items.map((r: any) => r.id)).toEqual([viewerRun]);
    expect(mine.items[0]).toMatchObject({ startedBy: viewer.id, output: 'done' });
    expect(JSON.stringify(mine)).not.toContain('Globex');
    expect((await listed(owner)).items.map((r: any) => r.id).sort()).toEqual([ownerRun, viewerRun].sort());
    expect((await listed(admin)).items.map((r: any) => r.id).sort()).toEqual([ownerRun, viewerRun].sort());
    // the viewer reads their own run with its trace (their search did not reach the owner-only collection)
    const own = await t.http.get(agentsUrl(org, `/${agent}/runs/${viewerRun}`)).set(viewer.auth).expect(200);
    expect(own.body).toMatchObject({ id: viewerRun, startedBy: viewer.id, output: 'done' });
    expect(own.body.trace.map((s: any) => s.kind)).toEqual(['llm_call', 'retrieval', 'llm_call']);
    expect(JSON.stringify(own.body)).not.toContain('Globex');
    // the usage report counts what each may see
    const usage = async (u: TestUser) => (await t.http.get(`/v1/orgs/${org}/ai/usage`).set(u.auth).expect(200)).body.runs;
    expect(await usage(viewer)).toBe(1);
    expect(await usage(owner)).toBe(2);
  });

  it('decides it in the database: the viewer\'s SQL reads neither the owner\'s run nor its steps, and cannot change it', async () => {
    const asViewer = (sql: string, params: unknown[] = []) => t.db.as({ sub: viewer.id, role: 'authenticated', org_id: org }, 'authenticated', sql, params);
    expect(await asViewer('SELECT id::text FROM ai.runs ORDER BY id')).toEqual([{ id: viewerRun }]);
    expect(await asViewer('SELECT count(*)::int AS n FROM ai.run_steps WHERE run_id = $1', [ownerRun])).toEqual([{ n: 0 }]);
    expect(await asViewer(`SELECT count(*)::int AS n FROM ai.run_steps WHERE detail::text LIKE '%Globex%'`)).toEqual([{ n: 0 }]);
    expect((await asViewer('SELECT count(*)::int AS n FROM ai.run_steps WHERE run_id = $1', [viewerRun]))[0].n).toBe(3);
    expect(await asViewer('SELECT runs::int FROM semantic.v_agent_metrics')).toEqual([{ runs: 1 }]);
    // nor changed (the row is not there for the viewer: before, the finished-run guard refused it)
    expect(await asViewer(`UPDATE ai.runs SET error_message = 'x' WHERE id = $1 RETURNING id`, [ownerRun])).toEqual([]);
    const asOwner = (sql: string, params: unknown[] = []) => t.db.as({ sub: owner.id, role: 'authenticated', org_id: org }, 'authenticated', sql, params);
    expect((await asOwner('SELECT id::text FROM ai.runs ORDER BY id')).length).toBe(2);
    expect((await asOwner(`SELECT count(*)::int AS n FROM ai.run_steps WHERE detail::text LIKE '%Globex%'`))[0].n).toBeGreaterThan(0);
  });
});
