import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

/**
 * The worker thread that turns the main thread's span records into OpenTelemetry spans and exports them over OTLP
 * (tracing.ts starts it). The main thread keeps no span object, no span processor and no serializer of its own:
 * a sampled request's span and its statements' are plain records (`SpanRecord`), handed over in batches; here the
 * SDK's batch processor queues them (2,048 at most, the rest dropped) and its exporter sends them.
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

/** A statement description's span name and attributes (the database semantic conventions'), made once. */
function describe(d: StatementDescription): { name: string; attributes: Attributes } {
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
  const [{ BatchSpanProcessor, RandomIdGenerator }, resources, exporterModule] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    options.protocol === 'http/json' ? import('@opentelemetry/exporter-trace-otlp-http') : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  // the resource NodeSDK would give: its defaults, the environment's, the process's and the host's, the service name
  const resource = resources.defaultResource()
    .merge(resources.detectResources({ detectors: [resources.envDetector, resources.processDetector, resources.hostDetector] }))
    .merge(resources.resourceFromAttributes({ 'service.name': options.serviceName }));
  const exporter: SpanExporter = new exporterModule.OTLPTraceExporter({ url: options.url });
  const processor = new BatchSpanProcessor({ exporter });
  const span = (r: SpanRecord): ReadableSpan => {
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
      instrumentationScope: { name: r.scope },
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
  };
  const ids = new RandomIdGenerator();
  const statements: { name: string; attributes: Attributes }[] = [];
  const statementSpan = (r: StatementRecord): SpanRecord => {
    const { name, attributes } = statements[r.statement];
    const failed = r.error;
    return {
      traceId: r.traceId, spanId: ids.generateSpanId(), parentSpanId: r.parentSpanId, parentRemote: false, scope: 'omnizen-postgres',
      name, kind: 2, start: r.start, end: r.end, // SpanKind.CLIENT (OTLP's 3)
      attributes: failed?.code ? { ...attributes, 'db.response.status_code': failed.code } : attributes,
      status: failed ? 2 : 0, message: failed?.message, // SpanStatusCode.ERROR, UNSET
      events: failed ? [{ name: 'exception', time: failed.time, attributes: exceptionAttributes(failed) }] : [],
    };
  };
  port.on('message', (message: ToExportWorker) => {
    if ('spans' in message) {
      for (const d of message.statements) statements.push(describe(d));
      for (const record of message.spans) processor.onEnd(span(record));
      for (const record of message.statementSpans) processor.onEnd(span(statementSpan(record)));
    } else if ('flush' in message) {
      void processor.forceFlush().finally(() => port.postMessage({ done: message.flush } satisfies FromExportWorker));
    } else {
      void processor.shutdown().finally(() => port.postMessage({ done: message.shutdown } satisfies FromExportWorker));
    }
  });
  port.postMessage({ ready: true } satisfies FromExportWorker);
}

/** The attributes of an `exception` event, as Span.recordException gives them. */
export function exceptionAttributes(e: { type: string; message: string; stack: string | undefined }): Attributes {
  return { 'exception.type': e.type, 'exception.message': e.message, ...(e.stack ? { 'exception.stacktrace': e.stack } : {}) };
}

if (parentPort && (workerData as ExportWorkerOptions | undefined)?.spanExport === true) void run(parentPort, workerData as ExportWorkerOptions);
