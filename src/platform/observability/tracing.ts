import { register } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type HrTime, type SpanContext } from '@opentelemetry/api';
import type { IdGenerator, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { StatementSpans, StatementTarget } from '../database/sql.js';
import type { Job } from '../queue/jobs.js';
import { exceptionAttributes, type ExportWorkerOptions, type SpanBatch, type FromExportWorker, type SpanRecord, type StatementDescription, type StatementRecord, type ToExportWorker } from './span-export-worker.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import { tracingConfig, type TracingConfig } from '../config/config.js';
import type { tracing as sdkTracing } from '@opentelemetry/sdk-node';

type Sampler = sdkTracing.Sampler;

/**
 * Traces with OpenTelemetry, exported over OTLP, only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Off, nothing of
 * the SDK is even loaded (the SDK's imports below are dynamic) and no hook is added to the server: zero cost.
 *
 * Spans: every sampled HTTP request (a SERVER span made by our own Fastify hooks, `traceRequests`, named after
 * the route template), its PostgreSQL statements (a CLIENT span each, made by the database pools themselves,
 * `statementSpans`, named after the repository operation that sent it) and outgoing `http`/`https` calls
 * (`instrumentation-http`, incoming requests left to our hooks). That instrumentation patches modules as they load,
 * so `startTracing` must run before the application is imported: main.ts starts it, then imports the application
 * dynamically. The request id is the span's `omnizen.request_id` attribute, and every log line written while a
 * span is active carries `traceId`.
 *
 * Where spans are made: a sampled request's span and its statements' are plain records on the main thread (ids,
 * times, a few fields; a statement's text and names are sent once per call site and then referred to by number),
 * queued and posted in batches to a worker thread (`SpanQueue`, span-export-worker.ts), which builds the spans and
 * exports them with the SDK's batch processor and OTLP exporter. The SDK on the main thread only propagates context
 * and makes the outgoing calls' spans, which are handed over the same way (`forwardTo`). With the SDK's span objects,
 * processor and serializer on the main thread, a tenth of the requests sampled cost about 11 % of the app's CPU
 * (20 process pairs, tracing alone: on ÷ off 0.893, CPU ×1.128); with the worker, metrics and tracing together give
 * 0.980 and 0.959 (×1.041–1.046; bench/README.md, second session of 2026-12-04).
 *
 * Cost (bench/README.md, issue 23): an unsampled request (9 in 10 by default) runs one hook that draws and returns
 * (`requestSampling`): no span, no ids, no SDK call; its context is not made active, so no statement and no outgoing
 * call of it gets a span, and no listener or hook waits for its end. `@fastify/otel` and the incoming half
 * of `instrumentation-http` did per-request work for every request (URL parsing, attributes, event-emitter binding,
 * two spans) whether sampled or not; `instrumentation-pg` wrapped every query and pool checkout of every request
 * (~4 µs a request, profiled) and gave BEGIN and COMMIT spans of their own. The context manager is an
 * AsyncLocalStorage: on Node 20 an active one installed promise hooks that slowed every await of the process,
 * sampled or not; on Node 24, the runtime we require, it is carried by the async context frame and costs next to
 * nothing (bench/README.md measures it alone).
 */
export interface Tracing {
  sdk: NodeSDK;
  endpoint: string;
  /** which requests get a span: decided in the request hook, before anything of the SDK runs (`requestSampling`) */
  sampling: RequestSampling;
  /** where ended spans go, as plain records: the export worker (span-export-worker.ts) */
  spans: SpanQueue;
  /** random W3C trace and span ids: the SDK's own generator */
  ids: IdGenerator;
}

/**
 * The configured sampler's decision for a request, taken by our request hook so that an unsampled request costs one
 * comparison: no span object, no ids, no sampler call, no SDK metrics (a span the SDK drops still cost all of those,
 * ~7 µs a request, profiled). `newTrace`: whether a request that starts a trace is recorded (always_on, always_off,
 * or a draw at the ratio: a root's trace id is random, so the SDK's trace-id ratio and a random draw sample the
 * same share); `followsParent`: with parentbased_* a caller's traceparent decides, by its sampled flag. The SDK's
 * own sampler then records every span it is asked for that the request's decision allows (`sdkSamplerOf`): the
 * request span only exists when sampled, its statements and outgoing calls only under it.
 */
export interface RequestSampling {
  newTrace: () => boolean;
  followsParent: boolean;
}

/** The request-level decision OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG describe (tracingConfig validated them). */
export function requestSampling({ name, ratio }: TracingConfig['sampler'], random: () => number = Math.random): RequestSampling {
  const root = name.replace(/^parentbased_/, '');
  return {
    newTrace: root === 'always_on' ? () => true : root === 'always_off' ? () => false : () => random() < ratio,
    followsParent: name.startsWith('parentbased_'),
  };
}

let active: Tracing | null = null;

/** The ES modules the instrumentations patch (import-in-the-middle wraps only these; wrapping every module breaks some of Nest's re-exports). */
const HOOKED_MODULES = ['http', 'https', 'node:http', 'node:https'];

/** Registers the loader hook that lets the instrumentations patch ES-module imports; call before the application is imported. */
export function registerInstrumentationHook(): void {
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: HOOKED_MODULES } });
}

