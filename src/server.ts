import 'reflect-metadata';
import { AppModule } from './app.module.js';
import { createApp } from './bootstrap.js';
import { ConfigError, loadConfig } from './platform/config/config.js';
import { loadLocalEnv } from './platform/config/local-env.js';
import { loginPassword } from './platform/database/database-url.js';
import { migrate, projectRoot } from './platform/database/migrator.js';
import { ensureDatabaseUrl } from './platform/database/local-postgres.js';
import { shutDownGracefullyOn } from './platform/http/graceful-shutdown.js';

/** A server that cannot bind names the variable to change, in one line. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError(`HOST "${host}" does not resolve to an address of this machine (${err.code})`);
    case 'EADDRNOTAVAIL':
      return new ConfigError(`HOST "${host}" is not an address of this machine`);
    case 'EADDRINUSE':
      return new ConfigError(`PORT ${port} is already in use on ${host}`);
    case 'EACCES':
      return new ConfigError(`PORT ${port} needs privileges this process does not have`);
    default:
      return err;
  }
}

/** Migrates when asked, then serves the API until SIGTERM (main.ts imports this after tracing started). */
export async function serve(): Promise<void> {
  const root = projectRoot();
  loadLocalEnv(root);
  // the embedded PostgreSQL is a development convenience (and a development dependency)
  if (process.env.NODE_ENV === 'production' && !process.env.DATABASE_URL) throw new ConfigError('DATABASE_URL is required in production');
  process.env.DATABASE_URL = await ensureDatabaseUrl(root);
  const config = loadConfig();
  if (config.migrateOnStart) {
    await migrate(config.databaseUrl, { apiPassword: loginPassword(config.apiDatabaseUrl) });
  }
  const app = await createApp(AppModule.forRoot(config), config);
  await app.listen(config.port, config.host).catch((err: NodeJS.ErrnoException) => {
    throw listenError(err, config.host, config.port);
  });
  shutDownGracefullyOn(['SIGTERM', 'SIGINT'], app, config.shutdownGraceMs, config.shutdownDrainDelayMs);
  console.log(`OmniZen API on http://localhost:${config.port} (OpenAPI UI at /docs)`);
}
