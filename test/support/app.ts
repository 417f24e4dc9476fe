import 'reflect-metadata';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import type { DestinationStream } from 'pino';
import { AppModule } from '../../src/app.module.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { bootstrap, httpAdapter } from '../../src/bootstrap.js';
import { loadConfig, type AppConfig } from '../../src/platform/config/config.js';
import { Clock } from '../../src/platform/clock/clock.js';
import { createOpenApiDocument } from '../../src/platform/http/openapi.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { ResponseContract } from './contract.js';
import { serverLogDestination, serverLogOf } from './server-log.js';

export interface TestApp {
  app: NestFastifyApplication;
  http: ReturnType<typeof request>;
  config: AppConfig;
  db: TestDatabase;
  /** Every response of this app is checked against the OpenAPI document; close() fails when one did not match. */
  contract: ResponseContract;
  close(): Promise<void>;
}

/** Whether Redis-backed tests can run (CI sets REDIS_URL): `(hasRedis ? it : it.skip)(...)` reports them skipped otherwise. */
export const hasRedis = Boolean(process.env.REDIS_URL);

/**
 * A real application over this test file's own database, driven through real HTTP (supertest).
 * `env` overrides environment variables (config is validated exactly as at boot); `clock` replaces
 * the time that throttles and grace windows are measured in (a ManualClock moves it without sleeping);
 * `databaseServer`: a fault test's own PostgreSQL instead of the shared one; `logDestination`: the application's log
 * lines (JSON, one per write) go there instead of stdout; `wallClockCrons`: its cron jobs keep running (see startApp);
 * `databaseTimeZone`: the database's TimeZone setting, every connection's (the API's and the test's) from the start.
 */
export async function createTestApp(
  env: Record<string, string | undefined> = {},
  options: { clock?: Clock; databaseServer?: string; logDestination?: DestinationStream; wallClockCrons?: boolean; databaseTimeZone?: string } = {},
): Promise<TestApp> {
  const db = await createTestDatabase({ server: options.databaseServer, timeZone: options.databaseTimeZone });
  const config = loadConfig({
    ...process.env,
    NODE_ENV: 'test',
    DATABASE_URL: db.url,
    API_DATABASE_URL: db.apiUrl,
    API_DATABASE_POOL_SIZE: '8',
    REDIS_PREFIX: `test:${db.name}`,
    JOBS_RELAY_INTERVAL_MS: '0',
    MIGRATE_ON_START: 'false',
    // a loaded CI machine can keep a healthy Redis's answer past the production default (500 ms): the limiter would
    // count in memory and exact-count tests let more through. The Redis-hang test sets its own.
    REDIS_COMMAND_TIMEOUT_MS: '10000',
    // likewise the database's waits: twenty parallel requests queued on one row lock once waited past the 5 s lock
    // timeout (503) on a loaded CI machine. Tests of these timeouts set their own.
    DATABASE_LOCK_TIMEOUT_MS: '30000',
    DATABASE_STATEMENT_TIMEOUT_MS: '60000',
    DATABASE_CONNECT_TIMEOUT_MS: '60000',
    ...env,
  });
  const { app, http, contract } = await startApp(config, options.clock, options.logDestination, options.wallClockCrons);
  return {
    app,
    http,
    config,
    db,
    contract,
    async close() {
      await app.close();
      await db.drop();
      if (contract.violations.length > 0) {
        throw new Error(`responses that do not match the OpenAPI document:\n${contract.violations.join('\n')}`);
      }
    },
  };
}

/**
 * The real application over `config`'s databases, driven through real HTTP (supertest), every response checked
 * against the OpenAPI document (`contract.violations`); `clock` replaces its time. Close it with app.close().
 * Its cron jobs are stopped unless `wallClockCrons`: they fire on the wall clock (e-mail digests and the agents' sweeps
 * every minute, billing expiry and analytics roll-ups every 10, purges every 15), on the test's moved clock too, and
 * one firing while a test runs writes rows in the middle of what it compares. A test runs a job when it chooses (as
 * the interval jobs, off in tests). It answers once the boot's analytics partitions are made (those of the clock's month).
 * A 5xx's violation carries what the application logged about it (server-log.ts).
 */
export async function startApp(config: AppConfig, clock?: Clock, logDestination?: DestinationStream, wallClockCrons = false): Promise<{ app: NestFastifyApplication; http: ReturnType<typeof request>; contract: ResponseContract }> {
  // the error filter's lines about failed requests are kept for the contract check (server-log.ts): at warn at least,
  // into the test's destination or stdout only when the test (LOG_LEVEL) asked for lines
  const silent = config.logLevel === 'silent';
  const logged = silent && !logDestination ? { ...config, logLevel: 'warn' as const } : config;
  const builder = Test.createTestingModule({ imports: [AppModule.forRoot(logged)] });
  if (clock) builder.overrideProvider(Clock).useValue(clock);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(httpAdapter(config), { rawBody: true, bufferLogs: true });
  await bootstrap(app, { logDestination: serverLogDestination(logDestination ?? (silent ? undefined : process.stdout)) });
  const contract = new ResponseContract(createOpenApiDocument(app));
  contract.attach(app.getHttpAdapter().getInstance(), serverLogOf);
  await app.init();
  if (!wallClockCrons) for (const job of app.get(SchedulerRegistry).getCronJobs().values()) void job.stop();
  await app.getHttpAdapter().getInstance().ready();
  // the boot's analytics partitions (AnalyticsMaintenanceJob): a test's clock is often in a month the template has no
  // partition of, and a first request's server event (a login's) that ran before them failed (a CI run's login, 500)
  await app.get(AnalyticsMaintenanceJob).booted;
  return { app, http: request(app.getHttpServer()), contract };
}
