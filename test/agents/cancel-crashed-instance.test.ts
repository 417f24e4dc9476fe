import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { RunsService } from '../../src/modules/agents/runs.service.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { openTenantTransaction } from '../support/database.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';

/**
 * A run cancelled while an LLM call of its execution was in flight on another instance: the cancel leaves the run's
 * agent.run.failed event to that instance (test/agents/cancel-elsewhere.test.ts). Should it die before the call returns,
 * the agents module's sweep emits the event once the run's mark (the call's longest possible duration) has passed: once,
 * however many instances sweep. The budget reservation of that call, which only its execution would have settled, is
 * released with the event (in the month it was taken), and audited; by the cancel itself when the mark had passed before
 * it (the execution was dead already); not at all when the call was settled before its execution died.
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

  describe('the reservation of its LLM call', () => {
    const budgetsUrl = () => `/v1/orgs/${orgId}/ai/budgets`;
    const usage = async (budgetId: string) => (await a.db.admin.query(`SELECT period::text, reserved_cost::text, reserved_tokens::int, spent_cost::text
      FROM ai.budget_usage WHERE budget_id = $1 ORDER BY period`, [budgetId])).rows;
    const reservations = async (callId: string) => (await a.db.admin.query(`SELECT period::text, cost::text FROM ai.budget_reservations WHERE call_id = $1`, [callId])).rows;
    const audits = async (runId: string) => (await a.db.admin.query(`SELECT action, actor_id, before, after FROM core.audit_logs
      WHERE org_id = $1 AND entity_id = $2 AND action NOT IN ('ai.run_started', 'ai.run_cancelled') ORDER BY id`, [orgId, runId])).rows;
    const moveClockTo = (iso: string) => clock.advance(Date.parse(iso) - clock.now());
    // each test's budget goes with it (its usage and reservations cascade), failed or not
    afterEach(async () => {
      await a.db.admin.query('DELETE FROM ai.budgets WHERE org_id = $1', [orgId]);
    });

    /** Runs `sql` in one committed transaction of the organization as its owner (the API's role: what an execution writes). */
    const asExecution = async (sql: (c: pg.Client) => Promise<void>) => {
      const clients: pg.Client[] = [];
      try {
        const { c } = await openTenantTransaction(a.db.apiUrl, { sub: owner.id, org_id: orgId }, clients);
        await sql(c);
        await c.query('COMMIT');
      } finally {
        await Promise.all(clients.map((c) => c.end()));
      }
    };

    /**
     * An async run another instance took and began an LLM call for, then died: what its startCall left, in one commit (the
     * call's reservation of 0.25 USD / 1000 tokens until the mark, the run's lease and mark).
     */
    const beginCallOfDeadInstance = async (budgetId: string) => {
      const id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
      const callId = randomUUID();
      const now = new Date(clock.now());
      const mark = new Date(now.getTime() + 10 * 60_000);
      await asExecution(async (c) => {
        const { rows } = await c.query(`SELECT budget_id, ok FROM ai.reserve_budget($1, $2, 0.25, 1000, $3, $4)`, [agent, callId, now, mark]);
        expect(rows).toEqual([{ budget_id: budgetId, ok: true }]);
        await c.query(`UPDATE ai.runs SET lease_until = $2, call_in_flight_until = $2, call_in_flight_id = $3 WHERE id = $1`, [id, mark, callId]);
      });
      return { id, callId };
    };

    /** beginCallOfDeadInstance, then the run cancelled by its owner before the mark. */
    const cancelMidCallOfDeadInstance = async (budgetId: string) => {
      const { id, callId } = await beginCallOfDeadInstance(budgetId);
      const cancelled = await a.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
      expect(cancelled.body).toMatchObject({ id, status: 'cancelled', steps: 0, cost: '0.00000000' });
      await a.app.get(OutboxRelay).drain();
      expect(await runEvents(id)).toEqual([]);
      // until the mark the call may still end (and settle): the budget holds it
      const held = await a.http.get(`${budgetsUrl()}/${budgetId}`).set(owner.auth).expect(200);
      expect(held.body).toMatchObject({ spentCost: '0.00000000', reservedCost: '0.25000000', reservedTokens: 1000, costLeft: '0.75000000' });
      expect(await sweep(new Date(clock.now()))).toEqual([]);
      expect(await reservations(callId)).toHaveLength(1);
      return { id, callId };
    };
    const releasedAudit = (callId: string, budgetId: string, period: string) => ({
      action: 'ai.run_call_released', actor_id: 'service:agents-cancel-events',
      before: { status: 'cancelled', callId, reservations: [{ budgetId, period, cost: '0.25000000', tokens: 1000 }] },
      after: { status: 'cancelled', callId, reservations: [] },
    });

    it('is released with the owed event once the mark has passed, once', async () => {
      moveClockTo('2026-12-20T12:00:00Z');
      const budgetId = (await a.http.post(budgetsUrl()).set(owner.auth).send({ agentId: agent, costLimit: '1.0000' }).expect(201)).body.id as string;
      const { id, callId } = await cancelMidCallOfDeadInstance(budgetId);

      clock.advance(11 * 60_000);
      const swept = await Promise.all([sweep(new Date(clock.now())), sweep(new Date(clock.now()))]);
      expect(swept.flat()).toEqual([id]);
      expect(await reservations(callId)).toEqual([]);
      expect(await usage(budgetId)).toEqual([{ period: '2026-12-01', reserved_cost: '0.00000000', reserved_tokens: 0, spent_cost: '0.00000000' }]);
      const budget = await a.http.get(`${budgetsUrl()}/${budgetId}`).set(owner.auth).expect(200);
      expect(budget.body).toMatchObject({ period: '2026-12', spentCost: '0.00000000', reservedCost: '0.00000000', reservedTokens: 0, costLeft: '1.00000000' });
      expect((await runEvents(id)).map((e) => e.type)).toEqual(['agent.run.failed']);
      expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 0, marked: false });
      expect(await audits(id)).toEqual([releasedAudit(callId, budgetId, '2026-12')]);

      expect(await sweep(new Date(clock.now()))).toEqual([]);
      expect(await audits(id)).toHaveLength(1);
    });

    it('is released in the month it was taken when the mark passes in the next', async () => {
      moveClockTo('2026-12-31T23:57:00Z');
      const budgetId = (await a.http.post(budgetsUrl()).set(owner.auth).send({ agentId: agent, costLimit: '1.0000' }).expect(201)).body.id as string;
      const { id, callId } = await cancelMidCallOfDeadInstance(budgetId);

      // the mark (00:07) passes in January
      clock.advance(11 * 60_000);
      expect(await sweep(new Date(clock.now()))).toEqual([id]);
      expect(await reservations(callId)).toEqual([]);
      expect(await usage(budgetId)).toEqual([{ period: '2026-12-01', reserved_cost: '0.00000000', reserved_tokens: 0, spent_cost: '0.00000000' }]);
      const budget = await a.http.get(`${budgetsUrl()}/${budgetId}`).set(owner.auth).expect(200);
      expect(budget.body).toMatchObject({ period: '2027-01', spentCost: '0.00000000', reservedCost: '0.00000000', costLeft: '1.00000000' });
      expect((await runEvents(id)).map((e) => e.type)).toEqual(['agent.run.failed']);
      expect(await audits(id)).toEqual([releasedAudit(callId, budgetId, '2026-12')]);
    });

    it('is released by a cancel once the mark has passed (its execution died), before the lost-runs sweep finds the run', async () => {
      moveClockTo('2027-01-20T12:00:00Z');
      const budgetId = (await a.http.post(budgetsUrl()).set(owner.auth).send({ agentId: agent, costLimit: '1.0000' }).expect(201)).body.id as string;
      const { id, callId } = await beginCallOfDeadInstance(budgetId);

      // past the mark (and the lease with it), the owner cancels before any sweep ran: the cancel emits the event and
      // releases the call, as the person cancelling; neither sweep finds the run afterwards (it owes no event, is not running)
      clock.advance(11 * 60_000);
      const cancelled = await a.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
      expect(cancelled.body).toMatchObject({ id, status: 'cancelled', steps: 0, cost: '0.00000000' });
      await a.app.get(OutboxRelay).drain();
      expect(await reservations(callId)).toEqual([]);
      expect(await usage(budgetId)).toEqual([{ period: '2027-01-01', reserved_cost: '0.00000000', reserved_tokens: 0, spent_cost: '0.00000000' }]);
      const budget = await a.http.get(`${budgetsUrl()}/${budgetId}`).set(owner.auth).expect(200);
      expect(budget.body).toMatchObject({ period: '2027-01', spentCost: '0.00000000', reservedCost: '0.00000000', reservedTokens: 0, costLeft: '1.00000000' });
      expect((await runEvents(id)).map((e) => e.type)).toEqual(['agent.run.failed']);
      expect(await audits(id)).toEqual([{ ...releasedAudit(callId, budgetId, '2027-01'), actor_id: owner.id }]);

      expect(await sweep(new Date(clock.now()))).toEqual([]);
      expect(await a.app.get(RunsService).failLostRuns(new Date(clock.now()))).toEqual([]);
      expect((await runEvents(id)).map((e) => e.type)).toEqual(['agent.run.failed']);
      expect(await audits(id)).toHaveLength(1);
      expect(await storedRun(id)).toMatchObject({ status: 'cancelled', cost: '0.00000000', steps: 0 });
    });

    it('takes the event with nothing to release when the call was settled (its step stored) before its execution died', async () => {
      moveClockTo('2027-01-21T12:00:00Z');
      const budgetId = (await a.http.post(budgetsUrl()).set(owner.auth).send({ agentId: agent, costLimit: '1.0000' }).expect(201)).body.id as string;
      const { id, callId } = await cancelMidCallOfDeadInstance(budgetId);

      // the call ended: what its addCallStep committed (the call settled at what it cost, its step on the cancelled run),
      // then the instance died before its finish took the event
      const endedAt = new Date(clock.now());
      await asExecution(async (c) => {
        await c.query(`SELECT * FROM ai.settle_budget($1, 0.1, 800, $2, $3)`, [callId, agent, endedAt]);
        await c.query(`INSERT INTO ai.run_steps (org_id, run_id, step_no, kind, name, status, started_at, ended_at, latency_ms, input_tokens, cost)
          VALUES ($1, $2, 1, 'llm_call', 'gpt-4o', 'succeeded', $3, $3, 0, 800, 0.1)`, [orgId, id, endedAt]);
        await c.query(`UPDATE ai.runs SET input_tokens = input_tokens + 800, cost = cost + 0.1, steps = steps + 1 WHERE id = $1`, [id]);
      });
      expect(await reservations(callId)).toEqual([]);

      clock.advance(11 * 60_000);
      expect(await sweep(new Date(clock.now()))).toEqual([id]);
      expect(await usage(budgetId)).toEqual([{ period: '2027-01-01', reserved_cost: '0.00000000', reserved_tokens: 0, spent_cost: '0.10000000' }]);
      const budget = await a.http.get(`${budgetsUrl()}/${budgetId}`).set(owner.auth).expect(200);
      expect(budget.body).toMatchObject({ period: '2027-01', spentCost: '0.10000000', reservedCost: '0.00000000', reservedTokens: 0, costLeft: '0.90000000' });
      expect((await runEvents(id)).map((e) => [e.type, e.payload.steps, e.payload.cost])).toEqual([['agent.run.failed', 1, '0.10000000']]);
      expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.10000000', steps: 1, marked: false });
      // nothing was released: no ai.run_call_released
      expect(await audits(id)).toEqual([]);

      expect(await sweep(new Date(clock.now()))).toEqual([]);
      expect(await runEvents(id)).toHaveLength(1);
    });
  });
});
