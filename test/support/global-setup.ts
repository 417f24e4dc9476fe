import pg from 'pg';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { withDatabase } from '../../src/platform/database/database-url.js';
import { ensureDatabaseUrl } from '../../src/platform/database/local-postgres.js';
import { dropDatabasesOfEndedRuns } from '../../src/platform/database/ended-runs.js';

/**
 * Once per test run: make sure a PostgreSQL server is there (DATABASE_URL, or the embedded one),
 * migrate a template database, and hand its name to the test files, which clone it.
 */
export default async function globalSetup(): Promise<void> {
  const serverUrl = await ensureDatabaseUrl(projectRoot(), () => undefined);
  const runId = `${process.pid}`;
  const template = `omnizen_tpl_${runId}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await dropDatabasesOfEndedRuns(admin, ['omnizen_tpl_', 'omnizen_t_']);
  await admin.query(`DROP DATABASE IF EXISTS "${template}"`);
  await admin.query(`CREATE DATABASE "${template}"`);
  await admin.end();
  await migrate(withDatabase(serverUrl, template), { apiPassword: 'omnizen_api_test', log: () => undefined });
  process.env.OMNIZEN_TEST_SERVER_URL = serverUrl;
  process.env.OMNIZEN_TEST_TEMPLATE = template;
  process.env.OMNIZEN_TEST_RUN = runId;
}
