import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';

const DAY = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe('analytics: what an ingest stores and what the retention removes is audited', () => {
  let t: TestApp;
  const clock = new ManualClock().atMidday();
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false' }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
    owner = await registerUser(t, 'aa-owner');
  });
  afterAll(() => t.close());

  const auditOf = async (orgId: string, action: string) => (await t.db.admin.query(
    `SELECT actor_id, principal_type, entity_type, entity_id, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id`, [orgId, action])).rows;

  it('audits each batch that stores events, in its transaction: counts and event names, never the properties', async () => {
    const orgId = await createOrg(t, owner, 'Audited Events Ltd');
    await onEnterprisePlan(t, orgId);
    const send = (events: object[]) => t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).send({ events }).expect(200);
    expect((await send([
      { name: 'invoice.viewed', properties: { note: 'secret-free-text-1' } },
      { name: 'invoice.viewed', anonymousId: 'v-1' },
      { name: 'Bad Name' },
      { name: 'report.opened', userId: 'u1' },
    ])).body.accepted).toBe(3);
    expect((await send([{ name: 'invoice.viewed', properties: { note: 'secret-free-text-2' } }])).body.accepted).toBe(1);
    // a batch that stores nothing changes nothing
    expect((await send([{ name: 'Bad Name' }])).body.accepted).toBe(0);

    const rows = await auditOf(orgId, 'analytics.events_recorded');
    const byOwner = { actor_id: owner.id, principal_type: 'user', entity_type: 'analytics_event', entity_id: null };
    expect(rows).toEqual([
      { ...byOwner, after: { accepted: 3, rejected: 1, events: { 'invoice.viewed': 2, 'report.opened': 1 } } },
      { ...byOwner, after: { accepted: 1, rejected: 0, events: { 'invoice.viewed': 1 } } },
    ]);
    expect(JSON.stringify(rows)).not.toContain('secret-free-text');
    const { rows: [{ n }] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND source = 'client'`, [orgId]);
    expect(n).toBe(4);
    // the organization's admins read them in its audit log
    const log = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ action: 'analytics.events_recorded' }).set(owner.auth).expect(200);
    expect(log.body.items).toHaveLength(2);
  });

  it('counts an event name that is also an object\'s property name (constructor) as any other', async () => {
    const orgId = await createOrg(t, owner, 'Prototype Names Ltd');
    await onEnterprisePlan(t, orgId);
    const sent = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth)
      .send({ events: [{ name: 'constructor' }, { name: 'constructor' }, { name: 'tostring' }] }).expect(200);
    expect(sent.body).toEqual({ accepted: 3, rejected: [] });
    const byOwner = { actor_id: owner.id, principal_type: 'user', entity_type: 'analytics_event', entity_id: null };
    expect(await auditOf(orgId, 'analytics.events_recorded')).toEqual([
      { ...byOwner, after: { accepted: 3, rejected: 0, events: { constructor: 2, tostring: 1 } } },
    ]);
    const { rows } = await t.db.admin.query(`SELECT name, count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 GROUP BY name ORDER BY name`, [orgId]);
    expect(rows).toEqual([{ name: 'constructor', n: 2 }, { name: 'tostring', n: 1 }]);
  });

  it('audits, per organization, the events, roll-ups, active-user days and event names the retention removes (the clock moved past it)', async () => {
    const a = await createOrg(t, owner, 'Expiring A Ltd');
    const b = await createOrg(t, owner, 'Expiring B Ltd');
    const kept = await createOrg(t, owner, 'Untouched Ltd');
    for (const org of [a, b, kept]) await onEnterprisePlan(t, org);
    const send = (org: string, events: object[]) => t.http.post(`/v1/orgs/${org}/analytics/events`).set(owner.auth).send({ events }).expect(200);
    await send(a, [{ name: 'a.one', properties: { x: 'private' } }, { name: 'a.one' }, { name: 'a.two' }]);
    await send(b, [{ name: 'b.one' }]);
    const job = t.app.get(AnalyticsMaintenanceJob);
    await job.rollUp();
    // the organization that keeps its data: an event name first seen in the future of the moved clock, no events
    await t.db.admin.query(`INSERT INTO core.analytics_event_names (org_id, name, first_seen_at) VALUES ($1, 'k.later', now() + interval '2 years')`, [kept]);

    // 13 months of retention (ANALYTICS_RETENTION_MONTHS): 14 months on, this month's partition, roll-ups and names are past it
    const before = new Date(clock.now());
    clock.advance(14 * 31 * DAY);
    const now = new Date(clock.now());
    const keepFrom = isoDay(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 12, 1));
    expect(keepFrom > isoDay(before.getTime())).toBe(true);
    const result = await job.maintainPartitions();
    expect(result.dropped).toContain(`analytics_events_p${isoDay(before.getTime()).slice(0, 7).replace('-', '')}`);

    // who was active: 31 days kept (today and the 30 before), whatever the months' retention
    const retention = { before: keepFrom, retentionMonths: 13, activeUserDaysBefore: isoDay(now.getTime() - (now.getTime() % DAY) - 30 * DAY) };
    const system = { actor_id: null, principal_type: 'system', entity_type: 'organization' };
    expect(await auditOf(a, 'analytics.retention_purged')).toEqual([
      { ...system, entity_id: a, after: { events: 3, rollUps: 2, activeUserDays: 1, eventNamesForgotten: ['a.one', 'a.two'], ...retention } },
    ]);
    expect(await auditOf(b, 'analytics.retention_purged')).toEqual([
      { ...system, entity_id: b, after: { events: 1, rollUps: 1, activeUserDays: 1, eventNamesForgotten: ['b.one'], ...retention } },
    ]);
    expect(await auditOf(kept, 'analytics.retention_purged')).toEqual([]);
    // what the rows say happened did: nothing of A or B is left
    const left = await t.db.admin.query(`SELECT (SELECT count(*) FROM core.analytics_events WHERE org_id = ANY($1)) AS events,
      (SELECT count(*) FROM core.analytics_daily WHERE org_id = ANY($1)) AS roll_ups,
      (SELECT count(*) FROM core.analytics_daily_users WHERE org_id = ANY($1)) AS active_user_days,
      (SELECT count(*) FROM core.analytics_event_names WHERE org_id = ANY($1)) AS names`, [[a, b]]);
    expect(left.rows).toEqual([{ events: '0', roll_ups: '0', active_user_days: '0', names: '0' }]);
    // a second run finds nothing more to remove: no more rows
    await job.maintainPartitions();
    expect(await auditOf(a, 'analytics.retention_purged')).toHaveLength(1);
  });
});
