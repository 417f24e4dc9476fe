import type { DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import fastifyCookie from '@fastify/cookie';
import { APP_CONFIG, type AppConfig } from './platform/config/config.js';
import { createLogger, logRequests, PinoNestLogger } from './platform/logging/logger.js';
import { ErrorFilter } from './platform/errors/error.filter.js';
import { validationPipe } from './platform/http/validation.js';
import { echoRequestId, requestIdOf } from './platform/http/request-id.js';
import { InFlightRequests } from './platform/http/graceful-shutdown.js';
import { documentRetryableErrors } from './platform/http/openapi.js';

/** Largest request body accepted (413 above it). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * The HTTP server under Nest: Fastify. (On Express the read route cost twice the CPU per request:
 * bench/README.md.)
 */
export function httpAdapter(): FastifyAdapter {
  return new FastifyAdapter({
    // the client address comes from X-Forwarded-For only when a proxy on this machine sent it
    trustProxy: 'loopback',
    genReqId: requestIdOf,
    bodyLimit: BODY_LIMIT_BYTES,
    // /v1/orgs/ is /v1/orgs, as it was on Express
    routerOptions: { ignoreTrailingSlash: true },
  });
}

/** The application as main.ts serves it (and the benchmarks): `bootstrap` already applied, not yet listening. */
export async function createApp(module: DynamicModule): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(module, httpAdapter(), { bufferLogs: true, rawBody: true });
  return bootstrap(app);
}

/** Everything main.ts and the tests apply to an application, in one place. */
export async function bootstrap(app: NestFastifyApplication): Promise<NestFastifyApplication> {
  const fastify = app.getHttpAdapter().getInstance();
  echoRequestId(fastify);
  const logger = createLogger(app.get<AppConfig>(APP_CONFIG));
  app.useLogger(new PinoNestLogger(logger));
  logRequests(fastify, logger);
  await app.register(fastifyCookie);
  app.useGlobalPipes(validationPipe());
  app.useGlobalFilters(new ErrorFilter());
  // counted for the graceful shutdown (main.ts handles SIGTERM: drain, then app.close() runs the shutdown hooks)
  app.get(InFlightRequests).track(fastify);

  const doc = new DocumentBuilder()
    .setTitle('OmniZen API')
    .setDescription(
      'Multi-tenant platform core. Organization routes live under /v1/orgs/{orgId}; row-level security in PostgreSQL ' +
        'keeps organizations apart. Errors always have the shape { error: { code, message, details? }, requestId }.',
    )
    .setVersion('0.1.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Our access token, or the Supabase service-role key' })
    .build();
  SwaggerModule.setup('docs', app, documentRetryableErrors(SwaggerModule.createDocument(app, doc)), { jsonDocumentUrl: 'docs-json' });
  return app;
}
