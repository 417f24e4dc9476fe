import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { CallTimer } from '../../src/platform/ai/llm-provider.js';
import { countChatInputTokens } from '../../src/platform/ai/token-count.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';

/**
 * A run cancelled through the API of another instance than the one executing it (two applications on one database):
 * the executing instance learns of the cancel only once its LLM call in flight returns, and stores that call's step
 * (billed) on the cancelled run. The run's agent.run.failed event is emitted once, with the cost the run and the budget
 * end with, not the cost the cancelling instance saw.
 */
describe('a run cancelled through another instance', () => {
  let a: TestApp;
  let b: Awaited<ReturnType<typeof startApp>>;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agent: string;
  let budget: string;
  /** the timers of A's provider calls: the test cuts a call (no wait on the wall clock) */
  const timers: (() => void)[] = [];
  const messages = [{ role: 'user', content: 'What is our cash?' }];
  const input = countChatInputTokens([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is our cash?' }]);
  // gpt-4o: 2.50 USD per million input tokens
  const inputCost = new Decimal(input).times('2.5').div(1_000_000).toFixed(8);

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    a = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '600000', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    // instance B: the same configuration, the same database
    b = await startApp(a.config);
    a.app.get(CallTimer).start = (_ms, expire) => {
      timers.push(expire);
      return () => undefined;
    };
    owner = await registerUser(a, 'cancel-elsewhere');
    orgId = await createOrg(a, owner, 'Cancelled elsewhere');
    await onPlan(a, orgId, 'professional');
    agent = (await a.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Brief', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id;
    budget = (await a.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent, costLimit: '10.00' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await b?.app.close();
    await a?.close();
    await llm?.close();
    expect(b?.contract.violations ?? []).toEqual([]);
  });

  /** The run as stored, and what its steps add up to. */
  const storedRun = async (runId: string) => (await a.db.admin.query(`SELECT r.status, r.cost::text AS cost, r.steps, r.input_tokens::int AS input,
      (SELECT coalesce(sum(s.cost), 0)::text FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS steps_cost
    FROM ai.runs r WHERE r.id = $1`, [runId])).rows[0];
  const runEvents = async (runId: string) => (await a.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
    WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [orgId, runId])).rows;
  const cancelAudits = async (runId: string) => (await a.db.admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_cancelled' AND entity_id = $2`, [orgId, runId])).rows[0].n;
  const lateCallAudits = async (runId: string) => (await a.db.admin.query(
    `SELECT actor_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_late_call' AND entity_id = $2`, [orgId, runId])).rows;
  const spent = async () => (await a.db.admin.query(
    'SELECT spent_cost::text, reserved_cost::text, spent_tokens::int FROM ai.budget_usage WHERE budget_id = $1', [budget])).rows[0];

  it('emits the run\'s event once, from the instance that stores the cut call, with the cost the run and the budget end with', async () => {
    timers.length = 0;
    const before = await spent();
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const started = a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages }).then((r) => r);
    await held;
    const { rows: [{ id, call_in_flight_id: callId }] } = await a.db.admin.query(`SELECT id, call_in_flight_id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);

    // B takes the cancel: the run is finished at once, at the cost stored so far (A's call is still in flight)
    const cancelled = await b.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    expect(cancelled.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled', steps: 0, cost: '0.00000000' });
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 0, input: 0, steps_cost: '0' });

    // A's call ends (its timer cuts it): billed for its input, stored on the cancelled run
    expect(timers).toHaveLength(1);
    timers[0]();
    const finished = await started;
    expect(finished.status).toBe(200);
    expect(finished.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled', steps: 1, cost: inputCost });
    expect(inputCost).not.toBe('0.00000000');
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: inputCost, steps: 1, input, steps_cost: inputCost });
    expect(await spent()).toEqual({
      spent_cost: new Decimal(before?.spent_cost ?? 0).plus(inputCost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: (before?.spent_tokens ?? 0) + input,
    });

    // one event, with what the run and the budget say; one audit row for the cancel (with the totals then), one for the
    // cut call's step stored on the cancelled run after it (by who started the run, A's execution)
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'interactive', errorClass: 'cancelled', message: 'cancelled by a person', steps: 1, cost: inputCost },
    }]);
    expect(await cancelAudits(id)).toBe(1);
    const noTokens = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 };
    expect(await lateCallAudits(id)).toEqual([{
      actor_id: owner.id,
      before: { status: 'cancelled', errorClass: 'cancelled', cost: '0.00000000', steps: 0, usage: noTokens },
      after: {
        status: 'cancelled', errorClass: 'cancelled', cost: inputCost, steps: 1, usage: { ...noTokens, inputTokens: input },
        callId, stepNo: 1, stepStatus: 'failed', stepErrorClass: 'timeout',
      },
    }]);
  });

  it('emits the event from the cancel when no call of the run is in flight anywhere (a job not yet executed), once', async () => {
    const accepted = await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202);
    const id = accepted.body.id as string;
    const cancelled = await b.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    expect(cancelled.body).toMatchObject({ id, status: 'cancelled', steps: 0, cost: '0.00000000' });
    // the job finds the run cancelled and leaves it alone: no call, no second event
    const calls = llm.requests.length;
    await a.app.get(OutboxRelay).drain();
    expect(llm.requests.length).toBe(calls);
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 0, input: 0, steps_cost: '0' });
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'async', errorClass: 'cancelled', message: 'cancelled by a person', steps: 0, cost: '0.00000000' },
    }]);
    expect(await cancelAudits(id)).toBe(1);
  });
});
