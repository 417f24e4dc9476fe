import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pg from 'pg';
import { dropDatabasesOfEndedRuns } from '../../src/platform/database/ended-runs.js';

// above Linux's largest pid (4194304): no process can have it
const ENDED_PID = 4194305;
const PREFIX = `omnizen_endedcheck_${process.pid}_`;
let root: pg.Client;

beforeAll(async () => {
  root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
  await root.connect();
});
afterAll(async () => {
  for (const name of [`${PREFIX}${ENDED_PID}_x`, `${PREFIX}${process.pid}_x`]) await root.query(`DROP DATABASE IF EXISTS "${name}"`);
  await root.end();
});

it("drops the throwaway databases of ended runs and keeps a live run's", async () => {
  await root.query(`CREATE DATABASE "${PREFIX}${ENDED_PID}_x"`);
  await root.query(`CREATE DATABASE "${PREFIX}${process.pid}_x"`);
  await dropDatabasesOfEndedRuns(root, [PREFIX]);
  const { rows } = await root.query(`SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`, [PREFIX]);
  expect(rows.map((r) => r.datname)).toEqual([`${PREFIX}${process.pid}_x`]);
});
