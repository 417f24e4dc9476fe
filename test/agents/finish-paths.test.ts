import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { agentsRepository } from '../../src/modules/agents/agents.repository.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { Sleeper, type LlmProvider } from '../../src/platform/ai/llm-provider.js';
import { RunsService } from '../../src/modules/agents/runs.service.js';
import { countChatInputTokens } from '../../src/platform/ai/token-count.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl, usagelessInput } from './agents-support.js';

/**
 * The finishes of a run's execution that last session's internal failure left out. An interactive run failed at once
 * (internal) was not audited, as the cancel (ai.run_cancelled) and the lost-runs sweep (ai.run_worker_lost) are: it is
 * now, as ai.run_internal. A run cancelled while its LLM call was in flight (here: the call is cut and billed; on
 * another instance: the call is answered), whose execution then failed to store that call's step, kept the call's budget
 * reservation until it expired (the failure settled only a running run's call): the call is now stored as unused (failed,
 * internal) and billed once, its reservation settled, the run's event emitted once with that cost. A streamed run sent no
 * `step` event for an unused call (its trace had it), nor for a failed call: every stored LLM call now has one, with its
 * status. Database failures are injected by spies on the repository; the provider is the test double on 127.0.0.1; the
 * clock and the calls' timers are the test's (nothing waits on the wall clock).
 */
