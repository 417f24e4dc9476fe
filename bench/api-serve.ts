// The app alone, as a child process of the API benchmarks (api.bench.ts); reports its port over IPC.
// Like src/main.ts, it starts tracing (when OTEL_EXPORTER_OTLP_ENDPOINT is set) before it imports the
// application, so the HTTP and pg instrumentations patch those modules as they load.
import { tracingConfig } from '../src/platform/config/config.js';
import { registerInstrumentationHook, startTracing } from '../src/platform/observability/tracing.js';

const SECRET = 'bench-only-supabase-jwt-secret-000000000000';

async function serve() {
  // BENCH_OBSERVABILITY=als (api.bench.ts): no metrics, no tracing, only an AsyncLocalStorage made active, as
  // OpenTelemetry's context manager does: on Node 20 its promise hooks were most of what tracing cost, on Node 24 they are gone (bench/README.md)
  if (process.env.BENCH_ENABLE_ALS) new (await import('node:async_hooks')).AsyncLocalStorage().enterWith({});
  if (tracingConfig(process.env)) {
    registerInstrumentationHook();
    await startTracing(process.env);
  }
  await import('reflect-metadata');
  const [{ AppModule }, { createApp }, { loadConfig }] = await Promise.all([
    import('../src/app.module.js'), import('../src/bootstrap.js'), import('../src/platform/config/config.js'),
  ]);
  const config = loadConfig({
    ...process.env, NODE_ENV: 'production', SUPABASE_JWT_SECRET: SECRET, NEXTAUTH_SECRET: SECRET,
    DATABASE_URL: process.env.BENCH_OWNER_URL, API_DATABASE_URL: process.env.BENCH_API_URL,
    PASSWORD_HASH_MEMORY_KIB: '256', PASSWORD_HASH_TIME_COST: '1', JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', REDIS_PREFIX: `bench:${process.pid}`,
  });
  const app = await createApp(AppModule.forRoot(config), config);
  await app.listen(0, '127.0.0.1');
  process.on('SIGTERM', () => void app.close().finally(() => process.exit(0)));
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send!({ cpuMs: (user + system) / 1000, systemMs: system / 1000 });
  });
  process.send!({ port: (app.getHttpServer().address() as { port: number }).port });
}

serve().catch((err) => {
  console.error(err);
  process.exit(1);
});
