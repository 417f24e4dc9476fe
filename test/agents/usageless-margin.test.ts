import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChatMessage } from '../../src/platform/ai/llm-provider.js';
import { countChatInputTokens } from '../../src/platform/ai/token-count.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * A call whose provider reports no usage (an answer without it, an attempt cut by a cancel or the shutdown) is billed its
 * input at the model's margin, as its reservation held it (claude-sonnet-4: 1.5 x the o200k_base count + 400): it was
 * billed the o200k count, which Anthropic's tokenizer exceeds, so the budget was charged less than the provider billed.
 */
describe('AI budgets: a call without usage billed at the model\'s input margin', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agentId: string;
  let budgetId: string;
  const clock = new ManualClock().atMidday(); // the run's month and the usage read back: never across the first of a month
  let counted = 0; // the o200k_base count of the last request, as the service counts it
  // about 2,000 o200k tokens of English
  const content = 'The quarterly report shows revenue growth across every region we serve. '.repeat(150);
  const worstInput = () => Math.ceil(counted * 1.5) + 400;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-margin-0000', REDIS_URL: '' }, { clock });
    owner = await registerUser(t, 'usageless-owner');
    orgId = await createOrg(t, owner, 'Usageless Ltd');
    await onPlan(t, orgId, 'professional');
    agentId = (await t.http.post(agentsUrl(orgId)).set(owner.auth)
      .send({ name: 'Claude', type: 'assistant', modelId: 'claude-sonnet-4', maxOutputTokens: 100, maxSteps: 1 }).expect(201)).body.id;
    budgetId = (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ tokenLimit: 1_000_000 }).expect(201)).body.id;
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  const spent = async () => (await t.db.admin.query(
    'SELECT coalesce(sum(spent_tokens), 0)::int AS spent, coalesce(sum(reserved_tokens), 0)::int AS reserved FROM ai.budget_usage WHERE budget_id = $1', [budgetId])).rows[0];
  const answering = (answer: 'text' | 'hang') => llm.answerWith((body) => {
    counted = countChatInputTokens((body.messages as { role: ChatMessage['role']; content: string }[]).map((m) => ({ role: m.role, content: m.content }) as ChatMessage));
    return answer === 'text' ? { kind: 'text', content: 'done', usage: null } : { kind: 'hang' };
  });

  it('an answer without usage: its input recorded and charged at the model\'s worst case', async () => {
    const before = await spent();
    answering('text');
    const r = await t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content }] }).expect(200);
    expect(counted).toBeGreaterThan(1500);
    expect(r.body).toMatchObject({ status: 'succeeded', usage: { inputTokens: worstInput(), cachedInputTokens: 0, cacheWriteTokens: 0 } });
    expect(r.body.trace[0]).toMatchObject({ tokensCounted: true, usage: { inputTokens: worstInput() } });
    const { rows: [run] } = await t.db.admin.query('SELECT input_tokens::int AS input FROM ai.runs WHERE id = $1', [r.body.id]);
    expect(run.input).toBe(worstInput());
    expect(await spent()).toEqual({ spent: before.spent + worstInput() + r.body.usage.outputTokens, reserved: 0 });
  });

  it('an attempt cut by a cancel (no usage reported): its input recorded and charged at the model\'s worst case', async () => {
    const before = await spent();
    answering('hang');
    const hung = llm.nextHang();
    const started = t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content }] }).then((r) => r);
    await hung;
    const { rows: [{ id }] } = await t.db.admin.query(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running'`, [agentId]);
    await t.http.post(agentsUrl(orgId, `/${agentId}/runs/${id}/cancel`)).set(owner.auth).expect(200);
    const r = await started;
    llm.answerWith(undefined);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id, status: 'cancelled', usage: { inputTokens: worstInput(), outputTokens: 0 } });
    const { rows: [run] } = await t.db.admin.query('SELECT input_tokens::int AS input, output_tokens::int AS output FROM ai.runs WHERE id = $1', [id]);
    expect(run).toEqual({ input: worstInput(), output: 0 });
    expect(await spent()).toEqual({ spent: before.spent + worstInput(), reserved: 0 });
  });
});
