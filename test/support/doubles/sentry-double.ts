import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * TEST DOUBLE of Sentry's ingestion: a local HTTP server on 127.0.0.1 behind a DSN
 * (`http://<public key>@127.0.0.1:<port>/<project>`) that accepts envelopes at `POST /api/<project>/envelope/`
 * (newline-delimited JSON: an envelope header, then item header / item payload pairs; gzip when the SDK compresses),
 * keeps every item and its raw text (so a test can search it for secrets), and answers 200 as Sentry does.
 */
export interface SentryEnvelopeItem {
  type: string;
  payload: Record<string, any>;
}

export interface SentryDouble {
  dsn: string;
  items: SentryEnvelopeItem[];
  /** every envelope as received, decompressed */
  raw: string[];
  /** resolves once an item of type `event` that `match` accepts has arrived */
  waitForEvent(match?: (event: Record<string, any>) => boolean): Promise<Record<string, any>>;
  close(): Promise<void>;
}

export async function startSentryDouble(project = '4242'): Promise<SentryDouble> {
  const waiters: { match: (e: Record<string, any>) => boolean; resolve: (e: Record<string, any>) => void }[] = [];
  const double = { items: [] as SentryEnvelopeItem[], raw: [] as string[] } as SentryDouble;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== `/api/${project}/envelope/`) return void res.writeHead(404).end();
      const body = Buffer.concat(chunks);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8');
      double.raw.push(text);
      const lines = text.split('\n').filter((l) => l.length > 0);
      for (let i = 1; i + 1 < lines.length; i += 2) {
        const item = { type: JSON.parse(lines[i]).type as string, payload: JSON.parse(lines[i + 1]) };
        double.items.push(item);
        if (item.type !== 'event') continue;
        for (const w of waiters.filter((w) => w.match(item.payload))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(item.payload);
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  double.dsn = `http://0123456789abcdef0123456789abcdef@127.0.0.1:${(server.address() as AddressInfo).port}/${project}`;
  double.waitForEvent = (match = () => true) => {
    const found = double.items.find((i) => i.type === 'event' && match(i.payload));
    return found ? Promise.resolve(found.payload) : new Promise((resolve) => waiters.push({ match, resolve }));
  };
  double.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return double;
}
