import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * TEST DOUBLE of an OpenAI-compatible API (OpenAI, vLLM, Ollama, LiteLLM all speak it): a local HTTP server on
 * 127.0.0.1 answering POST /chat/completions (JSON, or server-sent chunks when the request says stream: true)
 * and POST /embeddings. Each chat request takes the next scripted answer: text, tool calls, an HTTP error (429
 * with Retry-After, 500), or a hang that never answers (the client's timeout must cut it). With nothing
 * scripted it answers the text "ok". Usage is reported as scripted: with or without cached tokens, or not at all.
 */
export interface DoubleUsage {
  prompt: number;
  completion: number;
  /** cached input tokens (prompt_tokens_details.cached_tokens), included in prompt as OpenAI counts them */
  cached?: number;
}

export type DoubleAnswer =
  | { kind: 'text'; content: string; usage?: DoubleUsage | null; chunks?: string[] }
  | { kind: 'tool_calls'; calls: { name: string; arguments: string }[]; content?: string | null; usage?: DoubleUsage | null }
  | { kind: 'error'; status: number; retryAfter?: string; body?: Record<string, unknown> }
  | { kind: 'hang' };

export interface OpenAiDouble {
  /** base URL to configure (AI_BASE_URL), ending in /v1 */
  url: string;
  /** answers for the next chat requests, in order */
  enqueue(...answers: DoubleAnswer[]): void;
  /** a function deciding each answer instead of the queue (e.g. for many parallel runs) */
  answerWith(fn: ((body: any) => DoubleAnswer) | undefined): void;
  requests: { path: string; authorization?: string; body: any }[];
  /** requests that are hanging now */
  hanging(): number;
  /** resolves when the next request arrives that the double leaves hanging */
  nextHang(): Promise<void>;
  /** drops what is still scripted */
  clear(): void;
  close(): Promise<void>;
}

const DEFAULT_USAGE: DoubleUsage = { prompt: 10, completion: 5 };

function usageJson(u: DoubleUsage | null | undefined) {
  const usage = u === undefined ? DEFAULT_USAGE : u;
  if (usage === null) return undefined;
  return {
    prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion,
    ...(usage.cached !== undefined ? { prompt_tokens_details: { cached_tokens: usage.cached } } : {}),
  };
}

/** A deterministic unit-length vector of 8 dimensions per input text. */
export function doubleEmbedding(text: string): number[] {
  const h = createHash('sha256').update(text).digest();
  const v = Array.from({ length: 8 }, (_, i) => h.readInt16BE(i * 2) / 32768);
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => x / norm);
}

export async function startOpenAiDouble(): Promise<OpenAiDouble> {
  const queue: DoubleAnswer[] = [];
  const requests: OpenAiDouble['requests'] = [];
  const sockets = new Set<Socket>();
  const hangingResponses = new Set<ServerResponse>();
  let decide: ((body: any) => DoubleAnswer) | undefined;
  let hangWaiters: (() => void)[] = [];
  let seq = 0;

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  const chat = (req: IncomingMessage, res: ServerResponse, body: any) => {
    const answer = decide?.(body) ?? queue.shift() ?? { kind: 'text', content: 'ok' };
    if (answer.kind === 'hang') {
      hangingResponses.add(res);
      res.on('close', () => hangingResponses.delete(res));
      const waiters = hangWaiters;
      hangWaiters = [];
      for (const w of waiters) w();
      return;
    }
    if (answer.kind === 'error') {
      const headers: Record<string, string> = answer.retryAfter !== undefined ? { 'retry-after': answer.retryAfter } : {};
      return send(res, answer.status, answer.body ?? { error: { message: `double error ${answer.status}`, type: 'server_error' } }, headers);
    }
    const id = `chatcmpl-double-${++seq}`;
    const created = Math.floor(Date.now() / 1000);
    const toolCalls = answer.kind === 'tool_calls'
      ? answer.calls.map((c, i) => ({ index: i, id: `call_${seq}_${i}`, type: 'function', function: { name: c.name, arguments: c.arguments } }))
      : [];
    const content = answer.kind === 'text' ? answer.content : answer.content ?? null;
    const finish = toolCalls.length ? 'tool_calls' : 'stop';
    const usage = usageJson(answer.usage);
    if (!body.stream) {
      return send(res, 200, {
        id, object: 'chat.completion', created, model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content, ...(toolCalls.length ? { tool_calls: toolCalls.map(({ index: _i, ...c }) => c) } : {}) }, finish_reason: finish, logprobs: null }],
        ...(usage ? { usage } : {}),
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
      res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`);
    chunk({ role: 'assistant', content: '' });
    if (content) {
      const parts = answer.kind === 'text' && answer.chunks ? answer.chunks : content.match(/.{1,4}/gs) ?? [content];
      for (const p of parts) chunk({ content: p });
    }
    for (const tc of toolCalls) {
      chunk({ tool_calls: [{ index: tc.index, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }] });
      chunk({ tool_calls: [{ index: tc.index, function: { arguments: tc.function.arguments } }] });
    }
    chunk({}, finish);
    if (usage && body.stream_options?.include_usage) {
      res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage })}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  };

  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      let body: any = {};
      try {
        body = raw ? JSON.parse(raw) : {};
      } catch {
        return send(res, 400, { error: { message: 'invalid JSON' } });
      }
      const path = (req.url ?? '').replace(/\?.*$/, '');
      requests.push({ path, authorization: req.headers.authorization, body });
      if (req.method === 'POST' && path.endsWith('/chat/completions')) return chat(req, res, body);
      // the readiness probe's cheap call (GET /models), as OpenAI answers it
      if (req.method === 'GET' && path.endsWith('/models')) return send(res, 200, { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created: 0, owned_by: 'double' }] });
      if (req.method === 'POST' && path.endsWith('/embeddings')) {
        const input: string[] = Array.isArray(body.input) ? body.input : [body.input];
        const tokens = input.reduce((n, s) => n + Math.ceil(String(s).length / 4), 0);
        return send(res, 200, {
          object: 'list', model: body.model, data: input.map((s, index) => ({ object: 'embedding', index, embedding: doubleEmbedding(String(s)) })),
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        });
      }
      send(res, 404, { error: { message: `no route ${req.method} ${path}` } });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    enqueue: (...answers) => queue.push(...answers),
    answerWith: (fn) => (decide = fn),
    requests,
    hanging: () => hangingResponses.size,
    nextHang: () => new Promise<void>((resolve) => hangWaiters.push(resolve)),
    clear: () => {
      queue.length = 0;
      decide = undefined;
    },
    async close() {
      // a hang is released: its response ends (the client sees the connection close), nothing stays open
      for (const res of hangingResponses) res.destroy();
      hangingResponses.clear();
      for (const w of hangWaiters) w();
      hangWaiters = [];
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
