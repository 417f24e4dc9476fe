import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * TEST DOUBLE of an OpenTelemetry collector: a local HTTP server on 127.0.0.1 speaking OTLP/HTTP with JSON
 * encoding (OTEL_EXPORTER_OTLP_PROTOCOL=http/json): it accepts `POST /v1/traces` (ExportTraceServiceRequest as
 * JSON), keeps every span with its resource's attributes, its own and its events' flattened, and answers 200 `{}`
 * as a collector does. Anything else is answered 404 (another path) or 415 (another encoding).
 */
export interface CollectedSpan {
  service: string | undefined;
  /** the resource's attributes (service.name among them) */
  resource: Record<string, string | number | boolean | undefined>;
  scope: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  kind: number;
  /** OTLP status: code 0 unset, 1 ok, 2 error */
  status: { code?: number; message?: string };
  attributes: Record<string, string | number | boolean | undefined>;
  /** start and end, epoch milliseconds (from OTLP's nanoseconds) */
  startMs: number;
  endMs: number;
  events: { name: string; attributes: Record<string, string | number | boolean | undefined> }[];
}

export interface OtlpCollectorDouble {
  /** the base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT */
  url: string;
  spans: CollectedSpan[];
  /** resolves once a span `match` accepts has arrived */
  waitForSpan(match: (s: CollectedSpan) => boolean): Promise<CollectedSpan>;
  close(): Promise<void>;
}

interface AnyValue { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean }
interface KeyValue { key: string; value: AnyValue }
const flatten = (kvs: KeyValue[] = []) => Object.fromEntries(kvs.map(({ key, value }) =>
  [key, value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue ?? value.boolValue)]));

export async function startOtlpCollectorDouble(): Promise<OtlpCollectorDouble> {
  const waiters: { match: (s: CollectedSpan) => boolean; resolve: (s: CollectedSpan) => void }[] = [];
  const double = { spans: [] as CollectedSpan[] } as OtlpCollectorDouble;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      if (!String(req.headers['content-type']).startsWith('application/json')) return void res.writeHead(415).end();
      const body = JSON.parse(raw) as { resourceSpans: { resource?: { attributes?: KeyValue[] }; scopeSpans: { scope?: { name: string }; spans: any[] }[] }[] };
      for (const rs of body.resourceSpans ?? []) {
        const resource = flatten(rs.resource?.attributes);
        const service = resource['service.name'] as string | undefined;
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            const span: CollectedSpan = {
              service, resource, scope: ss.scope?.name ?? '', name: s.name, traceId: s.traceId, spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined, kind: s.kind, status: s.status ?? {}, attributes: flatten(s.attributes),
              startMs: Number(BigInt(s.startTimeUnixNano) / 1_000_000n), endMs: Number(BigInt(s.endTimeUnixNano) / 1_000_000n),
              events: (s.events ?? []).map((e: { name: string; attributes?: KeyValue[] }) => ({ name: e.name, attributes: flatten(e.attributes) })),
            };
            double.spans.push(span);
            for (const w of waiters.filter((w) => w.match(span))) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(span);
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  double.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  double.waitForSpan = (match) => {
    const found = double.spans.find(match);
    return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ match, resolve }));
  };
  double.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return double;
}
