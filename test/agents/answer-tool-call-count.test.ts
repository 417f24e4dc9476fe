import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { answerCap } from '../../src/platform/ai/llm-provider.js';
import { MAX_TOOL_CALLS_PER_ANSWER } from '../../src/modules/agents/runs.service.js';
import { agentsUrl } from './agents-support.js';

/**
 * The tool calls of one provider answer are bounded whatever their size: each counts TOOL_CALL_OVERHEAD_BYTES against
 * answerCap on top of its id, name and arguments, and an answer of more than MAX_TOOL_CALLS_AN_ANSWER_HOLDS is cut
 * (provider_error, not retried), streamed (`{"index":i}` deltas) or not (`{"id":"","function":{"name":"","arguments":""}}`):
 * empty calls counted nothing, and each of a flood of them (some 280,000 in one answer) was stored and resent to the
 * provider as a refused call's tool message at every later call.
 */
// llm-provider's MAX_TOOL_CALLS_AN_ANSWER_HOLDS and TOOL_CALL_OVERHEAD_BYTES, as documented
const MAX_TOOL_CALLS_AN_ANSWER_HOLDS = 64;
const TOOL_CALL_OVERHEAD_BYTES = 256;

describe('the tool calls of a provider answer', () => {
  let t: TestApp;
  let server: Server;
  let owner: TestUser;
  let orgId: string;
  // the first request of a run is answered `calls` empty tool calls (and `content` before them), the others 'done'
  let calls = 0;
  let content = '';
  const requests: { bytes: number; toolMessages: number }[] = [];

  const frame = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        const body = JSON.parse(raw);
        const first = requests.length === 0;
        requests.push({ bytes: raw.length, toolMessages: body.messages.filter((m: { role: string }) => m.role === 'tool').length });
        res.on('error', () => undefined);
        const usage = { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 };
        if (!body.stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          const message = first
            ? { role: 'assistant', content: content || null, tool_calls: Array.from({ length: calls }, () => ({ id: '', type: 'function', function: { name: '', arguments: '' } })) }
            : { role: 'assistant', content: 'done' };
          return res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 0, model: 'gpt-4o', choices: [{ index: 0, message, finish_reason: 'stop' }], usage }));
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (first) {
          if (content) res.write(frame({ content }));
          res.write(frame({ tool_calls: Array.from({ length: calls }, (_, i) => ({ index: i })) }));
        } else {
          res.write(frame({ content: 'done' }));
        }
        res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage })}\n\n`);
        res.end('data: [DONE]\n\n');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    t = await createTestApp({ AI_BASE_URL: url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '60000', AI_MAX_RETRIES: '2', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    owner = await registerUser(t, 'tool-call-count');
    orgId = await createOrg(t, owner, 'Tool call count');
    await onPlan(t, orgId, 'professional');
  });
  afterAll(async () => {
    await t?.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  async function runOnce(name: string, stream: boolean) {
    const agent = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name, type: 'assistant', modelId: 'gpt-4o', maxOutputTokens: 100, maxSteps: 3 }).expect(201)).body.id;
    requests.length = 0;
    let req = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth);
    if (stream) req = req.set('accept', 'text/event-stream');
    const res = await req.send({ messages: [{ role: 'user', content: 'hi' }] }).buffer(true)
      .parse((r, cb) => { let text = ''; r.on('data', (c: Buffer) => (text += c.toString())); r.on('end', () => cb(null, text)); });
    expect(res.status).toBe(200);
    const { rows: [run] } = await t.db.admin.query(`SELECT id, status, error_class, error_message, output FROM ai.runs WHERE agent_id = $1`, [agent]);
    const { rows: steps } = await t.db.admin.query(
      `SELECT step_no, kind, name, status, error_class, attempts, length(detail::text) AS detail_len FROM ai.run_steps WHERE run_id = $1 ORDER BY step_no`, [run.id]);
    return { run, steps, text: res.body as unknown as string };
  }

  const expectCutForCount = (run: any, steps: any[]) => {
    expect(run).toMatchObject({ status: 'failed', error_class: 'provider_error', output: null });
    expect(run.error_message).toBe(`the provider's answer held more than ${MAX_TOOL_CALLS_AN_ANSWER_HOLDS} tool calls: cut, not used`);
    // one LLM call, failed: no tool call stored, none refused, nothing resent; not retried
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ kind: 'llm_call', status: 'failed', error_class: 'provider_error', attempts: 1 });
    expect(steps[0].detail_len).toBeLessThan(20_000);
    expect(requests).toHaveLength(1);
  };

  for (const stream of [true, false]) {
    const how = stream ? 'streamed' : 'not streamed';

    it(`cuts an answer (${how}) of more than ${MAX_TOOL_CALLS_AN_ANSWER_HOLDS} empty tool calls: 5,000 of them`, async () => {
      calls = 5_000;
      content = '';
      const { run, steps, text } = await runOnce(`Flood ${how}`, stream);
      expectCutForCount(run, steps);
      if (stream) expect(text).toContain('event: result');
    }, 60_000);

    it(`cuts an answer (${how}) of ${MAX_TOOL_CALLS_AN_ANSWER_HOLDS + 1} tool calls, uses one of ${MAX_TOOL_CALLS_AN_ANSWER_HOLDS}`, async () => {
      calls = MAX_TOOL_CALLS_AN_ANSWER_HOLDS + 1;
      content = '';
      const cut = await runOnce(`Over ${how}`, stream);
      expectCutForCount(cut.run, cut.steps);

      calls = MAX_TOOL_CALLS_AN_ANSWER_HOLDS;
      const { run, steps } = await runOnce(`At ${how}`, stream);
      expect(run).toMatchObject({ status: 'succeeded', error_class: null, output: 'done' });
      // 16 run (each failed: the model named no tool), the others refused in one step; the next call is answered all 64
      expect(steps.filter((s: any) => s.kind === 'tool_call' && s.name !== 'tool_calls_refused')).toHaveLength(MAX_TOOL_CALLS_PER_ANSWER);
      expect(steps.filter((s: any) => s.name === 'tool_calls_refused')).toHaveLength(1);
      expect(requests.map((r) => r.toolMessages)).toEqual([0, MAX_TOOL_CALLS_AN_ANSWER_HOLDS]);
    }, 60_000);

    it(`counts each tool call (${how}) ${TOOL_CALL_OVERHEAD_BYTES} bytes against the answer's cap, empty or not`, async () => {
      // content just under the cap, and 20 empty calls: past it only by their overhead
      calls = 20;
      content = 'A'.repeat(answerCap(100) - 1_000);
      const { run, steps } = await runOnce(`Overhead ${how}`, stream);
      expect(run).toMatchObject({ status: 'failed', error_class: 'provider_error', output: null });
      expect(run.error_message).toContain(`passed ${answerCap(100)} bytes, more than maxOutputTokens (100)`);
      expect(steps).toHaveLength(1);
      expect(steps[0]).toMatchObject({ kind: 'llm_call', status: 'failed', attempts: 1 });
      expect(requests).toHaveLength(1);
    }, 60_000);
  }
});
