// npm run db:migrate [-- --until <migration name>] [-- --out-of-order]
// Applies pending migrations to DATABASE_URL (or the embedded PostgreSQL when it is not set).
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { loginPassword } from '../src/platform/database/database-url.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { ensureDatabaseUrl } from '../src/platform/database/local-postgres.js';

const untilIdx = process.argv.indexOf('--until');
const root = projectRoot();
loadLocalEnv(root);
try {
  process.env.DATABASE_URL = await ensureDatabaseUrl(root);
  const config = loadConfig();
  await migrate(config.databaseUrl, {
    until: untilIdx > 0 ? process.argv[untilIdx + 1] : undefined,
    outOfOrder: process.argv.includes('--out-of-order'),
    apiPassword: loginPassword(config.apiDatabaseUrl),
  });
  process.exit(0);
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
