// npm run db:migrate [-- --until <migration name>]
// Applies pending migrations to DATABASE_URL (or the embedded PostgreSQL when it is not set).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/platform/config/config.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { ensureDatabaseUrl } from '../src/platform/database/local-postgres.js';

const untilIdx = process.argv.indexOf('--until');
const root = projectRoot();
// a local .env, if any; variables already in the environment win
if (existsSync(join(root, '.env'))) process.loadEnvFile(join(root, '.env'));
process.env.DATABASE_URL = await ensureDatabaseUrl(root);
const config = loadConfig();
try {
  await migrate(config.databaseUrl, {
    until: untilIdx > 0 ? process.argv[untilIdx + 1] : undefined,
    apiPassword: new URL(config.apiDatabaseUrl).password,
  });
  process.exit(0);
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
