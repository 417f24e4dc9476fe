import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { analyticsRepository, dailyUsersStatement, ROLL_UP_LOCK } from '../../src/modules/analytics/analytics.repository.js';
import type { Db } from '../../src/platform/database/database.service.js';
import { ANALYTICS_STEPS, Metrics } from '../../src/platform/observability/metrics.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { until } from '../support/throwaway-servers.js';
import { unzip } from '../support/zip.js';

const DAY = 86_400_000;
const PASSWORD = 'correct horse battery';
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * omnizen_active_users (distinct users of today and of the last 30 days, per organization) is read from who was active
 * per day (core.analytics_daily_users, written by the roll-up), in a transaction of its own after the roll-up committed:
 * its failure (at volume, a statement timeout) never rolls the roll-up back. The rows hold user ids: the person's go with
 * their erasure and are in their export.
 */
describe('analytics: the active users gauge', () => {
  let t: TestApp;
  let owner: TestUser;
  const clock = new ManualClock().atMidday();
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-active-users-'));
  const today = () => clock.now() - (clock.now() % DAY);

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', DATA_EXPORT_DIR: dir, REDIS_URL: '' }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
    owner = await registerUser(t, 'au-owner');
  });
  afterEach(() => { jest.restoreAllMocks(); });
  afterAll(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (org: string, auth: Record<string, string>, events: object[]) =>
    t.http.post(`/v1/orgs/${org}/analytics/events`).set(auth).send({ events }).expect(200);
  /** The gauge's values of an organization, as /metrics exports them. */
  const gauge = async (org: string) => {
    const values = (await t.app.get(Metrics).activeUsers.get()).values.filter((v) => v.labels.org === org);
    return Object.fromEntries(values.map((v) => [v.labels.window, v.value]));
  };
  /** The gauge's definition, counted from the raw events: distinct user ids of today, and of the 29 days before too. */
  const fromEvents = async (org: string) => {
    const { rows: [r] } = await t.db.admin.query(`SELECT count(DISTINCT user_id) FILTER (WHERE occurred_at >= $2::date::timestamp AT TIME ZONE 'UTC')::int AS day,
        count(DISTINCT user_id)::int AS month
      FROM core.analytics_events WHERE org_id = $1 AND user_id IS NOT NULL
        AND occurred_at >= ($2::date - 29)::timestamp AT TIME ZONE 'UTC' AND occurred_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'`, [org, isoDay(today())]);
    return r as { day: number; month: number };
  };
  const dailyUsers = async (org: string) => (await t.db.admin.query(
    'SELECT day::text, user_id FROM core.analytics_daily_users WHERE org_id = $1 ORDER BY day, user_id', [org])).rows;
  const failures = async (step: string) =>
    (await t.app.get(Metrics).analyticsStepsFailed.get()).values.find((v) => v.labels.step === step)?.value ?? 0;

  it('counts the distinct users of today and of the last 30 days from who was active on each rolled-up day', async () => {
    const org = await createOrg(t, owner, 'Counted Ltd');
    await onEnterprisePlan(t, org);
    const other = await createOrg(t, owner, 'Other Ltd');
    await onEnterprisePlan(t, other);
    const at = (daysAgo: number) => new Date(today() - daysAgo * DAY + 3_600_000).toISOString();
    // today u1 (twice) and u2; 3 days ago u1 and u3; 20 days ago u4; an anonymous visitor (no user) today
    await send(org, owner.auth, [
      { name: 'doc.opened', userId: 'u1' }, { name: 'doc.saved', userId: 'u1' }, { name: 'doc.opened', userId: 'u2' },
      { name: 'doc.opened', userId: 'u1', timestamp: at(3) }, { name: 'doc.opened', userId: 'u3', timestamp: at(3) },
      { name: 'doc.opened', userId: 'u4', timestamp: at(20) }, { name: 'page.viewed', anonymousId: 'visitor-1' },
    ]);
    await send(other, owner.auth, [{ name: 'doc.opened', userId: 'u1' }, { name: 'doc.opened', userId: 'x9', timestamp: at(3) }]);
    // the last day of the window (29 days ago), the day before it (the 31st day kept) and the day before that, stored by
    // another process (never in this one's received days)
    await t.db.admin.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, user_id, source)
      VALUES ($1, $2, 'doc.opened', 'u5', 'client'), ($1, $3, 'doc.opened', 'u6', 'client'), ($1, $4, 'doc.opened', 'u8', 'client')`,
    [org, at(29), at(30), at(31)]);
    const job = t.app.get(AnalyticsMaintenanceJob);
    await job.rollUp(new Date(today() - 31 * DAY), new Date(today() + DAY));
    expect(await dailyUsers(org)).toContainEqual({ day: isoDay(today() - 31 * DAY), user_id: 'u8' });
    // the nightly retention keeps 31 days (today and the 30 before: the gauge reads 30), audited per organization
    await job.maintainPartitions();
    const { rows: purged } = await t.db.admin.query(`SELECT after FROM core.audit_logs
      WHERE org_id = $1 AND action = 'analytics.retention_purged' AND principal_type = 'system'`, [org]);
    expect(purged).toEqual([{ after: expect.objectContaining({ activeUserDays: 1, activeUserDaysBefore: isoDay(today() - 30 * DAY) }) }]);

    // the rows the roll-up wrote: one per organization, day and user id (the owner's own events of today among them)
    const rows = await dailyUsers(org);
    expect(rows.filter((r) => r.user_id !== owner.id)).toEqual([
      { day: isoDay(today() - 30 * DAY), user_id: 'u6' },
      { day: isoDay(today() - 29 * DAY), user_id: 'u5' },
      { day: isoDay(today() - 20 * DAY), user_id: 'u4' },
      { day: isoDay(today() - 3 * DAY), user_id: 'u1' },
      { day: isoDay(today() - 3 * DAY), user_id: 'u3' },
      { day: isoDay(today()), user_id: 'u1' },
      { day: isoDay(today()), user_id: 'u2' },
    ]);
    // the gauge: as counted from the events (u1..u5 and whoever acted in the organization today; u6 is a day too early)
    const expected = await fromEvents(org);
    expect(expected.month).toBeGreaterThanOrEqual(5);
    expect(await gauge(org)).toEqual(expected);
    expect(await gauge(other)).toEqual(await fromEvents(other));
    expect(await gauge(other)).toMatchObject({ month: (await fromEvents(other)).day + 1 });

    // a later roll-up of the same days writes nothing new, and a day whose events changed since is rewritten
    await t.db.admin.query(`UPDATE core.analytics_events SET user_id = 'u7' WHERE org_id = $1 AND user_id = 'u3'`, [org]);
    await job.rollUp(new Date(today() - 3 * DAY), new Date(today() + DAY));
    expect((await dailyUsers(org)).filter((r) => r.day === isoDay(today() - 3 * DAY))).toEqual([
      { day: isoDay(today() - 3 * DAY), user_id: 'u1' }, { day: isoDay(today() - 3 * DAY), user_id: 'u7' },
    ]);
    expect(await gauge(org)).toEqual(await fromEvents(org));
  });

  it('reads who was active per day, not the events: at most 30 days of core.analytics_daily_users', async () => {
    let statement: { text: string; values: unknown[] } | undefined;
    const capture = { $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
      statement = { text: strings.reduce((text, part, i) => text + `$${i}` + part), values };
      return [];
    } } as unknown as Db;
    await analyticsRepository.activeUsersByOrg(capture, new Date(today()));
    const { rows } = await t.db.admin.query(`EXPLAIN (COSTS OFF) ${statement!.text}`, statement!.values);
    const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
    expect(plan).toContain('analytics_daily_users');
    expect(plan).not.toMatch(/analytics_events/);
  });

  it('commits the roll-up when the gauge\'s read fails: logged and counted, the gauge left as it was, the next run sets it', async () => {
    const org = await createOrg(t, owner, 'Timed Out Ltd');
    await onEnterprisePlan(t, org);
    const job = t.app.get(AnalyticsMaintenanceJob);
    await send(org, owner.auth, [{ name: 'doc.opened', userId: 'a1' }]);
    await job.rollUp();
    const before = await gauge(org);
    expect(before).toEqual(await fromEvents(org));

    await send(org, owner.auth, [{ name: 'doc.opened', userId: 'a2' }, { name: 'doc.saved', userId: 'a2' }]);
    const failed = await failures('analytics.active_users');
    const saved = async () => (await t.app.get(Metrics).featureUsage.get()).values.find((v) => v.labels.plan === 'enterprise' && v.labels.feature === 'doc.saved')?.value ?? 0;
    const savedBefore = await saved();
    // the read the volume review saw cancelled by the statement timeout
    jest.spyOn(analyticsRepository, 'activeUsersByOrg').mockRejectedValueOnce(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }));
    await expect(job.rollUp()).resolves.toBeGreaterThan(0);

    // the roll-up committed: today's counts and who was active today, a2 among them
    const { rows } = await t.db.admin.query(`SELECT event, events::int, users::int FROM core.analytics_daily WHERE org_id = $1 AND day = $2::date AND event LIKE 'doc.%' ORDER BY event`, [org, isoDay(today())]);
    expect(rows).toEqual([{ event: 'doc.opened', events: 2, users: 2 }, { event: 'doc.saved', events: 1, users: 1 }]);
    expect((await dailyUsers(org)).map((r) => r.user_id)).toEqual(expect.arrayContaining(['a1', 'a2']));
    // counted once; the gauge as it was; the feature usage gauge (its own read) set from the committed roll-up
    expect(await failures('analytics.active_users')).toBe(failed + 1);
    expect(await gauge(org)).toEqual(before);
    expect(await saved()).toBe(savedBefore + 1);

    // the next run (no failure) sets it from what the failed run committed
    await job.rollUp();
    expect(await gauge(org)).toEqual(await fromEvents(org));
    expect((await gauge(org)).day).toBe(before.day + 1);
    expect(await failures('analytics.active_users')).toBe(failed + 1);

    // who was active failing to be written: the roll-up committed all the same, the next run writes them
    await send(org, owner.auth, [{ name: 'doc.opened', userId: 'a3' }]);
    const usersFailed = await failures('analytics.daily_users');
    const failing = jest.spyOn(analyticsRepository, 'rollUpDailyUsers').mockRejectedValue(new Error('canceling statement due to statement timeout'));
    await expect(job.rollUp()).resolves.toBeGreaterThan(0);
    failing.mockRestore();
    expect(await failures('analytics.daily_users')).toBe(usersFailed + 2); // yesterday and today, each counted
    const { rows: [opened] } = await t.db.admin.query(`SELECT events::int FROM core.analytics_daily WHERE org_id = $1 AND day = $2::date AND event = 'doc.opened'`, [org, isoDay(today())]);
    expect(opened).toEqual({ events: 3 });
    expect((await dailyUsers(org)).map((r) => r.user_id)).not.toContain('a3');
    await job.rollUp();
    expect((await dailyUsers(org)).map((r) => r.user_id)).toContain('a3');
    expect(await gauge(org)).toEqual(await fromEvents(org));

    // one day failing (the first of the run: yesterday) holds back none of the others: today's are written, the failure
    // thrown once every day was tried (the caller counts it) and the day redone by the next run
    await send(org, owner.auth, [{ name: 'doc.opened', userId: 'a4' }]);
    const dayFailed = await failures('analytics.daily_users');
    jest.spyOn(analyticsRepository, 'rollUpDailyUsers').mockRejectedValueOnce(new Error('canceling statement due to statement timeout'));
    const rollUpDay = jest.spyOn(analyticsRepository, 'rollUpDay').mockRejectedValueOnce(new Error('deadlock detected'));
    await expect(job.rollUp()).rejects.toThrow('deadlock detected');
    rollUpDay.mockRestore();
    expect(await failures('analytics.daily_users')).toBe(dayFailed + 1);
    expect((await dailyUsers(org)).map((r) => r.user_id)).toContain('a4');
    const { rows: [openedToday] } = await t.db.admin.query(`SELECT events::int FROM core.analytics_daily WHERE org_id = $1 AND day = $2::date AND event = 'doc.opened'`, [org, isoDay(today())]);
    expect(openedToday).toEqual({ events: 4 });
    expect(await gauge(org)).toEqual(await fromEvents(org));
  });

  it('exports a person\'s active days and deletes them with their erasure; the next roll-up counts their pseudonym', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'au-person', PASSWORD));
    const org = await createOrg(t, owner, 'Erasing Ltd');
    await onEnterprisePlan(t, org);
    await addMember(t, org, p, 'member');
    const at = (daysAgo: number) => new Date(today() - daysAgo * DAY + 3_600_000).toISOString();
    await send(org, p.auth, [{ name: 'doc.opened', timestamp: at(2) }, { name: 'doc.opened', timestamp: at(5) }]);
    // an app's user id naming their address (as the value scan matches it), and another member's
    await send(org, owner.auth, [{ name: 'crm.synced', userId: `mailto:${p.email}`, timestamp: at(5) }, { name: 'doc.opened', userId: 'someone', timestamp: at(2) }]);
    const job = t.app.get(AnalyticsMaintenanceJob);
    await job.rollUp(new Date(today() - 6 * DAY), new Date(today() + DAY));
    const naming = (rows: { user_id: string }[]) => rows.filter((r) => r.user_id === p.id || r.user_id.includes(p.email));
    const theirs = naming(await dailyUsers(org));
    expect(theirs).toHaveLength(3);
    expect(theirs).toEqual(expect.arrayContaining([
      { day: isoDay(today() - 5 * DAY), user_id: `mailto:${p.email}` },
      { day: isoDay(today() - 5 * DAY), user_id: p.id },
      { day: isoDay(today() - 2 * DAY), user_id: p.id },
    ]));

    // their export holds their active days
    const started = await t.http.post('/v1/me/data-export').set(p.auth).expect(202);
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(p.auth).expect(200)).body;
    expect(status.status).toBe('ready');
    const zip = await t.http.get(status.downloadUrl).buffer(true)
      .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); })
      .expect(200);
    const files = await unzip(zip.body as Buffer);
    const exported = (JSON.parse(files['core.analytics_daily_users.json']) as { org_id: string; day: string; user_id: string }[]).filter((r) => r.org_id === org);
    expect(exported.map((r) => r.user_id).sort()).toEqual([`mailto:${p.email}`, p.id, p.id].sort());
    expect(files['core.analytics_daily_users.json']).not.toContain('someone');

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);

    // gone with the erasure; the other member's rows stay
    expect(naming(await dailyUsers(org))).toEqual([]);
    const { rows: anywhere } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.analytics_daily_users WHERE user_id = $1 OR user_id ILIKE $2', [p.id, `%${p.email}%`]);
    expect(anywhere).toEqual([{ n: 0 }]);
    expect((await dailyUsers(org)).filter((r) => r.user_id === 'someone')).toEqual([{ day: isoDay(today() - 2 * DAY), user_id: 'someone' }]);

    // the next roll-up of those days writes the one pseudonym their events now carry: counted as the events count them
    await job.rollUp(new Date(today() - 6 * DAY), new Date(today() + DAY));
    const pseudonyms = (await dailyUsers(org)).filter((r) => r.user_id.startsWith('erased-'));
    expect(pseudonyms.map((r) => r.day)).toEqual(expect.arrayContaining([isoDay(today() - 5 * DAY), isoDay(today() - 2 * DAY)]));
    expect(new Set(pseudonyms.map((r) => r.user_id)).size).toBe(1);
    expect(await gauge(org)).toEqual(await fromEvents(org));
  });

  it('exports every step\'s failure counter at 0 from the start: the alert\'s increase() sees a first failure', async () => {
    const values = (await t.app.get(Metrics).analyticsStepsFailed.get()).values;
    expect(values.map((v) => v.labels.step).sort()).toEqual([...ANALYTICS_STEPS].sort());
    // the steps that never failed here: exported, at 0
    for (const step of ['analytics.partitions', 'analytics.rollup', 'analytics.feature_usage']) {
      expect(values.find((v) => v.labels.step === step)?.value).toBe(0);
    }
  });

  it('redoes the days that received events when writing who was active failed: an event dated 5 days back', async () => {
    const org = await createOrg(t, owner, 'Restored Days Ltd');
    await onEnterprisePlan(t, org);
    const job = t.app.get(AnalyticsMaintenanceJob);
    await job.rollUp();
    const fiveDaysAgo = { day: isoDay(today() - 5 * DAY), user_id: 'r1' };
    await send(org, owner.auth, [{ name: 'doc.opened', userId: 'r1', timestamp: new Date(today() - 5 * DAY + 3_600_000).toISOString() }]);
    const failed = await failures('analytics.daily_users');
    jest.spyOn(analyticsRepository, 'rollUpDailyUsers').mockRejectedValueOnce(new Error('canceling statement due to statement timeout'));
    await expect(job.rollUp()).resolves.toBeGreaterThan(0);
    expect(await failures('analytics.daily_users')).toBe(failed + 1);
    expect(await dailyUsers(org)).not.toContainEqual(fiveDaysAgo);
    // the next run of the default window (yesterday and today) redoes the day the failed one had received
    await job.rollUp();
    expect(await dailyUsers(org)).toContainEqual(fiveDaysAgo);
  });

  it('keeps an erased person out of who was active when a roll-up read their events before the erasure committed', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'au-raced', PASSWORD));
    const org = await createOrg(t, owner, 'Raced Erasure Ltd');
    await onEnterprisePlan(t, org);
    await addMember(t, org, p, 'member');
    const day = today() - 4 * DAY;
    await send(org, p.auth, [{ name: 'doc.opened', timestamp: new Date(day + 3_600_000).toISOString() }]);
    const rollUp = await t.db.admin.connect();
    let erasing: Promise<{ status: number }> | undefined;
    try {
      // another instance's roll-up of that day: under the lock, its snapshot taken before the erasure can commit
      await rollUp.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await rollUp.query('SELECT core.xact_lock(($1))', [ROLL_UP_LOCK]);
      const pid = (await rollUp.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      erasing = t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).then((r) => r);
      let done = false;
      void erasing.finally(() => { done = true; }).catch(() => undefined);
      // the erasure waits for the roll-up's lock before it touches their analytics rows
      await until('the erasure waits for the roll-up lock (or is done)', async () => {
        if (done) return true;
        const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`, [pid]);
        return rows[0].n === 1;
      });
      // the roll-up's statement, from its snapshot: their user id on that day
      await dailyUsersStatement((strings: TemplateStringsArray, ...values: unknown[]) =>
        rollUp.query(strings.reduce((text, part, i) => text + `$${i}` + part), values), [new Date(day)]);
      await rollUp.query('COMMIT');
    } finally {
      await rollUp.query('ROLLBACK').catch(() => undefined);
      rollUp.release();
    }
    expect((await erasing!).status).toBe(200);
    // the erasure ran after the roll-up committed: their row it wrote is gone, and their events carry the pseudonym
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.analytics_daily_users WHERE user_id = $1', [p.id]);
    expect(rows).toEqual([{ n: 0 }]);
    const { rows: events } = await t.db.admin.query(`SELECT user_id FROM core.analytics_events WHERE org_id = $1 AND name = 'doc.opened'`, [org]);
    expect(events).toEqual([{ user_id: expect.stringMatching(/^erased-/) }]);
  });
  it('lets erasures run side by side (each holds the roll-up lock shared) while a roll-up skips the days until they end', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'au-side', PASSWORD));
    const other = await t.db.admin.connect();
    try {
      // another person's erasure in progress: the roll-up lock held shared, as analyticsRepository.lockRollUps holds it
      await other.query('BEGIN');
      await other.query('SELECT core.xact_lock_shared(($1))', [ROLL_UP_LOCK]);
      // this one does not wait for it (held exclusively, it waited past the lock timeout: 503)
      const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
      expect(res.status).toBe(200);
      const { rows } = await t.db.admin.query('SELECT email <> $2 AS erased FROM core."User" WHERE id = $1', [p.id, p.email]);
      expect(rows).toEqual([{ erased: true }]);
      // a roll-up meanwhile skips (nothing written, no failure) and leaves the days to the next run
      const job = t.app.get(AnalyticsMaintenanceJob);
      const rolled = await failures('analytics.rollup');
      await expect(job.rollUp()).resolves.toBe(0);
      expect(await failures('analytics.rollup')).toBe(rolled);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      other.release();
    }
  });
});
