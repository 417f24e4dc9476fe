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
 * released with the event (in the month it was taken), and audited.
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

    /**
     * An async run another instance took and began an LLM call for, then died: what its startCall left, in one commit (the
     * call's reservation of 0.25 USD / 1000 tokens until the mark, the run's lease and mark); then cancelled by its owner.
     */
    const cancelMidCallOfDeadInstance = async (budgetId: string) => {
      const id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
      const callId = randomUUID();
      const now = new Date(clock.now());
      const mark = new Date(now.getTime() + 10 * 60_000);
      const clients: pg.Client[] = [];
      try {
        const { c } = await openTenantTransaction(a.db.apiUrl, { sub: owner.id, org_id: orgId }, clients);
        const { rows } = await c.query(`SELECT budget_id, ok FROM ai.reserve_budget($1, $2, 0.25, 1000, $3, $4)`, [agent, callId, now, mark]);
        expect(rows).toEqual([{ budget_id: budgetId, ok: true }]);
        await c.query(`UPDATE ai.runs SET lease_until = $2, call_in_flight_until = $2, call_in_flight_id = $3 WHERE id = $1`, [id, mark, callId]);
        await c.query('COMMIT');
      } finally {
        await Promise.all(clients.map((c) => c.end()));
      }
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
  });
});
