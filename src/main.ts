import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AppModule } from './app.module.js';
import { createApp } from './bootstrap.js';
import { ConfigError, loadConfig } from './platform/config/config.js';
import { migrate, projectRoot } from './platform/database/migrator.js';
import { ensureDatabaseUrl } from './platform/database/local-postgres.js';
import { shutDownGracefullyOn } from './platform/http/graceful-shutdown.js';

async function main(): Promise<void> {
  const root = projectRoot();
  // a local .env, if any; variables already in the environment win
  if (existsSync(join(root, '.env'))) process.loadEnvFile(join(root, '.env'));
  process.env.DATABASE_URL = await ensureDatabaseUrl(root);
  const config = loadConfig();
  if (config.migrateOnStart) {
    await migrate(config.databaseUrl, { apiPassword: new URL(config.apiDatabaseUrl).password });
  }
  const app = await createApp(AppModule.forRoot(config));
  await app.listen(config.port, config.host);
  shutDownGracefullyOn(['SIGTERM', 'SIGINT'], app, config.shutdownGraceMs);
  console.log(`OmniZen API on http://localhost:${config.port} (OpenAPI UI at /docs)`);
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`configuration error: ${err.message}`);
  } else {
    console.error(err);
  }
  process.exit(1);
});