/** The running tracing, if `startTracing` started it. */
export function activeTracing(): Tracing | null {
  return active;
}

/** Starts the OpenTelemetry SDK when OTEL_EXPORTER_OTLP_ENDPOINT is set (once per process); null otherwise. */
export async function startTracing(env: Record<string, string | undefined> = process.env): Promise<Tracing | null> {
  const config = tracingConfig(env);
  if (!config) return null;
  if (active) return active;
  const [{ NodeSDK }, { RandomIdGenerator }, { HttpInstrumentation }, spans] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/instrumentation-http'),
    SpanQueue.start({ spanExport: true, url: `${config.endpoint}/v1/traces`, protocol: config.protocol, serviceName: config.serviceName }),
  ]);
  const sdk = new NodeSDK({
    serviceName: config.serviceName,
    // the SDK's own spans (outgoing calls) are handed to the export worker as records too: no exporter here
    spanProcessors: [forwardTo(spans)],
    sampler: await sdkSamplerOf(config.sampler),
    // metrics are Prometheus' (/metrics), logs are pino's: only traces go over OTLP
    metricReaders: [],
    instrumentations: [
      // incoming requests are traceRequests' (below); outgoing calls only inside a sampled request
      new HttpInstrumentation({ disableIncomingRequestInstrumentation: true, requireParentforOutgoingSpans: true }),
    ],
  });
  sdk.start();
  // statements: spans recorded by the pools themselves (statementSpans), only inside a sampled request; the pools'
  // module is imported here, after the instrumentation hook, as the application's modules are
  (await import('../database/sql.js')).traceStatements(statementSpans(spans));
  active = { sdk, endpoint: config.endpoint, sampling: requestSampling(config.sampler), spans, ids: new RandomIdGenerator() };
  return active;
}

/**
 * The SDK's sampler: the request hook already applied OTEL_TRACES_SAMPLER's root decision (`requestSampling`), so
 * every root span the SDK is asked for is recorded; with parentbased_* a span under a parent follows the parent's
 * sampled flag, as the specification's parent-based sampler does.
 */
async function sdkSamplerOf({ name }: TracingConfig['sampler']): Promise<Sampler> {
  const { AlwaysOnSampler, ParentBasedSampler } = (await import('@opentelemetry/sdk-node')).tracing;
  return name.startsWith('parentbased_') ? new ParentBasedSampler({ root: new AlwaysOnSampler() }) : new AlwaysOnSampler();
}

/** Exports every span ended so far (the SDK's, then the worker's queue); the tests' and shutdown's. */
export async function flushTracing(): Promise<void> {
  const tracing = active;
  if (!tracing) return;
  const provider = trace.getTracerProvider() as unknown as { getDelegate?: () => { forceFlush?: () => Promise<void> } };
  await provider.getDelegate?.().forceFlush?.();
  await tracing.spans.flush();
}

/** Flushes the spans not yet exported and stops the SDK and the export worker (at shutdown). */
export async function stopTracing(): Promise<void> {
  const tracing = active;
  active = null;
  if (!tracing) return;
  (await import('../database/sql.js')).traceStatements(undefined);
  await tracing.sdk.shutdown(); // its spans are forwarded to the queue on the way
  await tracing.spans.shutdown();
}