describe('the finishes of a run\'s execution', () => {
  let a: TestApp;
  let b: Awaited<ReturnType<typeof startApp>>;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agent: string;
  let budget: string;
  const clock = new ManualClock();
  /** the timers of the app's provider calls: never fired here (a hung call ends by its cancel) */
  const timers: (() => void)[] = [];
  const messages = [{ role: 'user', content: 'What is our cash?' }];
  // a cut call (no usage reported) is billed its input at gpt-4o's margin over the count
  const input = usagelessInput(countChatInputTokens([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is our cash?' }]));
  // gpt-4o: 2.50 input, 10.00 output per million tokens
  const gpt4oCost = (inputTokens: number, outputTokens: number) => new Decimal(inputTokens).times('2.5').plus(new Decimal(outputTokens).times(10)).div(1_000_000).toFixed(8);
  const internalMessage = 'the run failed unexpectedly (an internal error)';

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    a = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env }, { clock });
    // instance B: the same configuration, the same database (a cancel taken by another instance)
    b = await startApp(a.config, clock);
    // the retries' backoff does not wait
    a.app.get(Sleeper).sleep = async () => undefined;
    a.app.get(CallTimer).start = (_ms, expire) => {
      timers.push(expire);
      return () => undefined;
    };
    owner = await registerUser(a, 'finish-paths');
    orgId = await createOrg(a, owner, 'Finish paths');
    // enterprise: its plan includes API access (the runs of an API key)
    await onPlan(a, orgId, 'enterprise');
    agent = (await a.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Brief', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2 }).expect(201)).body.id;
    budget = (await a.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent, costLimit: '10.00' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await b?.app.close();
    await a?.close();
    await llm?.close();
    expect(b?.contract.violations ?? []).toEqual([]);
  });

  const storedRun = async (runId: string) => (await a.db.admin.query(`SELECT r.status, r.error_class, r.steps, r.cost::text AS cost, r.lease_until,
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
  const audits = async (runId: string) => (await a.db.admin.query(`SELECT action, actor_id, before, after FROM core.audit_logs
    WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, runId])).rows;
  /** the id of the run of the agent running now */
  const runningRun = async () => (await a.db.admin.query(`SELECT id, call_in_flight_id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agent])).rows[0] as { id: string; call_in_flight_id: string };
  /** the first `addStep` (the step of the call in flight) fails, as a database error would; the next ones are stored */
  const failFirstStep = () => {
    const real = agentsRepository.addStep.bind(agentsRepository);
    let adds = 0;
    const spy = jest.spyOn(agentsRepository, 'addStep').mockImplementation(async (...args) => {
      if (++adds === 1) throw new Error('connection terminated unexpectedly');
      return real(...args);
    });
    return { spy, adds: () => adds };
  };
  const events = (text: string) => text.split('\n\n').filter(Boolean).map((block) => {
    const [ev, data] = block.split('\n');
    return { event: ev.replace('event: ', ''), data: JSON.parse(data.replace('data: ', '')) };
  });
  const streamed = (path: string) => a.http.post(agentsUrl(orgId, path)).set(owner.auth).set('Accept', 'text/event-stream').send({ messages }).buffer(true)
    .parse((r, cb) => {
      let data = '';
      r.on('data', (c: Buffer) => (data += c.toString()));
      r.on('end', () => cb(null, data));
    });

  it('audits an interactive run failed at once (internal) as ai.run_internal, by who started it, once', async () => {
    llm.enqueue({ kind: 'text', content: 'Never stored.', usage: { prompt: 1000, completion: 100 } });
    const { spy, adds } = failFirstStep();
    let res: { status: number; body: Record<string, unknown> };
    try {
      res = await a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages });
    } finally {
      spy.mockRestore();
    }
    expect(adds()).toBe(2);
    expect(res.status).toBe(200);
    const id = res.body.id as string;
    expect(res.body).toMatchObject({ status: 'failed', errorClass: 'internal', errorMessage: internalMessage, steps: 1, cost: gpt4oCost(1000, 100) });
    expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'internal', steps: 1, cost: gpt4oCost(1000, 100), lease_until: null });
    // one row for its start, one for its failure, both by the person who started it
    expect(await audits(id)).toEqual([
      { action: 'ai.run_started', actor_id: owner.id, before: null, after: expect.objectContaining({ agentId: agent, trigger: 'interactive' }) },
      {
        action: 'ai.run_internal', actor_id: owner.id, before: { status: 'running' },
        after: {
          status: 'failed', errorClass: 'internal', stopReason: 'error', cost: gpt4oCost(1000, 100), steps: 1,
          usage: { inputTokens: 1000, outputTokens: 100, cachedInputTokens: 0, cacheWriteTokens: 0 },
        },
      },
    ]);
    expect(await runEvents(id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: id, errorClass: 'internal', steps: 1 }) }]);
  });

  it('streams a step event for a call whose answer was not used (its step failed to store), with its status and cost, before the error and the result', async () => {
    llm.enqueue({ kind: 'text', content: 'Cash at bank is EUR 100.', usage: { prompt: 2000, completion: 50 } });
    const { spy } = failFirstStep();
    let text: string;
    try {
      text = (await streamed(`/${agent}/runs`).expect(200)).body as unknown as string;
    } finally {
      spy.mockRestore();
    }
    const list = events(text);
    const cost = gpt4oCost(2000, 50);
    // the answer was streamed as it came; the call that answered it is a step of the stream, as stored: failed, internal
    expect(list.filter((e) => e.event === 'token').map((e) => e.data.delta).join('')).toBe('Cash at bank is EUR 100.');
    expect(list.filter((e) => e.event !== 'token').map((e) => e.event)).toEqual(['run', 'step', 'error', 'result']);
    const step = list.find((e) => e.event === 'step')!.data;
    expect(step).toEqual({
      stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost,
      usage: { inputTokens: 2000, outputTokens: 50, cachedInputTokens: 0, cacheWriteTokens: 0 },
    });
    expect(list.at(-2)).toEqual({ event: 'error', data: { code: 'internal', message: internalMessage } });
    const result = list.at(-1)!.data;
    expect(result).toMatchObject({ status: 'failed', errorClass: 'internal', steps: 1, cost });
    expect(result.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost })]);
    expect(await storedSteps(result.id)).toEqual([{ step_no: 1, kind: 'llm_call', status: 'failed', error_class: 'internal', cost }]);
    expect((await audits(result.id)).map((r) => r.action)).toEqual(['ai.run_started', 'ai.run_internal']);
  });

  it('streams a step event for a failed call too: the step events add up to the run\'s cost', async () => {
    // a 500 on every attempt (AI_MAX_RETRIES 2: three), the provider never had the call: not billed
    llm.enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 500 }, { kind: 'error', status: 500 });
    const list = events((await streamed(`/${agent}/runs`).expect(200)).body as unknown as string);
    const result = list.at(-1)!.data;
    expect(result).toMatchObject({ status: 'failed', errorClass: 'provider_error', steps: 1 });
    expect(list.filter((e) => e.event === 'step').map((e) => e.data)).toEqual([
      { stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'provider_error', cost: result.trace[0].cost, usage: result.trace[0].usage },
    ]);
    // each attempt after the first announced (retry: the client drops the tokens of the attempts before)
    expect(list.map((e) => e.event)).toEqual(['run', 'retry', 'retry', 'step', 'result']);
    expect(list.filter((e) => e.event === 'retry').map((e) => e.data)).toEqual([{ attempt: 2 }, { attempt: 3 }]);
    // a provider's failure is audited in the transaction that failed the run (ai.run_failed, with its class and totals)
    expect(await audits(result.id)).toEqual([
      expect.objectContaining({ action: 'ai.run_started' }),
      {
        action: 'ai.run_failed', actor_id: owner.id, before: { status: 'running' },
        after: { status: 'failed', errorClass: 'provider_error', stopReason: 'error', cost: result.cost, steps: 1, usage: result.usage },
      },
    ]);
  });

  it('a run cancelled while its call is in flight here, whose cut call fails to store: the call is stored as unused and billed once, its reservation settled, one event', async () => {
    const before = await usage();
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const { spy, adds } = failFirstStep();
    let finished: { status: number; body: Record<string, any> };
    let callId: string;
    let id: string;
    try {
      const started = a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages }).then((r) => r);
      await held;
      ({ id, call_in_flight_id: callId } = await runningRun());
      expect(await reservations(callId)).toBe(1);
      await a.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
      finished = await started;
    } finally {
      spy.mockRestore();
    }
    // its reservation is settled now, not left until it expires
    expect(await reservations(callId)).toBe(0);
    expect(adds()).toBe(2);
    // the cut call: billed its input, once
    const cost = gpt4oCost(input, 0);
    expect(cost).not.toBe('0.00000000');
    expect(finished.status).toBe(200);
    expect(finished.body).toMatchObject({ id, status: 'cancelled', errorClass: 'cancelled', steps: 1, cost });
    expect(finished.body.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost })]);
    expect(await storedRun(id)).toMatchObject({ status: 'cancelled', error_class: 'cancelled', steps: 1, cost, steps_cost: cost });
    expect(await reservations(callId)).toBe(0);
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000',
      spent_tokens: before.spent_tokens + input, reserved_tokens: 0,
    });
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'interactive', errorClass: 'cancelled', message: 'cancelled by a person', steps: 1, cost },
    }]);
    // the cancel is its finish: audited once (by who cancelled, with the totals stored then: the cut call came after), no
    // internal failure; the cut call's step on the cancelled run is audited by the execution's failure that stored it
    const noTokens = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 };
    expect(await audits(id)).toEqual([expect.objectContaining({ action: 'ai.run_started' }), {
      action: 'ai.run_cancelled', actor_id: owner.id, before: { status: 'running' },
      after: { status: 'cancelled', errorClass: 'cancelled', stopReason: 'cancelled', cost: '0.00000000', steps: 0, usage: noTokens },
    }, {
      action: 'ai.run_late_call', actor_id: owner.id,
      before: { status: 'cancelled', errorClass: 'cancelled', cost: '0.00000000', steps: 0, usage: noTokens },
      after: {
        status: 'cancelled', errorClass: 'cancelled', cost, steps: 1, usage: { ...noTokens, inputTokens: input },
        callId, stepNo: 1, stepStatus: 'failed', stepErrorClass: 'internal',
      },
    }]);
  });

  it('a run cancelled on another instance while its call is in flight, whose answered call fails to store: billed once, its reservation settled, one event', async () => {
    const before = await usage();
    llm.enqueue({ kind: 'text', content: 'Cash at bank is EUR 100.', usage: { prompt: 3000, completion: 80 } });
    const { spy: stepSpy, adds } = failFirstStep();
    // the call is answered; B's cancel commits before A's transaction storing the call locks the run (A learns of it there)
    const realLock = agentsRepository.lockRun.bind(agentsRepository);
    let callId: string | undefined;
    const lockSpy = jest.spyOn(agentsRepository, 'lockRun').mockImplementation(async (db, org, runId) => {
      if (!callId) {
        const { rows: [run] } = await a.db.admin.query('SELECT agent_id, call_in_flight_id FROM ai.runs WHERE id = $1', [runId]);
        callId = run.call_in_flight_id;
        expect(await reservations(callId!)).toBe(1);
        await b.http.post(agentsUrl(orgId, `/${run.agent_id}/runs/${runId}/cancel`)).set(owner.auth).expect(200)
          .expect((r) => expect(r.body).toMatchObject({ status: 'cancelled', steps: 0, cost: '0.00000000' }));
      }
      return realLock(db, org, runId);
    });
    let res: { status: number; body: Record<string, any> };
    try {
      res = await a.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages });
    } finally {
      stepSpy.mockRestore();
      lockSpy.mockRestore();
    }
    expect(await reservations(callId!)).toBe(0);
    expect(adds()).toBe(2);
    const id = res.body.id as string;
    const cost = gpt4oCost(3000, 80);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'cancelled', errorClass: 'cancelled', steps: 1, cost });
    expect(res.body.trace).toEqual([expect.objectContaining({ stepNo: 1, kind: 'llm_call', status: 'failed', errorClass: 'internal', cost, detail: expect.objectContaining({ content: 'Cash at bank is EUR 100.' }) })]);
    expect(await storedRun(id)).toMatchObject({ status: 'cancelled', steps: 1, cost, steps_cost: cost });
    expect(await reservations(callId!)).toBe(0);
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + 3080, reserved_tokens: 0,
    });
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'interactive', errorClass: 'cancelled', message: 'cancelled by a person', steps: 1, cost },
    }]);
    expect((await audits(id)).map((r) => r.action)).toEqual(['ai.run_started', 'ai.run_cancelled', 'ai.run_late_call']);
  });

  it('a job\'s run cancelled while its call is in flight, whose cut call fails to store: billed once, its reservation settled, one event; the retry leaves it', async () => {
    const before = await usage();
    llm.enqueue({ kind: 'hang' });
    const held = llm.nextHang();
    const { spy, adds } = failFirstStep();
    let callId: string;
    let id: string;
    try {
      id = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(owner.auth).send({ messages }).expect(202)).body.id as string;
      const drained = a.app.get(OutboxRelay).drain();
      await held;
      callId = (await runningRun()).call_in_flight_id;
      await a.http.post(agentsUrl(orgId, `/${agent}/runs/${id}/cancel`)).set(owner.auth).expect(200);
      await drained;
    } finally {
      spy.mockRestore();
    }
    expect(await reservations(callId)).toBe(0);
    expect(adds()).toBe(2);
    const cost = gpt4oCost(input, 0);
    expect(await storedRun(id)).toMatchObject({ status: 'cancelled', steps: 1, cost, steps_cost: cost });
    expect(await storedSteps(id)).toEqual([{ step_no: 1, kind: 'llm_call', status: 'failed', error_class: 'internal', cost }]);
    expect(await reservations(callId)).toBe(0);
    expect(await usage()).toEqual({
      spent_cost: new Decimal(before.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + input, reserved_tokens: 0,
    });
    expect(await runEvents(id)).toEqual([{
      type: 'agent.run.failed',
      payload: { runId: id, agentId: agent, startedBy: owner.id, trigger: 'async', errorClass: 'cancelled', message: 'cancelled by a person', steps: 1, cost },
    }]);
    // the job failed (the queue retries it): its retry finds the run cancelled and leaves it
    const calls = llm.requests.length;
    await a.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, id]);
    await a.app.get(OutboxRelay).drain();
    expect(llm.requests.length).toBe(calls);
    expect(await storedRun(id)).toMatchObject({ status: 'cancelled', steps: 1, cost });
    expect(await runEvents(id)).toHaveLength(1);
    expect((await audits(id)).map((r) => r.action)).toEqual(['ai.run_started', 'ai.run_cancelled', 'ai.run_late_call']);
  });

  /** The provider's answers return once `during` has run: what it does happens while an answered (billed) call is in flight. */
  const duringCall = (during: () => Promise<unknown>) => {
    const runs = a.app.get(RunsService) as unknown as { provider(c: unknown): LlmProvider };
    const real = runs.provider.bind(runs);
    return jest.spyOn(runs, 'provider').mockImplementation((c) => {
      const p = real(c);
      return Object.assign(Object.create(p) as LlmProvider, {
        chat: async (...args: Parameters<LlmProvider['chat']>) => {
          const answer = await p.chat(...args);
          await during();
          return answer;
        },
      });
    });
  };

  it('a run whose starter leaves the organization during its LLM call: failed (internal) by the agents service, the answered call stored as unused and charged, its reservation released; streamed, an error event before the result; a job\'s too', async () => {
    const leaver = await registerUser(a, 'finish-paths-leaver');
    const cost = gpt4oCost(200_000, 1_000);
    for (const how of ['sync', 'stream', 'job'] as const) {
      await addMember(a, orgId, leaver, 'member');
      const before = await usage();
      llm.enqueue({ kind: 'text', content: 'Cash is 100.', usage: { prompt: 200_000, completion: 1_000 } });
      const spy = duringCall(() => a.db.admin.query('DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, leaver.id]));
      let body: Record<string, any>;
      try {
        const req = a.http.post(agentsUrl(orgId, `/${agent}/runs${how === 'job' ? '?async=true' : ''}`)).set(leaver.auth);
        if (how === 'sync') body = (await req.send({ messages }).expect(200)).body;
        else if (how === 'job') {
          const { id } = (await req.send({ messages }).expect(202)).body;
          await a.app.get(OutboxRelay).drain();
          body = { id, ...(await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200)).body };
        } else {
          const list = events((await req.set('Accept', 'text/event-stream').send({ messages }).buffer(true).parse((r, cb) => {
            let data = '';
            r.on('data', (c: Buffer) => (data += c.toString()));
            r.on('end', () => cb(null, data));
          }).expect(200)).body as unknown as string);
          expect(list.filter((e) => e.event !== 'token').map((e) => e.event)).toEqual(['run', 'step', 'error', 'result']);
          expect(list.at(-2)!.data).toMatchObject({ code: 'organization.not_found' });
          body = list.at(-1)!.data;
        }
      } finally {
        spy.mockRestore();
      }
      expect(body).toMatchObject({ status: 'failed', errorClass: 'internal', errorMessage: expect.stringMatching(/organization\.not_found/), steps: 1, cost });
      expect(await storedRun(body.id)).toMatchObject({ status: 'failed', error_class: 'internal', steps: 1, cost, steps_cost: cost, lease_until: null });
      expect(await storedSteps(body.id)).toEqual([{ step_no: 1, kind: 'llm_call', status: 'failed', error_class: 'internal', cost }]);
      expect(await usage()).toEqual({
        spent_cost: new Decimal(before.spent_cost).plus(cost).toFixed(8), reserved_cost: '0.00000000', spent_tokens: before.spent_tokens + 201_000, reserved_tokens: 0,
      });
      expect((await audits(body.id)).map((r) => [r.action, r.actor_id])).toEqual([['ai.run_started', leaver.id], ['ai.run_internal', 'service:agents-runs']]);
      expect(await runEvents(body.id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: body.id, errorClass: 'internal', cost }) }]);
    }
  });

  /** an API key of `orgId` for runs, minted by the owner, and its revocation */
  const runKey = async () => {
    const { id, secret } = (await a.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'runner', scopes: ['agents:run'] }).expect(201)).body as { id: string; secret: string };
    return { id, auth: { Authorization: `Bearer ${secret}` }, revoke: () => a.http.post(`/v1/orgs/${orgId}/api-keys/${id}/revoke`).set(owner.auth).send({}).expect(200) };
  };
  const jobDone = async (runId: string) => (await a.db.admin.query(`SELECT processed_at IS NOT NULL AS done FROM core.outbox WHERE topic = 'agents.run' AND payload->>'runId' = $1`, [runId])).rows[0];

  it('a job\'s run whose starter left the organization, logged out or had their API key revoked before the job started it: failed at once (internal, naming why), its job done, not retried until the sweep a day later', async () => {
    const starters = {
      left: async () => {
        const leaver = await registerUser(a, 'finish-paths-early-leaver');
        await addMember(a, orgId, leaver, 'member');
        return { auth: leaver.auth, actor: leaver.id, refuse: () => a.db.admin.query('DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, leaver.id]) };
      },
      'logged out': async () => {
        const quitter = await registerUser(a, 'finish-paths-early-logout');
        await addMember(a, orgId, quitter, 'member');
        return { auth: quitter.auth, actor: quitter.id, refuse: () => a.http.post('/v1/auth/logout').set(quitter.auth).send({}).expect(204) };
      },
      'key revoked': async () => {
        const key = await runKey();
        return { auth: key.auth, actor: `api_key:${key.id}`, refuse: key.revoke };
      },
    };
    const why = {
      left: 'organization.not_found: organization',
      'logged out': 'auth.unauthorized: the session of this access token has ended; log in again',
      'key revoked': 'auth.unauthorized: the API key has been revoked',
    };
    for (const [how, starter] of Object.entries(starters) as [keyof typeof starters, (typeof starters)[keyof typeof starters]][]) {
      const { auth, actor, refuse } = await starter();
      const requests = llm.requests.length;
      const { id } = (await a.http.post(agentsUrl(orgId, `/${agent}/runs?async=true`)).set(auth).send({ messages }).expect(202)).body;
      await refuse();
      await a.app.get(OutboxRelay).drain();
      const run = (await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200)).body;
      expect([how, run]).toEqual([how, expect.objectContaining({
        status: 'failed', stopReason: 'error', errorClass: 'internal', steps: 0, cost: '0.00000000',
        errorMessage: expect.stringContaining(`the run failed before it started: its starter can no longer run it in this organization (removed from it, their session ended, or their API key revoked): ${why[how]}`),
      })]);
      expect(llm.requests).toHaveLength(requests);
      expect(await storedRun(id)).toMatchObject({ status: 'failed', error_class: 'internal', steps: 0, lease_until: null });
      expect((await audits(id)).map((r) => [r.action, r.actor_id])).toEqual([['ai.run_started', actor], ['ai.run_internal', 'service:agents-runs']]);
      expect(await runEvents(id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: id, errorClass: 'internal' }) }]);
      // the job is done: nothing left for the queue to retry
      expect(await jobDone(id)).toEqual({ done: true });
    }
  });

  it('a run whose API key is revoked mid-run (after its call started): failed at once (internal) by the agents service, the answered call stored as unused and charged, one event, audited; a job\'s too, its job done', async () => {
    const cost = gpt4oCost(1000, 100);
    for (const how of ['sync', 'job'] as const) {
      const key = await runKey();
      llm.enqueue({ kind: 'text', content: 'Cash is 100.', usage: { prompt: 1000, completion: 100 } });
      // the key is revoked once the run's call is marked as started: the transaction storing the answer is refused (401)
      const real = agentsRepository.startCall.bind(agentsRepository);
      let started = 0;
      const spy = jest.spyOn(agentsRepository, 'startCall').mockImplementation(async (...args) => {
        started++;
        await key.revoke();
        return real(...args);
      });
      let body: Record<string, any>;
      try {
        const req = a.http.post(agentsUrl(orgId, `/${agent}/runs${how === 'job' ? '?async=true' : ''}`)).set(key.auth).send({ messages });
        if (how === 'sync') body = (await req.expect(200)).body;
        else {
          const { id } = (await req.expect(202)).body;
          await a.app.get(OutboxRelay).drain();
          body = (await a.http.get(agentsUrl(orgId, `/${agent}/runs/${id}`)).set(owner.auth).expect(200)).body;
          expect(await jobDone(id)).toEqual({ done: true });
        }
      } finally {
        spy.mockRestore();
      }
      expect(started).toBe(1);
      expect([how, body]).toEqual([how, expect.objectContaining({
        status: 'failed', errorClass: 'internal', errorMessage: 'the run failed: auth.unauthorized: the API key has been revoked', steps: 1, cost,
      })]);
      expect(await storedRun(body.id)).toMatchObject({ status: 'failed', error_class: 'internal', steps: 1, cost, steps_cost: cost, lease_until: null });
      expect(await storedSteps(body.id)).toEqual([{ step_no: 1, kind: 'llm_call', status: 'failed', error_class: 'internal', cost }]);
      expect(await usage()).toMatchObject({ reserved_cost: '0.00000000', reserved_tokens: 0 });
      expect((await audits(body.id)).map((r) => [r.action, r.actor_id])).toEqual([['ai.run_started', `api_key:${key.id}`], ['ai.run_internal', 'service:agents-runs']]);
      expect(await runEvents(body.id)).toEqual([{ type: 'agent.run.failed', payload: expect.objectContaining({ runId: body.id, errorClass: 'internal', cost }) }]);
    }
  });

  it('stores a model\'s answer and tool arguments holding NUL characters without them', async () => {
    const drafter = (await a.http.post(agentsUrl(orgId)).set(owner.auth)
      .send({ name: 'Drafter', type: 'assistant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2, tools: ['draft_journal_entry'] }).expect(201)).body.id;
    llm.enqueue(
      { kind: 'tool_calls', calls: [{ name: 'draft_journal_entry', arguments: '{"memo":"x\u0000"}' }], usage: { prompt: 100, completion: 10 } },
      { kind: 'text', content: 'Drafted.\u0000', usage: { prompt: 200, completion: 10 } },
    );
    const res = await a.http.post(agentsUrl(orgId, `/${drafter}/runs`)).set(owner.auth).send({ messages }).expect(200);
    expect(res.body).toMatchObject({ status: 'succeeded', output: 'Drafted.', steps: 3 });
    const { rows } = await a.db.admin.query(`SELECT kind, status, detail FROM ai.run_steps WHERE run_id = $1 ORDER BY step_no`, [res.body.id]);
    expect(rows.map((r) => [r.kind, r.status])).toEqual([['llm_call', 'succeeded'], ['tool_call', expect.any(String)], ['llm_call', 'succeeded']]);
    expect(rows[0].detail.toolCalls).toEqual([expect.objectContaining({ name: 'draft_journal_entry', arguments: '{"memo":"x"}' })]);
    expect(rows[1].detail).toMatchObject({ arguments: '{"memo":"x"}' });
    expect(rows[2].detail.content).toBe('Drafted.');
    expect(await a.db.admin.query(`SELECT output, status FROM ai.runs WHERE id = $1`, [res.body.id]).then((r) => r.rows[0])).toEqual({ output: 'Drafted.', status: 'succeeded' });
  });
});
