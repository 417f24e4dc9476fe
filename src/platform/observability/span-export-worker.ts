import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { IExporterMetricsHelper } from '@opentelemetry/otlp-transformer';
import type { Resource } from '@opentelemetry/resources';

/**
 * The worker thread that turns the main thread's span records into OpenTelemetry spans and exports them over OTLP
 * (tracing.ts starts it). The main thread keeps no span object, no span processor and no serializer of its own:
 * a sampled request's span and its statements' are plain records (`SpanRecord`), handed over in batches; here the
 * SDK's batch processor queues them (2,048 at most, the rest dropped) and its exporter sends them. Over protobuf (the
 * default protocol) a statement's span is written from bytes made once per statement description (`serializeSpans`),
 * every other span by the SDK's serializer.
 *
 * Why (issue 23, bench/README.md): recording a tenth of the requests with the SDK on the main thread cost the app
 * 5–15 % of its CPU, several times the spans' own code; the rest was every package's code a little slower.
 *
 * Run by Node itself (no loader of ours under Jest): only type imports and erasable TypeScript, packages only.
 */

/** One ended span, as plain data: what crosses to the worker (structured clone). Times in epoch milliseconds. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** the parent's span id (a caller's, when `parentRemote`); undefined for a root */
  parentSpanId: string | undefined;
  parentRemote: boolean;
  /** the instrumentation scope's name (`omnizen-http`, `omnizen-postgres`, an instrumentation's) */
  scope: string;
  name: string;
  /** SpanKind */
  kind: number;
  start: number;
  end: number;
  attributes: Attributes;
  /** SpanStatusCode, and its description */
  status: number;
  message: string | undefined;
  events: { name: string; time: number; attributes: Attributes }[];
}

/**
 * What a statement's span says besides its times, the same for every statement sent from one call site to one
 * database: numbered by the main thread in the order it first sent them, and sent once (SpanBatch.statements).
 */
export interface StatementDescription {
  /** the repository operation that sent it (`omnizen.db.operation`) */
  operation: string;
  /** the statement's text, only when its values travel apart from it */
  text: string | undefined;
  database: string;
  host: string;
  port: number;
}

/** A statement's span, as small as it can be: its request's ids, its description's number, its times, its error. */
export interface StatementRecord {
  traceId: string;
  parentSpanId: string;
  statement: number;
  start: number;
  end: number;
  error: { code: string | undefined; type: string; message: string; stack: string | undefined; time: number } | undefined;
}

/** The spans ended since the last batch, and the statement descriptions first used in them. */
export interface SpanBatch {
  statements: StatementDescription[];
  spans: SpanRecord[];
  statementSpans: StatementRecord[];
}

export interface ExportWorkerOptions {
  /** marks this worker's data: the module does nothing when imported anywhere else */
  spanExport: true;
  url: string;
  protocol: 'http/protobuf' | 'http/json';
  serviceName: string;
}

/** main → worker: a batch, or a flush/shutdown asking for an answer with the same id */
export type ToExportWorker = SpanBatch | { flush: number } | { shutdown: number };
/** worker → main: ready once set up, then the ids of the flushes and shutdowns done */
export type FromExportWorker = { ready: true } | { done: number };

/** Epoch milliseconds → OpenTelemetry's [seconds, nanoseconds]. */
export function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return nanos < 1e9 ? [seconds, nanos] : [seconds + 1, nanos - 1e9];
}

/** A statement description's span name and attributes (the database semantic conventions'). */
export interface DescribedStatement {
  name: string;
  attributes: Attributes;
}

/** Made once per statement description, when the main thread first sends it. */
export function describeStatement(d: StatementDescription): DescribedStatement {
  const verb = d.text === undefined ? undefined : /^\s*([a-z]+)/i.exec(d.text)?.[1]?.toUpperCase();
  return {
    name: verb ? `${verb} ${d.operation}` : d.operation,
    attributes: {
      'db.system.name': 'postgresql', 'db.namespace': d.database, 'server.address': d.host, 'server.port': d.port,
      'omnizen.db.operation': d.operation, ...(verb ? { 'db.operation.name': verb, 'db.query.text': d.text } : {}),
    },
  };
}

