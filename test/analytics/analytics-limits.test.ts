import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { Metrics } from '../../src/platform/observability/metrics.js';

const DAY = 86_400_000;
/** ANALYTICS_MAX_EVENT_NAMES's default (config.ts) */
const MAX = 500;
const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);
const named = (prefix: string, n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}.${from + i}` }));

/**
 * What bounds analytics: the distinct event names an organization's apps may send (ANALYTICS_MAX_EVENT_NAMES, 500 by
 * default), the rows of one daily-counts answer (pages behind X-Next-Cursor) and the feature usage by plan (the 50
 * most used events per plan; the gauge sums the rest as "other").
 */
describe('analytics limits', () => {
  let t: TestApp;
  let owner: TestUser;
  const clock = new ManualClock().atMidday();

  beforeAll(async () => {
    t = await createTestApp({}, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
    owner = await registerUser(t, 'limits');
  });
  afterAll(() => t.close());

  const newOrg = async (name: string) => {
    const org = await createOrg(t, owner, name);
    await onEnterprisePlan(t, org);
    return org;
  };
  const send = (org: string, events: object[], who: TestUser = owner) =>
    t.http.post(`/v1/orgs/${org}/analytics/events`).set(who.auth).send({ events }).expect(200);
  const names = async (org: string) => (await t.db.admin.query<{ name: string }>(
    'SELECT name FROM core.analytics_event_names WHERE org_id = $1 ORDER BY name', [org])).rows.map((r) => r.name);
  /** The audit rows of the names registered in `org`: entity id (the name), actor, principal type; by name. */
  const nameAudits = async (org: string) => (await t.db.admin.query(`SELECT entity_id AS name, actor_id, principal_type, after FROM core.audit_logs
    WHERE org_id = $1 AND action = 'analytics.event_name_registered' AND entity_type = 'analytics_event_name' ORDER BY entity_id COLLATE "C", id`, [org])).rows;
  const storedNames = async (org: string) => (await t.db.admin.query<{ n: number }>(
    `SELECT count(DISTINCT name)::int AS n FROM core.analytics_events WHERE org_id = $1 AND source = 'client'`, [org])).rows[0].n;

  it(`refuses, event by event, the new names past ${MAX} per organization, storing nothing of them`, async () => {
    const org = await newOrg('Many Names');
    expect((await send(org, named('n', MAX))).body).toEqual({ accepted: MAX, rejected: [] });
    const res = await send(org, [{ name: 'n.1' }, { name: 'fresh.a' }, { name: 'Bad Name' }, { name: 'fresh.b' }, { name: 'fresh.a' }, { name: 'n.499' }]);
    const refused = `name fresh.a is new and the organization already has ${MAX} distinct event names, the most it may; 2 new name(s) of this batch refused`;
    expect(res.body).toEqual({ accepted: 2, rejected: [
      { index: 1, problems: [refused] },
      { index: 2, problems: ['name must be lower case letters, digits and _ . : - (up to 100), starting with a letter'] },
      { index: 3, problems: [refused.replace('fresh.a', 'fresh.b')] },
      { index: 4, problems: [refused] },
    ] });
    const { rows } = await t.db.admin.query(`SELECT name, count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND name IN ('n.1', 'n.499', 'fresh.a', 'fresh.b') GROUP BY 1 ORDER BY 1`, [org]);
    expect(rows).toEqual([{ name: 'n.1', n: 2 }, { name: 'n.499', n: 2 }]);
    expect((await names(org)).length).toBe(MAX);
    expect(await storedNames(org)).toBe(MAX);
    // one audit row per name registered, none for the names refused
    const audited = await nameAudits(org);
    expect(audited.length).toBe(MAX);
    expect(new Set(audited.map((r) => r.name)).size).toBe(MAX);
    expect(audited.map((r) => r.name)).not.toContain('fresh.a');

    // the last free name goes to the first new name of a batch (a member's: whoever may send events registers names)
    const other = await newOrg('Almost Full');
    const member = await registerUser(t, 'limits-member');
    await addMember(t, other, member, 'member');
    await send(other, named('m', MAX - 1));
    const last = await send(other, [{ name: 'p.x' }, { name: 'p.y' }, { name: 'p.x' }], member);
    expect(last.body).toEqual({ accepted: 2, rejected: [
      { index: 1, problems: [`name p.y is new and the organization already has ${MAX} distinct event names, the most it may; 1 new name(s) of this batch refused`] },
    ] });
    const registered = await names(other);
    expect(registered.length).toBe(MAX);
    expect(registered).toContain('p.x');
    expect(registered).not.toContain('p.y');
    const { rows: px } = await t.db.admin.query(`SELECT name, user_id FROM core.analytics_events WHERE org_id = $1 AND name LIKE 'p.%'`, [other]);
    expect(px).toEqual([{ name: 'p.x', user_id: member.id }, { name: 'p.x', user_id: member.id }]);
  });

  it('audits the first registration of each new name, once per name (not per event), by whoever sent it', async () => {
    const org = await newOrg('Audited Names');
    const first = await send(org, [{ name: 'signup.started' }, { name: 'signup.started' }, { name: 'Bad Name' }, { name: 'report.opened' }, { name: 'signup.started' }]);
    expect(first.body).toEqual({ accepted: 4, rejected: [{ index: 2, problems: ['name must be lower case letters, digits and _ . : - (up to 100), starting with a letter'] }] });
    const byOwner = { actor_id: owner.id, principal_type: 'user' };
    expect(await nameAudits(org)).toEqual([
      { name: 'report.opened', ...byOwner, after: { name: 'report.opened' } },
      { name: 'signup.started', ...byOwner, after: { name: 'signup.started' } },
    ]);
    // names held already: no new row, whatever the events; a key's new name: audited as the key
    const secret = (await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth).send({ name: 'app', scopes: ['analytics:write'] }).expect(201)).body;
    const keyed = await t.http.post(`/v1/orgs/${org}/analytics/events`).set({ Authorization: `Bearer ${secret.secret}` })
      .send({ events: [{ name: 'signup.started', userId: 'u1' }, { name: 'report.opened', userId: 'u1' }, { name: 'export.done', userId: 'u1' }, { name: 'export.done', userId: 'u2' }] }).expect(200);
    expect(keyed.body).toEqual({ accepted: 4, rejected: [] });
    expect(await nameAudits(org)).toEqual([
      { name: 'export.done', actor_id: `api_key:${secret.id}`, principal_type: 'service', after: { name: 'export.done' } },
      { name: 'report.opened', ...byOwner, after: { name: 'report.opened' } },
      { name: 'signup.started', ...byOwner, after: { name: 'signup.started' } },
    ]);
    expect(await names(org)).toEqual(['export.done', 'report.opened', 'signup.started']);
    const { rows: [{ n }] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1`, [org]);
    expect(n).toBe(8);
    // the owner reads them in the organization's audit log
    const log = await t.http.get(`/v1/orgs/${org}/audit-logs`).query({ action: 'analytics.event_name_registered' }).set(owner.auth).expect(200);
    expect(log.body.items.map((r: { entityId: string }) => r.entityId).sort()).toEqual(['export.done', 'report.opened', 'signup.started']);
  });

  it('lets two concurrent batches register no more names than the cap together', async () => {
    const org = await newOrg('Racing Names');
    await send(org, named('r', MAX - 10));
    // both requests are held where they add their names (the table locked against writes) until both are in flight
    const locker = await t.db.admin.connect();
    let a: Promise<{ body: { accepted: number; rejected: { index: number; problems: string[] }[] } }>;
    let b: typeof a;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE core.analytics_event_names IN SHARE MODE');
      a = Promise.resolve(send(org, named('a', 10)));
      b = Promise.resolve(send(org, named('b', 10)));
      await until('both batches wait for a lock', async () => (await t.db.admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n >= 2);
    } finally {
      await locker.query('COMMIT');
      locker.release();
    }
    const results = [(await a!).body, (await b!).body];
    // the first to take the lock fills the cap; the other's ten new names are all refused
    expect(results.map((r) => r.accepted).sort()).toEqual([0, 10]);
    expect(results.flatMap((r) => r.rejected).length).toBe(10);
    expect((await names(org)).length).toBe(MAX);
    expect(await storedNames(org)).toBe(MAX);
  });

  it('answers the daily counts in pages of at most 1,000 rows, the next cursor in X-Next-Cursor', async () => {
    const org = await newOrg('Paged Counts');
    const today = clock.now() - (clock.now() % DAY);
    const at = (days: number) => new Date(today - days * DAY + 3_600_000).toISOString();
    // 500 names on each of three days: 1,500 roll-up rows
    for (const d of [2, 1, 0]) await send(org, named('e', MAX).map((e) => ({ ...e, timestamp: at(d) })));
    await t.app.get(AnalyticsMaintenanceJob).rollUp(new Date(today - 3 * DAY), new Date(today + DAY));
    const url = `/v1/orgs/${org}/analytics/events/daily?from=${isoDay(today - 2 * DAY)}&to=${isoDay(today)}`;
    const { rows: all } = await t.db.admin.query(
      'SELECT day::text AS day, event, events::int AS events, users::int AS users FROM core.analytics_daily WHERE org_id = $1 ORDER BY day, event COLLATE "C"', [org]);
    expect(all.length).toBe(1_500);

    const first = await t.http.get(url).set(owner.auth).expect(200);
    expect(first.body.length).toBe(1_000);
    expect(first.body).toEqual(all.slice(0, 1_000));
    expect(first.headers['x-next-cursor']).toEqual(expect.any(String));
    const second = await t.http.get(`${url}&cursor=${first.headers['x-next-cursor']}`).set(owner.auth).expect(200);
    expect(second.body).toEqual(all.slice(1_000));
    expect(second.headers['x-next-cursor']).toBeUndefined();

    // smaller pages, with the event filter: every row once, in order
    const seen: unknown[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await t.http.get(`${url}&event=e.7&limit=2${cursor ? `&cursor=${cursor}` : ''}`).set(owner.auth).expect(200);
      seen.push(...res.body);
      cursor = res.headers['x-next-cursor'];
      pages++;
    } while (cursor);
    expect(pages).toBe(2);
    expect(seen).toEqual(all.filter((r) => r.event === 'e.7'));

    const forged = await t.http.get(`${url}&cursor=${Buffer.from('{"d":"not a day","e":"x"}').toString('base64url')}`).set(owner.auth).expect(400);
    expect(forged.body.error.code).toBe('pagination.cursor');
    const tooMany = await t.http.get(`${url}&limit=1001`).set(owner.auth).expect(400);
    expect(tooMany.body.error.code).toBe('validation_failed');
  });

  it('reads the 50 most used events per plan for the report and the gauge, the rest summed as "other"', async () => {
    const org = await createOrg(t, owner, 'Feature Rich');
    await onPlan(t, org, 'professional');
    // 60 features: f.00 .. f.49 three times each, f.50 .. f.59 once
    const features = Array.from({ length: 60 }, (_, i) => `f.${String(i).padStart(2, '0')}`);
    await send(org, features.flatMap((name, i) => Array.from({ length: i < 50 ? 3 : 1 }, () => ({ name }))));
    const job = t.app.get(AnalyticsMaintenanceJob);
    await job.rollUp();
    const today = isoDay(clock.now());

    const service = jwt.sign({ role: 'service_role', service: 'reports' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const usage = await t.http.get(`/v1/analytics/feature-usage?from=${today}&to=${today}`).set({ Authorization: `Bearer ${service}` }).expect(200);
    const professional = usage.body.filter((r: { plan: string }) => r.plan === 'professional');
    expect(professional).toEqual(features.slice(0, 50).map((event) => ({ plan: 'professional', event, organizations: 1, events: 3 })));

    // the gauge: the same 50, and everything else the plan's organizations did today as "other"
    const { rows: [{ total }] } = await t.db.admin.query(`SELECT sum(events)::int AS total FROM core.analytics_daily WHERE org_id = $1 AND day = $2::date`, [org, today]);
    const gauge = (await t.app.get(Metrics).featureUsage.get()).values.filter((v) => v.labels.plan === 'professional');
    expect(gauge.length).toBe(51);
    expect(gauge.filter((v) => v.labels.feature !== 'other').map((v) => [v.labels.feature, v.value])).toEqual(features.slice(0, 50).map((f) => [f, 3]));
    expect(gauge.find((v) => v.labels.feature === 'other')?.value).toBe(total - 150);
    expect(total - 150).toBeGreaterThanOrEqual(10);
  });

  it('forgets, with the retention, the names whose events are gone', async () => {
    const org = await newOrg('Old Names');
    const now = new Date(clock.now());
    const longAgo = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 14, 1));
    await t.db.admin.query(`INSERT INTO core.analytics_event_names (org_id, name, first_seen_at) VALUES ($1, 'old.gone', $2), ($1, 'old.kept', $2), ($1, 'new.one', now())`, [org, longAgo]);
    await t.db.admin.query(`INSERT INTO core.analytics_daily (org_id, day, event, events, users) VALUES ($1, $2, 'old.kept', 1, 1)`, [org, isoDay(clock.now())]);
    await t.app.get(AnalyticsMaintenanceJob).maintainPartitions();
    expect(await names(org)).toEqual(['new.one', 'old.kept']);
  });
});
