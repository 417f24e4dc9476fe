import { register } from 'node:module';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Span, type Tracer } from '@opentelemetry/api';
import type { StatementSpans } from '../database/sql.js';
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
  const [{ NodeSDK }, { HttpInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-http'),
  ]);
  const url = `${config.endpoint}/v1/traces`;
  const traceExporter = config.protocol === 'http/json'
    ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ url })
    : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ url });
  const sdk = new NodeSDK({
    serviceName: config.serviceName,
    traceExporter,
    sampler: await sdkSamplerOf(config.sampler),
    // metrics are Prometheus' (/metrics), logs are pino's: only traces go over OTLP
    metricReaders: [],
    instrumentations: [
      // incoming requests are traceRequests' (below); outgoing calls only inside a sampled request
      new HttpInstrumentation({ disableIncomingRequestInstrumentation: true, requireParentforOutgoingSpans: true }),
    ],
  });
  sdk.start();
  // statements: spans made by the pools themselves (statementSpans), only inside a sampled request; the pools' module
  // is imported here, after the instrumentation hook, as the application's modules are
  (await import('../database/sql.js')).traceStatements(statementSpans(trace.getTracer('omnizen-postgres')));
  active = { sdk, endpoint: config.endpoint, sampling: requestSampling(config.sampler) };
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

/** Flushes the spans not yet exported and stops the SDK (at shutdown). */
export async function stopTracing(): Promise<void> {
  const tracing = active;
  active = null;
  if (tracing) (await import('../database/sql.js')).traceStatements(undefined);
  await tracing?.sdk.shutdown();
}

/**
 * A CLIENT span per statement a pool sends in a transaction begun inside a recorded span (a sampled request's, a
 * job's that has one; asked once per transaction), with the database semantic conventions' attributes and the
 * repository operation that sent it (`omnizen.db.operation`, the label of omnizen_db_query_duration_seconds);
 * nothing at all outside one. BEGIN and COMMIT get none: their time is the request's. The statement's text only
 * when its values travel apart from it (the pool says so).
 */
function statementSpans(tracer: Tracer): StatementSpans {
  return {
    recording: () => trace.getSpan(context.active())?.isRecording() === true,
    wrap: (send, text, name, target) => {
      const verb = text === undefined ? undefined : /^\s*([a-z]+)/i.exec(text)?.[1]?.toUpperCase();
      const span = tracer.startSpan(verb ? `${verb} ${name}` : name, {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system.name': 'postgresql', 'db.namespace': target.database, 'server.address': target.host, 'server.port': target.port,
          'omnizen.db.operation': name, ...(verb ? { 'db.operation.name': verb, 'db.query.text': text } : {}),
        },
      }, context.active());
      return send().then(
        (result) => {
          span.end();
          return result;
        },
        (err: Error & { code?: string }) => {
          span.recordException(err);
          span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
          if (err.code) span.setAttribute('db.response.status_code', err.code);
          span.end();
          throw err;
        },
      );
    },
  };
}

const REQUEST_SPAN = Symbol('omnizen.requestSpan');
const ERROR_RECORDED = Symbol('omnizen.requestSpanError');
type Traced = FastifyRequest & { [REQUEST_SPAN]: Span | null; [ERROR_RECORDED]: boolean };

/**
 * A SERVER span for every sampled request of every route (bootstrap registers the hooks before any route exists),
 * continuing the caller's W3C trace context when it sends one. Named `METHOD /route/template` with `http.route`
 * (the template, never the raw path: ids stay out of span names), the method, the status and the request id.
 * Only a sampled request does any of it: the span's context is made active for the rest of the request (hooks,
 * handler, statements, log lines), and the span ends when the response closes (finished: its status; the client
 * gone first: `omnizen.aborted`). An unsampled request runs one hook (onRequest) that draws and returns.
 */
export async function traceRequests(fastify: FastifyInstance, { sampling }: Tracing): Promise<void> {
  const tracer = trace.getTracer('omnizen-http');
  // declared up front: every request object keeps one shape, sampled or not
  fastify.decorateRequest(REQUEST_SPAN, null);
  fastify.decorateRequest(ERROR_RECORDED, false);
  fastify.addHook('onRequest', (req, reply, done) => {
    const parent = req.headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, req.headers);
    // under parentbased_* a valid traceparent decides by its flag; otherwise (no caller, an invalid one) a new draw
    const caller = sampling.followsParent ? trace.getSpanContext(parent) : undefined;
    if (!(caller ? (caller.traceFlags & TraceFlags.SAMPLED) !== 0 : sampling.newTrace())) return done();
    const route = req.routeOptions.url;
    const span = tracer.startSpan(route ? `${req.method} ${route}` : req.method, {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': req.method,
        'url.path': req.url.split('?', 1)[0],
        'omnizen.request_id': req.id,
        ...(route ? { 'http.route': route } : {}),
      },
    }, parent);
    (req as Traced)[REQUEST_SPAN] = span;
    const res = reply.raw;
    // after 'finish' when the response was sent; alone when the connection closed first
    res.once('close', () => endRequestSpan(req as Traced, res.writableFinished ? res.statusCode : undefined));
    context.with(trace.setSpan(parent, span), done);
  });
  fastify.addHook('onError', (req, _reply, error, done) => {
    const span = (req as Traced)[REQUEST_SPAN];
    if (span) {
      span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      (req as Traced)[ERROR_RECORDED] = true;
    }
    done();
  });
}

function endRequestSpan(req: Traced, status: number | undefined): void {
  const span = req[REQUEST_SPAN];
  if (!span) return;
  req[REQUEST_SPAN] = null;
  if (status === undefined) span.setAttribute('omnizen.aborted', true);
  else {
    span.setAttribute('http.response.status_code', status);
    // a bare ERROR would replace the description onError recorded
    if (status >= 500 && !req[ERROR_RECORDED]) span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/** pino's mixin while tracing: the trace id of the active span on every log line (nothing when no span is active). */
export function traceIdMixin(): Record<string, string> {
  const span = trace.getActiveSpan();
  return span ? { traceId: span.spanContext().traceId } : {};
}
