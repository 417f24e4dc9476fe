import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A TEST DOUBLE of PostHog's capture API: a local HTTP server taking what posthog-node sends (POST /batch/, JSON,
 * gzip-compressed or not) and keeping the events. The real SDK talks to it through POSTHOG_HOST.
 */
export interface PostHogDoubleEvent {
  event: string;
  distinct_id: string;
  uuid?: string;
  timestamp?: string;
  properties: Record<string, unknown>;
}

export interface PostHogDouble {
  events: PostHogDoubleEvent[];
  apiKeys: string[];
  env: Record<string, string>;
  /** resolves once at least n events arrived */
  received(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startPostHogDouble(): Promise<PostHogDouble> {
  const events: PostHogDoubleEvent[] = [];
  const apiKeys: string[] = [];
  let waiting: { n: number; resolve: () => void }[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    if (req.method === 'POST' && req.url?.startsWith('/batch')) {
      const payload = JSON.parse(body.toString('utf8')) as { api_key: string; batch: PostHogDoubleEvent[] };
      apiKeys.push(payload.api_key);
      events.push(...payload.batch);
      waiting = waiting.filter((w) => (events.length >= w.n ? (w.resolve(), false) : true));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":1}');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    events,
    apiKeys,
    env: { POSTHOG_API_KEY: 'phc_test_double', POSTHOG_HOST: `http://127.0.0.1:${port}` },
    received: (n) => new Promise<void>((resolve) => (events.length >= n ? resolve() : waiting.push({ n, resolve }))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
