import { register } from 'node:module';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
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
 * Cost (bench/README.md, issue 23): an unsampled request (9 in 10 by default) only asks the sampler; its context
 * is not made active, so no statement and no outgoing call of it gets a span. `@fastify/otel` and the incoming half
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
    sampler: await samplerOf(config.sampler),
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
  active = { sdk, endpoint: config.endpoint };
  return active;
}

/** The sampler OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG name (tracingConfig validated them; our default: parentbased_traceidratio 0.1). */
async function samplerOf({ name, ratio }: TracingConfig['sampler']): Promise<Sampler> {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = (await import('@opentelemetry/sdk-node')).tracing;
  const root = name.endsWith('always_on') ? new AlwaysOnSampler() : name.endsWith('always_off') ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(ratio);
  return name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root;
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
 * The span's context is made active for the rest of the request (hooks, handler, statements, log lines) only when
 * it is recorded.
 */
export async function traceRequests(fastify: FastifyInstance, _tracing: Tracing): Promise<void> {
  const tracer = trace.getTracer('omnizen-http');
  // declared up front: every request object keeps one shape, sampled or not
  fastify.decorateRequest(REQUEST_SPAN, null);
  fastify.decorateRequest(ERROR_RECORDED, false);
  fastify.addHook('onRequest', (req, _reply, done) => {
    const parent = req.headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, req.headers);
    const route = req.routeOptions.url;
    // no attributes before the sampler's answer: an unsampled request computes none
    const span = tracer.startSpan(route ? `${req.method} ${route}` : req.method, { kind: SpanKind.SERVER }, parent);
    if (!span.isRecording()) {
      done();
      return;
    }
    span.setAttributes({
      'http.request.method': req.method,
      'url.path': req.url.split('?', 1)[0],
      'omnizen.request_id': req.id,
      ...(route ? { 'http.route': route } : {}),
    });
    (req as Traced)[REQUEST_SPAN] = span;
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
  fastify.addHook('onResponse', (req, reply, done) => {
    endRequestSpan(req as Traced, reply.statusCode);
    done();
  });
  fastify.addHook('onRequestAbort', (req, done) => {
    endRequestSpan(req as Traced, undefined);
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
