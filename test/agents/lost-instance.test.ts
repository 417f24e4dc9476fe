import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { countChatInputTokens, countTextTokens } from '../../src/platform/ai/token-count.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { APP_CONFIG, type AppConfig } from '../../src/platform/config/config.js';
import { agentsRepository } from '../../src/modules/agents/agents.repository.js';
import { QUEUED_RUN_LEASE_MS, RunsService } from '../../src/modules/agents/runs.service.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl, usagelessInput } from './agents-support.js';
import { startPartialStreamDouble } from './partial-stream-double.js';

/**
 * A run whose executing instance stopped (crash, kill, deploy) stayed running for ever. The executing instance now holds
 * a lease on the run, renewed by each of its writes; once it has passed, the agents module's sweep fails the run
 * (worker_lost), releases its in-flight call's budget reservation, emits agent.run.failed and audits it, once. A run whose
 * lease holds, however slow, is left alone. A job's run (?async=true, a trigger) is leased by its job when it takes it;
 * one no job takes (the job fails on every attempt of the queue, or is lost) is failed by the same sweep a day after it
 * started (QUEUED_RUN_LEASE_MS). semantic.v_agent_metrics counts these runs in failed_worker_lost. Time moves on the
 * injected clock; the provider call hangs until the test cuts it (its timer is the test's).
 */
