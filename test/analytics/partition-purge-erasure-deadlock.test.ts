import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { erasureRepository } from '../../src/modules/privacy/erasure.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser } from '../support/factories.js';

const PASSWORD = 'correct horse battery';
const midMonth = (monthsFromNow: number) => {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + monthsFromNow, 15, 12));
};

/**
 * A person's erasure reads core.analytics_events (every partition, ACCESS SHARE to its commit) and then rewrites their
 * rows of core.analytics_daily_users; the retention purge deleted the old rows of that table (their row locks) and then
 * dropped the old partitions (ACCESS EXCLUSIVE): the purge waited for the erasure's table lock, the erasure for the
 * purge's row locks, and PostgreSQL aborted one of them (deadlock detected). The purge now waits, before it reads or
 * deletes anything, for the erasures in flight (the roll-up lock they hold shared, taken exclusively). The overlap is
 * made by pausing the erasure, never by timing.
 */
describe('analytics: the retention purge during a person\'s erasure', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false' });
    await t.app.get(AnalyticsMaintenanceJob).booted;
  });
  afterEach(() => releaseAll());
  afterAll(() => t?.close());

  it('both succeed: the purge waits for the erasure, then drops and deletes what is old', async () => {
    const owner = await registerUser(t, 'pe-owner');
    const p = await registerUser(t, 'pe-erased', PASSWORD);
    const orgId = await createOrg(t, owner, 'Purged During Erasure');
    await addMember(t, orgId, p, 'member');
    // who was active today: the purge a year on deletes these rows (past the 31 days kept), the erasure rewrites the person's
    await t.db.admin.query(`INSERT INTO core.analytics_daily_users (org_id, day, user_id) VALUES ($1, now()::date, $2), ($1, now()::date, $3)`, [orgId, p.id, owner.id]);

    // the months the purge's run a year on makes (its own short transaction before the purge's): made beforehand
    await t.db.admin.query(`SELECT core.analytics_create_partitions($1::date, 24)`, [new Date(Date.UTC(midMonth(11).getUTCFullYear(), midMonth(11).getUTCMonth(), 1)).toISOString().slice(0, 10)]);
    // the erasure has read the person's analytics events (analyticsIdsNaming) and is about to rewrite their rows: held there
    const paused = pauseNext(erasureRepository, 'applyCatalog');
    const erasure = t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).then((r) => r);
    await paused.reached;
    const job = t.app.get(AnalyticsMaintenanceJob);
    const purge = job.maintainPartitions(midMonth(12).getTime());
    expect(await waitsForLockOrAnswers(t.db.admin, purge, paused)).toBe('waiting');
    paused.release();

    const [erased, purged] = await Promise.allSettled([erasure, purge]);
    expect([erased.status, erased.status === 'fulfilled' && erased.value.status, purged.status, purged.status === 'rejected' && String(purged.reason)])
      .toEqual(['fulfilled', 200, 'fulfilled', false]);
    expect(purged.status === 'fulfilled' && purged.value.dropped.length).toBeGreaterThan(0);
    const { rows } = await t.db.admin.query(`
      SELECT (SELECT count(*) FROM core.analytics_daily_users WHERE org_id = $1)::int AS "activeUserDays",
             (SELECT count(*) FROM core."User" WHERE id = $2 AND email = $3)::int AS "personKept"`, [orgId, p.id, p.email]);
    expect(rows).toEqual([{ activeUserDays: 0, personKept: 0 }]);
  });
});
