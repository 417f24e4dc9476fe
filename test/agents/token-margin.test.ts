import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChatMessage } from '../../src/platform/ai/llm-provider.js';
import { countChatInputTokens } from '../../src/platform/ai/token-count.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * A budget reserves each call's input at its model's margin over the o200k_base count (the catalog's): a model whose
 * tokenizer counts more than OpenAI's (claude-sonnet-4: Anthropic's counts ~1.2-1.35 x for English, more for code) was
 * reserved at OpenAI's 1.1 x + 16 and billed past it, and 20 runs at once overspent an organization's token limit.
 */
describe('AI budgets: the input margin of the model', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let member: TestUser;
  let orgId: string;
  let agentId: string;
  const clock = new ManualClock().atMidday(); // the run's month and the usage read back: never across the first of a month
  const MAX_OUTPUT = 100;
  const FACTOR = 1.3;
  let counted = 0; // the o200k_base count of the last request, as the service counts it

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-margin-0000', REDIS_URL: '',
      // 20 runs at once on a shared, loaded machine: the test is about overshoot, not about waiting for a connection
      API_DATABASE_POOL_SIZE: '16', DATABASE_CONNECT_TIMEOUT_MS: '120000',
    }, { clock });
    owner = await registerUser(t, 'margin-owner');
    member = await registerUser(t, 'margin-member');
    orgId = await createOrg(t, owner, 'Margin Ltd');
    await onPlan(t, orgId, 'professional');
    await addMember(t, orgId, member, 'member');
    agentId = (await t.http.post(agentsUrl(orgId)).set(owner.auth)
      .send({ name: 'Claude', type: 'assistant', instructions: 'Answer briefly.', modelId: 'claude-sonnet-4', maxOutputTokens: MAX_OUTPUT, maxSteps: 1 }).expect(201)).body.id;
    // the provider counts 1.3 x what o200k_base counts of the request, and answers its max output
    llm.answerWith((body) => {
      const messages = (body.messages as { role: ChatMessage['role']; content: string }[]).map((m) => ({ role: m.role, content: m.content }) as ChatMessage);
      counted = countChatInputTokens(messages);
      return { kind: 'text', content: 'done', usage: { prompt: Math.ceil(counted * FACTOR), completion: MAX_OUTPUT } };
    });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  // about 2,000 o200k tokens of English
  const content = 'The quarterly report shows revenue growth across every region we serve. '.repeat(150);
  const run = () => t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(member.auth).send({ messages: [{ role: 'user', content }] });

  it('20 runs at once of a model billed at 1.3 x the o200k count never take the budget past its token limit', async () => {
    // one run before any budget: what the model is billed for a call (the same input each time)
    const first = await run().expect(200);
    expect(first.body.status).toBe('succeeded');
    const billed = Math.ceil(counted * FACTOR) + MAX_OUTPUT;
    expect(first.body.usage).toMatchObject({ inputTokens: billed - MAX_OUTPUT, outputTokens: MAX_OUTPUT });
    expect(counted).toBeGreaterThan(1500);
    // the limit that any sequence of runs reserved at OpenAI's margin (1.1 x + 16) overspends: a run is refused only once
    // 8 have been let in (7 billed in full and one more reservation fit), and 8 billed in full are past it
    const openAiReservation = Math.ceil(counted * 1.1) + 16 + MAX_OUTPUT;
    const tokenLimit = 7 * billed + openAiReservation;
    expect(8 * billed).toBeGreaterThan(tokenLimit);
    const budget = (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ tokenLimit }).expect(201)).body;

    const results = await Promise.all(Array.from({ length: 20 }, () => run()));
    expect(results.filter((r) => r.status !== 200 && r.status !== 402).map((r) => `${r.status} ${JSON.stringify(r.body)}`)).toEqual([]);
    const ok = results.filter((r) => r.status === 200);
    for (const r of results.filter((x) => x.status === 402)) expect(r.body.error).toMatchObject({ code: 'ai.budget_exceeded', details: { budgetId: budget.id } });
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(ok.length).toBeLessThan(20); // the limit refused some
    for (const r of ok) expect(r.body.usage).toMatchObject({ inputTokens: billed - MAX_OUTPUT, outputTokens: MAX_OUTPUT });

    const { rows: [usage] } = await t.db.admin.query(
      'SELECT spent_tokens::int AS spent, reserved_tokens::int AS reserved FROM ai.budget_usage WHERE budget_id = $1', [budget.id]);
    expect(usage).toEqual({ spent: ok.length * billed, reserved: 0 });
    expect(usage.spent).toBeLessThanOrEqual(tokenLimit);
    const left = await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations');
    expect(left.rows[0].n).toBe(0);
  }, 180_000);
});
