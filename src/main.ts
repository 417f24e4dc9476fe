import { ConfigError, tracingConfig } from './platform/config/config.js';
import { loadLocalEnv } from './platform/config/local-env.js';
import { registerInstrumentationHook, startTracing } from './platform/observability/tracing.js';

/**
 * The process's entry. OpenTelemetry's HTTP and pg instrumentations patch those modules as they load, so tracing
 * (when OTEL_EXPORTER_OTLP_ENDPOINT is set) starts before anything imports them: this file imports only the
 * configuration, and the server (server.ts, which imports the application) only afterwards, dynamically.
 * Without the endpoint nothing of OpenTelemetry is loaded.
 */
async function main(): Promise<void> {
  // .env first: it may set OTEL_EXPORTER_OTLP_ENDPOINT (variables already in the environment win)
  loadLocalEnv(process.cwd());
  if (tracingConfig(process.env)) {
    // ES modules are patched through import-in-the-middle's loader hook, registered before they load
    registerInstrumentationHook();
    await startTracing(process.env);
  }
  await import('reflect-metadata');
  const { serve } = await import('./server.js');
  await serve();
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`configuration error: ${err.message}`);
  } else {
    console.error(err);
  }
  process.exit(1);
});
