import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RunsService } from '../../src/modules/agents/runs.service.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';

/**
 * A run cancelled while an LLM call of its execution was in flight on another instance: the cancel leaves the run's
 * agent.run.failed event to that instance (test/agents/cancel-elsewhere.test.ts). Should it die before the call returns,
 * the agents module's sweep emits the event once the run's mark (the call's longest possible duration) has passed: once,
 * however many instances sweep.
 */
describe('a run cancelled while its executing instance is gone', () => {
  let a: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agent: string;
  const clock = new ManualClock();
  const messages = [{ role: 'user', content: 'What is our cash?' }];

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    a = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env }, { clock });
    owner = await registerUser(a, 'cancel-crashed');
    orgId = await createOrg(a, owner, 'Cancelled, executor gone');
    await onPlan(a, orgId, 'professional');
    agent = (await a.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Brief', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id;
  });
  afterAll(async () => {
    await a?.close();
    await llm?.close();
  });

  const runEvents = async (runId: string) => (await a.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
    WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [orgId, runId])).rows;
  const storedRun = async (runId: string) => (await a.db.admin.query(
    `SELECT status, cost::text AS cost, steps, call_in_flight_until IS NOT NULL AS marked FROM ai.runs WHERE id = $1`, [runId])).rows[0];
  const sweep = (at: Date) => a.app.get(RunsService).emitOwedCancelEvents(at);

  it('emits the event once the mark has passed, once with two sweeps at a time, and not again', async () => {
    const accepted = await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202);
    const id = accepted.body.id as string;
    // another instance took the job and began an LLM call (marked), then died: nothing of it remains but the mark
    await a.db.admin.query(`UPDATE ai.runs SET call_in_flight_until = now() + interval '10 minutes' WHERE id = $1`, [id]);

    const cancelled = await a.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    expect(cancelled.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled', steps: 0, cost: '0.00000000' });
    // the cancel left the event to the (dead) execution; the job finds the run cancelled and leaves it alone
    const calls = llm.requests.length;
    await a.app.get(OutboxRelay).drain();
    expect(llm.requests.length).toBe(calls);
    expect(await runEvents(id)).toEqual([]);
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 0, marked: true });

    // before the mark, the call might still return: the sweep leaves the event to its execution
    expect(await sweep(new Date(clock.now()))).toEqual([]);
    expect(await runEvents(id)).toEqual([]);

    // past the mark: two instances sweep at once, one emits it
    clock.advance(11 * 60_000);
    const swept = await Promise.all([sweep(new Date(clock.now())), sweep(new Date(clock.now()))]);
    expect(swept.flat()).toEqual([id]);
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'async', errorClass: 'cancelled', message: 'cancelled by a person', steps: 0, cost: '0.00000000' },
    }]);
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 0, marked: false });

    // the next sweep finds nothing owed
    expect(await sweep(new Date(clock.now()))).toEqual([]);
    expect(await runEvents(id)).toHaveLength(1);
  });

  it('leaves alone a cancelled run whose cancel emitted its event (no call in flight)', async () => {
    const accepted = await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202);
    const id = accepted.body.id as string;
    await a.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    expect(await runEvents(id)).toHaveLength(1);
    clock.advance(60 * 60_000);
    expect(await sweep(new Date(clock.now()))).toEqual([]);
    expect(await runEvents(id)).toHaveLength(1);
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 0, marked: false });
  });
});
