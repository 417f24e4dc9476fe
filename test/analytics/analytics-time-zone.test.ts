/**
 * @jest-environment ./test/support/time-zone-environment.mjs
 * @jest-environment-options {"timeZone": "America/New_York"}
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { analyticsRepository } from '../../src/modules/analytics/analytics.repository.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';

const DAY = 86_400_000;
const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);

// the process runs 5 hours behind UTC (the environment above): a UTC midnight is 19:00 the day before here
describe('analytics days with the server in another time zone (America/New_York)', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({}, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
    owner = await registerUser(t, 'tz-analyst');
    orgId = await createOrg(t, owner, 'Eastern Time Ltd');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(() => t.close());

  it('runs in New York time', () => {
    expect(new Date('2026-03-01T00:00:00Z').getTimezoneOffset()).toBe(300);
  });

  it('selects exactly the UTC days asked (range, cursor, top events) and reads a timestamp without an offset as UTC', async () => {
    const d = Math.floor((clock.now() - 5 * DAY) / DAY) * DAY; // a UTC midnight
    const [before, day, after] = [isoDay(d - DAY), isoDay(d), isoDay(d + DAY)];
    const res = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).send({ events: [
      { name: 'tz.a', timestamp: `${before}T12:00:00Z` },
      { name: 'tz.a', timestamp: `${day}T01:00:00Z` },
      { name: 'tz.b', timestamp: `${day}T12:00:00.000Z` },
      // no offset: 23:30 UTC of `day`, not 23:30 in New York (04:30 UTC the day after)
      { name: 'tz.naive', timestamp: `${day}T23:30:00` },
      { name: 'tz.a', timestamp: `${after}T12:00:00Z` },
    ] }).expect(200);
    expect(res.body).toEqual({ accepted: 5, rejected: [] });
    const { rows: stored } = await t.db.admin.query(
      `SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS at FROM core.analytics_events WHERE org_id = $1 AND name = 'tz.naive'`, [orgId]);
    expect(stored).toEqual([{ at: `${day}T23:30:00` }]);

    await t.app.get(AnalyticsMaintenanceJob).rollUp(new Date(d - DAY), new Date(d + 2 * DAY));
    const { rows: rolledUp } = await t.db.admin.query(
      `SELECT day::text, event, events::int FROM core.analytics_daily WHERE org_id = $1 AND event LIKE 'tz.%' ORDER BY 1, 2`, [orgId]);
    expect(rolledUp).toEqual([
      { day: before, event: 'tz.a', events: 1 },
      { day, event: 'tz.a', events: 1 }, { day, event: 'tz.b', events: 1 }, { day, event: 'tz.naive', events: 1 },
      { day: after, event: 'tz.a', events: 1 },
    ]);

    const one = await t.http.get(`/v1/orgs/${orgId}/analytics/events/daily?from=${day}&to=${day}`).set(owner.auth).expect(200);
    expect(one.body).toEqual([
      { day, event: 'tz.a', events: 1, users: 1 }, { day, event: 'tz.b', events: 1, users: 1 }, { day, event: 'tz.naive', events: 1, users: 1 },
    ]);

    // page by page (limit 2): the cursor's day is compared as the same UTC day
    const pages: unknown[][] = [];
    let cursor: string | undefined;
    do {
      const page = await t.http.get(`/v1/orgs/${orgId}/analytics/events/daily`).query({ from: day, to: after, limit: 2, ...(cursor ? { cursor } : {}) })
        .set(owner.auth).expect(200);
      pages.push(page.body.map((r: { day: string; event: string }) => `${r.day} ${r.event}`));
      cursor = page.headers['x-next-cursor'];
    } while (cursor && pages.length < 5);
    expect(pages).toEqual([[`${day} tz.a`, `${day} tz.b`], [`${day} tz.naive`, `${after} tz.a`]]);

    const top = await t.http.get(`/v1/orgs/${orgId}/analytics/events/top?from=${day}&to=${day}`).set(owner.auth).expect(200);
    expect(top.body).toEqual([{ event: 'tz.a', events: 1 }, { event: 'tz.b', events: 1 }, { event: 'tz.naive', events: 1 }]);
    const active = await t.http.get(`/v1/orgs/${orgId}/analytics/active-users?from=${day}&to=${day}`).set(owner.auth).expect(200);
    expect(active.body.daily).toEqual([{ day, users: 1 }]);
  });

  it('deletes the roll-ups before a UTC day, not those of the day itself', async () => {
    await t.db.admin.query(`INSERT INTO core.analytics_daily (org_id, day, event, events, users) VALUES
      ($1, '2020-05-31', 'tz.old', 1, 1), ($1, '2020-06-01', 'tz.old', 1, 1)`, [orgId]);
    const deleted = await t.app.get(PrivilegedDatabase).run('analytics.maintenance',
      (db) => analyticsRepository.deleteRollUpsBefore(db, new Date('2020-06-01T00:00:00Z')));
    expect(deleted).toEqual([{ orgId, count: 1 }]);
    const { rows } = await t.db.admin.query(`SELECT day::text FROM core.analytics_daily WHERE org_id = $1 AND event = 'tz.old'`, [orgId]);
    expect(rows).toEqual([{ day: '2020-06-01' }]);
  });
});
