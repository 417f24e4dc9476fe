import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/throwaway-servers.js';

const partitionOf = (monthsFromNow: number) => {
  const now = new Date();
  return `analytics_events_p${new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + monthsFromNow, 1)).toISOString().slice(0, 7).replace('-', '')}`;
};
const midMonth = (monthsFromNow: number) => {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + monthsFromNow, 15, 12));
};

/**
 * Every instance runs the partition maintenance (at boot, nightly): two runs at once made the same partition twice,
 * and the second failed (`relation "analytics_events_p…" already exists`, or `table … does not exist` for a drop),
 * counted as a failed step every month on a multi-instance deployment. And the partition DDL's ACCESS EXCLUSIVE lock on
 * core.analytics_events was held through the whole purge (counting, deletes, audit): every analytics insert waited.
 * The overlaps are made by locks the test holds, never by timing.
 */
describe('analytics partitions: concurrent maintenance runs', () => {
  let t: TestApp;
  let holder: pg.PoolClient;

  beforeAll(async () => {
    t = await createTestApp();
    holder = await t.db.admin.connect();
  });
  afterAll(async () => {
    holder?.release();
    await t?.close();
  });

  const holderPid = async () => (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  /** the backends of this database that wait for a lock, `blockedBy` one of them when given */
  const lockWaiters = async (blockedBy?: number) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
       AND ($1::int IS NULL OR $1::int = ANY(pg_blocking_pids(pid)))`, [blockedBy ?? null])).rows[0].n as number;
  const partitions = async () => (await t.db.admin.query(
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'core.analytics_events'::regclass ORDER BY 1`)).rows.map((r) => r.relname as string);

  it('two instances\' runs that overlap both succeed, and each partition is made once', async () => {
    const job = t.app.get(AnalyticsMaintenanceJob);
    const now = midMonth(6);
    // the runs queue on the event table itself (its partition DDL's lock), as a run queues behind another's
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE core.analytics_events IN SHARE MODE');
    const runs = Promise.allSettled([job.maintainPartitions(now.getTime()), job.maintainPartitions(now.getTime())]);
    await until('both runs wait', async () => (await lockWaiters()) >= 2);
    await holder.query('COMMIT');
    const [a, b] = await runs;
    expect([a.status, b.status, a.status === 'rejected' && String(a.reason), b.status === 'rejected' && String(b.reason)])
      .toEqual(['fulfilled', 'fulfilled', false, false]);
    const made = [a, b].flatMap((r) => (r.status === 'fulfilled' ? r.value.created : []));
    const expected = [5, 6, 7, 8, 9].map(partitionOf);
    expect(made.sort()).toEqual(expected);
    expect(await partitions()).toEqual(expect.arrayContaining(expected));
  });

  it('analytics inserts go on while a run purges: the new partitions are committed first, the drop comes last', async () => {
    const job = t.app.get(AnalyticsMaintenanceJob);
    const userId = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    const { rows: [{ id: orgId }] } = await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Purged', $1) RETURNING id`, [userId]);
    await t.db.admin.query(`INSERT INTO core.analytics_daily_users (org_id, day, user_id) VALUES ($1, now()::date - 40, 'u1')`, [orgId]);
    // the purge (retention 13 months: a year on, this month is the first kept) stops at this row's delete
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM core.analytics_daily_users WHERE org_id = $1 FOR UPDATE`, [orgId]);
    const run = job.maintainPartitions(midMonth(12).getTime());
    const pid = await holderPid();
    await until('the run waits for the active-user row', async () => (await lockWaiters(pid)) >= 1);
    const insert = await t.db.admin.connect();
    try {
      await insert.query(`SET lock_timeout = '3s'`);
      await insert.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, properties, user_id, source)
        VALUES ($1, now(), 'doc.opened', '{}', 'u1', 'client')`, [orgId]);
    } finally {
      insert.release();
      await holder.query('COMMIT');
    }
    const result = await run;
    expect(result.created).toEqual([11, 12, 13, 14, 15].map(partitionOf));
    expect(result.dropped).toContain(partitionOf(-1));
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.analytics_daily_users WHERE org_id = $1`, [orgId]);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('the partition functions themselves: a second session\'s create or drop waits for the first and does nothing twice', async () => {
    const pid = await holderPid();
    await holder.query('BEGIN');
    expect((await holder.query(`SELECT core.analytics_create_partitions('2031-01-01', 0) AS name`)).rows).toEqual([{ name: 'analytics_events_p203101' }]);
    const create = t.db.admin.query(`SELECT core.analytics_create_partitions('2031-01-01', 0) AS name`);
    await until('the second create waits', async () => (await lockWaiters(pid)) >= 1);
    await holder.query('COMMIT');
    expect((await create).rows).toEqual([]);

    await holder.query('BEGIN');
    const dropped = (await holder.query(`SELECT core.analytics_drop_partitions('2031-02-01') AS name`)).rows.map((r) => r.name);
    expect(dropped).toContain('analytics_events_p203101');
    const drop = t.db.admin.query(`SELECT core.analytics_drop_partitions('2031-02-01') AS name`);
    await until('the second drop waits', async () => (await lockWaiters(pid)) >= 1);
    await holder.query('COMMIT');
    expect((await drop).rows).toEqual([]);
    expect((await partitions()).filter((p) => p <= 'analytics_events_p203101')).toEqual([]);
  });
});
