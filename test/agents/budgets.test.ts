import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { openTenantTransaction } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * Budgets: each LLM call reserves its worst case atomically against every budget that applies and settles to the
 * actual usage. 50 runs in parallel against a budget that fits about 10 never overshoot; a refused call is a 402
 * naming the budget and what is left; reservations of crashed calls expire; each threshold is reported once.
 */
describe('AI budgets', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let member: TestUser;
  let orgId: string;
  let agentId: string;
  const clock = new ManualClock().atMidday(); // a run's month and the usage read back: never across the first of a month

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-budget-0000', REDIS_URL: '',
      // 50 runs at once on a shared, loaded machine: the test is about overshoot, not about waiting for a connection
      API_DATABASE_POOL_SIZE: '16', DATABASE_CONNECT_TIMEOUT_MS: '120000',
    }, { clock });
    owner = await registerUser(t, 'budget-owner');
    member = await registerUser(t, 'budget-member');
    orgId = await createOrg(t, owner, 'Budget Ltd');
    await onPlan(t, orgId, 'professional');
    await addMember(t, orgId, member, 'member');
    // gpt-4o: output 10 USD per million; 4,000 max output tokens: each call reserves a little over 0.04 USD
    const res = await t.http.post(agentsUrl(orgId)).set(owner.auth)
      .send({ name: 'Spender', type: 'assistant', modelId: 'gpt-4o', maxOutputTokens: 4000, maxSteps: 2 }).expect(201);
    agentId = res.body.id;
    llm.answerWith(() => ({ kind: 'text', content: 'spent', usage: { prompt: 10, completion: 3500 } }));
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });
  // each test starts without budgets (the owner connection: setup, not the path under test)
  beforeEach(async () => {
    await t.db.admin.query('DELETE FROM ai.budgets');
  });

  const run = (user = member) => t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(user.auth).send({ messages: [{ role: 'user', content: 'go' }] });
  const usage = async (budgetId: string) => (await t.db.admin.query(
    `SELECT spent_cost::text, reserved_cost::text, spent_tokens::int, reserved_tokens::int, thresholds_reached FROM ai.budget_usage WHERE budget_id = $1`, [budgetId])).rows[0];

  it('50 parallel runs against a budget that fits about 10: the settled total never exceeds the limit', async () => {
    const budget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '0.4000' }).expect(201);
    expect(budget.body).toMatchObject({ agentId: null, costLimit: '0.4000', spentCost: '0.00000000', costLeft: '0.40000000', thresholds: [50, 80, 100] });
    const results = await Promise.all(Array.from({ length: 50 }, () => run()));
    expect(results.filter((r) => r.status !== 200 && r.status !== 402).map((r) => `${r.status} ${JSON.stringify(r.body)}`)).toEqual([]);
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 402);
    expect(ok.length + refused.length).toBe(50);
    expect(ok.length).toBeGreaterThanOrEqual(8);
    expect(ok.length).toBeLessThanOrEqual(11);
    for (const r of refused) {
      expect(r.body.error.code).toBe('ai.budget_exceeded');
      expect(r.body.error.details).toMatchObject({ budgetId: budget.body.id, costLeft: expect.any(String) });
      expect(r.body.error.message).toMatch(/does not fit in budget/);
    }
    const u = await usage(budget.body.id);
    // 0.0350250 per run: 10 × 2.50 + 3,500 × 10 per million
    expect(u.spent_cost).toBe((ok.length * 0.035025).toFixed(8));
    expect(Number(u.spent_cost)).toBeLessThanOrEqual(0.4);
    expect(u.reserved_cost).toBe('0.00000000');
    const { rows } = await t.db.admin.query(`SELECT status, error_class, count(*)::int AS n FROM ai.runs WHERE org_id = $1 GROUP BY 1, 2 ORDER BY 1`, [orgId]);
    expect(rows).toEqual([{ status: 'failed', error_class: 'budget_exceeded', n: refused.length }, { status: 'succeeded', error_class: null, n: ok.length }]);
    const left = await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations');
    expect(left.rows[0].n).toBe(0);
    // every finish audited once, in its own transaction: each answered run as ai.run_succeeded, each refused one as
    // ai.run_budget_exceeded
    const { rows: audited } = await t.db.admin.query(`SELECT a.action, count(*)::int AS n, count(DISTINCT a.entity_id)::int AS runs FROM core.audit_logs a
      WHERE a.org_id = $1 AND a.entity_type = 'ai_run' AND a.action <> 'ai.run_started' GROUP BY 1 ORDER BY 1`, [orgId]);
    expect(audited).toEqual([
      { action: 'ai.run_budget_exceeded', n: refused.length, runs: refused.length },
      { action: 'ai.run_succeeded', n: ok.length, runs: ok.length },
    ]);
    // each threshold once: 50 % is passed (≥ 8 runs of 0.035 of 0.40), 80 % when 10 or more runs fitted (how many do
    // depends on how the concurrent reservations interleave: 9 once under load)
    const events = await t.db.admin.query(`SELECT (payload->'payload'->>'threshold')::int AS threshold, count(*)::int AS n FROM core.outbox
      WHERE topic = 'domain_event' AND payload->>'type' = 'ai.budget.threshold_reached' GROUP BY 1 ORDER BY 1`);
    expect(events.rows.every((e) => e.n === 1)).toBe(true);
    expect(events.rows.map((e) => e.threshold)).toEqual(u.thresholds_reached);
    expect(u.thresholds_reached).toEqual(expect.arrayContaining(Number(u.spent_cost) >= 0.32 ? [50, 80] : [50]));
    expect(u.thresholds_reached.includes(80)).toBe(Number(u.spent_cost) >= 0.32);
    const listed = await t.http.get(`/v1/orgs/${orgId}/ai/budgets`).set(member.auth).expect(200);
    expect(listed.body[0]).toMatchObject({ id: budget.body.id, spentCost: u.spent_cost, reservedCost: '0.00000000' });
    await t.http.delete(`/v1/orgs/${orgId}/ai/budgets/${budget.body.id}`).set(owner.auth).expect(204);
  });

  it('releases the reservation of a crashed call once it expires', async () => {
    const budget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, costLimit: '0.1000' }).expect(201);
    // a call that reserved 0.09 and never settled (its process died), as the member, through the function
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: t.db.apiUrl });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: member.id, role: 'authenticated', org_id: orgId })]);
      const now = new Date(clock.now());
      const { rows } = await c.query(`SELECT ok FROM ai.reserve_budget($1, gen_random_uuid(), 0.09, 100, $2, $3)`, [agentId, now, new Date(now.getTime() + 5 * 60_000)]);
      expect(rows).toEqual([{ ok: true }]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    const refused = await run().expect(402);
    expect(refused.body.error.details).toMatchObject({ budgetId: budget.body.id, costLeft: '0.01000000' });
    clock.advance(6 * 60_000);
    const ok = await run().expect(200);
    expect(ok.body.status).toBe('succeeded');
    const u = await usage(budget.body.id);
    expect(u).toMatchObject({ spent_cost: '0.03502500', reserved_cost: '0.00000000' });
    await t.http.delete(`/v1/orgs/${orgId}/ai/budgets/${budget.body.id}`).set(owner.auth).expect(204);
  });

  /** The member's tenant transactions, opened as the API's login (closed by the caller: `clients`), and a wait until one's backend waits for a lock. */
  function lockingTransactions() {
    const clients: pg.Client[] = [];
    const tx = () => openTenantTransaction(t.db.apiUrl, { sub: member.id, org_id: orgId }, clients);
    const waitsForLock = (pid: number) => until(`backend ${pid} waits for a lock`, async () => (await t.db.admin.query(
      `SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pid])).rows[0]?.wait_event_type === 'Lock');
    return { clients, tx, waitsForLock };
  }

  it('settling an expired reservation while a call reserves on the same budget: both lock its usage, then its reservations (no deadlock)', async () => {
    const budget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, costLimit: '1.0000' }).expect(201);
    const { clients, tx, waitsForLock } = lockingTransactions();
    // fixed times (one month): two calls reserved, then outlived their expiry; `late` is a swept run's call, settled later
    const at = new Date('2026-12-15T12:00:00Z');
    const later = new Date(at.getTime() + 10 * 60_000);
    const [gateCall, lateCall, nextCall] = [randomUUID(), randomUUID(), randomUUID()];
    try {
      const setup = await tx();
      for (const [call, cost, tokens, expiresMin] of [[gateCall, 0.1, 100, 1], [lateCall, 0.2, 200, 2]] as const) {
        const { rows } = await setup.c.query(`SELECT ok FROM ai.reserve_budget($1, $2, $3, $4, $5, $6)`, [agentId, call, cost, tokens, at, new Date(at.getTime() + expiresMin * 60_000)]);
        expect(rows).toEqual([{ ok: true }]);
      }
      await setup.c.query('COMMIT');
      // the gate holds the first expired reservation: the reserving call stops at it, its budget's usage locked, before
      // it reaches `late`'s (released after `gate`'s: earlier expiry, stored first)
      const gate = await tx();
      await gate.c.query(`SELECT 1 FROM ai.budget_reservations WHERE call_id = $1 FOR UPDATE`, [gateCall]);
      const reserving = await tx();
      const reserved = reserving.c.query(`SELECT ok, cost_left::text FROM ai.reserve_budget($1, $2, 0.05, 50, $3, $4)`, [agentId, nextCall, later, new Date(later.getTime() + 5 * 60_000)]);
      reserved.catch(() => undefined); // awaited below (a rejection meanwhile is not unhandled)
      await waitsForLock(reserving.pid);
      // `late`'s settlement waits for the usage row; in the earlier order it first deleted its reservation, which the
      // reserving call then waited for (it releases expired ones) while holding the usage row: PostgreSQL aborted one (40P01)
      const settling = await tx();
      const settled = settling.c.query(`SELECT * FROM ai.settle_budget($1, 0.03, 30, $2, $3)`, [lateCall, agentId, later]);
      settled.catch(() => undefined);
      await waitsForLock(settling.pid);
      await gate.c.query('COMMIT');
      expect((await reserved).rows).toEqual([{ ok: true, cost_left: '0.95000000' }]);
      await reserving.c.query('COMMIT');
      expect((await settled).rows).toEqual([]);
      await settling.c.query('COMMIT');
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // both expired reservations released by the reserving call, `late`'s spend charged once, `next` reserved
    expect(await usage(budget.body.id)).toEqual({ spent_cost: '0.03000000', reserved_cost: '0.05000000', spent_tokens: 30, reserved_tokens: 50, thresholds_reached: [] });
    const left = await t.db.admin.query('SELECT call_id, cost::text FROM ai.budget_reservations WHERE budget_id = $1', [budget.body.id]);
    expect(left.rows).toEqual([{ call_id: nextCall, cost: '0.05000000' }]);
    await t.http.delete(`/v1/orgs/${orgId}/ai/budgets/${budget.body.id}`).set(owner.auth).expect(204);
  });

  it('a retry of a call whose reservation a sweep released extends nothing (it reserved again, held by nobody); a call holding one still extends, a newer budget takes the whole amount', async () => {
    const agentBudget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, costLimit: '1.0000' }).expect(201);
    const clients: pg.Client[] = [];
    const tx = () => openTenantTransaction(t.db.apiUrl, { sub: member.id, org_id: orgId }, clients);
    const at = new Date('2026-12-15T12:00:00Z');
    const expires = new Date(at.getTime() + 5 * 60_000);
    const later = new Date(at.getTime() + 10 * 60_000);
    const [released, held] = [randomUUID(), randomUUID()];
    let orgBudget = '';
    try {
      const setup = await tx();
      for (const call of [released, held]) {
        expect((await setup.c.query(`SELECT ok FROM ai.reserve_budget($1, $2, 0.1, 100, $3, $4)`, [agentId, call, at, expires])).rows).toEqual([{ ok: true }]);
      }
      // the sweep took `released`'s execution for dead: settled at nothing (its reservation released)
      await setup.c.query(`SELECT * FROM ai.settle_budget($1, 0, 0, $2, $3)`, [released, agentId, later]);
      await setup.c.query('COMMIT');
      // a budget of the whole organization, created since both calls reserved
      orgBudget = (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '1.0000' }).expect(201)).body.id;
      const retry = await tx();
      // the execution outlived its mark: its retry adds what the failed attempt billed (a budget it holds none on: that and
      // the retry's worst case)
      const extendedReleased = await retry.c.query(`SELECT budget_id, ok FROM ai.extend_reservation($1, $2, 0.02, 20, 0.13, 130, $3, $4)`, [agentId, released, later, expires]);
      const extendedHeld = await retry.c.query(`SELECT budget_id, ok, asked_tokens::int FROM ai.extend_reservation($1, $2, 0.02, 20, 0.13, 130, $3, $4)`, [agentId, held, later, expires]);
      await retry.c.query('COMMIT');
      expect(extendedReleased.rows).toEqual([]);
      // budget by budget in id order, as reserve_budget
      expect(extendedHeld.rows).toEqual([agentBudget.body.id, orgBudget].sort().map((id) => ({ budget_id: id, ok: true, asked_tokens: id === orgBudget ? 130 : 20 })));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    const { rows: reservations } = await t.db.admin.query(`SELECT call_id, budget_id, cost::text, tokens::int, expires_at FROM ai.budget_reservations
      WHERE call_id = ANY($1::uuid[]) ORDER BY cost DESC`, [[released, held]]);
    expect(reservations).toEqual([
      { call_id: held, budget_id: orgBudget, cost: '0.13000000', tokens: 130, expires_at: expires },
      { call_id: held, budget_id: agentBudget.body.id, cost: '0.12000000', tokens: 120, expires_at: expires },
    ]);
    expect(await usage(agentBudget.body.id)).toEqual({ spent_cost: '0.00000000', reserved_cost: '0.12000000', spent_tokens: 0, reserved_tokens: 120, thresholds_reached: [] });
    expect(await usage(orgBudget)).toEqual({ spent_cost: '0.00000000', reserved_cost: '0.13000000', spent_tokens: 0, reserved_tokens: 130, thresholds_reached: [] });
  });

  it('a release committed while a retry\'s extension waits for the budget\'s usage row: the extension sees it and reserves nothing', async () => {
    const budget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, costLimit: '1.0000' }).expect(201);
    const { clients, tx, waitsForLock } = lockingTransactions();
    const at = new Date('2026-12-15T12:00:00Z');
    const expires = new Date(at.getTime() + 5 * 60_000);
    const later = new Date(at.getTime() + 10 * 60_000);
    const call = randomUUID();
    try {
      const setup = await tx();
      expect((await setup.c.query(`SELECT ok FROM ai.reserve_budget($1, $2, 0.1, 100, $3, $4)`, [agentId, call, at, expires])).rows).toEqual([{ ok: true }]);
      await setup.c.query('COMMIT');
      // the sweep's release holds the usage row (and has deleted the reservation), not committed yet
      const sweeping = await tx();
      await sweeping.c.query(`SELECT * FROM ai.settle_budget($1, 0, 0, $2, $3)`, [call, agentId, later]);
      // the retry's extension still sees the reservation, and waits for the usage row
      const retry = await tx();
      const extended = retry.c.query(`SELECT budget_id, ok FROM ai.extend_reservation($1, $2, 0.02, 20, 0.12, 120, $3, $4)`, [agentId, call, later, expires]);
      extended.catch(() => undefined); // awaited below (a rejection meanwhile is not unhandled)
      await waitsForLock(retry.pid);
      await sweeping.c.query('COMMIT');
      expect((await extended).rows).toEqual([]);
      await retry.c.query('COMMIT');
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE call_id = $1', [call])).rows[0].n).toBe(0);
    expect(await usage(budget.body.id)).toEqual({ spent_cost: '0.00000000', reserved_cost: '0.00000000', spent_tokens: 0, reserved_tokens: 0, thresholds_reached: [] });
  });

  /**
   * A run whose call's first attempt is answered 500 (billed nothing), then as usual; during the back-off before the retry
   * `meanwhile` runs and an agent budget of `tokenLimit` tokens is created (`budgetId`). `requests`: the provider's.
   */
  const retryWithBudgetInBackOff = async (tokenLimit: number, expected: 200 | 402, meanwhile: () => Promise<void> = async () => undefined) => {
    const answered = { kind: 'text' as const, content: 'spent', usage: { prompt: 10, completion: 3500 } };
    let requests = 0;
    llm.answerWith(() => (requests++ === 0 ? { kind: 'error', status: 500 } : answered));
    const sleeper = t.app.get(Sleeper) as Sleeper;
    const sleep = sleeper.sleep;
    let budgetId = '';
    sleeper.sleep = async () => {
      await meanwhile();
      budgetId = (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, tokenLimit }).expect(201)).body.id;
    };
    try {
      const res = await run().expect(expected);
      return { res, budgetId, requests };
    } finally {
      sleeper.sleep = sleep;
      llm.answerWith(() => answered);
    }
  };

  // a call retried after its first attempt answered 500 (billed nothing), holding the reservation of `before`'s budget
  // (none: ''): during the back-off `meanwhile` runs and an agent budget of 1,000 tokens is created, which the retry (over
  // 4,000 tokens) does not fit
  const refusedRetry = async (before: () => Promise<string>, meanwhile: (held: string) => Promise<void>) => {
    const held = await before();
    const { res: refused, budgetId, requests } = await retryWithBudgetInBackOff(1000, 402, () => meanwhile(held));
    // the new budget was asked the retry's worst case (at least its 4,000 output tokens), not what the attempt billed (nothing)
    expect(refused.body.error).toMatchObject({ code: 'ai.budget_exceeded', details: { budgetId, tokensLeft: 1000, callTokens: expect.any(Number) } });
    expect(refused.body.error.details.callTokens).toBeGreaterThan(4000);
    expect(refused.body.error.message).toMatch(/the retry of the call does not fit in budget/);
    expect(requests).toBe(1);
    expect(await usage(budgetId)).toMatchObject({ spent_tokens: 0, reserved_tokens: 0 });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations')).rows[0].n).toBe(0);
    return held;
  };

  it('a call that reserved when no budget applied: a budget created while it is in flight takes its retry, or refuses it when the retry does not fit (review rH); what the call used is charged to it', async () => {
    // the retry's worst case fits: reserved, then the call's usage charged, nothing left reserved
    const { res, budgetId, requests } = await retryWithBudgetInBackOff(100_000, 200);
    expect(res.body).toMatchObject({ status: 'succeeded', output: 'spent' });
    expect(requests).toBe(2);
    expect(await usage(budgetId)).toMatchObject({ spent_tokens: 3510, reserved_tokens: 0 });
    await t.http.delete(`/v1/orgs/${orgId}/ai/budgets/${budgetId}`).set(owner.auth).expect(204);

    // it does not (1,000 tokens): the retry is not made, the run fails budget_exceeded, nothing is charged past the limit
    const runsBefore = (await t.db.admin.query('SELECT id FROM ai.runs WHERE agent_id = $1', [agentId])).rows.map((r) => r.id);
    await refusedRetry(async () => '', async () => undefined);
    const { rows: failed } = await t.db.admin.query(`SELECT r.status, r.error_class, s.error_class AS step_error_class, s.attempts FROM ai.runs r
      JOIN ai.run_steps s ON s.run_id = r.id WHERE r.agent_id = $1 AND NOT (r.id = ANY($2::uuid[]))`, [agentId, runsBefore]);
    expect(failed).toEqual([{ status: 'failed', error_class: 'budget_exceeded', step_error_class: 'budget_exceeded', attempts: 1 }]);
  });

  it('a call holding a reservation on the organization\'s budget: a budget created while it is in flight is asked the retry\'s whole worst case, even when the failed attempt billed nothing, and refuses it', async () => {
    const orgBudget = await refusedRetry(
      async () => (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ tokenLimit: 1_000_000 }).expect(201)).body.id,
      async () => undefined);
    expect(await usage(orgBudget)).toMatchObject({ spent_tokens: 0, reserved_tokens: 0 });
  });

  it('a call whose only budget is deleted while it is in flight: a budget created meanwhile is asked its retry, and refuses it', async () => {
    await refusedRetry(
      async () => (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, tokenLimit: 1_000_000 }).expect(201)).body.id,
      async (held) => { await t.http.delete(`/v1/orgs/${orgId}/ai/budgets/${held}`).set(owner.auth).expect(204); });
  });

  it('refuses a call over an agent\'s token limit with 402, records the failed run, and emits the 100 % threshold once', async () => {
    const budget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId, tokenLimit: 7100, thresholds: [100] }).expect(201);
    await run().expect(200); // reserves ~4,050 of 7,100, spends 3,510
    const refusedBefore = (await t.db.admin.query(`SELECT id FROM ai.runs WHERE org_id = $1 AND error_class = 'budget_exceeded'`, [orgId])).rows.map((r) => r.id);
    const refused = await run().expect(402);
    expect(refused.body.error.details).toMatchObject({ budgetId: budget.body.id, tokensLeft: 7100 - 3510 });
    // the refused run is audited as such, by the member who started it, with its totals (the refused call is a step, at nothing)
    const { rows: [{ id: refusedId }] } = await t.db.admin.query(`SELECT id FROM ai.runs WHERE org_id = $1 AND error_class = 'budget_exceeded'
      AND NOT (id = ANY($2::uuid[]))`, [orgId, refusedBefore]);
    const { rows: audits } = await t.db.admin.query(`SELECT action, actor_id, before, after FROM core.audit_logs
      WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, refusedId]);
    expect(audits).toEqual([expect.objectContaining({ action: 'ai.run_started', actor_id: member.id }), {
      action: 'ai.run_budget_exceeded', actor_id: member.id, before: { status: 'running' },
      after: {
        status: 'failed', errorClass: 'budget_exceeded', stopReason: 'error', cost: '0.00000000', steps: 1,
        usage: { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 },
      },
    }]);
    const b = await t.http.get(`/v1/orgs/${orgId}/ai/budgets/${budget.body.id}`).set(member.auth).expect(200);
    expect(b.body).toMatchObject({ spentTokens: 3510, reservedTokens: 0, tokensLeft: 3590, thresholdsReached: [] });
    await t.http.patch(`/v1/orgs/${orgId}/ai/budgets/${budget.body.id}`).set(owner.auth).send({ tokenLimit: 3510 }).expect(200);
    await t.http.patch(`/v1/orgs/${orgId}/ai/budgets/${budget.body.id}`).set(member.auth).send({ tokenLimit: 99999 }).expect(403);
  });

  it('lets only owner and admin manage budgets, and names a duplicate', async () => {
    await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(member.auth).send({ costLimit: '1.00' }).expect(403);
    await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '1.00' }).expect(201);
    const dup = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '2.00' }).expect(409);
    expect(dup.body.error.code).toBe('ai.budget_exists');
    await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({}).expect(400);
  });

  it('refuses a cost limit of 0 with a 400 naming costLimit (the table allows only one above 0), on create and on change', async () => {
    for (const costLimit of ['0', '0.0000', '00.00']) {
      const res = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit }).expect(400);
      expect(res.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'costLimit', problems: [expect.stringContaining('greater than 0')] }] });
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budgets')).rows[0].n).toBe(0);
    // the smallest limit there is (4 decimals) is one
    const small = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '0.0001' }).expect(201);
    const changed = await t.http.patch(`/v1/orgs/${orgId}/ai/budgets/${small.body.id}`).set(owner.auth).send({ costLimit: '0' }).expect(400);
    expect(changed.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'costLimit' }] });
    // the token limit's Min(1) matches its CHECK too
    const tokens = await t.http.patch(`/v1/orgs/${orgId}/ai/budgets/${small.body.id}`).set(owner.auth).send({ tokenLimit: 0 }).expect(400);
    expect(tokens.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'tokenLimit' }] });
    expect((await t.db.admin.query('SELECT cost_limit::text, token_limit FROM ai.budgets WHERE id = $1', [small.body.id])).rows).toEqual([{ cost_limit: '0.0001', token_limit: null }]);
  });
});
