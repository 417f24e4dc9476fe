import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { answerCap } from '../../src/platform/ai/llm-provider.js';
import { agentsUrl } from './agents-support.js';

/**
 * A provider's answer is bounded by the call's maxOutputTokens (answerCap: 16 bytes a token, at least 64 KiB), whatever
 * the endpoint (an organization may set its own baseUrl) sends: a stream of many chunks, one huge stream line, one huge
 * JSON body. The read is cut, the run fails (provider_error, not retried, 200 with the failed run: no 500), nothing of
 * the size is stored, and the endpoint's connection is dropped before it could send it all. A body cut for its bytes
 * (framing included) before its content passed the cap says so. A stream of maxOutputTokens tokens is not cut, framed
 * as verbosely as Azure OpenAI frames it (content_filter_results: some 480 bytes a chunk).
 */
describe('the size of a provider answer', () => {
  let t: TestApp;
  let server: Server;
  let owner: TestUser;
  let orgId: string;
  const MB = 1024 * 1024;
  const TOTAL = 8 * MB;
  let mode: 'chunks' | 'one_line' | 'json' | 'azure' = 'chunks';
  // the tokens of mode azure (' the', 4 bytes each)
  let tokens = 0;
  const azureChunk = (content: string) =>
    `data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}},"delta":{"content":${JSON.stringify(content)}},"finish_reason":null,"index":0,"logprobs":null}],"created":1741570283,"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_eb9dce56a8"}\n\n`;
  const served: { requests: number; written: number; finished: boolean }[] = [];

  const chunk = (content: string) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'gpt-4o', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        const stat = { requests: 1, written: 0, finished: false };
        served.push(stat);
        res.on('close', () => undefined);
        const stream = JSON.parse(raw).stream;
        if (mode === 'json' || !stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          const body = JSON.stringify({ id: 'x', object: 'chat.completion', created: 0, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'A'.repeat(TOTAL) }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 100, total_tokens: 110 } });
          // in pieces, so that a cut read is seen as a connection dropped before the end
          let at = 0;
          const pump = () => {
            while (at < body.length) {
              const piece = body.slice(at, at + 64 * 1024);
              at += piece.length;
              stat.written += piece.length;
              if (!res.write(piece)) return res.once('drain', pump);
            }
            stat.finished = true;
            res.end();
          };
          res.on('error', () => undefined);
          return pump();
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.on('error', () => undefined);
        const pieces = mode === 'one_line' ? [chunk('B'.repeat(TOTAL))]
          : mode === 'azure' ? Array.from({ length: tokens }, () => azureChunk(' the'))
            : Array.from({ length: TOTAL / (16 * 1024) }, () => chunk('A'.repeat(16 * 1024)));
        let i = 0;
        const pump = () => {
          while (i < pieces.length) {
            if (res.destroyed) return;
            stat.written += pieces[i].length;
            if (!res.write(pieces[i++])) return res.once('drain', pump);
          }
          res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 100, total_tokens: 110 } })}\n\n`);
          stat.finished = true;
          res.end('data: [DONE]\n\n');
        };
        pump();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    t = await createTestApp({ AI_BASE_URL: url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '60000', AI_MAX_RETRIES: '2', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    owner = await registerUser(t, 'answer-size');
    orgId = await createOrg(t, owner, 'Answer size');
    await onPlan(t, orgId, 'professional');
  });
  afterAll(async () => {
    await t?.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  async function runOnce(name: string, stream: boolean, maxOutputTokens = 100) {
    const agent = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name, type: 'assistant', modelId: 'gpt-4o', maxOutputTokens, maxSteps: 1 }).expect(201)).body.id;
    served.length = 0;
    let req = t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth);
    if (stream) req = req.set('accept', 'text/event-stream');
    const res = await req.send({ messages: [{ role: 'user', content: 'hi' }] }).buffer(true)
      .parse((r, cb) => { let text = ''; r.on('data', (c: Buffer) => (text += c.toString())); r.on('end', () => cb(null, text)); });
    const { rows } = await t.db.admin.query(
      `SELECT r.status, r.error_class, r.error_message, r.output, s.status AS step_status, s.error_class AS step_error, s.attempts, length(s.detail::text) AS detail_len
         FROM ai.runs r JOIN ai.run_steps s ON s.run_id = r.id WHERE r.agent_id = $1`, [agent]);
    return { res, rows, text: res.body as unknown as string };
  }

  // cut for its content (past answerCap) or for its body's bytes (framing included) before its content got there
  const expectCut = (rows: any[], by: 'content' | 'body') => {
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'failed', error_class: 'provider_error', output: null, step_status: 'failed', step_error: 'provider_error', attempts: 1 });
    expect(rows[0].error_message).toMatch(by === 'content'
      ? `the provider's answer passed ${answerCap(100)} bytes, more than maxOutputTokens (100)`
      : new RegExp(`^the provider's response body passed \\d+ bytes, more than an answer within maxOutputTokens \\(100, ${answerCap(100)} bytes of content\\) takes with its framing`));
    // the step keeps no more than the failure's message
    expect(rows[0].detail_len).toBeLessThan(2_000);
    // not retried, and the endpoint could not send its whole answer: the read was cut
    expect(served).toHaveLength(1);
  };

  it('cuts a non-streamed JSON answer past maxOutputTokens: the run failed, answered 200', async () => {
    mode = 'json';
    const { res, rows, text } = await runOnce('Json', false);
    expect(res.status).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ status: 'failed', errorClass: 'provider_error', output: null });
    expectCut(rows, 'body');
    expect(text.length).toBeLessThan(64 * 1024);
  }, 60_000);

  it('cuts a stream of many chunks once content passes the cap: streamed no further', async () => {
    mode = 'chunks';
    const { res, rows, text } = await runOnce('Chunks', true);
    expect(res.status).toBe(200);
    expectCut(rows, 'content');
    // what reached the client is about the cap, not the 8 MB sent at it
    expect(text.length).toBeLessThan(answerCap(100) * 3);
    expect(text).toContain('event: result');
  }, 60_000);

  it('cuts a stream whose single line is larger than any answer may be', async () => {
    mode = 'one_line';
    const { res, rows, text } = await runOnce('OneLine', true);
    expect(res.status).toBe(200);
    expectCut(rows, 'body');
    expect(text).not.toContain('BBBB');
  }, 60_000);

  it('uses a stream of maxOutputTokens tokens framed as Azure OpenAI frames them (some 480 bytes a token)', async () => {
    mode = 'azure';
    tokens = 4096;
    const { res, rows, text } = await runOnce('Azure', true, tokens);
    expect(res.status).toBe(200);
    expect(text).toContain('event: result');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'succeeded', error_class: null, error_message: null, output: ' the'.repeat(tokens), step_status: 'succeeded', attempts: 1 });
    expect(served).toEqual([{ requests: 1, written: expect.any(Number), finished: true }]);
  }, 60_000);
});