async function run(port: MessagePort, options: ExportWorkerOptions): Promise<void> {
  const [{ BatchSpanProcessor, RandomIdGenerator }, resources, exporter] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    options.protocol === 'http/json' ? jsonExporter(options.url) : protobufExporter(options.url),
  ]);
  // the resource NodeSDK would give: its defaults, the environment's, the process's and the host's, the service name
  const resource = resources.defaultResource()
    .merge(resources.detectResources({ detectors: [resources.envDetector, resources.processDetector, resources.hostDetector] }))
    .merge(resources.resourceFromAttributes({ 'service.name': options.serviceName }));
  const processor = new BatchSpanProcessor({ exporter });
  const ids = new RandomIdGenerator();
  const statements: { description: DescribedStatement; encoded: EncodedStatement | undefined }[] = [];
  // protobuf: a statement that succeeded is encoded from its description's bytes (StatementSpan), any other span by the SDK's serializer
  const encoding = options.protocol === 'http/protobuf' ? statementEncoding(resource) : undefined;
  port.on('message', (message: ToExportWorker) => {
    if ('spans' in message) {
      for (const d of message.statements) {
        const description = describeStatement(d);
        statements.push({ description, encoded: encoding?.describe(description) });
      }
      for (const record of message.spans) processor.onEnd(readableSpan(record, resource));
      for (const record of message.statementSpans) {
        const { description, encoded } = statements[record.statement];
        const spanId = ids.generateSpanId();
        // the batch processor reads a span's spanContext() and resource; the serializer tells StatementSpans apart
        processor.onEnd(encoded && !record.error
          ? (new StatementSpan(record, spanId, encoded) as unknown as ReadableSpan)
          : readableSpan(statementSpan(record, spanId, description), resource));
      }
    } else if ('flush' in message) {
      // an export that failed (the collector down) rejects: its spans are lost, not the worker (an unhandled rejection ends it)
      void processor.forceFlush().catch(() => undefined).then(() => port.postMessage({ done: message.flush } satisfies FromExportWorker));
    } else {
      void processor.shutdown().catch(() => undefined).then(() => port.postMessage({ done: message.shutdown } satisfies FromExportWorker));
    }
  });
  port.postMessage({ ready: true } satisfies FromExportWorker);
}

/** A record as the SDK's ReadableSpan, for its batch processor and serializers. */
export function readableSpan(r: SpanRecord, resource: Resource): ReadableSpan {
  const context = { traceId: r.traceId, spanId: r.spanId, traceFlags: 1 };
  return {
    name: r.name,
    kind: r.kind,
    spanContext: () => context,
    parentSpanContext: r.parentSpanId === undefined ? undefined : { traceId: r.traceId, spanId: r.parentSpanId, traceFlags: 1, isRemote: r.parentRemote },
    startTime: hrTime(r.start),
    endTime: hrTime(r.end),
    duration: hrTime(r.end - r.start),
    status: r.message === undefined ? { code: r.status } : { code: r.status, message: r.message },
    attributes: r.attributes,
    links: [],
    events: r.events.map((e) => ({ name: e.name, time: hrTime(e.time), attributes: e.attributes, droppedAttributesCount: 0 })),
    ended: true,
    resource,
    instrumentationScope: scopeOf(r.scope),
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/**
 * One object per instrumentation scope: the SDK's serializer groups a resource's spans by their scope object, so a new
 * object per span gave every span a ScopeSpans of its own (23 more bytes a span).
 */
const scopes = new Map<string, ReadableSpan['instrumentationScope']>();
function scopeOf(name: string): ReadableSpan['instrumentationScope'] {
  let scope = scopes.get(name);
  if (!scope) scopes.set(name, (scope = { name }));
  return scope;
}

/** A statement's span as a record: its description's name and attributes, its error's status, attribute and event. */
export function statementSpan(r: StatementRecord, spanId: string, { name, attributes }: DescribedStatement): SpanRecord {
  const failed = r.error;
  return {
    traceId: r.traceId, spanId, parentSpanId: r.parentSpanId, parentRemote: false, scope: STATEMENT_SCOPE,
    name, kind: 2, start: r.start, end: r.end, // SpanKind.CLIENT (OTLP's 3)
    attributes: failed?.code ? { ...attributes, 'db.response.status_code': failed.code } : attributes,
    status: failed ? 2 : 0, message: failed?.message, // SpanStatusCode.ERROR, UNSET
    events: failed ? [{ name: 'exception', time: failed.time, attributes: exceptionAttributes(failed) }] : [],
  };
}

const STATEMENT_SCOPE = 'omnizen-postgres';

async function jsonExporter(url: string): Promise<SpanExporter> {
  return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ url });
}

/**
 * OTLP/HTTP with protobuf, as `@opentelemetry/exporter-trace-otlp-proto` would send it (the same transport, retries,
 * headers and timeouts from the environment), with a serializer that writes the statements' spans from bytes made
 * once per statement description (`serializeSpans`).
 */
