import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * TEST DOUBLE of an OpenAI-compatible chat endpoint (POST /chat/completions, streamed) that answers part of a
 * completion and then stops, as a provider does when a call is cut after it began billing: `hold` streams the
 * chunks and keeps the response open until the client goes away (a cancel, a timeout); `drop` streams them and
 * drops the connection. `text` answers a whole streamed completion with its usage. Nothing scripted: "ok".
 */
export type PartialAnswer =
  | { kind: 'hold' | 'drop'; chunks: string[] }
  | { kind: 'text'; content: string; usage: { prompt: number; completion: number } };

export interface PartialStreamDouble {
  /** base URL (…/v1) */
  url: string;
  enqueue(...answers: PartialAnswer[]): void;
  requests: any[];
  close(): Promise<void>;
}

export async function startPartialStreamDouble(): Promise<PartialStreamDouble> {
  const queue: PartialAnswer[] = [];
  const requests: any[] = [];
  const sockets = new Set<Socket>();
  const held = new Set<ServerResponse>();

  const chat = (res: ServerResponse, body: any) => {
    const answer = queue.shift() ?? { kind: 'text', content: 'ok', usage: { prompt: 1, completion: 1 } };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (delta: Record<string, unknown>, finish: string | null = null, usage?: Record<string, number>) => res.write(`data: ${JSON.stringify({
      id: 'chatcmpl-partial', object: 'chat.completion.chunk', created: 0, model: body.model, choices: usage ? [] : [{ index: 0, delta, finish_reason: finish }], ...(usage ? { usage } : {}),
    })}\n\n`);
    chunk({ role: 'assistant', content: '' });
    if (answer.kind === 'text') {
      for (const p of answer.content.match(/.{1,4}/gs) ?? []) chunk({ content: p });
      chunk({}, 'stop');
      const { prompt, completion } = answer.usage;
      chunk({}, null, { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
      return res.end('data: [DONE]\n\n');
    }
    for (const p of answer.chunks) chunk({ content: p });
    if (answer.kind === 'drop') {
      // once the chunks are out: the connection breaks mid-answer
      return res.write('', () => res.socket?.destroy());
    }
    held.add(res);
    res.on('close', () => held.delete(res));
  };

  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const body = raw ? JSON.parse(raw) : {};
      requests.push(body);
      if (req.method === 'POST' && (req.url ?? '').endsWith('/chat/completions')) return chat(res, body);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'no route' } }));
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
    requests,
    async close() {
      for (const res of held) res.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