describe('a run whose executing instance is lost', () => {
  let a: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agent: string;
  let budget: string;
  const clock = new ManualClock();
  /** the timers of the app's provider calls: the test cuts a call (no wait on the wall clock) */
  const timers: (() => void)[] = [];
  const messages = [{ role: 'user', content: 'What is our cash?' }];

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    a = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env }, { clock });
    a.app.get(CallTimer).start = (_ms, expire) => {
      timers.push(expire);
      return () => undefined;
    };
    owner = await registerUser(a, 'lost-instance');
    orgId = await createOrg(a, owner, 'Executor lost');
    await onPlan(a, orgId, 'professional');
    agent = (await a.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Brief', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id;
    budget = (await a.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent, costLimit: '10.00' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await a?.close();
    await llm?.close();
  });

  // the injected clock moves with the wall clock (ManualClock): a sweep whose time a test compares with is given it
  const sweep = (at: Date = new Date(clock.now())) => a.app.get(RunsService).failLostRuns(at);
  const storedRun = async (runId: string) => (await a.db.admin.query(`SELECT status, error_class, stop_reason, steps, cost::text AS cost,
      lease_until, call_in_flight_until, call_in_flight_id, finished_at FROM ai.runs WHERE id = $1`, [runId])).rows[0];
  const runEvents = async (runId: string) => (await a.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
    WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [orgId, runId])).rows;
  const audits = async (runId: string) => (await a.db.admin.query(`SELECT action, actor_id, before, after FROM core.audit_logs
    WHERE org_id = $1 AND entity_id = $2 AND action <> 'ai.run_started' ORDER BY id`, [orgId, runId])).rows;
  /** what semantic.v_agent_metrics says of the agent's runs (as its owner), and what ai.runs holds */
  const metrics = async () => {
    const res = await a.http.post(`/v1/orgs/${orgId}/semantic/query`).set(owner.auth)
      .send({ sql: 'SELECT sum(failed)::int AS failed, sum(failed_worker_lost)::int AS lost FROM semantic.v_agent_metrics' }).expect(200);
    const { rows: [stored] } = await a.db.admin.query(`SELECT count(*) FILTER (WHERE status = 'failed')::int AS failed,
      count(*) FILTER (WHERE error_class = 'worker_lost')::int AS lost FROM ai.runs WHERE agent_id = $1`, [agent]);
    return { view: res.body.rows[0], stored: [stored.failed, stored.lost] };
  };
  const usage = async () => (await a.db.admin.query(
    'SELECT spent_cost::text, reserved_cost::text, spent_tokens::int, reserved_tokens::int FROM ai.budget_usage WHERE budget_id = $1', [budget])).rows[0];
  const counted = countChatInputTokens([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is our cash?' }]);
  // a call cut by its timer is billed its input, at gpt-4o's margin over the count (no usage reported): 2.50 USD per million input tokens
  const input = usagelessInput(counted);
  const cutCost = new Decimal(input).times('2.5').div(1_000_000).toFixed(8);
  const noTokens = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 };
  /** the sweep's audit row of an interactive run it failed with nothing stored */
  const sweptAudit = {
    action: 'ai.run_worker_lost', actor_id: 'service:agents-lost-runs', before: { status: 'running' },
    after: { status: 'failed', errorClass: 'worker_lost', stopReason: 'error', cost: '0.00000000', steps: 0, usage: noTokens },
  };
  /**
   * The audit row of a cut call (billed its input) stored on a run the sweep had failed with nothing stored: by who started
   * the run, with its totals before and after the step
   */
  const lateCallAudit = (callId: string, stepErrorClass: string) => ({
    action: 'ai.run_late_call', actor_id: owner.id,
    before: { status: 'failed', errorClass: 'worker_lost', cost: '0.00000000', steps: 0, usage: noTokens },
    after: {
      status: 'failed', errorClass: 'worker_lost', cost: cutCost, steps: 1, usage: { ...noTokens, inputTokens: input },
      callId, stepNo: 1, stepStatus: 'failed', stepErrorClass,
    },
  });
  /** An interactive run whose call hangs, past its lease: answers the run, its call and the request (ends with the run). */
  const hangPastLease = async () => {
    timers.length = 0;
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const started = a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages }).then((r) => r);
    await held;
    const { rows: [run] } = await a.db.admin.query(`SELECT id, call_in_flight_id, lease_until FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);
    clock.advance((run.lease_until as Date).getTime() - clock.now() + 60_000);
    return { id: run.id as string, callId: run.call_in_flight_id as string, started };
  };

  it('leaves the run alone while its lease holds; once it has passed, fails it (worker_lost) once, releasing its reservation', async () => {
    timers.length = 0;
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const started = a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages }).then((r) => r);
    await held;
    const { rows: [{ id }] } = await a.db.admin.query(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent]);

    // the call in flight holds the run's lease, as long as the call may last, and its reservation
    const calling = await storedRun(id);
    expect(calling).toMatchObject({ status: 'running', steps: 0 });
    expect(calling.call_in_flight_id).not.toBeNull();
    expect(calling.lease_until).toEqual(calling.call_in_flight_until);
    const leaseUntil = (calling.lease_until as Date).getTime();
    expect(leaseUntil).toBeGreaterThan(clock.now() + 60_000);
    const reserved = await usage();
    expect(Number(reserved.reserved_cost)).toBeGreaterThan(0);
    const { rows: [reservation] } = await a.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE call_id = $1', [calling.call_in_flight_id]);
    expect(reservation.n).toBe(1);

    // slow, not lost: a minute before the lease passes, the sweep leaves it, its reservation and its event alone
    expect(await sweep()).toEqual([]);
    clock.advance(leaseUntil - clock.now() - 60_000);
    expect(await sweep()).toEqual([]);
    expect(await storedRun(id)).toEqual(calling);
    expect(await usage()).toEqual(reserved);
    expect(await runEvents(id)).toEqual([]);

    // the lease has passed: two instances sweep at once, one fails it
    clock.advance(2 * 60_000);
    const failedAt = new Date(clock.now());
    const swept = await Promise.all([sweep(failedAt), sweep(failedAt)]);
    expect(swept.flat()).toEqual([id]);
    expect(await storedRun(id)).toEqual({
      status: 'failed', error_class: 'worker_lost', stop_reason: 'error', steps: 0, cost: '0.00000000',
      lease_until: null, call_in_flight_until: null, call_in_flight_id: null, finished_at: failedAt,
    });
    // its reservation released, nothing spent (what the provider billed for the lost call is not known)
    expect(await usage()).toEqual({ spent_cost: reserved.spent_cost, reserved_cost: '0.00000000', spent_tokens: reserved.spent_tokens, reserved_tokens: 0 });
    const budgetRead = await a.http.get(`/v1/orgs/${orgId}/ai/budgets/${budget}`).set(owner.auth).expect(200);
    expect(budgetRead.body).toMatchObject({ reservedCost: '0.00000000', reservedTokens: 0, costLeft: '10.00000000' });
    const message = 'the instance executing the run stopped before finishing it (its lease on the run passed)';
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'interactive', errorClass: 'worker_lost', message, steps: 0, cost: '0.00000000' },
    }]);
    expect(await audits(id)).toEqual([sweptAudit]);
    const read = await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200);
    expect(read.body).toMatchObject({ id, status: 'failed', stopReason: 'error', errorClass: 'worker_lost', errorMessage: message, finishedAt: failedAt.toISOString() });

    // the agent metrics view counts it among the failures, in failed_worker_lost
    expect(await metrics()).toEqual({ view: [1, 1], stored: [1, 1] });

    // the next sweep finds nothing
    expect(await sweep()).toEqual([]);

    // the execution thought lost ends after all, its call cut (timeout: billed its input). The budget is charged what the
    // provider billed (the sweep had settled the call at nothing), and the run takes the call's step with that cost, so
    // that the run's cost is what its budget was charged; it stays failed as the sweep finished it, with no second event;
    // the step is audited (ai.run_late_call: the sweep's row has the totals before it)
    expect(timers).toHaveLength(1);
    timers[0]();
    const answered = await started;
    const cost = cutCost;
    expect(cost).not.toBe('0.00000000');
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ id, status: 'failed', errorClass: 'worker_lost', steps: 1, cost });
    expect(answered.body.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'timeout', cost })]);
    expect(await storedRun(id)).toEqual({
      status: 'failed', error_class: 'worker_lost', stop_reason: 'error', steps: 1, cost,
      lease_until: null, call_in_flight_until: null, call_in_flight_id: null, finished_at: failedAt,
    });
    expect(await usage()).toEqual({
      spent_cost: new Decimal(reserved.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: reserved.spent_tokens + input, reserved_tokens: 0,
    });
    expect(await runEvents(id)).toHaveLength(1);
    expect(await audits(id)).toEqual([sweptAudit, lateCallAudit(calling.call_in_flight_id, 'timeout')]);
  });

  it('charges and stores a call ending after the sweep whose storing transaction fails: an unused step (internal), audited', async () => {
    const before = await usage();
    const { id, callId, started } = await hangPastLease();
    expect(await sweep()).toEqual([id]);
    // the call ends (cut: billed its input); the transaction storing it fails, as a database error would
    const spy = jest.spyOn(agentsRepository, 'addStep').mockRejectedValueOnce(new Error('connection terminated unexpectedly'));
    let answered: { status: number; body: Record<string, any> };
    try {
      timers[0]();
      answered = await started;
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
    // the execution's failure stores the call on the swept run, billed, as it would on a running run (its answer not used)
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ id, status: 'failed', errorClass: 'worker_lost', steps: 1, cost: cutCost });
    expect(answered.body.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost: cutCost })]);
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'worker_lost', steps: 1, cost: cutCost, call_in_flight_id: null });
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cutCost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + input, reserved_tokens: 0,
    });
    // the sweep's event only; its audit row and the late call's
    expect(await runEvents(id)).toEqual([expect.objectContaining({ type: 'agent.run.failed', payload: expect.objectContaining({ errorClass: 'worker_lost', steps: 0 }) })]);
    expect(await audits(id)).toEqual([sweptAudit, lateCallAudit(callId, 'internal')]);
  });

  it('the sweep and the end of the call it settles lock the run, then the budget: neither waits for the other', async () => {
    const before = await usage();
    const { id, callId, started } = await hangPastLease();
    // the sweep holds the run it failed (not committed yet), before it settles the call
    let sweepHolds!: () => void;
    const sweepHeld = new Promise<void>((r) => (sweepHolds = r));
    let releaseSweep!: () => void;
    const sweepReleased = new Promise<void>((r) => (releaseSweep = r));
    const realFinish = agentsRepository.finishRun.bind(agentsRepository);
    const finishSpy = jest.spyOn(agentsRepository, 'finishRun').mockImplementation(async (...args) => {
      const run = await realFinish(...args);
      if (args[3].errorClass === 'worker_lost') {
        sweepHolds();
        await sweepReleased;
      }
      return run;
    });
    // the transaction storing the call reaches the run's lock (before settling the call; in the earlier order, after: it
    // held the call's reservation, which the sweep then waited for, while it waited for the run: a deadlock)
    let execLocks!: () => void;
    const execLocking = new Promise<void>((r) => (execLocks = r));
    const realLock = agentsRepository.lockRun.bind(agentsRepository);
    const lockSpy = jest.spyOn(agentsRepository, 'lockRun').mockImplementation(async (...args) => {
      if (args[2] === id) execLocks();
      return realLock(...args);
    });
    let answered: { status: number; body: Record<string, any> };
    try {
      const swept = sweep();
      await sweepHeld;
      timers[0]();
      await execLocking;
      releaseSweep();
      expect(await swept).toEqual([id]);
      answered = await started;
    } finally {
      finishSpy.mockRestore();
      lockSpy.mockRestore();
    }
    // the sweep failed the run, then the call's end stored its step on it (as the call ended: a timeout) and charged the
    // budget. Crossed (the deadlock), the database aborted one side: the sweep (the run stayed running), or the
    // transaction storing the call (its execution's failure then stored it as unused: internal)
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ id, status: 'failed', errorClass: 'worker_lost', steps: 1, cost: cutCost });
    expect(answered.body.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'timeout', cost: cutCost })]);
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'worker_lost', steps: 1, cost: cutCost });
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cutCost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + input, reserved_tokens: 0,
    });
    expect(await runEvents(id)).toHaveLength(1);
    expect(await audits(id)).toEqual([sweptAudit, lateCallAudit(callId, 'timeout')]);
  });

  /**
   * A call of its own organization's agent whose budget takes one call's worst case (its input's and 1,000 output tokens),
   * no more: its first attempt's stream breaks off mid-answer (billed: its input and what had arrived; a retry would be
   * answered), and during the back-off before the retry, which outlasts the run's lease (a paused process),
   * `duringBackOff` runs, then another run of the agent reserves its worst case and spends (`later`), then `afterLater`.
   */
  async function retryAfterLease(duringBackOff: (runId: string, usage: () => Promise<any>) => Promise<void>, afterLater: () => void = () => undefined) {
    const org = await createOrg(a, owner, 'Retry after the sweep');
    await onPlan(a, org, 'professional');
    const spender = (await a.http.post(agentsUrl(org)).set(owner.auth)
      .send({ name: 'Retrier', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id as string;
    const worst = usagelessInput(counted) + 1000;
    const limited = (await a.http.post(`/v1/orgs/${org}/ai/budgets`).set(owner.auth).send({ agentId: spender, tokenLimit: worst }).expect(201)).body.id as string;
    const limitedUsage = async () => (await a.db.admin.query(
      'SELECT spent_cost::text, reserved_cost::text, spent_tokens::int, reserved_tokens::int FROM ai.budget_usage WHERE budget_id = $1', [limited])).rows[0];
    const partial = await startPartialStreamDouble();
    const ai = a.app.get<AppConfig>(APP_CONFIG).ai;
    const baseUrl = ai.baseUrl;
    const sleeper = a.app.get(Sleeper) as Sleeper;
    const sleep = sleeper.sleep;
    const answer = { prompt: input, completion: 900 };
    let runId = '';
    let later: { status: number; body: Record<string, any> } | undefined;
    sleeper.sleep = async () => {
      const { rows: [running] } = await a.db.admin.query(`SELECT id, lease_until FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [spender]);
      runId = running.id;
      clock.advance((running.lease_until as Date).getTime() - clock.now() + 60_000);
      await duringBackOff(runId, limitedUsage);
      ai.baseUrl = baseUrl;
      llm.enqueue({ kind: 'text', content: 'Spent.', usage: answer });
      later = await a.http.post(agentsUrl(org, `/${spender}/runs`)).set(owner.auth).send({ messages });
      afterLater();
      ai.baseUrl = partial.url;
    };
    const chunks = ['Cash at bank ', 'is EUR 100'];
    let text: string;
    try {
      partial.enqueue({ kind: 'drop', chunks }, { kind: 'text', content: 'Cash is EUR 100.00.', usage: answer });
      ai.baseUrl = partial.url;
      text = (await a.http.post(agentsUrl(org, `/${spender}/runs`)).set(owner.auth).set('Accept', 'text/event-stream').send({ messages }).buffer(true)
        .parse((res, cb) => {
          let d = '';
          res.on('data', (c: Buffer) => (d += c.toString()));
          res.on('end', () => cb(null, d));
        })).body as unknown as string;
    } finally {
      sleeper.sleep = sleep;
      ai.baseUrl = baseUrl;
      await partial.close();
    }
    return { org, runId, later, text, chunks, worst, limited, limitedUsage, requests: partial.requests.length };
  }

  it('a retry at (or, by another instance\'s clock, past) its call\'s longest duration, before the sweep (reviews rH, rJ), whose reservation another call deleted as expired is not retried: its failed attempt is charged, and a later call\'s reservation is not overspent', async () => {
    // no sweep: the later call's reservation deletes the call's expired one; this instance's clock is then 61 s behind the
    // one that ran the later call (review rJ): it sees its call 1 s before its longest duration
    const { runId, later, text, worst, limitedUsage, requests } = await retryAfterLease(async () => undefined, () => clock.advance(-61_000));
    const spent = await limitedUsage();
    const { rows: steps } = await a.db.admin.query(`SELECT step_no, status, error_class, error_message, attempts, cost::text, input_tokens::int, output_tokens::int FROM ai.run_steps WHERE run_id = $1`, [runId]);
    const { rows: [run] } = await a.db.admin.query('SELECT status, error_class FROM ai.runs WHERE id = $1', [runId]);
    // no retry: one request, the budget within its limit, the call's step failed as timed out (its attempt broke off:
    // provider_error), the run with it (review rJ: it failed as its last attempt did), in its result and its event too
    expect(text).toContain('Cash at bank ');
    expect(later?.status).toBe(200);
    expect(requests).toBe(1);
    expect(spent.spent_tokens).toBeLessThanOrEqual(worst);
    expect(steps).toEqual([expect.objectContaining({
      status: 'failed', error_class: 'timeout', error_message: expect.stringContaining('not retried: the call outlived its longest duration'),
    })]);
    expect(run).toEqual({ status: 'failed', error_class: 'timeout' });
    const result = text.split('\n\n').find((e) => e.startsWith('event: result'))!;
    expect(JSON.parse(result.split('\n')[1].slice('data: '.length))).toMatchObject({ id: runId, status: 'failed', errorClass: 'timeout', trace: [{ errorClass: 'timeout' }] });
    const { rows: events } = await a.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload'->>'errorClass' AS error_class FROM core.outbox
      WHERE topic = 'domain_event' AND payload->'payload'->>'runId' = $1`, [runId]);
    expect(events).toEqual([{ type: 'agent.run.failed', error_class: 'timeout' }]);
  });

  it('a call whose run the sweep failed between two attempts is not retried: its failed attempt is charged, and a later call\'s reservation is not overspent', async () => {
    // the sweep fails the run and releases its call's reservation; the later run's worst case fits again
    const { org, runId, later, text, chunks, worst, limited, limitedUsage, requests } = await retryAfterLease(async (id, usage) => {
      expect(await sweep()).toContain(id);
      expect(await usage()).toMatchObject({ reserved_tokens: 0, spent_tokens: 0 });
    });
    expect(later).toMatchObject({ status: 200, body: { status: 'succeeded', output: 'Spent.' } });
    const brokenOff = { input, output: countTextTokens(chunks.join('')) };
    const cost = new Decimal(brokenOff.input).times('2.5').plus(new Decimal(brokenOff.output).times(10)).div(1_000_000).toFixed(8);
    // the budget is charged the broken attempt and the later run's call, within its limit; nothing stays reserved (the
    // retry, made, was charged against no reservation: past the limit)
    const spent = await limitedUsage();
    expect(spent).toEqual({
      spent_cost: new Decimal(cost).plus(new Decimal(input).times('2.5').plus(9000).div(1_000_000)).toFixed(8), reserved_cost: '0.00000000',
      spent_tokens: brokenOff.input + brokenOff.output + input + 900, reserved_tokens: 0,
    });
    expect(spent.spent_tokens).toBeLessThanOrEqual(worst);
    expect((await a.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE budget_id = $1', [limited])).rows[0].n).toBe(0);
    // the retry was not made
    expect(requests).toBe(1);
    const streamed = text.split('\n\n').filter((e) => e.startsWith('event: ')).map((e) => {
      const [head, data] = e.split('\n');
      return { event: head.slice('event: '.length), data: JSON.parse(data.slice('data: '.length)) };
    });
    // the broken attempt is the run's step, charged; the run stays as the sweep failed it (no retry announced, no error)
    expect(streamed.filter((e) => e.event !== 'token').map((e) => e.event)).toEqual(['run', 'step', 'result']);
    const step = { stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'provider_error', cost };
    expect(streamed[streamed.length - 1].data).toMatchObject({ id: runId, status: 'failed', errorClass: 'worker_lost', steps: 1, cost, trace: [step] });
    const { rows: steps } = await a.db.admin.query(`SELECT step_no, status, error_class, error_message, attempts, cost::text, input_tokens::int, output_tokens::int
      FROM ai.run_steps WHERE run_id = $1`, [runId]);
    expect(steps).toEqual([{
      step_no: 1, status: 'failed', error_class: 'provider_error', error_message: 'not retried: the run is no longer running: failed (worker_lost)', attempts: 1,
      cost, input_tokens: brokenOff.input, output_tokens: brokenOff.output,
    }]);
    expect(await storedRun(runId)).toMatchObject({ status: 'failed', error_class: 'worker_lost', steps: 1, cost });
    // one event (the sweep's); the step audited as a late call
    const { rows: outboxEvents } = await a.db.admin.query(`SELECT payload->>'type' AS type FROM core.outbox
      WHERE org_id = $1 AND topic = 'domain_event' AND payload->'payload'->>'runId' = $2`, [org, runId]);
    expect(outboxEvents).toEqual([{ type: 'agent.run.failed' }]);
    const { rows: audited } = await a.db.admin.query('SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id', [org, runId]);
    expect(audited.map((r) => r.action)).toEqual(['ai.run_started', 'ai.run_worker_lost', 'ai.run_late_call']);
  });

  it('leaves a job\'s run no instance has taken for a day; a job leases its run, and a redelivered job leaves a run an earlier delivery took', async () => {
    // not taken yet (its job waits): no lease, not lost for a day
    const waiting = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
    expect(await storedRun(waiting)).toMatchObject({ status: 'running', lease_until: null });
    clock.advance(QUEUED_RUN_LEASE_MS - 60_000);
    expect(await sweep()).toEqual([]);

    // an earlier delivery of its job took the run on an instance that then died: the job runs again and leaves it alone
    await a.db.admin.query(`UPDATE ai.runs SET lease_until = $2 WHERE id = $1`, [waiting, new Date(clock.now() + 60_000)]);
    const calls = llm.requests.length;
    await a.app.get(OutboxRelay).drain();
    expect(llm.requests.length).toBe(calls);
    expect(await storedRun(waiting)).toMatchObject({ status: 'running', steps: 0 });
    // past its lease, the sweep fails it
    clock.advance(2 * 60_000);
    expect(await sweep()).toEqual([waiting]);
    expect(await storedRun(waiting)).toMatchObject({ status: 'failed', error_class: 'worker_lost', lease_until: null });
    expect(await runEvents(waiting)).toEqual([expect.objectContaining({ type: 'agent.run.failed', payload: expect.objectContaining({ trigger: 'async', errorClass: 'worker_lost' }) })]);

    // a job whose run nobody took executes it, holding its lease, and the run ends with none
    const taken = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
    await a.app.get(OutboxRelay).drain();
    expect(await storedRun(taken)).toMatchObject({ status: 'succeeded', steps: 1, lease_until: null, call_in_flight_id: null });
    // its finish audited by its job, as who started it, with the run's totals
    const done = (await a.http.get(agentsUrl(orgId, `/${agent}/runs/${taken}`)).set(owner.auth).expect(200)).body;
    expect(await audits(taken)).toEqual([{
      action: 'ai.run_succeeded', actor_id: owner.id, before: { status: 'running' },
      after: { status: 'succeeded', errorClass: null, stopReason: 'answer', cost: done.cost, steps: 1, usage: done.usage },
    }]);
    expect(await sweep()).toEqual([]);
  });

  it('fails a job\'s run no job took within a day (its job failing on every attempt: the provider key cannot be opened), once; the job then leaves it', async () => {
    await a.http.put(`/v1/orgs/${orgId}/ai/provider-key`).set(owner.auth).send({ apiKey: 'sk-org-own-key-5678' }).expect(200);
    const id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
    const { rows: [{ started_at: startedAt }] } = await a.db.admin.query('SELECT started_at FROM ai.runs WHERE id = $1', [id]);
    // the key's encryption key is retired after the run was queued: the job's loading step fails, on every attempt
    await a.db.admin.query(`UPDATE ai.provider_keys SET secret = jsonb_set(secret, '{kid}', '"retired"') WHERE org_id = $1`, [orgId]);
    const job = async () => (await a.db.admin.query(`SELECT attempts, last_error, processed_at FROM core.outbox
      WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id])).rows[0];
    // each attempt due at once (the relay's backoff is on the database's clock, not the test's)
    const attempt = async () => {
      await a.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id]);
      await a.app.get(OutboxRelay).drain();
    };
    const calls = llm.requests.length;
    for (let i = 0; i < 3; i++) await attempt();
    expect(await job()).toMatchObject({ attempts: 3, last_error: expect.stringContaining('cannot be opened'), processed_at: null });
    // nothing took the run: no lease, still running, no call made
    expect(await storedRun(id)).toMatchObject({ status: 'running', lease_until: null, steps: 0 });
    expect(llm.requests.length).toBe(calls);

    // the queue retries it for a day: left alone until then
    clock.advance(startedAt.getTime() + QUEUED_RUN_LEASE_MS - clock.now());
    expect(await sweep(new Date(startedAt.getTime() + QUEUED_RUN_LEASE_MS))).toEqual([]);
    expect(await storedRun(id)).toMatchObject({ status: 'running', lease_until: null });
    expect(await runEvents(id)).toEqual([]);

    // a day has passed: two instances sweep at once, one fails it
    clock.advance(60_000);
    const failedAt = new Date(clock.now());
    const swept = await Promise.all([sweep(failedAt), sweep(failedAt)]);
    expect(swept.flat()).toEqual([id]);
    expect(await storedRun(id)).toEqual({
      status: 'failed', error_class: 'worker_lost', stop_reason: 'error', steps: 0, cost: '0.00000000',
      lease_until: null, call_in_flight_until: null, call_in_flight_id: null, finished_at: failedAt,
    });
    const message = 'no instance took the run: its job did not start it within 24 hours (every attempt of the queue failed, or the job was lost)';
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'async', errorClass: 'worker_lost', message, steps: 0, cost: '0.00000000' },
    }]);
    expect(await audits(id)).toEqual([{
      action: 'ai.run_worker_lost', actor_id: 'service:agents-lost-runs', before: { status: 'running' },
      after: { status: 'failed', errorClass: 'worker_lost', stopReason: 'error', cost: '0.00000000', steps: 0, usage: { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 }, taken: false },
    }]);
    const read = await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200);
    expect(read.body).toMatchObject({ id, status: 'failed', stopReason: 'error', errorClass: 'worker_lost', errorMessage: message, finishedAt: failedAt.toISOString() });
    const { view, stored } = await metrics();
    expect(view).toEqual(stored);
    expect(await sweep()).toEqual([]);

    // the key opens again: the job's next attempt finds the run finished and leaves it, done, with no call and no second event
    await a.db.admin.query(`UPDATE ai.provider_keys SET secret = jsonb_set(secret, '{kid}', '"k1"') WHERE org_id = $1`, [orgId]);
    await attempt();
    expect(await job()).toMatchObject({ attempts: 4, processed_at: expect.any(Date) });
    expect(llm.requests.length).toBe(calls);
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'worker_lost', steps: 0, finished_at: failedAt });
    expect(await runEvents(id)).toHaveLength(1);
    await a.http.delete(`/v1/orgs/${orgId}/ai/provider-key`).set(owner.auth).expect(204);
  });

  it('a job taking its run as the sweep finds it lost: one of them wins, and the run ends once', async () => {
    const id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
    clock.advance(QUEUED_RUN_LEASE_MS + 60_000);
    const [, swept] = await Promise.all([a.app.get(OutboxRelay).drain(), sweep()]);
    const run = await storedRun(id);
    if (swept.includes(id)) {
      // the sweep first: the job found the run finished and left it
      expect(run).toMatchObject({ status: 'failed', error_class: 'worker_lost', steps: 0 });
    } else {
      // the job first: it leased the run, which the sweep then left to it
      expect(swept).toEqual([]);
      expect(run).toMatchObject({ status: 'succeeded', steps: 1 });
    }
    expect(run.lease_until).toBeNull();
    expect(await runEvents(id)).toHaveLength(1);
  });

  it('a job whose execution fails with an unexpected error releases its run: the queue\'s retry takes it and runs it to its end, with one event', async () => {
    const job = async (id: string) => (await a.db.admin.query(`SELECT attempts, last_error, processed_at FROM core.outbox
      WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id])).rows[0];
    const calls = llm.requests.length;
    const before = await usage();
    // the model asks for a tool (step 1, its tool's answer step 2), then answers: the transaction storing the answer fails
    // once, on a database error (no AppError), after the call was made and reserved for
    llm.enqueue({ kind: 'tool_calls', calls: [{ name: 'ledger_balances', arguments: '{}' }] }, { kind: 'text', content: 'first try' }, { kind: 'text', content: 'Cash is 10.' });
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
    expect(llm.requests.length).toBe(calls + 2);
    // the delivery failed; its run is still running with the steps it stored, its lease released, the call in flight (answered,
    // billed) stored as unused (step 3: failed, internal) and its reservation settled at its cost, and no event
    expect(await job(id)).toMatchObject({ attempts: 1, last_error: expect.stringContaining('connection terminated unexpectedly'), processed_at: null });
    expect(await storedRun(id)).toMatchObject({ status: 'running', steps: 3, lease_until: null, call_in_flight_until: null, call_in_flight_id: null });
    const { rows: [left] } = await a.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE call_id = $1', [failedCallId]);
    expect(left.n).toBe(0);
    expect((await usage()).reserved_cost).toBe('0.00000000');
    expect(await runEvents(id)).toEqual([]);

    // the queue's retry (due at once: the relay's backoff is on the database's clock) takes the run again and executes it to
    // its answer, numbering its steps after those stored (the unused call made again)
    await a.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id]);
    await a.app.get(OutboxRelay).drain();
    expect(await job(id)).toMatchObject({ attempts: 2, processed_at: expect.any(Date) });
    expect(llm.requests.length).toBe(calls + 3);
    expect(await storedRun(id)).toMatchObject({ status: 'succeeded', error_class: null, stop_reason: 'answer', steps: 4, lease_until: null, call_in_flight_id: null });
    const read = await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200);
    expect(read.body).toMatchObject({ id, status: 'succeeded', output: 'Cash is 10.' });
    expect(read.body.trace.map((t: { stepNo: number; kind: string; status: string }) => [t.stepNo, t.kind, t.status]))
      .toEqual([[1, 'llm_call', 'succeeded'], [2, 'tool_call', 'failed'], [3, 'llm_call', 'failed'], [4, 'llm_call', 'succeeded']]);
    expect(read.body.trace[2]).toMatchObject({ errorClass: 'internal' });
    expect(await runEvents(id)).toEqual([{ type: 'agent.run.completed', payload: expect.objectContaining({ runId: id, trigger: 'async', steps: 4 }) }]);
    // what stays spent: the three calls stored (the run's cost), nothing reserved
    const after = await usage();
    expect(after.reserved_cost).toBe('0.00000000');
    expect(Number(after.spent_cost)).toBeCloseTo(Number(before.spent_cost) + Number(read.body.cost), 8);
    // the sweep, once the lease would have passed, has nothing to do
    clock.advance(24 * 60 * 60_000);
    expect(await sweep()).toEqual([]);
  });
});
