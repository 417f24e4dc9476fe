import type { DynamicModule } from '@nestjs/common';
import { NestFactory, Reflector } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { SwaggerModule } from '@nestjs/swagger';
import fastifyCookie from '@fastify/cookie';
import fastifyCors from '@fastify/cors';
import fastifyMultipart from '@fastify/multipart';
import { APP_CONFIG, type AppConfig } from './platform/config/config.js';
import { createLogger, logRequests, PinoNestLogger } from './platform/logging/logger.js';
import { ErrorFilter } from './platform/errors/error.filter.js';
import { validationPipe } from './platform/http/validation.js';
import { createOpenApiDocument } from './platform/http/openapi.js';
import { echoRequestId, requestIdOf } from './platform/http/request-id.js';
import { clientErrorHandler, frameworkErrors } from './platform/http/framework-errors.js';
import { refuseCodedBodies, refusedMediaType, utf8JsonParser } from './platform/http/json-body.js';
import { MultipartRouteGuard } from './platform/http/multipart-route.guard.js';
import { InFlightRequests } from './platform/http/graceful-shutdown.js';
import { sendSecurityHeaders } from './platform/http/security-headers.js';
import { Metrics } from './platform/observability/metrics.js';
import { recordHttpMetrics } from './platform/observability/http-metrics.js';
import { startErrorReporting } from './platform/observability/error-reporting.js';
import { activeTracing, traceIdMixin, traceRequests } from './platform/observability/tracing.js';
import { DatabaseService } from './platform/database/database.service.js';
import type { DestinationStream } from 'pino';

/** Largest request body accepted (413 above it). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/** Response headers the API sets on purpose that a browser app on another origin may read (README, "Browsers on other origins"). */
export const CORS_EXPOSED_HEADERS = [
  'x-request-id', 'x-next-cursor', 'content-disposition', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after',
];

/**
 * The HTTP server under Nest: Fastify. (On Express the read route cost twice the CPU per request:
 * bench/README.md.)
 */
export function httpAdapter(config: Pick<AppConfig, 'http'>): FastifyAdapter {
  return new FastifyAdapter({
    // the client address comes from X-Forwarded-For only when a trusted proxy sent it (TRUST_PROXY; default: one on
    // this machine): the per-address limits count what this gives
    trustProxy: config.http.trustProxy,
    genReqId: requestIdOf,
    bodyLimit: BODY_LIMIT_BYTES,
    // /v1/orgs/ is /v1/orgs, as it was on Express
    routerOptions: { ignoreTrailingSlash: true },
    // the router's and Node's own refusals (a path segment too long, headers too large) in our error shape
    frameworkErrors,
    clientErrorHandler,
  });
}

/**
 * The application as main.ts serves it (and the benchmarks): `bootstrap` already applied, not yet listening. `config`:
 * the one `module` was made with (AppModule.forRoot(config)).
 */
export async function createApp(module: DynamicModule, config: AppConfig): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(module, httpAdapter(config), { bufferLogs: true, rawBody: true });
  return bootstrap(app);
}

/**
 * Everything main.ts and the tests apply to an application, in one place. `logDestination`: where the log lines go
 * instead of stdout (tests that read them).
 */
export async function bootstrap(app: NestFastifyApplication, options: { logDestination?: DestinationStream } = {}): Promise<NestFastifyApplication> {
  const fastify = app.getHttpAdapter().getInstance();
  echoRequestId(fastify);
  const config = app.get<AppConfig>(APP_CONFIG);
  // tracing is started (or not) before the application is imported: main.ts, or a test that starts it
  const tracing = activeTracing();
  if (tracing) await traceRequests(fastify, tracing);
  const logger = createLogger(config, tracing ? traceIdMixin : undefined, options.logDestination);
  app.useLogger(new PinoNestLogger(logger));
  logRequests(fastify, logger);
  const metrics = app.get(Metrics);
  // nothing reads the metrics without METRICS_TOKEN: requests are then not counted (bench/README.md: the cost)
  if (config.observability.metricsToken) recordHttpMetrics(fastify, metrics);
  const database = app.get(DatabaseService);
  metrics.onScrape(() => {
    const pool = database.poolStats();
    metrics.dbPool.set({ state: 'in_use' }, pool.inUse);
    metrics.dbPool.set({ state: 'idle' }, pool.idle);
    metrics.dbPool.set({ state: 'waiting' }, pool.waiting);
  });
  await app.register(fastifyCookie);
  await app.register(fastifyCors, {
    // only the configured browser origins; a preflight from any other gets no Access-Control-Allow-Origin
    origin: config.http.corsOrigins,
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    // the response headers a browser app reads (the CORS-safelisted ones, Content-Type and Content-Length, need no listing):
    // the request id of an error report, the next page's cursor, a download's file name, the rate limit and when to retry
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: 600,
  });
  // JSON in UTF-8 only (json-body.ts); Nest's adapter would add a parser of forms, which no operation takes (a form body
  // reached the DTOs like JSON), and Fastify has one of text/plain: both are a 415, as the document says. Registered here,
  // the adapter adds neither parser of its own at init.
  app.useBodyParser('application/json', { bodyLimit: BODY_LIMIT_BYTES }, utf8JsonParser(fastify.getDefaultJsonParser('error', 'error')));
  // '*': any other media type, or none with a chunked body (an empty one of any type is no body); no coded body (gzip...)
  app.useBodyParser(['application/x-www-form-urlencoded', 'text/plain', '*'], { bodyLimit: BODY_LIMIT_BYTES }, refusedMediaType);
  refuseCodedBodies(fastify);
  // multipart bodies (knowledge uploads) are parsed by the route that reads them, with its own size limit
  await app.register(fastifyMultipart, { limits: { fileSize: config.knowledge.maxUploadBytes } });
  // helmet's headers, computed once at start-up (security-headers.ts)
  sendSecurityHeaders(fastify, {
    contentSecurityPolicy: {
      directives: {
        // the Swagger UI at /docs: its scripts and styles come from this server; its inline styles and data: icons
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        // the API may be served over plain http (development, behind a TLS-terminating proxy): no forced upgrade
        upgradeInsecureRequests: null,
      },
    },
  });
  // a multipart body only where an operation takes one (the uploads): after the modules' global guards (the CSRF one)
  app.useGlobalGuards(new MultipartRouteGuard(app.get(Reflector)));
  app.useGlobalPipes(validationPipe());
  // 5xx to Sentry when SENTRY_DSN is set (error-reporting.ts scrubs every event)
  const reporter = await startErrorReporting(config);
  app.useGlobalFilters(new ErrorFilter(
    (status, code, state) => metrics.recordError(status, code, state),
    reporter ? (exception, req, status) => reporter.report(exception, req, status) : undefined,
  ));
  // counted for the graceful shutdown (main.ts handles SIGTERM: drain, then app.close() runs the shutdown hooks)
  app.get(InFlightRequests).track(fastify);

  if (config.http.apiDocs) {
    SwaggerModule.setup('docs', app, createOpenApiDocument(app), {
      jsonDocumentUrl: 'docs-json',
      // the token entered under "Authorize" survives a reload of the page
      swaggerOptions: { persistAuthorization: true },
    });
  }
  return app;
}
