import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * TEST PROXY in front of a provider double (its base URL …/v1), on 127.0.0.1: forwards every request at once and answers
 * with the double's response, but for a chat completion the test asked to hold (holdNext): the double has answered it
 * (the provider had the call and billed it), the answer is kept here until the test releases it. What happens meanwhile
 * (a cancel through another instance, a sweep) happens while the call is in flight, answered but not yet returned.
 */
export interface HeldAnswerProxy {
  /** base URL to configure (AI_BASE_URL), ending in /v1 */
  url: string;
  /** holds the next chat completion's answer: `held` resolves once the double has answered it, `release` sends it on */
  holdNext(): { held: Promise<void>; release(): void };
  close(): Promise<void>;
}

export async function startHeldAnswerProxy(target: string): Promise<HeldAnswerProxy> {
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  const pending: { arrived: () => void; released: Promise<void> }[] = [];
  const releases = new Set<() => void>();

  const forward = (method: string, path: string, headers: Record<string, string | string[] | undefined>, body: Buffer) =>
    new Promise<{ status: number; contentType: string; body: Buffer }>((resolve, reject) => {
      const req = request({ host: upstream.hostname, port: upstream.port, method, path, headers: { ...headers, host: upstream.host } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, contentType: String(res.headers['content-type'] ?? 'application/json'), body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  const server: Server = createServer((req, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const hold = req.method === 'POST' && (req.url ?? '').includes('/chat/completions') ? pending.shift() : undefined;
      forward(req.method ?? 'GET', req.url ?? '/', req.headers, Buffer.concat(parts)).then(async (answer) => {
        if (hold) {
          hold.arrived();
          await hold.released;
        }
        res.writeHead(answer.status, { 'content-type': answer.contentType });
        res.end(answer.body);
      }, (err: Error) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `proxy: ${err.message}` } }));
      });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname.replace(/\/$/, '')}`,
    holdNext() {
      let arrived!: () => void;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (arrived = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      releases.add(release);
      pending.push({ arrived, released });
      return { held, release };
    },
    async close() {
      for (const r of releases) r();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
