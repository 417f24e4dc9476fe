import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { Clock } from '../../src/platform/clock/clock.js';
import { MAX_TOOL_CALLS_PER_ANSWER } from '../../src/modules/agents/runs.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl, booksWithEntry } from './agents-support.js';
import { startHeldAnswerProxy, type HeldAnswerProxy } from './held-answer-proxy.js';

/**
 * The bounds of a run and the answers around it: the tool calls of one answer (MAX_TOOL_CALLS_PER_ANSWER), an agent's
 * deletion while a run of it executes (409 ai.agent_running), a run gone mid-run (404 run.not_found, not a 500), the
 * usage report's default range, and the 402 of a synchronous run naming the run it recorded.
 */
describe('run limits', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let proxy: HeldAnswerProxy;
  let owner: TestUser;
  let viewer: TestUser;
  let orgId: string;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    proxy = await startHeldAnswerProxy(llm.url);
    t = await createTestApp({ AI_BASE_URL: proxy.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    // a held call is not cut by the provider timer
    t.app.get(CallTimer).start = () => () => undefined;
    owner = await registerUser(t, 'limits-owner');
    viewer = await registerUser(t, 'limits-viewer');
    orgId = await createOrg(t, owner, 'Run limits');
    await onPlan(t, orgId, 'professional');
    await addMember(t, orgId, viewer, 'viewer');
    await booksWithEntry(t, orgId, owner, '100.00', 'capital');
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
    await llm?.close();
  });

  const createAgent = async (name: string, extra: Record<string, unknown> = {}) =>
    (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name, type: 'assistant', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2, ...extra }).expect(201)).body.id as string;

  it(`runs at most ${MAX_TOOL_CALLS_PER_ANSWER} tool calls of one answer: the others answered an error, recorded in one step`, async () => {
    expect(MAX_TOOL_CALLS_PER_ANSWER).toBe(16);
    const agent = await createAgent('Fan', { tools: ['get_trial_balance'] });
    llm.clear();
    const before = llm.requests.length;
    llm.enqueue(
      { kind: 'tool_calls', calls: Array.from({ length: 40 }, () => ({ name: 'get_trial_balance', arguments: '{}' })), usage: { prompt: 100, completion: 50 } },
      { kind: 'text', content: 'done', usage: { prompt: 200, completion: 5 } },
    );
    const res = await t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(viewer.auth).send({ messages: [{ role: 'user', content: 'call it many times' }] }).expect(200);
    expect(res.body).toMatchObject({ status: 'succeeded', stopReason: 'answer', output: 'done' });
    const trace = res.body.trace as any[];
    expect(trace.filter((s) => s.name === 'get_trial_balance')).toHaveLength(16);
    const refused = trace.filter((s) => s.name === 'tool_calls_refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ kind: 'tool_call', status: 'failed', errorClass: 'tool_error' });
    expect(refused[0].detail.toolCallIds).toHaveLength(24);
    // the model was answered every call: 16 results, 24 errors
    const second = llm.requests.slice(before).filter((r) => r.path.endsWith('/chat/completions'))[1];
    const toolMessages = second.body.messages.filter((m: any) => m.role === 'tool');
    expect(toolMessages).toHaveLength(40);
    expect(toolMessages.filter((m: any) => m.content.includes('at most 16 tools'))).toHaveLength(24);
    // stored: 2 LLM calls, 16 tool steps, the refusal
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM ai.run_steps WHERE run_id = $1`, [res.body.id]);
    expect(rows[0].n).toBe(2 + 16 + 1);
  }, 60_000);

  it('refuses to delete an agent while its run executes (409 ai.agent_running), and deletes it once the run ended', async () => {
    const agent = await createAgent('Busy');
    llm.clear();
    const hold = proxy.holdNext();
    llm.enqueue({ kind: 'text', content: 'answer', usage: { prompt: 1000, completion: 100 } });
    const pending = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(viewer.auth).send({ messages: [{ role: 'user', content: 'hi' }] }).then((r) => r);
    await hold.held;
    const refused = await t.http.delete(agentsUrl(orgId, `/${agent}`)).set(owner.auth).expect(409);
    expect(refused.body.error).toMatchObject({ code: 'ai.agent_running', details: { runs: 1 } });
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM ai.agents WHERE id = $1`, [agent])).rows[0].n).toBe(1);
    hold.release();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'succeeded', output: 'answer', steps: 1 });
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE entity_type = 'ai_run' AND entity_id = $1 ORDER BY id`, [res.body.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['ai.run_started', 'ai.run_succeeded']);
    await t.http.delete(agentsUrl(orgId, `/${agent}`)).set(owner.auth).expect(204);
  }, 60_000);

  it('answers 404 run.not_found, not a 500, for a run gone while it executed', async () => {
    const agent = await createAgent('Gone');
    llm.clear();
    const hold = proxy.holdNext();
    llm.enqueue({ kind: 'text', content: 'answer', usage: { prompt: 1000, completion: 100 } });
    const pending = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(viewer.auth).send({ messages: [{ role: 'user', content: 'hi' }] }).then((r) => r);
    await hold.held;
    // gone underneath the API (as the deletion let it before)
    await t.db.admin.query(`DELETE FROM ai.agents WHERE id = $1`, [agent]);
    hold.release();
    const res = await pending;
    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'run.not_found' });
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM ai.runs WHERE agent_id = $1`, [agent])).rows[0].n).toBe(0);
  }, 60_000);

  it('reports usage for ?to= alone more than 30 days back: from is 30 days before it', async () => {
    const to = new Date(t.app.get(Clock).now() - 60 * 86_400_000).toISOString().slice(0, 10);
    const res = await t.http.get(`/v1/orgs/${orgId}/ai/usage?to=${to}`).set(owner.auth).expect(200);
    expect(res.body.to).toBe(to);
    expect(res.body.from).toBe(new Date(Date.parse(`${to}T00:00:00Z`) - 30 * 86_400_000).toISOString().slice(0, 10));
    expect(res.body.runs).toBe(0);
  });

  it('names the recorded run in the 402 of a synchronous run a budget refused', async () => {
    const agent = await createAgent('Broke');
    await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent, costLimit: '0.0001' }).expect(201);
    const res = await t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(viewer.auth).send({ messages: [{ role: 'user', content: 'hi' }] }).expect(402);
    const { rows } = await t.db.admin.query(`SELECT id::text, status, error_class FROM ai.runs WHERE agent_id = $1`, [agent]);
    expect(rows).toEqual([{ id: expect.any(String), status: 'failed', error_class: 'budget_exceeded' }]);
    expect(res.body.error).toMatchObject({ code: 'ai.budget_exceeded', details: { runId: rows[0].id, budgetId: expect.any(String) } });
    // streamed: the error event names it too
    const streamed = await t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(viewer.auth).set('accept', 'text/event-stream')
      .send({ messages: [{ role: 'user', content: 'hi' }] }).buffer(true)
      .parse((r, cb) => { let text = ''; r.on('data', (c: Buffer) => (text += c.toString())); r.on('end', () => cb(null, text)); });
    const errorEvent = /event: error\ndata: (.*)\n/.exec(streamed.body as unknown as string);
    const run = /event: run\ndata: (.*)\n/.exec(streamed.body as unknown as string);
    expect(JSON.parse(errorEvent![1]).details.runId).toBe(JSON.parse(run![1]).id);
  });

  it('has no contract violations', () => {
    expect(t.contract.violations).toEqual([]);
  });
});
