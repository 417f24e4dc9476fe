import pg from 'pg';

export default async function globalTeardown(): Promise<void> {
  const admin = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
  await admin.connect();
  const run = process.env.OMNIZEN_TEST_RUN;
  const left = await admin.query(`SELECT datname FROM pg_database WHERE datname ~ $1`, [`^omnizen_(tpl|t)_${run}(_|$)`]);
  for (const { datname } of left.rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  await admin.end();
}
