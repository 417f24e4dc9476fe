import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { CallTimer, Sleeper } from '../../src/platform/ai/llm-provider.js';
import { APP_CONFIG, type AppConfig } from '../../src/platform/config/config.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { MAX_ENCODE_CHARS } from '../../src/platform/ai/bounded-tokenizer.js';
import { countChatInputTokens, countTextTokens } from '../../src/platform/ai/token-count.js';
import { agentsUrl, booksWithEntry, usagelessInput } from './agents-support.js';
import { spyOnEncoder, sum } from './encoder-spy.js';
import { startPartialStreamDouble } from './partial-stream-double.js';

/**
 * Runs against the OpenAI-compatible double: the trace (LLM call → tool → LLM call) with tokens and cost to the
 * cent, streamed and not (same usage, same cost), retries on 429 honouring Retry-After (no wall-clock sleep: the
 * sleeper is replaced), the timeout of a hung call, cancellation, async runs, immutability, and the claims a
 * run's tools execute with (a viewer of A reaches only A's rows, checked in SQL through auth.uid()).
 */
describe('agent runs', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let ownerA: TestUser;
  let viewerA: TestUser;
  let ownerB: TestUser;
  let orgA: string;
  let orgB: string;
  let agentId: string;
  const slept: number[] = [];

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '30000', AI_MAX_RETRIES: '2', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env,
      // the double's embeddings (search_knowledge): 8 dimensions
      AI_EMBEDDING_MODEL: 'double-embedding', AI_EMBEDDING_DIMENSIONS: '8',
    });
    (t.app.get(Sleeper) as Sleeper).sleep = async (ms: number) => {
      slept.push(ms);
    };
    ownerA = await registerUser(t, 'run-owner-a');
    viewerA = await registerUser(t, 'run-viewer-a');
    ownerB = await registerUser(t, 'run-owner-b');
    orgA = await createOrg(t, ownerA, 'Runs A');
    orgB = await createOrg(t, ownerB, 'Runs B');
    await onPlan(t, orgA, 'professional');
    await addMember(t, orgA, viewerA, 'viewer');
    await booksWithEntry(t, orgA, ownerA, '100.00', 'A capital');
    await booksWithEntry(t, orgB, ownerB, '999.00', 'B secret capital');
    // who the database sees, as a semantic view (test-only): the SQL-level check of the runner's claims
    await t.db.admin.query(`CREATE VIEW semantic.v_whoami WITH (security_invoker = true) AS
      SELECT auth.uid()::text AS user_id, public.auth_org_id()::text AS org_id, public.auth_role() AS role;
      GRANT SELECT ON semantic.v_whoami TO authenticated`);
    const res = await t.http.post(agentsUrl(orgA)).set(ownerA.auth).send({
      name: 'Reviewer', type: 'accountant', instructions: 'Answer from the books.', modelId: 'gpt-4o', maxOutputTokens: 4000, maxSteps: 4,
      tools: ['query_semantic', 'get_trial_balance', 'get_profit_and_loss', 'draft_journal_entry'],
    }).expect(201);
    agentId = res.body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });
  beforeEach(() => {
    llm.requests.length = 0;
    llm.clear();
    slept.length = 0;
  });

  const run = (user: TestUser, body: unknown = { messages: [{ role: 'user', content: 'What is our cash?' }] }) =>
    t.http.post(agentsUrl(orgA, `/${agentId}/runs`)).set(user.auth).send(body as object);

  const sse = (user: TestUser) => run(user).set('Accept', 'text/event-stream').buffer(true)
    .parse((res, cb) => {
      let data = '';
      res.on('data', (c: Buffer) => (data += c.toString()));
      res.on('end', () => cb(null, data));
    });

  const events = (text: string) => text.split('\n\n').filter(Boolean).map((block) => {
    const [ev, data] = block.split('\n');
    return { event: ev.replace('event: ', ''), data: JSON.parse(data.replace('data: ', '')) };
  });

  const SQL = 'SELECT memo, sum(base_amount) AS total FROM semantic.v_gl_fact GROUP BY memo';
  const script = () => llm.enqueue(
    { kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }], usage: { prompt: 100_000, completion: 2_000 } },
    { kind: 'text', content: 'Cash at bank is EUR 100.00.', usage: { prompt: 120_000, completion: 5_000, cached: 100_000 } },
  );

  it('records a tool-calling run as a trace with tokens by type and cost to the cent', async () => {
    script();
    const res = await run(viewerA).expect(200);
    expect(res.body).toMatchObject({
      status: 'succeeded', stopReason: 'answer', output: 'Cash at bank is EUR 100.00.', errorClass: null, steps: 3, startedBy: viewerA.id,
      // gpt-4o: 2.50 input, 10.00 output, 1.25 cached input per million
      // call 1: 100,000 × 2.50 + 2,000 × 10 = 0.27 USD; call 2: 20,000 × 2.50 + 100,000 × 1.25 + 5,000 × 10 = 0.225 USD
      usage: { inputTokens: 120_000, outputTokens: 7_000, cachedInputTokens: 100_000, cacheWriteTokens: 0 },
      cost: '0.49500000',
    });
    expect(res.body.trace.map((s: any) => [s.stepNo, s.kind, s.name, s.status, s.cost])).toEqual([
      [1, 'llm_call', 'gpt-4o', 'succeeded', '0.27000000'],
      [2, 'tool_call', 'query_semantic', 'succeeded', '0.00000000'],
      [3, 'llm_call', 'gpt-4o', 'succeeded', '0.22500000'],
    ]);
    expect(res.body.trace[0].prices).toMatchObject({ input: '2.500000', output: '10.000000', cachedInput: '1.250000' });
    expect(res.body.trace[1].detail.result.rows).toEqual([['A capital', '0.0000']]);
    // the model got the tool's rows: A's only
    const second = llm.requests[1].body;
    const toolMessage = second.messages.find((m: any) => m.role === 'tool');
    expect(toolMessage.content).toContain('A capital');
    expect(JSON.stringify(llm.requests)).not.toContain('B secret');
    expect(llm.requests[0].authorization).toBe('Bearer sk-test-platform-key-0000');
    expect(llm.requests[0].body.tools.map((x: any) => x.function.name).sort()).toEqual(['draft_journal_entry', 'get_profit_and_loss', 'get_trial_balance', 'query_semantic']);
    // stored as answered
    const { rows } = await t.db.admin.query('SELECT status, cost::text, input_tokens::int, cached_input_tokens::int, steps FROM ai.runs WHERE id = $1', [res.body.id]);
    expect(rows[0]).toEqual({ status: 'succeeded', cost: '0.49500000', input_tokens: 120_000, cached_input_tokens: 100_000, steps: 3 });
    const steps = await t.db.admin.query('SELECT step_no, cost::text, latency_ms >= 0 AS timed FROM ai.run_steps WHERE run_id = $1 ORDER BY step_no', [res.body.id]);
    expect(steps.rows).toEqual([{ step_no: 1, cost: '0.27000000', timed: true }, { step_no: 2, cost: '0.00000000', timed: true }, { step_no: 3, cost: '0.22500000', timed: true }]);
  });

  it('streams the same run as server-sent events, at the same cost, with time to first token', async () => {
    script();
    const res = await sse(viewerA).expect(200).expect('content-type', /text\/event-stream/);
    const list = events(res.body as unknown as string);
    const names = list.map((e) => e.event);
    expect(names[0]).toBe('run');
    expect(names).toContain('tool_call');
    expect(names).toContain('tool_result');
    expect(names.filter((n) => n === 'token').length).toBeGreaterThan(1);
    expect(list.filter((e) => e.event === 'token').map((e) => e.data.delta).join('')).toBe('Cash at bank is EUR 100.00.');
    const result = list[list.length - 1];
    expect(result.event).toBe('result');
    expect(result.data).toMatchObject({ status: 'succeeded', cost: '0.49500000', output: 'Cash at bank is EUR 100.00.' });
    expect(result.data.trace[0].streamed).toBe(true);
    expect(typeof result.data.trace[2].timeToFirstTokenMs).toBe('number');
    expect(llm.requests[0].body.stream).toBe(true);
  });

  it('retries a 429 after its Retry-After and a 500 with backoff, recording the attempts', async () => {
    llm.enqueue({ kind: 'error', status: 429, retryAfter: '7' }, { kind: 'error', status: 500 }, { kind: 'text', content: 'fine', usage: { prompt: 1000, completion: 10 } });
    const res = await run(viewerA).expect(200);
    expect(res.body).toMatchObject({ status: 'succeeded', output: 'fine', cost: '0.00260000' });
    expect(slept).toEqual([7000, 1000]);
    expect(res.body.trace[0]).toMatchObject({ attempts: 3, status: 'succeeded' });
    expect(res.body.trace[0].detail.failures).toHaveLength(2);
  });

  it('fails with provider_rate_limited after the bounded retries, and provider_error on a 500 that persists', async () => {
    llm.enqueue({ kind: 'error', status: 429, retryAfter: '1' }, { kind: 'error', status: 429, retryAfter: '1' }, { kind: 'error', status: 429, retryAfter: '1' });
    const limited = await run(viewerA).expect(200);
    expect(limited.body).toMatchObject({ status: 'failed', errorClass: 'provider_rate_limited', cost: '0.00000000' });
    expect(limited.body.trace[0]).toMatchObject({ status: 'failed', errorClass: 'provider_rate_limited', attempts: 3 });
    llm.enqueue({ kind: 'error', status: 500, body: { error: { message: 'upstream said sk-test-platform-key-0000' } } }, { kind: 'error', status: 500 }, { kind: 'error', status: 500 });
    const broken = await run(viewerA).expect(200);
    expect(broken.body).toMatchObject({ status: 'failed', errorClass: 'provider_error' });
    // the provider's body (which may echo the key) is never passed on
    expect(JSON.stringify(broken.body)).not.toContain('sk-test');
  });

  it('fails a call that hangs past the timeout with error class timeout', async () => {
    // this test's timeout is short; the file's is long (a loaded machine answers late, and the next test cancels a hung call):
    // each run reads AI_TIMEOUT_MS from the app's config when it opens its provider connection
    const ai = t.app.get<AppConfig>(APP_CONFIG).ai;
    const fileTimeout = ai.timeoutMs;
    ai.timeoutMs = 150;
    llm.enqueue({ kind: 'hang' });
    let res;
    try {
      res = await run(viewerA).expect(200);
    } finally {
      ai.timeoutMs = fileTimeout;
    }
    expect(res.body).toMatchObject({ status: 'failed', errorClass: 'timeout' });
    expect(res.body.errorMessage).toMatch(/150 ms/);
    const { rows } = await t.db.admin.query(`SELECT type, payload->'payload'->>'errorClass' AS ec FROM (
      SELECT payload->>'type' AS type, payload FROM core.outbox WHERE topic = 'domain_event' AND payload->'payload'->>'runId' = $1) x`, [res.body.id]);
    expect(rows).toEqual([{ type: 'agent.run.failed', ec: 'timeout' }]);
  });

  it('cancels a running run: it stops, is cancelled, and stays immutable', async () => {
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const started = run(viewerA).then((r) => r);
    // once the double holds the call, cancel through the API
    await held;
    const { rows: [{ id }] } = await t.db.admin.query(`SELECT id FROM ai.runs WHERE status = 'running' ORDER BY started_at DESC LIMIT 1`);
    const cancelled = await t.http.post(agentsUrl(orgA, `/${agentId}/runs/${id}/cancel`)).set(viewerA.auth).expect(200);
    expect(cancelled.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled' });
    const res = await started;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled' });
    await t.http.post(agentsUrl(orgA, `/${agentId}/runs/${id}/cancel`)).set(viewerA.auth).expect(409);
    // a finished run cannot change, even for the table's owner
    await expect(t.db.admin.query(`UPDATE ai.runs SET output = 'x' WHERE id = $1`, [id])).rejects.toThrow(/is finished/);
    // a cancelled run takes only its cut calls' steps, which add to its counters: they never go down
    await expect(t.db.admin.query(`UPDATE ai.runs SET cost = 0, steps = 0 WHERE id = $1`, [id])).rejects.toThrow(/is finished/);
    await expect(t.db.admin.query(`INSERT INTO ai.run_steps (org_id, run_id, step_no, kind, name, status, started_at, ended_at, latency_ms)
      SELECT org_id, id, 99, 'tool_call', 'x', 'succeeded', now(), now(), 0 FROM ai.runs WHERE id = $1`, [id])).rejects.toThrow(/is finished/);
  });

  /** Runs `work` with the platform's provider endpoint at `url` (each run reads it when it opens its connection). */
  const atEndpoint = async <T>(url: string, work: () => Promise<T>): Promise<T> => {
    const ai = t.app.get<AppConfig>(APP_CONFIG).ai;
    const before = ai.baseUrl;
    ai.baseUrl = url;
    try {
      return await work();
    } finally {
      ai.baseUrl = before;
    }
  };
  /** A streamed run of `agent` whose `streamed` resolves once the client has received `text` as token events. */
  const streamedRun = (orgId: string, agent: string, text: string) => {
    let seen!: () => void;
    const streamed = new Promise<void>((resolve) => (seen = resolve));
    const response = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(ownerA.auth).set('Accept', 'text/event-stream')
      .send({ messages: [{ role: 'user', content: 'What is our cash?' }] }).buffer(true)
      .parse((res, cb) => {
        let data = '';
        res.on('data', (c: Buffer) => {
          data += c.toString();
          if (events(data.slice(0, data.lastIndexOf('\n\n') + 2)).filter((e) => e.event === 'token').map((e) => e.data.delta).join('').includes(text)) seen();
        });
        res.on('end', () => cb(null, data));
      })
      .then((r) => events(r.body as unknown as string));
    return { streamed, response };
  };
  // gpt-4o: 2.50 input, 10.00 output per million; what the counter gives the cut call: its input and what had arrived
  const gpt4oCost = (input: number, output: number) => new Decimal(input).times('2.5').plus(new Decimal(output).times(10)).div(1_000_000).toFixed(8);
  // an organization of their own: their agents and spend stay out of A's usage report
  let orgD: string | undefined;
  const cutAgent = async () => {
    if (!orgD) {
      orgD = await createOrg(t, ownerA, 'Runs D cut calls');
      await onPlan(t, orgD, 'professional');
    }
    const agent = (await t.http.post(agentsUrl(orgD)).set(ownerA.auth).send({ name: `Cut ${Math.random()}`, type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id as string;
    const budget = (await t.http.post(`/v1/orgs/${orgD}/ai/budgets`).set(ownerA.auth).send({ agentId: agent, costLimit: '10.00' }).expect(201)).body.id as string;
    const counted = countChatInputTokens([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is our cash?' }]);
    // what a call cut before the provider reported usage is billed for its input: the count at gpt-4o's margin
    return { orgId: orgD, agent, budget, input: usagelessInput(counted), counted };
  };
  const budgetUsage = async (budgetId: string) => (await t.db.admin.query(
    'SELECT spent_cost::text, reserved_cost::text, spent_tokens::int FROM ai.budget_usage WHERE budget_id = $1', [budgetId])).rows[0];
  /** The run as stored, and what its steps add up to. */
  const storedRun = async (runId: string) => (await t.db.admin.query(`SELECT r.status, r.cost::text AS cost, r.steps,
      (r.input_tokens + r.output_tokens)::int AS tokens, (SELECT sum(s.cost)::text FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS steps_cost,
      (SELECT count(*)::int FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS step_rows
    FROM ai.runs r WHERE r.id = $1`, [runId])).rows[0];

  it('charges and stores the failed attempts the provider billed when the retry\'s reservation fails (the starter removed between attempts)', async () => {
    const partial = await startPartialStreamDouble();
    const { orgId, agent, budget, input } = await cutAgent();
    const leaver = await registerUser(t, 'run-leaver');
    await addMember(t, orgId, leaver, 'member');
    const sleeper = t.app.get(Sleeper) as Sleeper;
    const sleep = sleeper.sleep;
    // removed in the back-off before the retry: reserving the retry (the starter's transaction) is refused
    sleeper.sleep = async () => {
      await t.db.admin.query('DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, leaver.id]);
    };
    try {
      const chunks = ['Cash at bank ', 'is EUR 100'];
      partial.enqueue({ kind: 'drop', chunks }, { kind: 'text', content: 'Cash is EUR 100.00.', usage: { prompt: input, completion: 900 } });
      const text = await atEndpoint(partial.url, async () => (await t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(leaver.auth).set('Accept', 'text/event-stream')
        .send({ messages: [{ role: 'user', content: 'What is our cash?' }] }).buffer(true)
        .parse((res, cb) => {
          let d = '';
          res.on('data', (c: Buffer) => (d += c.toString()));
          res.on('end', () => cb(null, d));
        })).body as unknown as string);
      // the retry was never made
      expect(partial.requests).toHaveLength(1);
      const list = events(text).filter((e) => e.event !== 'token');
      const output = countTextTokens(chunks.join(''));
      const cost = gpt4oCost(input, output);
      expect(cost).not.toBe('0.00000000');
      const step = { kind: 'llm_call', status: 'failed', errorClass: 'internal', cost };
      expect(list.map((e) => e.event)).toEqual(['run', 'step', 'error', 'result']);
      expect(list[1].data).toMatchObject(step);
      expect(list[2].data).toMatchObject({ code: 'organization.not_found' });
      expect(list[3].data).toMatchObject({ status: 'failed', errorClass: 'internal', cost, steps: 1, trace: [step] });
      // the broken attempt is charged and is the run's step: the run, its steps and the budget agree
      expect(await storedRun(list[3].data.id)).toEqual({ status: 'failed', cost, steps: 1, tokens: input + output, steps_cost: cost, step_rows: 1 });
      expect(await budgetUsage(budget)).toEqual({ spent_cost: cost, reserved_cost: '0.00000000', spent_tokens: input + output });
      const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE budget_id = $1', [budget]);
      expect(rows[0].n).toBe(0);
    } finally {
      sleeper.sleep = sleep;
      await partial.close();
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('bills a streamed call cancelled mid-answer: its input and the tokens streamed count against the budget', async () => {
    const partial = await startPartialStreamDouble();
    const { orgId, agent, budget, input } = await cutAgent();
    try {
      const chunks = ['Cash at bank ', 'is EUR ', '100.00 as of ', 'the last posting'];
      partial.enqueue({ kind: 'hold', chunks });
      const list = await atEndpoint(partial.url, async () => {
        const { streamed, response } = streamedRun(orgId, agent, chunks.join(''));
        // every chunk reached the client; the provider is still answering when the run is cancelled
        await streamed;
        const { rows: [{ id }] } = await t.db.admin.query(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);
        await t.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(ownerA.auth).expect(200);
        return response;
      });
      expect(list.at(-1)).toMatchObject({ event: 'result', data: { status: 'cancelled', errorClass: 'cancelled' } });
      const output = countTextTokens(chunks.join(''));
      expect(output).toBeGreaterThan(5);
      const cost = gpt4oCost(input, output);
      expect(await budgetUsage(budget)).toEqual({ spent_cost: cost, reserved_cost: '0.00000000', spent_tokens: input + output });
      // the cut call is a step of the cancelled run: its steps add up to what was billed
      const runId = list.at(-1)!.data.id;
      expect(list.at(-1)!.data).toMatchObject({ cost, trace: [{ kind: 'llm_call', status: 'failed', errorClass: 'cancelled', cost }] });
      expect(await storedRun(runId)).toEqual({ status: 'cancelled', cost, steps: 1, tokens: input + output, steps_cost: cost, step_rows: 1 });
      const answered = await t.http.get(`/v1/orgs/${orgId}/ai/budgets/${budget}`).set(ownerA.auth).expect(200);
      expect(answered.body).toMatchObject({ spentCost: cost, spentTokens: input + output });
      const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE budget_id = $1', [budget]);
      expect(rows[0].n).toBe(0);
    } finally {
      await partial.close();
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('bills a call cancelled while the provider works on it, before any answer: its input counts against the budget', async () => {
    const { orgId, agent, budget, input } = await cutAgent();
    try {
      llm.enqueue({ kind: 'hang' });
      const held = llm.nextHang();
      const started = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(ownerA.auth).send({ messages: [{ role: 'user', content: 'What is our cash?' }] }).then((r) => r);
      await held;
      const { rows: [{ id }] } = await t.db.admin.query(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);
      await t.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(ownerA.auth).expect(200);
      const cost = gpt4oCost(input, 0);
      const finished = (await started).body;
      expect(finished).toMatchObject({ id, status: 'cancelled', cost, usage: { inputTokens: input, outputTokens: 0 } });
      expect(finished.trace).toEqual([expect.objectContaining({ kind: 'llm_call', status: 'failed', errorClass: 'cancelled', cost, usage: expect.objectContaining({ inputTokens: input }) })]);
      expect(await budgetUsage(budget)).toEqual({ spent_cost: cost, reserved_cost: '0.00000000', spent_tokens: input });
      // the run's steps add up to what was billed, also as GET answers it
      expect(await storedRun(id)).toEqual({ status: 'cancelled', cost, steps: 1, tokens: input, steps_cost: cost, step_rows: 1 });
      expect((await t.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(ownerA.auth).expect(200)).body).toMatchObject({ cost, steps: 1 });
    } finally {
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('emits a run cancelled mid-call once, its event carrying the cost of every stored step: what the budget was charged', async () => {
    const { orgId, agent, budget, input } = await cutAgent();
    try {
      llm.enqueue({ kind: 'hang' });
      const held = llm.nextHang();
      const started = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(ownerA.auth).send({ messages: [{ role: 'user', content: 'What is our cash?' }] }).then((r) => r);
      await held;
      const { rows: [{ id }] } = await t.db.admin.query(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);
      await t.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(ownerA.auth).expect(200);
      expect((await started).body).toMatchObject({ id, status: 'cancelled', steps: 1 });
      // the cut call's input was billed: the run's steps, the budget and the event all say so
      const cost = gpt4oCost(input, 0);
      expect(cost).not.toBe('0.00000000');
      expect(await storedRun(id)).toEqual({ status: 'cancelled', cost, steps: 1, tokens: input, steps_cost: cost, step_rows: 1 });
      expect(await budgetUsage(budget)).toEqual({ spent_cost: cost, reserved_cost: '0.00000000', spent_tokens: input });
      const { rows } = await t.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
        WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [orgId, id]);
      expect(rows).toEqual([{
        type: 'agent.run.failed',
        payload: { runId: id, agentId: agent, startedBy: ownerA.id, trigger: 'interactive', errorClass: 'cancelled', message: 'cancelled by a person', steps: 1, cost },
      }]);
    } finally {
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('fails a stream the timeout cuts mid-answer (a cut answer is no answer), billed for its input and what had arrived', async () => {
    const partial = await startPartialStreamDouble();
    const { orgId, agent, budget, input } = await cutAgent();
    // the call's timer is the test's: it cuts the call once the client has every chunk (no wait on the wall clock)
    const timer = t.app.get(CallTimer);
    const start = timer.start;
    const timers: { ms: number; expire: () => void }[] = [];
    timer.start = (ms, expire) => {
      timers.push({ ms, expire });
      return () => undefined;
    };
    try {
      const chunks = ['Cash at bank ', 'is EUR ', '100.00 as of ', 'the last posting'];
      partial.enqueue({ kind: 'hold', chunks });
      const list = await atEndpoint(partial.url, async () => {
        const { streamed, response } = streamedRun(orgId, agent, chunks.join(''));
        await streamed;
        expect(timers.map((x) => x.ms)).toEqual([t.app.get<AppConfig>(APP_CONFIG).ai.timeoutMs]);
        timers[0].expire();
        return response;
      });
      const result = list.at(-1)!;
      expect(result).toMatchObject({ event: 'result', data: { status: 'failed', errorClass: 'timeout', stopReason: 'error', output: null } });
      const step = result.data.trace[0];
      expect(step).toMatchObject({ status: 'failed', errorClass: 'timeout', usage: { inputTokens: input } });
      // what had arrived when the timer cut it: exactly what the client was streamed
      const streamed = list.filter((e) => e.event === 'token').map((e) => e.data.delta).join('');
      expect(streamed).toBe(chunks.join(''));
      expect(step.usage.outputTokens).toBe(countTextTokens(streamed));
      expect(step.cost).toBe(gpt4oCost(input, step.usage.outputTokens));
      expect(result.data.cost).toBe(step.cost);
      const { rows: [stored] } = await t.db.admin.query('SELECT cost::text, input_tokens::int AS input FROM ai.runs WHERE id = $1', [result.data.id]);
      expect(stored).toEqual({ cost: step.cost, input });
      expect(await budgetUsage(budget)).toMatchObject({ spent_cost: step.cost, reserved_cost: '0.00000000' });
    } finally {
      timer.start = start;
      await partial.close();
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('bills an attempt whose stream broke off after part of the answer, with the retry that answered, on the step, the run and the budget', async () => {
    const partial = await startPartialStreamDouble();
    const { orgId, agent, budget, input } = await cutAgent();
    try {
      const chunks = ['Cash at bank ', 'is EUR 100'];
      partial.enqueue({ kind: 'drop', chunks }, { kind: 'text', content: 'Cash is EUR 100.00.', usage: { prompt: 50, completion: 7 } });
      const list = await atEndpoint(partial.url, () => streamedRun(orgId, agent, chunks.join('')).response);
      const result = list.at(-1)!;
      expect(result).toMatchObject({ event: 'result', data: { status: 'succeeded', output: 'Cash is EUR 100.00.' } });
      expect(partial.requests).toHaveLength(2);
      // the broken attempt's tokens, then `retry`: the client drops them, and the tokens after it are the answer
      const retry = list.findIndex((e) => e.event === 'retry');
      expect(list[retry]).toEqual({ event: 'retry', data: { attempt: 2 } });
      const tokens = (events: typeof list) => events.filter((e) => e.event === 'token').map((e) => e.data.delta).join('');
      expect(list.slice(1, retry).map((e) => e.event)).toEqual(list.slice(1, retry).map(() => 'token'));
      expect(tokens(list.slice(0, retry))).toBe(chunks.join(''));
      expect(tokens(list.slice(retry + 1))).toBe(result.data.output);
      const brokenOff = { input, output: countTextTokens(chunks.join('')) };
      const usage = { inputTokens: 50 + brokenOff.input, outputTokens: 7 + brokenOff.output, cachedInputTokens: 0, cacheWriteTokens: 0 };
      const cost = gpt4oCost(usage.inputTokens, usage.outputTokens);
      expect(result.data).toMatchObject({ usage, cost });
      expect(result.data.trace[0]).toMatchObject({ attempts: 2, status: 'succeeded', cost, detail: { failedAttemptsUsage: expect.objectContaining(brokenOff) } });
      const { rows: [stored] } = await t.db.admin.query(`SELECT r.cost::text AS run, s.cost::text AS step, s.input_tokens::int AS input, s.output_tokens::int AS output
        FROM ai.runs r JOIN ai.run_steps s ON s.org_id = r.org_id AND s.run_id = r.id WHERE r.id = $1`, [result.data.id]);
      expect(stored).toEqual({ run: cost, step: cost, input: usage.inputTokens, output: usage.outputTokens });
      expect(await budgetUsage(budget)).toEqual({ spent_cost: cost, reserved_cost: '0.00000000', spent_tokens: usage.inputTokens + usage.outputTokens });
    } finally {
      await partial.close();
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('asks a model the catalog flags as reasoning (o4-mini, any model flagged) for max_completion_tokens without a temperature, the others for max_tokens and theirs', async () => {
    const orgE = await createOrg(t, ownerA, 'Runs E reasoning');
    await onPlan(t, orgE, 'professional');
    // the flag is the catalog's data, not a rule on ids: a reasoning model under any name, an o-series lookalike that is not one
    await t.db.admin.query(`INSERT INTO ai.models (id, provider, display_name, kind, context_window, max_output_tokens, reasoning)
      VALUES ('acme/thinker-1', 'other', 'Acme Thinker', 'chat', 100000, 10000, true), ('o9-lookalike', 'other', 'Lookalike', 'chat', 100000, 10000, false)`);
    await t.db.admin.query(`INSERT INTO ai.model_prices (model_id, effective_from, input, output, cached_input, cache_write, source)
      VALUES ('acme/thinker-1', '2024-01-01', 1, 1, 1, 0, 'test'), ('o9-lookalike', '2024-01-01', 1, 1, 1, 0, 'test')`);
    const agent = async (modelId: string) => (await t.http.post(agentsUrl(orgE)).set(ownerA.auth)
      .send({ name: modelId, type: 'assistant', modelId, temperature: 0.7, maxOutputTokens: 3000, maxSteps: 1 }).expect(201)).body.id as string;
    const ids = ['o4-mini', 'gpt-4o', 'acme/thinker-1', 'o9-lookalike'];
    const requestsBefore = llm.requests.length;
    for (const modelId of ids) {
      llm.enqueue({ kind: 'text', content: `Answered by ${modelId}.`, usage: { prompt: 1000, completion: 100 } });
      const res = await t.http.post(agentsUrl(orgE, `/${await agent(modelId)}/runs`)).set(ownerA.auth).send({ messages: [{ role: 'user', content: 'Think.' }] }).expect(200);
      expect(res.body).toMatchObject({ status: 'succeeded', modelId, output: `Answered by ${modelId}.` });
    }
    const [o4, gpt, thinker, lookalike] = llm.requests.slice(requestsBefore).map((r) => r.body);
    for (const [body, model] of [[o4, 'o4-mini'], [thinker, 'acme/thinker-1']] as const) {
      expect(body).toMatchObject({ model, max_completion_tokens: 3000 });
      expect(body).not.toHaveProperty('max_tokens');
      expect(body).not.toHaveProperty('temperature');
    }
    for (const [body, model] of [[gpt, 'gpt-4o'], [lookalike, 'o9-lookalike']] as const) {
      expect(body).toMatchObject({ model, max_tokens: 3000, temperature: 0.7 });
      expect(body).not.toHaveProperty('max_completion_tokens');
    }
    const { rows } = await t.db.admin.query('SELECT model_id, status FROM ai.runs WHERE org_id = $1 ORDER BY model_id COLLATE "C"', [orgE]);
    expect(rows).toEqual([...ids].sort().map((model_id) => ({ model_id, status: 'succeeded' })));
  });

  it('reserves before a retry what the failed attempts billed: a retry the budget cannot take is not made, and the budget never spends past its limit', async () => {
    const partial = await startPartialStreamDouble();
    const { orgId, agent, budget, input, counted } = await cutAgent();
    try {
      // the budget takes one attempt's worst case (its input's worst case and 1,000 output tokens), no more
      const worst = usagelessInput(counted) + 1000;
      await t.http.patch(`/v1/orgs/${orgId}/ai/budgets/${budget}`).set(ownerA.auth).send({ tokenLimit: worst }).expect(200);
      const chunks = ['Cash at bank ', 'is EUR 100'];
      partial.enqueue({ kind: 'drop', chunks }, { kind: 'text', content: 'Cash is EUR 100.00.', usage: { prompt: input, completion: 900 } });
      const list = await atEndpoint(partial.url, () => streamedRun(orgId, agent, chunks.join('')).response);
      // the broken attempt was billed; its retry did not fit: not made
      expect(partial.requests).toHaveLength(1);
      expect(list.filter((e) => e.event !== 'token').map((e) => e.event)).toEqual(['run', 'step', 'error', 'result']);
      expect(list.at(-2)!.data).toMatchObject({ code: 'ai.budget_exceeded', details: { budgetId: budget } });
      const brokenOff = { input, output: countTextTokens(chunks.join('')) };
      const cost = gpt4oCost(brokenOff.input, brokenOff.output);
      const result = list.at(-1)!.data;
      expect(result).toMatchObject({ status: 'failed', errorClass: 'budget_exceeded', steps: 1, cost });
      expect(result.trace).toEqual([expect.objectContaining({ status: 'failed', errorClass: 'budget_exceeded', attempts: 1, cost })]);
      const { rows: [stored] } = await t.db.admin.query(`SELECT r.status, r.error_class, r.cost::text AS run, s.cost::text AS step, s.error_class AS step_error
        FROM ai.runs r JOIN ai.run_steps s ON s.org_id = r.org_id AND s.run_id = r.id WHERE r.id = $1`, [result.id]);
      expect(stored).toEqual({ status: 'failed', error_class: 'budget_exceeded', run: cost, step: cost, step_error: 'budget_exceeded' });
      const spent = await budgetUsage(budget);
      expect(spent).toEqual({ spent_cost: cost, reserved_cost: '0.00000000', spent_tokens: brokenOff.input + brokenOff.output });
      expect(spent.spent_tokens).toBeLessThanOrEqual(worst);
      expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE budget_id = $1', [budget])).rows[0].n).toBe(0);
    } finally {
      await partial.close();
      await t.db.admin.query('DELETE FROM ai.budgets WHERE id = $1', [budget]);
    }
  });

  it('runs an API key\'s tools only as far as its scopes reach, those of the routes serving the same data; no knowledge a viewer may not read', async () => {
    const orgC = await createOrg(t, ownerA, 'Runs C keyed');
    await onEnterprisePlan(t, orgC);
    await booksWithEntry(t, orgC, ownerA, '321.57', 'C keyed capital');
    const collection = async (name: string, readRoles: string[]) =>
      (await t.http.post(`/v1/orgs/${orgC}/knowledge/collections`).set(ownerA.auth).send({ name, readRoles }).expect(201)).body.id as string;
    const board = await collection('Board', []);
    const handbook = await collection('Handbook', ['accountant', 'member', 'viewer']);
    await t.http.post(`/v1/orgs/${orgC}/knowledge/documents`).set(ownerA.auth)
      .send({ collectionId: board, title: 'Board minutes', text: 'The merger with Globex Holdings was approved in secret.' }).expect(201);
    await t.http.post(`/v1/orgs/${orgC}/knowledge/documents`).set(ownerA.auth)
      .send({ collectionId: handbook, title: 'Merger policy', text: 'A merger is announced to staff by the office manager.' }).expect(201);
    await t.app.get(OutboxRelay).drain(); // ingestion
    const agent = (await t.http.post(`/v1/orgs/${orgC}/agents`).set(ownerA.auth).send({
      name: 'Keyed', type: 'accountant', modelId: 'gpt-4o', maxSteps: 2, tools: ['query_semantic', 'get_trial_balance', 'search_knowledge', 'draft_journal_entry'],
    }).expect(201)).body.id;
    const key = async (scopes: string[]) => (await t.http.post(`/v1/orgs/${orgC}/api-keys`).set(ownerA.auth).send({ name: scopes.join(' '), scopes }).expect(201)).body.secret as string;
    const keyedRun = async (secret: string) => {
      llm.requests.length = 0;
      llm.enqueue(
        {
          kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [
            { name: 'query_semantic', arguments: JSON.stringify({ sql: 'SELECT memo, sum(debit) AS d FROM semantic.v_gl_fact GROUP BY memo' }) },
            { name: 'get_trial_balance', arguments: '{}' },
            { name: 'search_knowledge', arguments: JSON.stringify({ query: 'merger', k: 5 }) },
          ],
        },
        { kind: 'text', content: 'done', usage: { prompt: 10, completion: 1 } },
      );
      const res = await t.http.post(`/v1/orgs/${orgC}/agents/${agent}/runs`).set({ Authorization: `Bearer ${secret}` })
        .send({ messages: [{ role: 'user', content: 'What do the books and the minutes say?' }] }).expect(200);
      expect(res.body).toMatchObject({ status: 'succeeded', output: 'done', startedBy: null });
      const offered = llm.requests.find((r) => r.path.endsWith('/chat/completions'))!.body.tools.map((x: any) => x.function.name).sort();
      const steps = await t.db.admin.query(`SELECT name, status, error_class, error_message, detail->'result' AS result FROM ai.run_steps
        WHERE run_id = $1 AND kind <> 'llm_call' ORDER BY step_no`, [res.body.id]);
      return { res, offered, steps: steps.rows, toModel: JSON.stringify(llm.requests.map((r) => r.body)) };
    };

    // a key without agents:run is refused before anything runs
    const noRun = await t.http.post(`/v1/orgs/${orgC}/agents/${agent}/runs`).set({ Authorization: `Bearer ${await key(['ledger:read'])}` })
      .send({ messages: [{ role: 'user', content: 'hi' }] }).expect(403);
    expect(noRun.body.error).toMatchObject({ code: 'api_keys.scope_missing', details: { scope: 'agents:run' } });
    // agents:run only: neither the ledger nor the knowledge base is offered or served
    const runOnly = await keyedRun(await key(['agents:run']));
    expect(runOnly.offered).toEqual(['draft_journal_entry']);
    expect(runOnly.steps.map((s) => [s.name, s.status, s.error_class, s.result === null])).toEqual([
      ['query_semantic', 'failed', 'tool_error', true], ['get_trial_balance', 'failed', 'tool_error', true], ['search_knowledge', 'failed', 'tool_error', true],
    ]);
    expect(runOnly.steps[0].error_message).toMatch(/semantic:read/);
    expect(runOnly.steps[1].error_message).toMatch(/ledger:read/);
    expect(runOnly.steps[2].error_message).toMatch(/knowledge:read/);
    for (const seen of [JSON.stringify(runOnly.res.body), runOnly.toModel]) {
      expect(seen).not.toContain('C keyed capital');
      expect(seen).not.toContain('321.57');
      expect(seen).not.toContain('Globex');
      expect(seen).not.toContain('Merger policy');
    }

    // with the scopes of the trial balance, semantic query and knowledge search routes: the ledger is read; knowledge is still a viewer's
    const reader = await keyedRun(await key(['agents:run', 'ledger:read', 'semantic:read', 'knowledge:read']));
    expect(reader.offered).toEqual(['draft_journal_entry', 'get_trial_balance', 'query_semantic', 'search_knowledge']);
    expect(reader.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(reader.steps[0].result.rows).toEqual([['C keyed capital', '321.5700']]);
    expect(JSON.stringify(reader.steps[1].result)).toContain('321.57');
    expect(reader.steps[2].result.items.map((i: any) => i.documentTitle)).toEqual(['Merger policy']);
    expect(reader.toModel).not.toContain('Globex');
    // a person (the owner) reads the board's minutes through the same tool
    llm.enqueue({ kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [{ name: 'search_knowledge', arguments: JSON.stringify({ query: 'merger', k: 5 }) }] }, { kind: 'text', content: 'done' });
    const owner = await t.http.post(`/v1/orgs/${orgC}/agents/${agent}/runs`).set(ownerA.auth).send({ messages: [{ role: 'user', content: 'minutes?' }] }).expect(200);
    expect(owner.body.trace[1].detail.result.items.map((i: any) => i.documentTitle).sort()).toEqual(['Board minutes', 'Merger policy']);
  });

  it('runs ?async=true as a job: 202 first, the outcome on the run', async () => {
    llm.enqueue({ kind: 'text', content: 'later', usage: { prompt: 10, completion: 1 } });
    const accepted = await t.http.post(agentsUrl(orgA, `/${agentId}/runs?async=true`)).set(viewerA.auth).send({ messages: [{ role: 'user', content: 'hi' }] }).expect(202);
    expect(accepted.body).toEqual({ id: expect.any(String), status: 'running' });
    await t.app.get(OutboxRelay).drain();
    const res = await t.http.get(agentsUrl(orgA, `/${agentId}/runs/${accepted.body.id}`)).set(viewerA.auth).expect(200);
    expect(res.body).toMatchObject({ status: 'succeeded', output: 'later', trigger: 'async' });
  });

  it('runs every tool with the claims of the viewer who started the run (SQL-level), never reaching B', async () => {
    llm.enqueue(
      {
        kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [
          { name: 'query_semantic', arguments: JSON.stringify({ sql: 'SELECT user_id, org_id, role FROM semantic.v_whoami' }) },
          { name: 'query_semantic', arguments: JSON.stringify({ sql: 'SELECT count(*) AS n, sum(debit) AS d FROM semantic.v_gl_fact' }) },
          { name: 'get_trial_balance', arguments: '{}' },
          { name: 'get_profit_and_loss', arguments: JSON.stringify({ from: '2026-01-01', to: '2026-12-31' }) },
          { name: 'draft_journal_entry', arguments: JSON.stringify({ date: '2026-01-31', memo: 'accrual', lines: [{ accountCode: '6000', debit: '10.00' }, { accountCode: '2000', credit: '10.00' }] }) },
          { name: 'query_semantic', arguments: JSON.stringify({ sql: 'SELECT * FROM finance.journal_lines' }) },
        ],
      },
      { kind: 'text', content: 'done', usage: { prompt: 10, completion: 1 } },
    );
    const res = await run(viewerA).expect(200);
    const steps = res.body.trace.filter((s: any) => s.kind === 'tool_call');
    expect(steps[0].detail.result.rows).toEqual([[viewerA.id, orgA, 'viewer']]);
    expect(steps[1].detail.result.rows).toEqual([[2, '100.0000']]);
    expect(JSON.stringify(steps[2].detail.result)).toContain('100');
    // B's books hold 999.00: no tool result shows that amount, and the run shows nothing of B's
    // (a bare substring check also matched ids and timestamps, which may hold "999")
    expect(JSON.stringify(steps.map((s: any) => s.detail.result))).not.toMatch(/\b999(\.0+)?\b/);
    expect(JSON.stringify(res.body)).not.toContain(orgB);
    expect(JSON.stringify(res.body)).not.toContain('B secret');
    expect(steps[4].detail.result).toMatchObject({ status: 'proposed', posted: false, balanced: true });
    expect(steps[5]).toMatchObject({ status: 'failed', errorClass: 'tool_error' });
    expect(steps[5].errorMessage).toMatch(/outside schema semantic/);
    // nothing was posted by the draft
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgA]);
    expect(rows[0].n).toBe(1);
  });

  it('stops the tool loop at the agent\'s max steps', async () => {
    const call = { kind: 'tool_calls' as const, calls: [{ name: 'get_trial_balance', arguments: '{}' }], usage: { prompt: 10, completion: 1 } };
    llm.enqueue(call, call, call, call);
    const res = await run(viewerA).expect(200);
    expect(res.body).toMatchObject({ status: 'succeeded', stopReason: 'max_steps' });
    expect(res.body.trace.filter((s: any) => s.kind === 'llm_call')).toHaveLength(4);
  });

  it('counts tokens with the tokenizer when the provider reports none', async () => {
    llm.enqueue({ kind: 'text', content: 'hello there', usage: null });
    const res = await run(viewerA).expect(200);
    expect(res.body.trace[0].tokensCounted).toBe(true);
    expect(res.body.usage.inputTokens).toBeGreaterThan(5);
    expect(res.body.usage.outputTokens).toBe(2);
  });

  it('counts a 100,000-letter message with bounded work when the provider reports no usage', async () => {
    const spy = spyOnEncoder(MAX_ENCODE_CHARS);
    try {
      const counted = async (content: string) => {
        llm.enqueue({ kind: 'text', content: 'noted', usage: null });
        const res = await run(viewerA, { messages: [{ role: 'user', content }] }).expect(200);
        expect(res.body).toMatchObject({ status: 'succeeded', output: 'noted', trace: [expect.objectContaining({ tokensCounted: true })] });
        const { rows: [stored] } = await t.db.admin.query(
          `SELECT r.input_tokens::int AS run, s.input_tokens::int AS step FROM ai.runs r JOIN ai.run_steps s ON s.org_id = r.org_id AND s.run_id = r.id WHERE r.id = $1`, [res.body.id]);
        expect(stored).toEqual({ run: res.body.usage.inputTokens, step: res.body.usage.inputTokens });
        return res.body.usage.inputTokens as number;
      };
      // billed at gpt-4o's margin over the count (usagelessInput, strictly increasing): the short request's count is the one
      // billed so
      const short = await counted('hi');
      const shortCount = Array.from({ length: short }, (_, c) => c).find((c) => usagelessInput(c) === short)!;
      expect(shortCount).toBeDefined();
      expect(await counted('a'.repeat(100_000))).toBe(usagelessInput(shortCount + 12_500 - countTextTokens('hi')));
      expect(spy.sizes.reduce((n, x) => n + x, 0)).toBeGreaterThanOrEqual(100_000); // the long message went through the encoder
      expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
    } finally {
      spy.restore();
    }
  });

  it('refuses more than 100,000 characters of messages in all with a 400 naming messages, before any run exists', async () => {
    const before = (await t.db.admin.query('SELECT count(*)::int AS n FROM ai.runs WHERE org_id = $1', [orgA])).rows[0].n;
    // each message within its own 100,000, together over: 4 × 30,000 CJK characters (counting them took seconds of CPU)
    const content = '会计账簿记录了公司的所有交易。'.repeat(2_000);
    const res = await run(viewerA, { messages: Array.from({ length: 4 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content })) }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual([{ field: 'messages', problems: ['messages must hold at most 100000 characters in all'] }]);
    const after = (await t.db.admin.query('SELECT count(*)::int AS n FROM ai.runs WHERE org_id = $1', [orgA])).rows[0].n;
    expect(after).toBe(before);
    expect(llm.requests).toHaveLength(0);
  });

  it('tokenizes a long message once per run, not once per call', async () => {
    const spy = spyOnEncoder(MAX_ENCODE_CHARS);
    try {
      script(); // a tool call, then the answer: two LLM calls, each counted before it is made
      const res = await run(viewerA, { messages: [{ role: 'user', content: `${'Summarize the ledger. '.repeat(4_000)}` }] }).expect(200);
      expect(res.body).toMatchObject({ status: 'succeeded', steps: 3 });
      // the 88,000-character message went through the encoder once (plus the tool result and short texts)
      expect(sum(spy.sizes)).toBeGreaterThanOrEqual(88_000);
      expect(sum(spy.sizes)).toBeLessThan(2 * 88_000);
    } finally {
      spy.restore();
    }
  });

  it('uses the organization\'s own key, stored encrypted and never answered', async () => {
    await t.http.put(`/v1/orgs/${orgA}/ai/provider-key`).set(ownerA.auth).send({ apiKey: 'sk-org-own-key-1234' }).expect(200)
      .expect((r) => expect(r.body).toMatchObject({ keyHint: '1234', baseUrl: null }));
    await t.http.get(`/v1/orgs/${orgA}/ai/provider-key`).set(viewerA.auth).expect(403);
    const { rows } = await t.db.admin.query('SELECT secret::text AS s FROM ai.provider_keys WHERE org_id = $1', [orgA]);
    expect(rows[0].s).not.toContain('sk-org-own-key');
    llm.enqueue({ kind: 'text', content: 'own key', usage: { prompt: 1, completion: 1 } });
    await run(viewerA).expect(200);
    expect(llm.requests[0].authorization).toBe('Bearer sk-org-own-key-1234');
    await t.http.delete(`/v1/orgs/${orgA}/ai/provider-key`).set(ownerA.auth).expect(204);
    const audit = await t.db.admin.query(`SELECT after::text AS a FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ai.provider_key%'`, [orgA]);
    expect(audit.rows.map((r) => r.a).join()).not.toContain('sk-org');
  });

  it('answers a non-member 404 and another organization\'s agent 404', async () => {
    const runs = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM ai.runs')).rows[0].n;
    const before = await runs();
    expect((await run(ownerB).expect(404)).body.error.code).toBe('organization.not_found');
    const other = await t.http.post(agentsUrl(orgB, `/${agentId}/runs`)).set(ownerB.auth).send({ messages: [{ role: 'user', content: 'x' }] }).expect(404);
    expect(other.body.error.code).toBe('agent.not_found');
    // no run was made and no model was called
    expect(await runs()).toBe(before);
    expect(llm.requests).toHaveLength(0);
  });

  it('reports usage per day, agent and model, and the agent metrics view', async () => {
    const res = await t.http.get(`/v1/orgs/${orgA}/ai/usage`).set(viewerA.auth).expect(200);
    expect(res.body.runs).toBeGreaterThan(5);
    expect(res.body.rows[0]).toMatchObject({ agentId, modelId: 'gpt-4o' });
    const m = await t.http.post(`/v1/orgs/${orgA}/semantic/query`).set(viewerA.auth)
      .send({ sql: 'SELECT runs, succeeded, failed_timeout, cost FROM semantic.v_agent_metrics' }).expect(200);
    expect(m.body.rows[0][0]).toBe(res.body.runs);
    expect(m.body.rows[0][2]).toBeGreaterThanOrEqual(1);
  });

  it('lists an agent\'s runs newest first in cursor pages, filtered by status and trigger, without traces', async () => {
    const expected = async (where = '') => (await t.db.admin.query(
      `SELECT id FROM ai.runs WHERE org_id = $1 AND agent_id = $2 ${where} ORDER BY started_at DESC, id DESC`, [orgA, agentId])).rows.map((r) => r.id);
    const all = async (query: string) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await t.http.get(agentsUrl(orgA, `/${agentId}/runs?limit=2${query}${cursor ? `&cursor=${cursor}` : ''}`)).set(viewerA.auth).expect(200);
        expect(res.body.items.length).toBeLessThanOrEqual(2);
        expect(res.body.items.every((r: any) => r.trace === undefined && r.agentId === agentId)).toBe(true);
        seen.push(...res.body.items.map((r: any) => r.id));
        cursor = res.body.nextCursor;
      } while (cursor && seen.length < 200);
      return seen;
    };
    const everything = await expected();
    expect(everything.length).toBeGreaterThan(5);
    expect(await all('')).toEqual(everything);
    const failed = await expected(`AND status = 'failed'`);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(await all('&status=failed')).toEqual(failed);
    expect(await all('&trigger=async')).toEqual(await expected(`AND trigger = 'async'`));
    const bad = await t.http.get(agentsUrl(orgA, `/${agentId}/runs?status=done`)).set(viewerA.auth).expect(400);
    expect(bad.body.error.details).toEqual([expect.objectContaining({ field: 'status' })]);
    const forged = await t.http.get(agentsUrl(orgA, `/${agentId}/runs?cursor=eyJzIjoieCJ9`)).set(viewerA.auth).expect(400);
    expect(forged.body.error.code).toBe('pagination.cursor');
    await t.http.get(agentsUrl(orgB, `/${agentId}/runs`)).set(ownerB.auth).expect(404);
  });
});

describe('the organization\'s provider key under key rotation', () => {
  it('is re-sealed under the new active key by the rotation, and still opens', async () => {
    const { AuditService } = await import('../../src/modules/audit/audit.service.js');
    const { PrivilegedDatabase } = await import('../../src/platform/database/privileged.service.js');
    const { SecretBox } = await import('../../src/modules/integrations/secret-box.js');
    const { rotateProviderKeys } = await import('../../src/modules/agents/provider-key-rotation.js');
    const keys = testKeys('old', 'new');
    const llm = await startOpenAiDouble();
    const t = await createTestApp({ AI_BASE_URL: llm.url, SECRETS_KEYS: keys.env, SECRETS_ACTIVE_KEY: 'old', REDIS_URL: '' });
    try {
      const owner = await registerUser(t, 'rotate-owner');
      const orgId = await createOrg(t, owner, 'Rotation Ltd');
      await t.http.put(`/v1/orgs/${orgId}/ai/provider-key`).set(owner.auth).send({ apiKey: 'sk-org-rotated-9876' }).expect(200);
      const kid = async () => (await t.db.admin.query(`SELECT secret->>'kid' AS kid FROM ai.provider_keys WHERE org_id = $1`, [orgId])).rows[0].kid;
      expect(await kid()).toBe('old');
      const privileged = new PrivilegedDatabase({ ...t.config, secrets: { keys: keys.keys, activeKeyId: 'new' } });
      try {
        const result = await rotateProviderKeys(privileged, new SecretBox(keys.keys, 'new'), new AuditService());
        expect(result).toEqual({ resealed: 1, failed: [] });
      } finally {
        await privileged.onApplicationShutdown();
      }
      expect(await kid()).toBe('new');
      // the app (still configured with both keys) opens it: a run uses it
      const agent = await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'R', type: 'assistant', modelId: 'gpt-4o-mini' }).expect(201);
      await t.http.post(agentsUrl(orgId, `/${agent.body.id}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'hi' }] }).expect(200);
      expect(llm.requests[0].authorization).toBe('Bearer sk-org-rotated-9876');
    } finally {
      await t.close();
      await llm.close();
    }
  });
});
