import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/throwaway-servers.js';

const midMonth = (monthsFromNow: number) => {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + monthsFromNow, 15, 12));
};

/**
 * The retention purge read core.analytics_events (ACCESS SHARE, held to its commit) and only then, dropping last, waited
 * for the partitions' advisory lock; another instance's core.analytics_create_partitions holds that lock and waits for
 * ACCESS EXCLUSIVE on the table: each waited for the other, and PostgreSQL aborted one (deadlock detected). The purge
 * now takes the partitions' lock before it reads the table, so the create waits for the purge and both succeed. The
 * overlap is made by locks the test holds, never by timing.
 */
describe('analytics: the retention purge and another instance\'s partition create at once', () => {
  let t: TestApp;
  let holder: pg.PoolClient;
  let creator: pg.PoolClient;

  beforeAll(async () => {
    t = await createTestApp();
    await t.app.get(AnalyticsMaintenanceJob).booted;
    holder = await t.db.admin.connect();
    creator = await t.db.admin.connect();
  });
  afterAll(async () => {
    holder?.release();
    creator?.release();
    await t?.close();
  });

  /** the backends of this database that wait for a lock, `blockedBy` one of them when given */
  const lockWaiters = async (blockedBy?: number) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
       AND ($1::int IS NULL OR $1::int = ANY(pg_blocking_pids(pid)))`, [blockedBy ?? null])).rows[0].n as number;

  it('both succeed: the create waits for the purge, which drops what it counted', async () => {
    const job = t.app.get(AnalyticsMaintenanceJob);
    const userId = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    const { rows: [{ id: orgId }] } = await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Purged', $1) RETURNING id`, [userId]);
    await t.db.admin.query(`INSERT INTO core.analytics_daily_users (org_id, day, user_id) VALUES ($1, now()::date - 40, 'u1')`, [orgId]);
    // the purge (a year on, retention 13 months) has read the event table when it reaches this row's delete: held there
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM core.analytics_daily_users WHERE org_id = $1 FOR UPDATE`, [orgId]);
    const holderPid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const run = job.maintainPartitions(midMonth(12).getTime());
    await until('the purge waits for the active-user row', async () => (await lockWaiters(holderPid)) >= 1);
    // another instance's create of a month not there yet, while the purge waits
    const create = creator.query(`SELECT core.analytics_create_partitions('2032-01-01', 0) AS name`);
    await until('the create waits too', async () => (await lockWaiters()) >= 2);
    await holder.query('COMMIT');
    const [purge, created] = await Promise.allSettled([run, create]);
    expect([purge.status, purge.status === 'rejected' && String(purge.reason), created.status, created.status === 'rejected' && String(created.reason)])
      .toEqual(['fulfilled', false, 'fulfilled', false]);
    expect(created.status === 'fulfilled' && created.value.rows).toEqual([{ name: 'analytics_events_p203201' }]);
    expect(purge.status === 'fulfilled' && purge.value.dropped.length).toBeGreaterThan(0);
    const { rows } = await t.db.admin.query(`
      SELECT (SELECT count(*) FROM core.analytics_daily_users WHERE org_id = $1)::int AS "activeUserDays",
             (SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'core.analytics_events'::regclass AND c.relname = 'analytics_events_p203201')::int AS created`, [orgId]);
    expect(rows).toEqual([{ activeUserDays: 0, created: 1 }]);
  });
});
