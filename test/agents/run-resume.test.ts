import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { agentsRepository } from '../../src/modules/agents/agents.repository.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { APP_CONFIG, type AppConfig } from '../../src/platform/config/config.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';
import { startPartialStreamDouble } from './partial-stream-double.js';

/**
 * A job's run whose execution fails mid-way (an unexpected error: a database error) is released, and the queue's retry
 * takes it again. The retry restarted the conversation: the model saw none of the stored steps, and maxSteps counted
 * anew. It now resumes: the model is handed the stored calls and tool results, the calls stored count against maxSteps,
 * the call in flight when it failed is made again, and tools of the last call that stored no result run first. An
 * interactive run failing so was left running until the lost-runs sweep; it is now failed at once (internal), its lease
 * and reservation released. A call the provider answered (and billed) whose step could not be stored was settled at
 * nothing: the budget and the run never counted it, and the retry made it again. It is now stored by the failure, as a
 * failed step (internal) with its tokens and cost, not counted against maxSteps. The failures are injected by a spy on the
 * repository (a database error); the provider is the test double.
 */
describe('a run whose execution fails mid-way', () => {
  let a: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agent: string;
  let budget: string;
  const messages = [{ role: 'user', content: 'How many runs so far?' }];
  const SQL = 'SELECT count(*)::int AS runs FROM semantic.v_agent_metrics';

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    a = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '' });
    owner = await registerUser(a, 'run-resume');
    orgId = await createOrg(a, owner, 'Resumed runs');
    await onPlan(a, orgId, 'professional');
    agent = (await a.http.post(agentsUrl(orgId)).set(owner.auth).send({
      name: 'Counter', type: 'analyst', instructions: 'Count.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 3, tools: ['query_semantic'],
    }).expect(201)).body.id;
    budget = (await a.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent, costLimit: '10.00' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await a?.close();
    await llm?.close();
  });

  const chats = () => llm.requests.filter((r) => r.path.endsWith('/chat/completions'));
  /** a request's messages, each tool result parsed (a result stored as JSON reads back with its keys in another order) */
  const sent = (i: number) => chats()[i].body.messages.map((m: { role: string; content: string }) => (m.role === 'tool' ? { ...m, content: JSON.parse(m.content) } : m));
  const storedRun = async (runId: string) => (await a.db.admin.query(`SELECT status, error_class, stop_reason, steps, cost::text AS cost,
      lease_until, call_in_flight_until, call_in_flight_id FROM ai.runs WHERE id = $1`, [runId])).rows[0];
  const storedSteps = async (runId: string) => (await a.db.admin.query(`SELECT step_no, kind, name, status, cost::text AS cost FROM ai.run_steps
      WHERE run_id = $1 ORDER BY step_no`, [runId])).rows.map((r) => [r.step_no, r.kind, r.name, r.status]);
  const usage = async () => (await a.db.admin.query(
    'SELECT spent_cost::text, reserved_cost::text, spent_tokens::int, reserved_tokens::int FROM ai.budget_usage WHERE budget_id = $1', [budget])).rows[0]
    ?? { spent_cost: '0.00000000', reserved_cost: '0.00000000', spent_tokens: 0, reserved_tokens: 0 };
  const reservations = async (callId: string) => (await a.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE call_id = $1', [callId])).rows[0].n;
  const runEvents = async (runId: string) => (await a.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
    WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [orgId, runId])).rows;
  const job = async (id: string) => (await a.db.admin.query(`SELECT attempts, last_error, processed_at FROM core.outbox
    WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id])).rows[0];
  /** the queue's retry, due at once (the relay's backoff is on the database's clock) */
  const retry = async (id: string) => {
    await a.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id]);
    await a.app.get(OutboxRelay).drain();
  };
  /** the spend of the calls stored: each stored call's step cost, once */
  const storedCallCost = async (runId: string) => (await a.db.admin.query(`SELECT coalesce(sum(cost), 0)::text AS cost, count(*)::int AS calls
      FROM ai.run_steps WHERE run_id = $1 AND kind = 'llm_call'`, [runId])).rows[0];

  it('a job\'s run taken again resumes its conversation: the call in flight is made again with the earlier messages, the answered call whose step failed is billed once, and maxSteps counts every attempt\'s used calls', async () => {
    const before = await usage();
    const calls = chats().length;
    // call 1 asks for a query (step 1, its result step 2); call 2 is answered, and the transaction storing it fails (a
    // database error): the job fails, call 2 stored as unused (step 3: billed, failed, internal). The retry makes call 2
    // again (step 4: a tool the agent lacks, step 5), then call 3 (step 6, its query step 7): maxSteps (3) is reached with
    // the calls used of both attempts
    llm.enqueue(
      { kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }] },
      { kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }] },
      { kind: 'tool_calls', calls: [{ name: 'ledger_balances', arguments: '{}' }] },
      { kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }] },
      { kind: 'text', content: 'a fourth call: past maxSteps' },
    );
    const real = agentsRepository.settle.bind(agentsRepository);
    let settles = 0;
    let failedCallId: string | undefined;
    const spy = jest.spyOn(agentsRepository, 'settle').mockImplementation(async (db, callId, ...rest) => {
      if (++settles === 2) {
        failedCallId = callId;
        throw new Error('connection terminated unexpectedly');
      }
      return real(db, callId, ...rest);
    });
    let id: string;
    try {
      id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
      await a.app.get(OutboxRelay).drain();
    } finally {
      spy.mockRestore();
    }
    expect(failedCallId).toBeDefined();
    expect(chats().length).toBe(calls + 2);
    expect(await job(id)).toMatchObject({ attempts: 1, last_error: expect.stringContaining('connection terminated unexpectedly'), processed_at: null });
    expect(await storedRun(id)).toMatchObject({ status: 'running', steps: 3, lease_until: null, call_in_flight_id: null });
    expect(await reservations(failedCallId!)).toBe(0);
    // the answered call whose step failed: stored as unused, billed at its tokens (settled at its cost, nothing reserved)
    const unused = (await a.db.admin.query(`SELECT status, error_class, cost::text AS cost, input_tokens::int + output_tokens::int AS tokens, detail
      FROM ai.run_steps WHERE run_id = $1 AND step_no = 3`, [id])).rows[0];
    expect(unused).toMatchObject({ status: 'failed', error_class: 'internal', detail: expect.objectContaining({ toolCalls: [expect.objectContaining({ name: 'query_semantic' })] }) });
    expect(Number(unused.cost)).toBeGreaterThan(0);
    expect(unused.tokens).toBeGreaterThan(0);
    const firstAttempt = await usage();
    expect(firstAttempt.reserved_cost).toBe('0.00000000');
    expect(firstAttempt.reserved_tokens).toBe(0);
    expect(Number(firstAttempt.spent_cost)).toBeCloseTo(Number(before.spent_cost) + Number((await storedCallCost(id)).cost), 8);
    expect(firstAttempt.spent_tokens).toBeGreaterThan(before.spent_tokens);
    const firstCall = chats()[calls].body.messages;
    const failedCall = sent(calls + 1);
    expect(failedCall).toHaveLength(4);

    await retry(id);
    expect(await job(id)).toMatchObject({ attempts: 2, processed_at: expect.any(Date) });
    // two calls more, not three: the stored call counts against maxSteps, the unused one does not
    expect(chats().length).toBe(calls + 4);
    // the call in flight, made again: the model is handed the conversation so far, the stored query result included
    // (as stored, not run again), and not the unused call's answer
    expect(sent(calls + 2)).toEqual(failedCall);
    expect(failedCall.slice(0, 2)).toEqual(firstCall);
    expect(failedCall[2]).toMatchObject({ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'query_semantic' } }] });
    expect(failedCall[3]).toMatchObject({ role: 'tool', tool_call_id: failedCall[2].tool_calls[0].id, content: { columns: expect.any(Array), rows: expect.any(Array) } });
    // the next call: the same, then the redone call's tool call and its result
    const last = sent(calls + 3);
    expect(last.slice(0, 4)).toEqual(failedCall);
    expect(last.slice(4)).toEqual([
      expect.objectContaining({ role: 'assistant', tool_calls: [expect.objectContaining({ function: { name: 'ledger_balances', arguments: '{}' } })] }),
      { role: 'tool', tool_call_id: last[4].tool_calls[0].id, content: { error: 'tool ledger_balances is not available to this agent' } },
    ]);

    expect(await storedRun(id)).toMatchObject({ status: 'succeeded', stop_reason: 'max_steps', steps: 7, lease_until: null, call_in_flight_id: null });
    expect(await storedSteps(id)).toEqual([
      [1, 'llm_call', 'gpt-4o', 'succeeded'], [2, 'tool_call', 'query_semantic', 'succeeded'],
      [3, 'llm_call', 'gpt-4o', 'failed'],
      [4, 'llm_call', 'gpt-4o', 'succeeded'], [5, 'tool_call', 'ledger_balances', 'failed'],
      [6, 'llm_call', 'gpt-4o', 'succeeded'], [7, 'tool_call', 'query_semantic', 'succeeded'],
    ]);
    // billed once per call the provider answered: the budget spent what the four calls' steps cost (the unused one once, each
    // of the retry's once), which is the run's cost; its tokens count in the run's too
    const stored = await storedCallCost(id);
    expect(stored.calls).toBe(4);
    const run = await storedRun(id);
    expect(run.cost).toBe(stored.cost);
    const after = await usage();
    expect(after.reserved_cost).toBe('0.00000000');
    expect(after.reserved_tokens).toBe(0);
    expect(Number(after.spent_cost)).toBeCloseTo(Number(before.spent_cost) + Number(stored.cost), 8);
    const tokens = (await a.db.admin.query(`SELECT (SELECT sum(input_tokens + output_tokens)::int FROM ai.run_steps WHERE run_id = $1) AS steps,
      (SELECT (input_tokens + output_tokens)::int FROM ai.runs WHERE id = $1) AS run`, [id])).rows[0];
    expect(tokens.run).toBe(tokens.steps);
    expect(after.spent_tokens).toBe(before.spent_tokens + tokens.steps);
    const read = await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200);
    expect(read.body).toMatchObject({ id, status: 'succeeded', stopReason: 'max_steps', steps: 7, cost: stored.cost });
    expect(read.body.trace[2]).toMatchObject({ stepNo: 3, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost: unused.cost });
    expect(await runEvents(id)).toEqual([{ type: 'agent.run.completed', payload: expect.objectContaining({ runId: id, steps: 7, stopReason: 'max_steps', cost: stored.cost }) }]);
    llm.clear();
  });

  it('a job\'s run that failed between the tool calls of a call runs the tools left, then the next call, with every result', async () => {
    const calls = chats().length;
    llm.enqueue(
      { kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }, { name: 'query_semantic', arguments: JSON.stringify({ sql: 'SELECT agent_name FROM semantic.v_agent_metrics WHERE runs < 0' }) }] },
      { kind: 'text', content: 'No runs.' },
    );
    const real = agentsRepository.addStep.bind(agentsRepository);
    let adds = 0;
    // the call's step, the first tool's, then the second tool's fails
    const spy = jest.spyOn(agentsRepository, 'addStep').mockImplementation(async (...args) => {
      if (++adds === 3) throw new Error('connection terminated unexpectedly');
      return real(...args);
    });
    let id: string;
    try {
      id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
      await a.app.get(OutboxRelay).drain();
    } finally {
      spy.mockRestore();
    }
    expect(adds).toBe(3);
    expect(chats().length).toBe(calls + 1);
    expect(await storedRun(id)).toMatchObject({ status: 'running', steps: 2, lease_until: null });

    await retry(id);
    // one call more: the second tool ran first, and the model got both results
    expect(chats().length).toBe(calls + 2);
    const next = sent(calls + 1);
    const asked = next[2].tool_calls as { id: string; function: { arguments: string } }[];
    expect(asked).toHaveLength(2);
    expect(next.slice(3)).toEqual([
      { role: 'tool', tool_call_id: asked[0].id, content: expect.objectContaining({ rows: [[expect.any(Number)]] }) },
      { role: 'tool', tool_call_id: asked[1].id, content: expect.objectContaining({ rows: [] }) },
    ]);
    expect(await storedRun(id)).toMatchObject({ status: 'succeeded', stop_reason: 'answer', steps: 4, lease_until: null });
    expect(await storedSteps(id)).toEqual([
      [1, 'llm_call', 'gpt-4o', 'succeeded'], [2, 'tool_call', 'query_semantic', 'succeeded'],
      [3, 'tool_call', 'query_semantic', 'succeeded'], [4, 'llm_call', 'gpt-4o', 'succeeded'],
    ]);
    const read = await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200);
    expect(read.body).toMatchObject({ status: 'succeeded', output: 'No runs.' });
    expect(read.body.trace[2].detail).toMatchObject({ toolCallId: asked[1].id, result: { rows: [] } });
    llm.clear();
  });

  it('an interactive run whose execution fails unexpectedly is failed at once (internal): its lease released, its answered call stored as unused and billed once, its event emitted', async () => {
    const before = await usage();
    llm.enqueue({ kind: 'text', content: 'Never stored.' });
    const real = agentsRepository.settle.bind(agentsRepository);
    let failedCallId: string | undefined;
    const spy = jest.spyOn(agentsRepository, 'settle').mockImplementation(async (db, callId, ...rest) => {
      if (!failedCallId) {
        failedCallId = callId;
        throw new Error('connection terminated unexpectedly');
      }
      return real(db, callId, ...rest);
    });
    let res: { status: number; body: Record<string, unknown> };
    try {
      res = await a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages });
    } finally {
      spy.mockRestore();
    }
    expect(res.status).toBe(200);
    const message = 'the run failed unexpectedly (an internal error)';
    const id = res.body.id as string;
    // the call was answered (billed): stored as unused (failed, internal), its cost the run's
    const stored = await storedCallCost(id);
    expect(stored.calls).toBe(1);
    expect(Number(stored.cost)).toBeGreaterThan(0);
    expect(res.body).toMatchObject({
      status: 'failed', stopReason: 'error', errorClass: 'internal', errorMessage: message, output: null, steps: 1, cost: stored.cost,
      trace: [expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost: stored.cost })],
    });
    expect(await storedRun(id)).toEqual({
      status: 'failed', error_class: 'internal', stop_reason: 'error', steps: 1, cost: stored.cost, lease_until: null, call_in_flight_until: null, call_in_flight_id: null,
    });
    expect(await reservations(failedCallId!)).toBe(0);
    const tokens = (await a.db.admin.query('SELECT (input_tokens + output_tokens)::int AS n FROM ai.runs WHERE id = $1', [id])).rows[0].n;
    expect(tokens).toBeGreaterThan(0);
    const after = await usage();
    expect(after).toMatchObject({ reserved_cost: '0.00000000', reserved_tokens: 0, spent_tokens: before.spent_tokens + tokens });
    expect(Number(after.spent_cost)).toBeCloseTo(Number(before.spent_cost) + Number(stored.cost), 8);
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'interactive', errorClass: 'internal', message, steps: 1, cost: stored.cost },
    }]);
    // the agent metrics count it among the failures, in failed_internal
    const metrics = await a.http.post(`/v1/orgs/${orgId}/semantic/query`).set(owner.auth)
      .send({ sql: 'SELECT sum(failed_internal)::int AS internal FROM semantic.v_agent_metrics' }).expect(200);
    expect(metrics.body.rows).toEqual([[1]]);
  });

  it('a streamed run whose execution fails unexpectedly ends with an internal error event and the failed run', async () => {
    llm.enqueue({ kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }] });
    const real = agentsRepository.addStep.bind(agentsRepository);
    let adds = 0;
    // the call's step is stored, its tool's fails
    const spy = jest.spyOn(agentsRepository, 'addStep').mockImplementation(async (...args) => {
      if (++adds === 2) throw new Error('connection terminated unexpectedly');
      return real(...args);
    });
    let text: string;
    try {
      const res = await a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).set('Accept', 'text/event-stream').send({ messages }).buffer(true)
        .parse((r, cb) => {
          let data = '';
          r.on('data', (c: Buffer) => (data += c.toString()));
          r.on('end', () => cb(null, data));
        }).expect(200);
      text = res.body as unknown as string;
    } finally {
      spy.mockRestore();
    }
    const events = text.split('\n\n').filter(Boolean).map((block) => {
      const [ev, data] = block.split('\n');
      return { event: ev.replace('event: ', ''), data: JSON.parse(data.replace('data: ', '')) };
    });
    const [error, result] = events.slice(-2);
    expect(error).toEqual({ event: 'error', data: { code: 'internal', message: 'the run failed unexpectedly (an internal error)' } });
    expect(result.event).toBe('result');
    expect(result.data).toMatchObject({ status: 'failed', errorClass: 'internal', steps: 1 });
    const id = result.data.id as string;
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'internal', steps: 1, lease_until: null, call_in_flight_id: null });
    expect(Number((await storedRun(id)).cost)).toBeGreaterThan(0);
    expect(await runEvents(id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: id, errorClass: 'internal', steps: 1 }) }]);
    expect((await usage()).reserved_cost).toBe('0.00000000');
  });
  it('a streamed run whose failed call was billed (its stream broke off) and whose finishing transaction fails stores that call with its cost, once', async () => {
    const partial = await startPartialStreamDouble();
    const ai = a.app.get<AppConfig>(APP_CONFIG).ai;
    const config = { baseUrl: ai.baseUrl, maxRetries: ai.maxRetries };
    const before = await usage();
    // one attempt, its stream broken off after part of the answer: a provider error the provider bills (input, what arrived)
    partial.enqueue({ kind: 'drop', chunks: ['Cash at bank ', 'is EUR 100'] });
    const real = agentsRepository.settle.bind(agentsRepository);
    let failedCallId: string | undefined;
    // the transaction storing the failed call (and finishing the run) fails
    const spy = jest.spyOn(agentsRepository, 'settle').mockImplementation(async (db, callId, ...rest) => {
      if (!failedCallId) {
        failedCallId = callId;
        throw new Error('connection terminated unexpectedly');
      }
      return real(db, callId, ...rest);
    });
    let text: string;
    try {
      ai.baseUrl = partial.url;
      ai.maxRetries = 0;
      const res = await a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).set('Accept', 'text/event-stream').send({ messages }).buffer(true)
        .parse((r, cb) => {
          let data = '';
          r.on('data', (c: Buffer) => (data += c.toString()));
          r.on('end', () => cb(null, data));
        }).expect(200);
      text = res.body as unknown as string;
    } finally {
      spy.mockRestore();
      Object.assign(ai, config);
      await partial.close();
    }
    expect(partial.requests).toHaveLength(1);
    const result = JSON.parse(text.split('\n\n').filter(Boolean).at(-1)!.split('\n')[1].replace('data: ', ''));
    const id = result.id as string;
    const stored = await storedCallCost(id);
    expect(stored.calls).toBe(1);
    expect(Number(stored.cost)).toBeGreaterThan(0);
    expect(result).toMatchObject({
      status: 'failed', errorClass: 'internal', steps: 1, cost: stored.cost,
      trace: [expect.objectContaining({ kind: 'llm_call', status: 'failed', errorClass: 'internal', cost: stored.cost, detail: { failures: [expect.any(String)] } })],
    });
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'internal', steps: 1, cost: stored.cost, lease_until: null, call_in_flight_id: null });
    expect(await reservations(failedCallId!)).toBe(0);
    const after = await usage();
    expect(after.reserved_cost).toBe('0.00000000');
    expect(Number(after.spent_cost)).toBeCloseTo(Number(before.spent_cost) + Number(stored.cost), 8);
    expect(await runEvents(id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: id, errorClass: 'internal', steps: 1, cost: stored.cost }) }]);
  });
});
