import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { CallTimer, Sleeper } from '../../src/platform/ai/llm-provider.js';
import { countChatInputTokens } from '../../src/platform/ai/token-count.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { RunsService } from '../../src/modules/agents/runs.service.js';
import { organizationRepository } from '../../src/modules/organizations/organization.repository.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl, usagelessInput } from './agents-support.js';

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
  // a cut call (no usage reported) is billed its input at gpt-4o's margin over the count
  const input = usagelessInput(countChatInputTokens([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is our cash?' }]));
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

  it('a call outliving its mark after the sweep released its reservation: charged what it cost when it ends, its step stored, no second event', async () => {
    timers.length = 0;
    const before = await spent();
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const started = a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages }).then((r) => r);
    await held;
    const { rows: [{ id, call_in_flight_id: callId }] } = await a.db.admin.query(`SELECT id, call_in_flight_id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);
    await b.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    expect((await spent()).reserved_cost).not.toBe('0.00000000');

    // A looks dead (a paused process): past the run's mark, B's sweep emits the event and releases the call's reservation
    const { rows: [{ mark }] } = await a.db.admin.query(`SELECT call_in_flight_until AS mark FROM ai.runs WHERE id = $1`, [id]);
    expect(await b.app.get(RunsService).emitOwedCancelEvents(new Date((mark as Date).getTime() + 60_000))).toEqual([id]);
    expect(await a.db.admin.query('SELECT 1 FROM ai.budget_reservations WHERE call_id = $1', [callId])).toMatchObject({ rowCount: 0 });
    expect(await spent()).toEqual({ ...before, reserved_cost: '0.00000000' });

    // A's call ends after all: billed its input, charged to the budget (no reservation left) and stored on the run
    timers[0]();
    const finished = await started;
    expect(finished.body).toMatchObject({ id, status: 'cancelled', steps: 1, cost: inputCost });
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: inputCost, steps: 1, input, steps_cost: inputCost });
    expect(await spent()).toEqual({
      spent_cost: new Decimal(before?.spent_cost ?? 0).plus(inputCost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: (before?.spent_tokens ?? 0) + input,
    });
    // the sweep's event only (with the cost before the call, as the lost-runs sweep's); the call's step audited as late
    expect((await runEvents(id)).map((e) => [e.type, e.payload.cost])).toEqual([['agent.run.failed', '0.00000000']]);
    expect((await lateCallAudits(id)).map((r) => r.after)).toEqual([expect.objectContaining({ cost: inputCost, steps: 1, callId, stepErrorClass: 'timeout' })]);
  });

  it('a call whose run another instance cancels between two attempts is not retried: its step is stored on the cancelled run, one event, nothing spent', async () => {
    const before = await spent();
    const sleeper = a.app.get(Sleeper) as Sleeper;
    const sleep = sleeper.sleep;
    // in A's back-off before the retry, B takes the cancel (A's signal is not aborted: it learns of it from the database)
    let id = '';
    sleeper.sleep = async () => {
      ({ rows: [{ id }] } = await a.db.admin.query(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]));
      await b.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    };
    const requests = llm.requests.length;
    let finished: { status: number; body: Record<string, any> };
    try {
      // the first attempt answered 500 (not billed); a retry would be answered, and billed
      llm.enqueue({ kind: 'error', status: 500 }, { kind: 'text', content: 'Cash is EUR 100.', usage: { prompt: input, completion: 900 } });
      finished = await a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages });
    } finally {
      sleeper.sleep = sleep;
      llm.clear();
    }
    // the retry was not made: nothing billed, nothing spent, nothing left reserved
    expect(llm.requests.length - requests).toBe(1);
    expect(await spent()).toEqual({ spent_cost: before?.spent_cost ?? '0.00000000', reserved_cost: '0.00000000', spent_tokens: before?.spent_tokens ?? 0 });
    expect(finished.status).toBe(200);
    expect(finished.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled', steps: 1, cost: '0.00000000' });
    expect(finished.body.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'provider_error', attempts: 1, cost: '0.00000000' })]);
    const { rows: [step] } = await a.db.admin.query('SELECT error_message FROM ai.run_steps WHERE run_id = $1', [id]);
    expect(step).toEqual({ error_message: 'not retried: the run is no longer running: cancelled' });
    expect(await storedRun(id)).toEqual({ status: 'cancelled', cost: '0.00000000', steps: 1, input: 0, steps_cost: '0.00000000' });
    // the run's event once (A's: the cancel mid-call left it), the cancel and the step audited
    expect((await runEvents(id)).map((e) => [e.type, e.payload.steps, e.payload.cost])).toEqual([['agent.run.failed', 1, '0.00000000']]);
    expect(await cancelAudits(id)).toBe(1);
    expect((await lateCallAudits(id)).map((r) => r.after)).toEqual([expect.objectContaining({ cost: '0.00000000', steps: 1, stepErrorClass: 'provider_error' })]);
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

  /** A business organization on a plan with AI, its agent and an organization-wide budget; B's provider calls cut by the test too (bTimers). */
  const bTimers: (() => void)[] = [];
  const organizationWithAgent = async (name: string) => {
    b.app.get(CallTimer).start = (_ms, expire) => {
      bTimers.push(expire);
      return () => undefined;
    };
    const org = await createOrg(a, owner, name);
    await onPlan(a, org, 'professional');
    const orgAgent = (await a.http.post(agentsUrl(org)).set(owner.auth).send({ name: 'Brief', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id as string;
    const orgBudget = (await a.http.post(`/v1/orgs/${org}/ai/budgets`).set(owner.auth).send({ costLimit: '10.00' }).expect(201)).body.id as string;
    const seen: string[] = [];
    /** Starts a run on `app` whose LLM call hangs; answers its id and its response (once its execution ends). */
    const hung = async (app: { http: TestApp['http'] }) => {
      llm.enqueue({ kind: 'hang' });
      const held = llm.nextHang();
      const response = app.http.post(agentsUrl(org, `/${orgAgent}/runs`)).set(owner.auth).send({ messages }).then((r) => r);
      await held;
      const { rows: [{ id }] } = await a.db.admin.query(`SELECT id FROM ai.runs WHERE org_id = $1 AND status = 'running' AND call_in_flight_id IS NOT NULL
        AND id <> ALL($2::uuid[]) LIMIT 1`, [org, seen]);
      seen.push(id);
      return { id: id as string, response };
    };
    /** The runs as stored (in the order of `ids`), with their step rows. */
    const stored = async (ids: string[]) => (await a.db.admin.query(`SELECT id, status, error_message, steps, cost::text AS cost, lease_until,
        call_in_flight_until IS NOT NULL AS marked, (SELECT count(*)::int FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS step_rows
      FROM ai.runs r WHERE id = ANY($1::uuid[]) ORDER BY array_position($1::uuid[], id)`, [ids])).rows;
    const usage = async () => (await a.db.admin.query(`SELECT spent_cost::text, reserved_cost::text, reserved_tokens::int,
        (SELECT count(*)::int FROM ai.budget_reservations x WHERE x.org_id = u.org_id) AS reservations
      FROM ai.budget_usage u WHERE budget_id = $1`, [orgBudget])).rows;
    /** The audit rows of the runs' finishes and late calls (not their starts), in the order of `ids`. */
    const runAudits = async (ids: string[]) => (await a.db.admin.query(`SELECT entity_id, action, actor_id, after->>'reason' AS reason FROM core.audit_logs
      WHERE org_id = $1 AND entity_type = 'ai_run' AND action <> 'ai.run_started' ORDER BY array_position($2::uuid[], entity_id::uuid), id`, [org, ids])).rows;
    /** The organization's run events and organization.deleted, in order. */
    const events = async () => (await a.db.admin.query(`SELECT payload->>'type' AS type FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event'
      AND (payload->>'type' LIKE 'agent.run.%' OR payload->>'type' = 'organization.deleted') ORDER BY id`, [org])).rows;
    return { org, orgAgent, hung, stored, usage, runAudits, events };
  };
  const cancelledRow = { status: 'cancelled', steps: 0, cost: '0.00000000', lease_until: null, marked: false, step_rows: 0 };
  const released = [{ spent_cost: '0.00000000', reserved_cost: '0.00000000', reserved_tokens: 0, reservations: 0 }];

  it('an organization deleted while its runs execute (here, elsewhere, one cancelled mid-call before): cancelled, audited, reservations released, no event now or owed, and their calls ending later write nothing there', async () => {
    const o = await organizationWithAgent('Deleted while running');
    bTimers.length = 0;
    const here = await o.hung(a);
    const elsewhere = await o.hung(b);
    const cancelledBefore = await o.hung(b);
    // cancelled through A while B's call is in flight: its event is left to B's execution (owed)
    await a.http.post(agentsUrl(o.org, `/${o.orgAgent}/runs/${cancelledBefore.id}/cancel`)).set(owner.auth).expect(200);
    const ids = [here.id, elsewhere.id, cancelledBefore.id];
    // marked: a call in flight (running), an event owed (cancelled)
    expect((await o.stored(ids)).map((r) => [r.status, r.marked])).toEqual([['running', true], ['running', true], ['cancelled', true]]);
    expect((await o.usage())[0].reservations).toBe(3);

    await a.http.delete(`/v1/orgs/${o.org}`).set(owner.auth).expect(204);
    const afterDeletion = [
      { id: here.id, ...cancelledRow, error_message: 'cancelled: its organization was deleted' },
      { id: elsewhere.id, ...cancelledRow, error_message: 'cancelled: its organization was deleted' },
      { id: cancelledBefore.id, ...cancelledRow, error_message: 'cancelled by a person' },
    ];
    expect(await o.stored(ids)).toEqual(afterDeletion);
    // every call's reservation released, at nothing (the provider's bill for a cut call is not known)
    expect(await o.usage()).toEqual(released);

    // the calls end: the execution here was cut by the deletion, B's end now; none can write in the deleted organization
    bTimers.forEach((cut) => cut());
    for (const { response } of [here, elsewhere, cancelledBefore]) {
      expect(await response).toMatchObject({ status: 404, body: { error: { code: 'organization.not_found' } } });
    }
    expect(await o.stored(ids)).toEqual(afterDeletion);
    expect(await o.usage()).toEqual(released);
    // nor do the sweeps, past every lease and mark
    const later = new Date(Date.now() + 3 * 86_400_000);
    expect((await a.app.get(RunsService).emitOwedCancelEvents(later)).filter((id) => ids.includes(id))).toEqual([]);
    expect((await a.app.get(RunsService).failLostRuns(later)).filter((id) => ids.includes(id))).toEqual([]);
    expect(await o.stored(ids)).toEqual(afterDeletion);

    // no run event in the deleted organization, now or later; its subscribers hear organization.deleted
    expect(await o.events()).toEqual([{ type: 'organization.deleted' }]);
    // each cancel audited once, by the owner: the deletion's with its reason; no late call stored
    expect(await o.runAudits(ids)).toEqual([
      { entity_id: here.id, action: 'ai.run_cancelled', actor_id: owner.id, reason: 'organization_deleted' },
      { entity_id: elsewhere.id, action: 'ai.run_cancelled', actor_id: owner.id, reason: 'organization_deleted' },
      { entity_id: cancelledBefore.id, action: 'ai.run_cancelled', actor_id: owner.id, reason: null },
    ]);
  });

  it('a deletion that fails (rolled back) leaves its runs running and their executions here uncut: a person cancels one as ever', async () => {
    const o = await organizationWithAgent('Deletion rolled back');
    const here = await o.hung(a);
    const softDelete = organizationRepository.delete;
    organizationRepository.delete = async () => {
      throw new DatabaseUnavailableError(new Error('the soft delete failed (a lock timeout)'));
    };
    try {
      await a.http.delete(`/v1/orgs/${o.org}`).set(owner.auth).expect(503);
    } finally {
      organizationRepository.delete = softDelete;
    }
    // the execution is not cut (it would finish the run as cancelled itself), the run still running with its call in flight
    const active = (a.app.get(RunsService) as unknown as { active: Map<string, AbortController> }).active;
    expect(active.get(here.id)?.signal.aborted).toBe(false);
    expect((await o.stored([here.id])).map((r) => [r.status, r.marked])).toEqual([['running', true]]);
    expect(await o.runAudits([here.id])).toEqual([]);
    expect(await o.events()).toEqual([]);
    // the organization is live: a person's cancel cuts the execution and finishes the run (the cut call stored on it), audited and heard once
    await a.http.post(agentsUrl(o.org, `/${o.orgAgent}/runs/${here.id}/cancel`)).set(owner.auth).expect(200);
    expect(await here.response).toMatchObject({ status: 200, body: { id: here.id, status: 'cancelled', errorMessage: 'cancelled by a person' } });
    expect(await o.runAudits([here.id])).toEqual([
      { entity_id: here.id, action: 'ai.run_cancelled', actor_id: owner.id, reason: null },
      { entity_id: here.id, action: 'ai.run_late_call', actor_id: owner.id, reason: null },
    ]);
    expect(await o.events()).toEqual([{ type: 'agent.run.failed' }]);
  });

  it('a call that ends while the deletion holds its run, its transaction let in before the deletion committed, writes nothing in the deleted organization', async () => {
    const o = await organizationWithAgent('Deleted under a late call');
    bTimers.length = 0;
    const run = await o.hung(b);
    // the deletion paused with the run cancelled and locked, the organization not yet deleted
    const paused = pauseNext(organizationRepository, 'delete');
    const deletion = a.http.delete(`/v1/orgs/${o.org}`).set(owner.auth).then((r) => r);
    try {
      await paused.reached;
      // B's call ends: the transaction storing it opens in a live organization, then waits for the run
      bTimers[0]();
      expect(await waitsForLockOrAnswers(a.db.admin, run.response, paused)).toBe('waiting');
    } finally {
      releaseAll();
    }
    expect((await deletion).status).toBe(204);
    expect(await run.response).toMatchObject({ status: 404, body: { error: { code: 'organization.not_found' } } });
    // no step, no cost, no late call audited, no event: the run as the deletion left it, its reservation released
    expect(await o.stored([run.id])).toEqual([{ id: run.id, ...cancelledRow, error_message: 'cancelled: its organization was deleted' }]);
    expect(await o.usage()).toEqual(released);
    expect(await o.runAudits([run.id])).toEqual([{ entity_id: run.id, action: 'ai.run_cancelled', actor_id: owner.id, reason: 'organization_deleted' }]);
    expect(await o.events()).toEqual([{ type: 'organization.deleted' }]);
  });
});
