import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A TEST DOUBLE of PostHog's capture API: a local HTTP server taking what posthog-node sends (POST /batch/, JSON,
 * gzip-compressed or not) and keeping the events. The real SDK talks to it through POSTHOG_HOST. It also stands for
 * the private API's person deletion (POST /api/projects/<id>/persons/bulk_delete/, POSTHOG_APP_HOST), keeping each
 * request; `refuseDeletions` makes it answer 503 (PostHog down).
 */
export interface PostHogDoubleEvent {
  event: string;
  distinct_id: string;
  uuid?: string;
  timestamp?: string;
  properties: Record<string, unknown>;
}

/** A person deletion the double received: its path, Authorization header and JSON body. */
export interface PostHogDoubleDeletion {
  path: string;
  authorization: string | undefined;
  body: { distinct_ids?: string[]; delete_events?: boolean };
  answered: number;
}

export interface PostHogDouble {
  events: PostHogDoubleEvent[];
  deletions: PostHogDoubleDeletion[];
  /** answer person deletions with 503 while true */
  refuseDeletions: boolean;
  apiKeys: string[];
  env: Record<string, string>;
  /** resolves once at least n events arrived */
  received(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startPostHogDouble(): Promise<PostHogDouble> {
  const events: PostHogDoubleEvent[] = [];
  const deletions: PostHogDoubleDeletion[] = [];
  const apiKeys: string[] = [];
  const state = { refuseDeletions: false };
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
    if (req.method === 'POST' && /^\/api\/projects\/[^/]+\/persons\/bulk_delete\/$/.test(req.url ?? '')) {
      const answered = state.refuseDeletions ? 503 : 200;
      deletions.push({ path: req.url!, authorization: req.headers.authorization, body: JSON.parse(body.toString('utf8')), answered });
      res.writeHead(answered, { 'content-type': 'application/json' })
        .end(answered === 200 ? '{"persons_found":1,"persons_deleted":1,"events_queued_for_deletion":true,"recordings_queued_for_deletion":false}' : '{}');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    events,
    deletions,
    get refuseDeletions() { return state.refuseDeletions; },
    set refuseDeletions(v: boolean) { state.refuseDeletions = v; },
    apiKeys,
    env: {
      POSTHOG_API_KEY: 'phc_test_double', POSTHOG_HOST: `http://127.0.0.1:${port}`,
      POSTHOG_PERSONAL_API_KEY: 'phx_test_double', POSTHOG_PROJECT_ID: '4242',
    },
    received: (n) => new Promise<void>((resolve) => (events.length >= n ? resolve() : waiting.push({ n, resolve }))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
