import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, registerUser } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';

const DAY = 86_400_000;
const PASSWORD = 'correct horse battery';

describe('erasure of a person with analytics events: one pseudonym for all their rows', () => {
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false' }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
  });
  afterAll(() => t.close());

  it('keeps the active users of their days as they were: their events share one pseudonym that is not their id', async () => {
    const owner = await registerUser(t, 'ae-owner');
    const p = await registerUser(t, 'ae-erased', PASSWORD);
    const orgId = await createOrg(t, owner, 'Counted Ltd');
    await onEnterprisePlan(t, orgId);
    await addMember(t, orgId, p, 'member');
    // two days back (clear of the sign-ins' events of today): the person acts 4 times on one day, twice the next; the owner once
    const dayStart = Math.floor((clock.now() - 3 * DAY) / DAY) * DAY;
    const at = (day: number, hour: number) => new Date(dayStart + day * DAY + hour * 3_600_000).toISOString();
    const day0 = at(0, 0).slice(0, 10);
    const day1 = at(1, 0).slice(0, 10);
    await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(p.auth).send({ events: [
      { name: 'doc.opened', timestamp: at(0, 1) }, { name: 'doc.opened', timestamp: at(0, 2) },
      { name: 'doc.saved', timestamp: at(0, 3) }, { name: 'doc.saved', timestamp: at(0, 4) },
      { name: 'doc.opened', timestamp: at(1, 5) }, { name: 'doc.opened', timestamp: at(1, 6) },
    ] }).expect(200);
    await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).send({ events: [{ name: 'doc.opened', timestamp: at(0, 7) }] }).expect(200);

    const job = t.app.get(AnalyticsMaintenanceJob);
    const report = async () => {
      await job.rollUp(new Date(dayStart), new Date(dayStart + 2 * DAY));
      const active = (await t.http.get(`/v1/orgs/${orgId}/analytics/active-users?from=${day0}&to=${day1}`).set(owner.auth).expect(200)).body;
      const daily = (await t.http.get(`/v1/orgs/${orgId}/analytics/events/daily?from=${day0}&to=${day1}`).set(owner.auth).expect(200)).body;
      const { rows } = await t.db.admin.query(`SELECT day::text, event, users::int FROM core.analytics_daily WHERE org_id = $1 AND day = ANY($2::date[]) ORDER BY 1, 2`, [orgId, [day0, day1]]);
      return { active, daily, rolledUp: rows };
    };
    const before = await report();
    expect(before.active.daily).toEqual([{ day: day0, users: 2 }, { day: day1, users: 1 }]);
    expect(before.rolledUp).toEqual([
      { day: day0, event: 'doc.opened', users: 2 }, { day: day0, event: 'doc.saved', users: 1 }, { day: day1, event: 'doc.opened', users: 1 },
    ]);

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);

    // the API's answers and the roll-ups written after the erasure: the same counts
    expect(await report()).toEqual(before);
    // their six rows: one pseudonym, not their id and not derived from it; the owner's row untouched
    const { rows } = await t.db.admin.query(
      `SELECT user_id, count(*)::int AS n, bool_and(anonymous_id IS NULL) AS anon_erased, bool_and(properties = '{}'::jsonb) AS props_erased
       FROM core.analytics_events WHERE org_id = $1 AND name IN ('doc.opened', 'doc.saved') GROUP BY user_id ORDER BY n DESC`, [orgId]);
    expect(rows).toEqual([
      { user_id: expect.stringMatching(/^erased-[0-9a-f-]{36}$/), n: 6, anon_erased: true, props_erased: true },
      { user_id: owner.id, n: 1, anon_erased: true, props_erased: true },
    ]);
    expect(rows[0].user_id).not.toContain(p.id);
    const left = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.analytics_events WHERE user_id = $1`, [p.id]);
    expect(left.rows).toEqual([{ n: 0 }]);
  });
});
