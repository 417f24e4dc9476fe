import { register } from 'node:module';
import { trace } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { FastifyOtelInstrumentation } from '@fastify/otel';
import { tracingConfig, type TracingConfig } from '../config/config.js';
import type { tracing as sdkTracing } from '@opentelemetry/sdk-node';

type Sampler = sdkTracing.Sampler;

/**
 * Traces with OpenTelemetry, exported over OTLP, only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Off, nothing of
 * the SDK is even loaded (the imports below are dynamic) and no hook is added to the server: zero cost.
 *
 * Spans: every HTTP request (Fastify's route, hooks and handler, by `@fastify/otel`, registered as a plugin by
 * `bootstrap`), incoming and outgoing HTTP (`instrumentation-http`) and PostgreSQL statements
 * (`instrumentation-pg`). The last two patch modules as they load, so `startTracing` must run before the
 * application is imported: main.ts starts it, then imports the application dynamically. The request id is the
 * span's `omnizen.request_id` attribute, and every log line written while a span is active carries `traceId`.
 */
export interface Tracing {
  sdk: NodeSDK;
  fastify: FastifyOtelInstrumentation;
  endpoint: string;
}

let active: Tracing | null = null;

/** The ES modules the instrumentations patch (import-in-the-middle wraps only these; wrapping every module breaks some of Nest's re-exports). */
const HOOKED_MODULES = ['pg', 'pg-pool', 'http', 'https', 'node:http', 'node:https'];

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
  const [{ NodeSDK }, { HttpInstrumentation }, { PgInstrumentation }, { FastifyOtelInstrumentation: FastifyOtel }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-pg'),
    import('@fastify/otel'),
  ]);
  const url = `${config.endpoint}/v1/traces`;
  const traceExporter = config.protocol === 'http/json'
    ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ url })
    : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ url });
  const fastify = new FastifyOtel({
    // the request span carries the request id (the x-request-id answered, and the logs' reqId)
    requestHook: (span, req) => span.setAttribute('omnizen.request_id', req.id),
    // a span per Fastify hook (cookie, CORS, security headers, ...) costs more than it tells: request and handler only
    instrumentHooks: false,
  });
  const sdk = new NodeSDK({
    serviceName: config.serviceName,
    traceExporter,
    sampler: await samplerOf(config.sampler),
    // metrics are Prometheus' (/metrics), logs are pino's: only traces go over OTLP
    metricReaders: [],
    instrumentations: [new HttpInstrumentation(), new PgInstrumentation(), fastify],
  });
  sdk.start();
  active = { sdk, fastify, endpoint: config.endpoint };
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
  await tracing?.sdk.shutdown();
}

/** A span for every request of every route (bootstrap registers this before any route exists). */
export async function traceRequests(fastify: FastifyInstance, tracing: Tracing): Promise<void> {
  await fastify.register(tracing.fastify.plugin());
}

/** pino's mixin while tracing: the trace id of the active span on every log line (nothing when no span is active). */
export function traceIdMixin(): Record<string, string> {
  const span = trace.getActiveSpan();
  return span ? { traceId: span.spanContext().traceId } : {};
}