/**
 * The ended spans on their way to the export worker: records are queued and posted in batches (at 128, or a second
 * after the first of a batch), so a sampled request costs the main thread two small objects and a share of one
 * structured clone. The worker queues and exports them with the SDK's batch processor (span-export-worker.ts).
 */
export class SpanQueue {
  private batch: SpanBatch = { statements: [], spans: [], statementSpans: [] };
  private timer: NodeJS.Timeout | undefined;
  /** statement descriptions by database, operation and text: their numbers, in the order the worker was sent them */
  private readonly statementNumbers = new Map<StatementTarget, Map<string, Map<string | undefined, number>>>();
  private statementCount = 0;
  private nextId = 0;
  private readonly waiting = new Map<number, () => void>();
  private stopped = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: FromExportWorker) => {
      if ('done' in message) this.answered(message.done);
    });
    // a worker that stopped loses the spans it held, never the process: nobody waits for it any longer
    worker.on('error', (err) => process.emitWarning(`tracing: the span export worker failed: ${err.message}`));
    worker.on('exit', () => {
      this.stopped = true;
      this.post(); // drops what was queued
      for (const id of [...this.waiting.keys()]) this.answered(id);
    });
  }

  /** Starts the worker and waits until it is ready to export. */
  static async start(options: ExportWorkerOptions): Promise<SpanQueue> {
    // the worker's source next to this file: .ts when run from source (tests, benchmarks), .js once built
    const worker = new Worker(new URL(`./span-export-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url), { workerData: options });
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', () => {
        worker.off('error', reject);
        resolve();
      });
    });
    // it keeps the process alive only while a flush or the shutdown waits for it (ask)
    worker.unref();
    return new SpanQueue(worker);
  }

  push(record: SpanRecord): void {
    if (this.stopped) return;
    this.batch.spans.push(record);
    this.posted();
  }

  /** spans waiting to be posted to the worker: never more than a batch, none once the worker stopped */
  get queued(): number {
    return this.batch.spans.length + this.batch.statementSpans.length;
  }

  /** The number of a statement's description: made and sent with the next batch the first time, then only used. */
  statement(text: string | undefined, operation: string, target: StatementTarget): number {
    let byOperation = this.statementNumbers.get(target);
    if (!byOperation) this.statementNumbers.set(target, (byOperation = new Map()));
    let byText = byOperation.get(operation);
    if (!byText) byOperation.set(operation, (byText = new Map()));
    let statement = byText.get(text);
    if (statement === undefined) {
      byText.set(text, (statement = this.statementCount++));
      this.batch.statements.push({ operation, text, database: target.database, host: target.host, port: target.port } satisfies StatementDescription);
    }
    return statement;
  }

  pushStatement(record: StatementRecord): void {
    if (this.stopped) return;
    this.batch.statementSpans.push(record);
    this.posted();
  }

  /** at 128 spans queued it posts; otherwise a second after the first span of the batch */
  private posted(): void {
    if (this.queued >= 128) this.post();
    else this.timer ??= setTimeout(() => this.post(), 1000).unref();
  }

  /** Posts what is queued and waits until the worker exported everything it holds. */
  flush(): Promise<void> {
    return this.ask((id) => ({ flush: id }));
  }

  /** Flushes and ends the worker. */
  async shutdown(): Promise<void> {
    await this.ask((id) => ({ shutdown: id }));
    await this.worker.terminate();
  }

  private post(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queued === 0) return;
    const batch = this.batch;
    this.batch = { statements: [], spans: [], statementSpans: [] };
    // a stopped worker's batch is dropped, not kept growing for the rest of the process's life
    if (!this.stopped) this.worker.postMessage(batch satisfies ToExportWorker);
  }

  private ask(message: (id: number) => ToExportWorker): Promise<void> {
    this.post();
    if (this.stopped) return Promise.resolve();
    const id = this.nextId++;
    this.worker.ref();
    return new Promise<void>((resolve) => {
      this.waiting.set(id, resolve);
      this.worker.postMessage(message(id));
    });
  }

  private answered(id: number): void {
    this.waiting.get(id)?.();
    this.waiting.delete(id);
    if (this.waiting.size === 0) this.worker.unref();
  }
}

/** epoch milliseconds, with the monotonic clock's resolution (as the SDK times spans) */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The SDK's spans (outgoing calls under a sampled request) become records for the export worker, as ours are. */
function forwardTo(spans: SpanQueue): SpanProcessor {
  const ms = ([seconds, nanos]: HrTime) => seconds * 1000 + nanos / 1e6;
  return {
    onStart: () => undefined,
    onEnd: (span) => {
      const { traceId, spanId } = span.spanContext();
      const parent = span.parentSpanContext;
      spans.push({
        traceId, spanId, parentSpanId: parent?.spanId, parentRemote: parent?.isRemote === true, scope: span.instrumentationScope.name,
        name: span.name, kind: span.kind, start: ms(span.startTime), end: ms(span.endTime), attributes: span.attributes,
        status: span.status.code, message: span.status.message,
        events: span.events.map((e) => ({ name: e.name, time: ms(e.time), attributes: e.attributes ?? {} })),
      });
    },
    forceFlush: async () => undefined,
    shutdown: async () => undefined,
  };
}

/** The span context of the active context when it is a sampled one (a sampled request's, an outgoing call's). */
function sampledParent(): SpanContext | undefined {
  const parent = trace.getSpanContext(context.active());
  return parent && (parent.traceFlags & TraceFlags.SAMPLED) !== 0 ? parent : undefined;
}

/**
 * A CLIENT span per statement a pool sends in a transaction begun inside a sampled span (a sampled request's; asked
 * once per transaction), with the database semantic conventions' attributes and the repository operation that sent
 * it (`omnizen.db.operation`, the label of omnizen_db_query_duration_seconds); nothing at all outside one. BEGIN and
 * COMMIT get none: their time is the request's. The statement's text only when its values travel apart from it
 * (the pool says so). Recorded as plain data for the export worker.
 */
function statementSpans(spans: SpanQueue): StatementSpans {
  return {
    recording: () => sampledParent() !== undefined,
    wrap: (send, text, operation, target) => {
      const parent = sampledParent();
      if (!parent) return send();
      const start = now();
      return send().then(
        (result) => {
          spans.pushStatement({ traceId: parent.traceId, parentSpanId: parent.spanId, statement: spans.statement(text, operation, target), start, end: now(), error: undefined });
          return result;
        },
        (err: Error & { code?: string }) => {
          const end = now();
          spans.pushStatement({
            traceId: parent.traceId, parentSpanId: parent.spanId, statement: spans.statement(text, operation, target), start, end,
            error: { code: err.code, type: err.code ?? err.name, message: err.message, stack: err.stack, time: end },
          });
          throw err;
        },
      );
    },
  };
}

/** The event Span.recordException adds: the error's code (or name), message and stack. */
function exceptionEvent(err: Error & { code?: unknown }): SpanRecord['events'][number] {
  return { name: 'exception', time: now(), attributes: exceptionAttributes({ type: err.code ? String(err.code) : err.name, message: err.message, stack: err.stack }) };
}

const REQUEST_SPAN = Symbol('omnizen.requestSpan');
type Traced = FastifyRequest & { [REQUEST_SPAN]: SpanRecord | null };

/**
 * A SERVER span for every sampled request of every route (bootstrap registers the hooks before any route exists),
 * continuing the caller's W3C trace context when it sends one. Named `METHOD /route/template` with `http.route`
 * (the template, never the raw path: ids stay out of span names), the method, the status and the request id.
 * Only a sampled request does any of it: its span context is made active for the rest of the request (hooks,
 * handler, statements, outgoing calls, log lines), and its record ends when the response closes (finished: its
 * status; the client gone first: `omnizen.aborted`) and goes to the export worker. An unsampled request runs one
 * hook (onRequest) that draws and returns.
 */
export async function traceRequests(fastify: FastifyInstance, { sampling, spans, ids }: Tracing): Promise<void> {
  // declared up front: every request object keeps one shape, sampled or not
  fastify.decorateRequest(REQUEST_SPAN, null);
  fastify.addHook('onRequest', (req, reply, done) => {
    const parent = req.headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, req.headers);
    const caller = trace.getSpanContext(parent);
    // under parentbased_* a valid traceparent decides by its flag; otherwise (no caller, an invalid one) a new draw
    if (!(sampling.followsParent && caller ? (caller.traceFlags & TraceFlags.SAMPLED) !== 0 : sampling.newTrace())) return done();
    const route = req.routeOptions.url;
    const record: SpanRecord = {
      traceId: caller?.traceId ?? ids.generateTraceId(), spanId: ids.generateSpanId(), parentSpanId: caller?.spanId, parentRemote: caller !== undefined,
      scope: 'omnizen-http', name: route ? `${req.method} ${route}` : req.method, kind: SpanKind.SERVER, start: now(), end: 0,
      attributes: {
        'http.request.method': req.method,
        'url.path': req.url.split('?', 1)[0],
        'omnizen.request_id': req.id,
        ...(route ? { 'http.route': route } : {}),
      },
      status: SpanStatusCode.UNSET, message: undefined, events: [],
    };
    (req as Traced)[REQUEST_SPAN] = record;
    const res = reply.raw;
    // after 'finish' when the response was sent; alone when the connection closed first
    res.once('close', () => endRequestSpan(req as Traced, spans, res.writableFinished ? res.statusCode : undefined));
    const span = trace.wrapSpanContext({ traceId: record.traceId, spanId: record.spanId, traceFlags: TraceFlags.SAMPLED, traceState: caller?.traceState });
    context.with(trace.setSpan(parent, span), done);
  });
  fastify.addHook('onError', (req, _reply, error, done) => {
    const record = (req as Traced)[REQUEST_SPAN];
    if (record) {
      record.events.push(exceptionEvent(error));
      record.status = SpanStatusCode.ERROR;
      record.message = error.message;
    }
    done();
  });
}

function endRequestSpan(req: Traced, spans: SpanQueue, status: number | undefined): void {
  const record = req[REQUEST_SPAN];
  if (!record) return;
  req[REQUEST_SPAN] = null;
  if (status === undefined) record.attributes['omnizen.aborted'] = true;
  else {
    record.attributes['http.response.status_code'] = status;
    // an error (onError's description, if it recorded one, stays)
    if (status >= 500) record.status = SpanStatusCode.ERROR;
  }
  record.end = now();
  spans.push(record);
}

const TRACE_PARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/**
 * A CONSUMER span around a job's handler (JobRegistry.run, in-process or in Bull's worker), in the trace of the span it
 * was enqueued under (`job.traceParent`: a sampled request's or job's, stored with the outbox row), so that a request's
 * trace shows the work it left to jobs; the handler's statements get spans under it. A job enqueued under no sampled
 * span (tracing off, an unsampled request, a scheduled task), or with tracing off here, runs as it is: no span. Each try
 * is a span of its own (a failed one marked as an error, with the exception).
 */
export async function traceJob<T>(job: Pick<Job, 'id' | 'topic' | 'traceParent'>, run: () => Promise<T>): Promise<T> {
  const tracing = active;
  const parent = tracing && job.traceParent ? TRACE_PARENT.exec(job.traceParent) : null;
  if (!tracing || !parent) return run();
  const [, traceId, parentSpanId] = parent;
  const record: SpanRecord = {
    traceId, spanId: tracing.ids.generateSpanId(), parentSpanId, parentRemote: false,
    scope: 'omnizen-jobs', name: `job ${job.topic}`, kind: SpanKind.CONSUMER, start: now(), end: 0,
    attributes: { 'messaging.operation.type': 'process', 'messaging.destination.name': job.topic, 'messaging.message.id': job.id },
    status: SpanStatusCode.UNSET, message: undefined, events: [],
  };
  const span = trace.wrapSpanContext({ traceId, spanId: record.spanId, traceFlags: TraceFlags.SAMPLED });
  try {
    return await context.with(trace.setSpan(ROOT_CONTEXT, span), run);
  } catch (err) {
    record.events.push(exceptionEvent(err as Error));
    record.status = SpanStatusCode.ERROR;
    record.message = (err as Error).message;
    throw err;
  } finally {
    record.end = now();
    tracing.spans.push(record);
  }
}

/** pino's mixin while tracing: the trace id of the active span on every log line (nothing when no span is active). */
export function traceIdMixin(): Record<string, string> {
  const span = trace.getActiveSpan();
  return span ? { traceId: span.spanContext().traceId } : {};
}
