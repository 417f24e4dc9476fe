import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { RunsService } from '../../src/modules/agents/runs.service.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';
import { startHeldAnswerProxy, type HeldAnswerProxy } from './held-answer-proxy.js';

/**
 * A streamed run's `step` events are those of the LLM calls stored, each once, before the run's result: the steps'
 * costs add up to the run's (runAgent's description). A call answered with tool calls whose run was cancelled through
 * another instance meanwhile is stored on the cancelled run with its cost, and was not streamed (the run was finished
 * first): it is now. A call whose run the lost-runs sweep failed meanwhile was not stored (the run took no step) while
 * the budget was charged what it cost: the failed run (worker_lost) now takes it, with its cost, as a cancelled run does,
 * and it is streamed as a step. The provider is the test double on 127.0.0.1, behind a proxy that holds its
 * answer until the test releases it; the clock and the calls' timers are the test's (nothing waits on the wall clock).
 */
describe('the step events of a streamed run', () => {
  let a: TestApp;
  let b: Awaited<ReturnType<typeof startApp>>;
  let llm: OpenAiDouble;
  let proxy: HeldAnswerProxy;
  let owner: TestUser;
  let orgId: string;
  let agent: string;
  let budget: string;
  const clock = new ManualClock();
  const messages = [{ role: 'user', content: 'What is our cash?' }];
  // gpt-4o: 2.50 input, 10.00 output per million tokens
  const gpt4oCost = (inputTokens: number, outputTokens: number) => new Decimal(inputTokens).times('2.5').plus(new Decimal(outputTokens).times(10)).div(1_000_000).toFixed(8);

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    proxy = await startHeldAnswerProxy(llm.url);
    a = await createTestApp({ AI_BASE_URL: proxy.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env }, { clock });
    // instance B: the same configuration, the same database (a cancel taken by another instance)
    b = await startApp(a.config, clock);
    // the provider calls' timeouts never fire (a held answer is released by the test)
    a.app.get(CallTimer).start = () => () => undefined;
    owner = await registerUser(a, 'step-events-stored');
    orgId = await createOrg(a, owner, 'Step events');
    await onPlan(a, orgId, 'professional');
    agent = (await a.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Brief', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id;
    budget = (await a.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent, costLimit: '10.00' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await b?.app.close();
    await a?.close();
    await proxy?.close();
    await llm?.close();
    expect(b?.contract.violations ?? []).toEqual([]);
  });

  const storedRun = async (runId: string) => (await a.db.admin.query(`SELECT r.status, r.error_class, r.steps, r.cost::text AS cost, r.call_in_flight_id,
      (SELECT coalesce(sum(s.cost), 0)::text FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS steps_cost
    FROM ai.runs r WHERE r.id = $1`, [runId])).rows[0];
  const storedSteps = async (runId: string) => (await a.db.admin.query(`SELECT step_no, kind, status, error_class, cost::text AS cost FROM ai.run_steps
    WHERE run_id = $1 ORDER BY step_no`, [runId])).rows;
  const usage = async () => (await a.db.admin.query(
    'SELECT spent_cost::text, reserved_cost::text, spent_tokens::int, reserved_tokens::int FROM ai.budget_usage WHERE budget_id = $1', [budget])).rows[0]
    ?? { spent_cost: '0.00000000', reserved_cost: '0.00000000', spent_tokens: 0, reserved_tokens: 0 };
  const reservations = async (callId: string) => (await a.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE call_id = $1', [callId])).rows[0].n;
  const runEvents = async (runId: string) => (await a.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
    WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [orgId, runId])).rows;
  const audits = async (runId: string) => (await a.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, runId]))
    .rows.map((r) => r.action);
  /** the run of the agent running now, and its call in flight */
  const runningRun = async () => (await a.db.admin.query(`SELECT id, call_in_flight_id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent])).rows[0] as { id: string; call_in_flight_id: string };
  const events = (text: string) => text.split('\n\n').filter(Boolean).map((block) => {
    const [ev, data] = block.split('\n');
    return { event: ev.replace('event: ', ''), data: JSON.parse(data.replace('data: ', '')) };
  });
  const streamed = () => a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).set('Accept', 'text/event-stream').send({ messages }).buffer(true)
    .parse((r, cb) => {
      let data = '';
      r.on('data', (c: Buffer) => (data += c.toString()));
      r.on('end', () => cb(null, data));
    })
    .then((r) => ({ status: r.status, list: events(r.body as unknown as string) }));

  it('streams the step of a call answered with tool calls whose run was cancelled on another instance meanwhile, before the cancelled result', async () => {
    const before = await usage();
    llm.enqueue({ kind: 'tool_calls', calls: [{ name: 'search_knowledge', arguments: '{"query":"cash"}' }], usage: { prompt: 1200, completion: 30 } });
    const hold = proxy.holdNext();
    const started = streamed();
    await hold.held;
    // the provider has answered; B takes the cancel: the run is finished at once, at the cost stored so far (none)
    const { id, call_in_flight_id: callId } = await runningRun();
    expect(await reservations(callId)).toBe(1);
    await b.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200)
      .expect((r) => expect(r.body).toMatchObject({ id, status: 'cancelled', steps: 0, cost: '0.00000000' }));
    hold.release();
    const { status, list } = await started;
    expect(status).toBe(200);
    const cost = gpt4oCost(1200, 30);
    // the call is stored on the cancelled run: its step is streamed, then the result; its tools are not run
    expect(list.map((e) => e.event)).toEqual(['run', 'step', 'result']);
    expect(list[1].data).toEqual({
      stepNo: 1, kind: 'llm_call', status: 'succeeded', errorClass: null, cost,
      usage: { inputTokens: 1200, outputTokens: 30, cachedInputTokens: 0, cacheWriteTokens: 0 },
    });
    const result = list[2].data;
    expect(result).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled', steps: 1, cost });
    expect(result.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'succeeded', cost })]);
    // as stored: the step events' costs add up to the run's, and to what the budget was charged
    expect(await storedRun(id)).toMatchObject({ status: 'cancelled', error_class: 'cancelled', steps: 1, cost, steps_cost: cost });
    expect(await storedSteps(id)).toEqual([{ step_no: 1, kind: 'llm_call', status: 'succeeded', error_class: null, cost }]);
    expect(await reservations(callId)).toBe(0);
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + 1230, reserved_tokens: 0,
    });
    // one event, from A (it stored the call), with the cost the run ends with; the cancel audited once, then the call's step
    // on the cancelled run
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'interactive', errorClass: 'cancelled', message: 'cancelled by a person', steps: 1, cost },
    }]);
    expect(await audits(id)).toEqual(['ai.run_started', 'ai.run_cancelled', 'ai.run_late_call']);
  });

  it('stores, and streams, the step of an answered call whose run the lost-runs sweep failed meanwhile: its cost is what the budget was charged', async () => {
    const before = await usage();
    llm.enqueue({ kind: 'text', content: 'Cash at bank is EUR 100.', usage: { prompt: 900, completion: 20 } });
    const hold = proxy.holdNext();
    const started = streamed();
    await hold.held;
    const { id, call_in_flight_id: callId } = await runningRun();
    // the sweep, past the run's lease (as if this instance were gone), fails it and releases its reservation
    expect(await a.app.get(RunsService).failLostRuns(new Date(clock.now() + 24 * 60 * 60_000))).toEqual([id]);
    expect(await reservations(callId)).toBe(0);
    hold.release();
    const { status, list } = await started;
    expect(status).toBe(200);
    const cost = gpt4oCost(900, 20);
    // the answer was streamed as it came; the call is a step of the run (as the call ended: its answer is not the run's
    // output), streamed before the result
    expect(list.filter((e) => e.event === 'token').map((e) => e.data.delta).join('')).toBe('Cash at bank is EUR 100.');
    expect(list.filter((e) => e.event !== 'token').map((e) => e.event)).toEqual(['run', 'step', 'result']);
    expect(list.find((e) => e.event === 'step')!.data).toEqual({
      stepNo: 1, kind: 'llm_call', status: 'succeeded', errorClass: null, cost,
      usage: { inputTokens: 900, outputTokens: 20, cachedInputTokens: 0, cacheWriteTokens: 0 },
    });
    const result = list.at(-1)!.data;
    expect(result).toMatchObject({ id, status: 'failed', errorClass: 'worker_lost', output: null, steps: 1, cost });
    expect(result.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'succeeded', cost })]);
    // as stored: the run's cost is its step's, and what the budget was charged for the call (settled when it returned);
    // nothing stays reserved
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'worker_lost', steps: 1, cost, steps_cost: cost, call_in_flight_id: null });
    expect(await storedSteps(id)).toEqual([{ step_no: 1, kind: 'llm_call', status: 'succeeded', error_class: null, cost }]);
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + 920, reserved_tokens: 0,
    });
    // the sweep's event and audit row, once (with the cost then: the call came after), then the call's step audited
    expect(await runEvents(id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: id, errorClass: 'worker_lost', steps: 0, cost: '0.00000000' }) }]);
    expect(await audits(id)).toEqual(['ai.run_started', 'ai.run_worker_lost', 'ai.run_late_call']);
  });
});