async function protobufExporter(url: string): Promise<SpanExporter> {
  const [base, http, { ProtobufTraceSerializer, TraceExporterMetricsHelper }] = await Promise.all([
    import('@opentelemetry/otlp-exporter-base'),
    import('@opentelemetry/otlp-exporter-base/node-http'),
    import('@opentelemetry/otlp-transformer'),
  ]);
  const serializer = {
    serializeRequest: (spans: (ReadableSpan | StatementSpan)[]) => serializeSpans(spans, (others) => ProtobufTraceSerializer.serializeRequest(others)),
    deserializeResponse: (data: Uint8Array) => ProtobufTraceSerializer.deserializeResponse(data),
  };
  const delegate = http.createOtlpHttpExportDelegate(
    http.convertLegacyHttpOptions({ url }, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
    serializer, 'otlp_http_span_exporter', TraceExporterMetricsHelper as IExporterMetricsHelper<(ReadableSpan | StatementSpan)[]>, undefined,
  );
  return new base.OTLPExporterBase(delegate) as unknown as SpanExporter;
}

/**
 * The protobuf of an export request (ExportTraceServiceRequest) for these spans: the SDK's serializer for every span
 * but the statements' StatementSpans, followed by one ResourceSpans of those. Concatenated protobuf messages are one
 * message whose repeated fields are joined, so the request holds both; a collector reads two ResourceSpans with the
 * same resource, as from two batches.
 *
 * Why: a statement's span differs from the next one of its call site only in its ids and times, and its text is most
 * of its bytes. The SDK's serializer measured the text (UTF-8) and wrote it again for each span: with every request
 * sampled, the worker spent ~40 µs a request serializing, most of it on statements (bench/README.md, issue 23).
 */
export function serializeSpans(spans: readonly (ReadableSpan | StatementSpan)[], others: (spans: ReadableSpan[]) => Uint8Array | undefined): Uint8Array | undefined {
  const sdk: ReadableSpan[] = [];
  const ours: StatementSpan[] = [];
  for (const s of spans) {
    if (s instanceof StatementSpan) ours.push(s);
    else sdk.push(s);
  }
  const first = sdk.length > 0 ? others(sdk) : undefined;
  if (ours.length === 0) return first;
  const second = encodeStatementSpans(ours);
  if (!first) return second;
  const both = new Uint8Array(first.length + second.length);
  both.set(first);
  both.set(second, first.length);
  return both;
}

/** A statement's span, as its record and its description's bytes: what the batch processor holds until the export. */
export class StatementSpan {
  readonly record: StatementRecord;
  readonly spanId: string;
  readonly encoded: EncodedStatement;
  constructor(record: StatementRecord, spanId: string, encoded: EncodedStatement) {
    this.record = record;
    this.spanId = spanId;
    this.encoded = encoded;
  }
  /** what the batch processor waits for before an export (a resource's asynchronous attributes) */
  get resource(): Resource {
    return this.encoded.encoding.source;
  }

  /** what the batch processor reads of a span: it is sampled */
  spanContext(): { traceFlags: number } {
    return SAMPLED;
  }
}
const SAMPLED = { traceFlags: 1 };

/** A statement description's span, but for the ids and times: its bytes before the times and after them. */
export interface EncodedStatement {
  encoding: StatementEncoding;
  /** name (5) and kind (6) */
  middle: Uint8Array;
  /** attributes (9), dropped counts (10, 12, 14), status (15) and flags (16) */
  tail: Uint8Array;
  /** the Span message's length, the same for every span of this description */
  length: number;
}

interface StatementEncoding {
  source: Resource;
  /** ResourceSpans.resource (1) and the ScopeSpans' scope (1), written once */
  resource: Uint8Array;
  scope: Uint8Array;
  describe(d: DescribedStatement): EncodedStatement;
}

/** The fixed parts of every statement span, in the byte layout of the SDK's serializer (otlp-transformer's trace-serializer). */
export function statementEncoding(source: Resource): StatementEncoding {
  const resource = field(1, Buffer.concat([attributes(1, source.attributes), Buffer.from([0x10, 0])]));
  const scope = field(1, field(1, Buffer.from(STATEMENT_SCOPE)));
  const encoding: StatementEncoding = {
    source,
    resource,
    scope,
    describe: ({ name, attributes: attrs }) => {
      const middle = Buffer.concat([field(5, Buffer.from(name)), Buffer.from([0x30, 3])]); // kind CLIENT: SpanKind + 1
      const tail = Buffer.concat([
        attributes(9, attrs),
        Buffer.from([0x50, 0, 0x60, 0, 0x70, 0]), // dropped attributes, events, links: 0
        Buffer.from([0x7a, 2, 0x18, 0]), // status: code UNSET
        Buffer.from([0x85, 1, 0x01, 0x01, 0, 0]), // flags (fixed32): sampled, has is_remote, not remote
      ]);
      // trace id (2 + 16), span id (2 + 8), parent span id (2 + 8), start and end (1 + 8 each)
      return { encoding, middle, tail, length: 38 + middle.length + 18 + tail.length };
    },
  };
  return encoding;
}

/** One ResourceSpans (tag and length included) of statement spans; they share their encoding's resource and scope. */
function encodeStatementSpans(spans: readonly StatementSpan[]): Uint8Array {
  const { resource, scope } = spans[0].encoded.encoding;
  let spansLength = 0;
  for (const s of spans) spansLength += 1 + varintLength(s.encoded.length) + s.encoded.length;
  const scopeSpansLength = scope.length + spansLength;
  const resourceSpansLength = resource.length + 1 + varintLength(scopeSpansLength) + scopeSpansLength;
  const out = Buffer.allocUnsafe(1 + varintLength(resourceSpansLength) + resourceSpansLength);
  let pos = 0;
  out[pos++] = 0x0a; // ExportTraceServiceRequest.resource_spans (1)
  pos = writeVarint(out, pos, resourceSpansLength);
  pos = copy(out, pos, resource);
  out[pos++] = 0x12; // ResourceSpans.scope_spans (2)
  pos = writeVarint(out, pos, scopeSpansLength);
  pos = copy(out, pos, scope);
  for (const { record: r, spanId, encoded: e } of spans) {
    out[pos++] = 0x12; // ScopeSpans.spans (2)
    pos = writeVarint(out, pos, e.length);
    out[pos++] = 0x0a; // trace_id
    out[pos++] = 16;
    pos += out.write(r.traceId, pos, 16, 'hex');
    out[pos++] = 0x12; // span_id
    out[pos++] = 8;
    pos += out.write(spanId, pos, 8, 'hex');
    out[pos++] = 0x22; // parent_span_id
    out[pos++] = 8;
    pos += out.write(r.parentSpanId, pos, 8, 'hex');
    pos = copy(out, pos, e.middle);
    out[pos++] = 0x39; // start_time_unix_nano (fixed64)
    pos = out.writeBigUInt64LE(unixNanos(r.start), pos);
    out[pos++] = 0x41; // end_time_unix_nano (fixed64)
    pos = out.writeBigUInt64LE(unixNanos(r.end), pos);
    pos = copy(out, pos, e.tail);
  }
  return out;
}

/** Epoch milliseconds → nanoseconds, rounded as `hrTime` rounds them. */
function unixNanos(ms: number): bigint {
  const [seconds, nanos] = hrTime(ms);
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

function copy(out: Uint8Array, pos: number, bytes: Uint8Array): number {
  out.set(bytes, pos);
  return pos + bytes.length;
}

function varintLength(n: number): number {
  let length = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    length++;
  }
  return length;
}

function writeVarint(out: Uint8Array, pos: number, n: number): number {
  while (n > 0x7f) {
    out[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

function varint(n: number): Buffer {
  const out = Buffer.alloc(10);
  return out.subarray(0, writeVarint(out, 0, n));
}

/** A length-delimited field: its tag, its length, its bytes. */
function field(number: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

/** Attributes as repeated KeyValue in field `number`, each value an AnyValue as the SDK's serializer writes it. */
function attributes(number: number, attrs: Attributes): Buffer {
  return Buffer.concat(Object.entries(attrs).map(([key, value]) => field(number, Buffer.concat([field(1, Buffer.from(key)), field(2, anyValue(value))]))));
}

function anyValue(value: unknown): Buffer {
  if (typeof value === 'string') return field(1, Buffer.from(value));
  if (typeof value === 'boolean') return Buffer.from([0x10, value ? 1 : 0]);
  if (typeof value === 'number') {
    // int_value (3) for an integer in int64's range, as a varint of its two's complement; double_value (4) otherwise
    if (Number.isInteger(value) && value >= -(2 ** 63) && value < 2 ** 63) {
      const bytes = [0x18];
      for (let n = BigInt.asUintN(64, BigInt(value)); ; n >>= 7n) {
        if (n <= 0x7fn) {
          bytes.push(Number(n));
          return Buffer.from(bytes);
        }
        bytes.push(Number(n & 0x7fn) | 0x80);
      }
    }
    const double = Buffer.alloc(9, 0x21);
    double.writeDoubleLE(value, 1);
    return double;
  }
  if (value instanceof Uint8Array) return field(7, value);
  if (Array.isArray(value)) return field(5, Buffer.concat(value.map((item) => field(1, anyValue(item)))));
  if (typeof value === 'object' && value !== null) return field(6, attributes(1, value as Attributes));
  return Buffer.alloc(0); // undefined, null: an empty AnyValue, as the SDK writes them
}

/** The attributes of an `exception` event, as Span.recordException gives them. */
export function exceptionAttributes(e: { type: string; message: string; stack: string | undefined }): Attributes {
  return { 'exception.type': e.type, 'exception.message': e.message, ...(e.stack ? { 'exception.stacktrace': e.stack } : {}) };
}

if (parentPort && (workerData as ExportWorkerOptions | undefined)?.spanExport === true) void run(parentPort, workerData as ExportWorkerOptions);
