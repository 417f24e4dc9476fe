import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import cookieParser from 'cookie-parser';
import { APP_CONFIG, type AppConfig } from './platform/config/config.js';
import { createLogger, PinoNestLogger, requestLogger } from './platform/logging/logger.js';
import { ErrorFilter } from './platform/errors/error.filter.js';
import { validationPipe } from './platform/http/validation.js';
import { requestId } from './platform/http/request-id.js';

/** Everything main.ts and the tests apply to an application, in one place. */
export function bootstrap(app: INestApplication): INestApplication {
  // First middleware (Nest adds its body parsers at init, after this): even a request whose
  // body cannot be parsed gets an id, in the x-request-id header and in the error body.
  app.use(requestId);
  const logger = createLogger(app.get<AppConfig>(APP_CONFIG));
  app.useLogger(new PinoNestLogger(logger));
  app.use(requestLogger(logger));
  app.use(cookieParser());
  app.useGlobalPipes(validationPipe());
  app.useGlobalFilters(new ErrorFilter());
  app.enableShutdownHooks();
  const express = app.getHttpAdapter().getInstance() as { set(k: string, v: unknown): void };
  express.set('trust proxy', 'loopback');
  // no ETag on API answers: Express would hash every response body (tenant data changes under
  // the caller's feet, so conditional GETs would seldom hit) and no X-Powered-By banner
  express.set('etag', false);
  express.set('x-powered-by', false);

  const doc = new DocumentBuilder()
    .setTitle('OmniZen API')
    .setDescription(
      'Multi-tenant platform core. Organization routes live under /v1/orgs/{orgId}; row-level security in PostgreSQL ' +
        'keeps organizations apart. Errors always have the shape { error: { code, message, details? }, requestId }.',
    )
    .setVersion('0.1.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Our access token, or the Supabase service-role key' })
    .build();
  SwaggerModule.setup('docs', app, SwaggerModule.createDocument(app, doc), { jsonDocumentUrl: 'docs-json' });
  return app;
}
