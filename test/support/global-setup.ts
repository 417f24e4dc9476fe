import pg from 'pg';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { withDatabase } from '../../src/platform/database/database-url.js';
import { ensureDatabaseUrl } from '../../src/platform/database/local-postgres.js';

/**
 * Once per test run: make sure a PostgreSQL server is there (DATABASE_URL, or the embedded one),
 * migrate a template database, and hand its name to the test files, which clone it.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export default async function globalSetup(): Promise<void> {
  const serverUrl = await ensureDatabaseUrl(projectRoot(), () => undefined);
  const runId = `${process.pid}`;
  const template = `omnizen_tpl_${runId}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  // databases left behind by runs that were killed (their process is gone; other live runs are left alone)
  const stale = await admin.query(`SELECT datname FROM pg_database WHERE datname ~ '^omnizen_(tpl|t)_[0-9]+'`);
  for (const { datname } of stale.rows) {
    const pid = Number(/^omnizen_(?:tpl|t)_(\d+)/.exec(datname)![1]);
    if (pid !== process.pid && !alive(pid)) {
      await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => undefined);
    }
  }
  await admin.query(`DROP DATABASE IF EXISTS "${template}"`);
  await admin.query(`CREATE DATABASE "${template}"`);
  await admin.end();
  await migrate(withDatabase(serverUrl, template), { apiPassword: 'omnizen_api_test', log: () => undefined });
  process.env.OMNIZEN_TEST_SERVER_URL = serverUrl;
  process.env.OMNIZEN_TEST_TEMPLATE = template;
  process.env.OMNIZEN_TEST_RUN = runId;
}
