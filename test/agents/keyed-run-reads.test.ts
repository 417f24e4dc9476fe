import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';
import { DatabaseService, type TenantTx } from '../../src/platform/database/database.service.js';
import { AgentsService } from '../../src/modules/agents/agents.service.js';
import { apiKeyPrincipal } from '../../src/modules/api-keys/api-key-secret.js';

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
    expect(got.body).toMatchObject({ id: runId, status: 'succeeded', output: 'for key A', trigger: 'async', startedBy: null, apiKeyId: keyA.id });
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
    // the owner still sees every run, and which key started which
    const ownerList = (await t.http.get(agentsUrl(org, `/${agent}/runs`)).set(owner.auth).expect(200)).body.items;
    expect(ownerList.map((r: any) => [r.id, r.apiKeyId]).sort()).toEqual([[ownerRun, null], [runId, keyA.id]].sort());
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
    // the run says which key cancelled it, not "a person"
    expect(cancelled.body).toMatchObject({ id: runId, status: 'cancelled', errorClass: 'cancelled', errorMessage: `cancelled by API key ${keyA.id}` });
    expect((await t.db.admin.query(`SELECT status, stop_reason, error_message FROM ai.runs WHERE id = $1`, [runId])).rows)
      .toEqual([{ status: 'cancelled', stop_reason: 'cancelled', error_message: `cancelled by API key ${keyA.id}` }]);
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

  it('a key\'s run list and usage report read its own runs, not every run of the organization (runs_api_key_idx)', async () => {
    // 2,000 runs of the owner's; the key's list and usage report must not go through them to find its own
    await t.db.admin.query(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, trigger, status, stop_reason, input, started_at, finished_at)
      SELECT $1, $2, 'gpt-4o', $3, 'interactive', 'succeeded', 'answer', '{}', now() - g * interval '1 second', now() - g * interval '1 second'
      FROM generate_series(1, 2000) g`, [org, agent, owner.id]);
    await t.db.admin.query('ANALYZE ai.runs');
    const own = Number((await t.db.admin.query(`SELECT count(*) AS n FROM ai.runs WHERE org_id = $1 AND api_key_id = $2`, [org, keyA.id])).rows[0].n);
    expect(own).toBeGreaterThan(0);
    // the service's own queries, as the key asks them (its verified transaction), each EXPLAIN ANALYZEd in it
    const reads = async (call: (svc: AgentsService, tx: TenantTx) => Promise<unknown>) => {
      const principal = apiKeyPrincipal(keyA.auth.Authorization)!;
      return t.app.get(DatabaseService).tenant(principal, org, { requestId: 'h6b-plan' }, async (tx) => {
        const captured: { sql: string; values: unknown[] }[] = [];
        const db = new Proxy(tx.db, { get(target, prop) {
          if (prop === 'run') return async (q: any) => { const c = q.compile(); captured.push({ sql: c.sql, values: [...c.parameters] }); return target.run(q); };
          if (prop === '$queryRaw') return async (strings: TemplateStringsArray, ...values: unknown[]) => {
            captured.push({ sql: strings.reduce((a, x, i) => `${a}$${i}${x}`), values });
            return target.$queryRaw(strings, ...values);
          };
          const v = Reflect.get(target, prop);
          return typeof v === 'function' ? v.bind(target) : v;
        } });
        await call(t.app.get(AgentsService), { ...tx, db });
        const q = captured.filter((c) => /from "?ai"?\."?runs"?/i.test(c.sql)).at(-1)!;
        const [{ 'QUERY PLAN': [plan] }] = await tx.db.$queryRawUnsafe<any[]>(`EXPLAIN (ANALYZE, FORMAT JSON) ${q.sql}`, ...q.values);
        const nodes = (p: any): any[] => [p, ...((p.Plans ?? []) as any[]).flatMap(nodes)];
        return nodes(plan.Plan).filter((n) => n['Relation Name'] === 'runs')
          .reduce((sum, n) => sum + (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0)) * n['Actual Loops'], 0);
      });
    };
    expect(await reads((svc, tx) => svc.listRuns(tx, agent, { limit: 50 } as any))).toBeLessThanOrEqual(own);
    expect(await reads((svc, tx) => svc.usage(tx))).toBeLessThanOrEqual(own);
    // what the key sees is unchanged: its runs only
    const list = (await t.http.get(agentsUrl(org, `/${agent}/runs?limit=100`)).set(keyA.auth).expect(200)).body.items;
    expect(list.length).toBe(own);
    expect(list.every((r: any) => r.apiKeyId === keyA.id)).toBe(true);
    expect((await t.http.get(`/v1/orgs/${org}/ai/usage`).set(keyA.auth).expect(200)).body.runs).toBe(own);
  });

  it('semantic.v_agent_metrics read with a semantic:read key counts that key\'s runs only, and its catalog entry says so', async () => {
    const semantic = await createKey(['semantic:read']);
    const both = await createKey(['semantic:read', 'agents:run']);
    answer('for the semantic key');
    const bothRun = await startAsync(both.auth);
    await t.app.get(OutboxRelay).drain();
    const runs = async (auth: Record<string, string>) => {
      const res = await t.http.post(`/v1/orgs/${org}/semantic/query`).set(auth).send({ sql: 'SELECT coalesce(sum(runs), 0)::int AS n FROM semantic.v_agent_metrics' });
      expect([res.status, res.body.error?.code]).toEqual([200, undefined]);
      return res.body.rows[0][0];
    };
    expect(await runs(semantic.auth)).toBe(0);
    expect(await runs(both.auth)).toBe(1);
    const all = Number((await t.db.admin.query(`SELECT count(*) AS n FROM ai.runs WHERE org_id = $1`, [org])).rows[0].n);
    expect(await runs(owner.auth)).toBe(all);
    expect((await t.db.admin.query(`SELECT api_key_id::text FROM ai.runs WHERE id = $1`, [bothRun])).rows).toEqual([{ api_key_id: both.id }]);
    const views = (await t.http.get(`/v1/orgs/${org}/semantic/views`).set(semantic.auth).expect(200)).body;
    expect(views.find((v: any) => v.name === 'semantic.v_agent_metrics').description).toContain('an API key: the runs that key started, none if it runs no agent');
  });

  it('a key\'s policies read the key its transaction verified (inlined, no function call per row), the full check agrees, and the key cannot forge the record', async () => {
    // public.auth_api_key_id() is plain SQL since 20270211000600 (review rk: a key's count of v_agent_metrics at 100k runs
    // took 5.9-8.4 s, one SECURITY DEFINER call per row); begin_request records the key in omnizen.verified_api_key
    const principal = apiKeyPrincipal(keyA.auth.Authorization)!;
    // the statements in one transaction of the key, opened as the API opens it (begin_key_request); the last one's first row
    const inKeyTx = (...sqls: string[]) => t.app.get(DatabaseService).tenant(principal, org, { requestId: 'hk-inline' }, async (tx) => {
      let rows: any[] = [];
      for (const sql of sqls) rows = await tx.db.$queryRawUnsafe<any[]>(sql);
      return rows[0];
    });
    const plan = JSON.stringify((await inKeyTx('EXPLAIN (VERBOSE, FORMAT JSON) SELECT count(*) FROM ai.runs'))['QUERY PLAN']);
    expect(plan).not.toMatch(/auth_api_key_id\(\)/);
    expect(plan).toContain('omnizen.verified_api_key');
    expect(await inKeyTx('SELECT public.auth_api_key_id()::text AS fast, public.auth_api_key_id_checked()::text AS checked'))
      .toEqual({ fast: keyA.id, checked: keyA.id });
    // a missing record is no answer (the full check), never "no key": a key's transaction without it still sees its own only
    expect(await inKeyTx(`SELECT set_config('omnizen.verified_api_key', '', true)`, `SELECT public.auth_api_key_id()::text AS key,
        (SELECT count(*) FROM ai.runs WHERE api_key_id IS DISTINCT FROM public.auth_api_key_id_checked())::int AS others`))
      .toEqual({ key: keyA.id, others: 0 });
    // the record is the database's: a key's semantic SQL may not set it (nor any setting) to see the service's every run
    const both = await createKey(['semantic:read', 'agents:run']);
    const count = 'SELECT coalesce(sum(runs), 0)::int AS n FROM semantic.v_agent_metrics';
    const semantic = (sql: string) => t.http.post(`/v1/orgs/${org}/semantic/query`).set(both.auth).send({ sql });
    for (const forged of [`SELECT set_config('omnizen.verified_api_key', 'none', true), (${count}) AS n`, `SET LOCAL omnizen.verified_api_key = 'none'`]) {
      const res = await semantic(forged);
      expect([res.status, res.body.error?.code]).toEqual([400, 'semantic.query_refused']);
    }
    const res = await semantic(count);
    expect([res.status, res.body.rows]).toEqual([200, [[0]]]);
    const all = Number((await t.db.admin.query(`SELECT count(*) AS n FROM ai.runs WHERE org_id = $1`, [org])).rows[0].n);
    expect(all).toBeGreaterThan(0);
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
