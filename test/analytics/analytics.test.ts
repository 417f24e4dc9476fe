import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startPostHogDouble, type PostHogDouble } from '../support/doubles/posthog-double.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { POSTHOG_ERASURE_JOB, PostHogForwarder } from '../../src/modules/analytics/posthog.forwarder.js';
import { JobRegistry } from '../../src/platform/queue/jobs.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { ROLL_UP_LOCK, rollUpStatement } from '../../src/modules/analytics/analytics.repository.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { loadConfig, type AppConfig } from '../../src/platform/config/config.js';

const DAY = 86_400_000;
const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);

describe('usage analytics', () => {
  let t: TestApp;
  let posthog: PostHogDouble;
  let owner: TestUser;
  let orgId: string;
  const clock = new ManualClock().atMidday();

  beforeAll(async () => {
    posthog = await startPostHogDouble();
    t = await createTestApp(posthog.env, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
    owner = await registerUser(t, 'analyst');
    orgId = await createOrg(t, owner, 'Measured');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(async () => {
    await t.close();
    await posthog.close();
  });

  const events = (body: object) => t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).send(body);

  it('stores the valid events of a batch and reports the bad ones by index', async () => {
    const res = await events({ events: [
      { name: 'invoice.viewed', properties: { invoiceId: 'INV-1' } },
      { name: 'Bad Name' },
      { name: 'report.opened', anonymousId: 'anon-1', timestamp: new Date(Date.now() - 2 * DAY).toISOString() },
      { name: 'invoice.viewed', extra: true },
      'not an object',
      { name: 'too.old', timestamp: new Date(Date.now() - 60 * DAY).toISOString() },
    ] }).expect(200);
    expect(res.body.accepted).toBe(2);
    expect(res.body.rejected.map((r: any) => r.index)).toEqual([1, 3, 4, 5]);
    expect(res.body.rejected[0].problems[0]).toContain('name must be lower case');
    expect(res.body.rejected[1].problems[0]).toContain('extra');
    expect(res.body.rejected[3].problems).toEqual(['timestamp must be at most 28 days ago']);
    const { rows } = await t.db.admin.query(
      `SELECT name, user_id, anonymous_id, source, properties FROM core.analytics_events WHERE org_id = $1 AND source = 'client' ORDER BY name`, [orgId]);
    expect(rows).toEqual([
      { name: 'invoice.viewed', user_id: owner.id, anonymous_id: null, source: 'client', properties: { invoiceId: 'INV-1' } },
      { name: 'report.opened', user_id: null, anonymous_id: 'anon-1', source: 'client', properties: {} },
    ]);
  });

  it('refuses a batch over 500 events, storing none', async () => {
    const res = await events({ events: Array.from({ length: 501 }, () => ({ name: 'x.y' })) }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND name = 'x.y'`, [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('records server-side events: the sign-in and a posted journal entry', async () => {
    const { rows: signIns } = await t.db.admin.query(`SELECT org_id, user_id, source FROM core.analytics_events WHERE name = 'user.signed_in' AND user_id = $1`, [owner.id]);
    expect(signIns).toEqual([{ org_id: owner.personalOrgId, user_id: owner.id, source: 'server' }]);
    const acc = await startBooks(t, orgId, owner);
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth)
      .send({ date: '2026-01-02', memo: 'Capital in', lines: [{ accountId: acc['1100'], debit: '100.00' }, { accountId: acc['3100'], credit: '100.00' }] }).expect(201);
    const { rows } = await t.db.admin.query(`SELECT user_id, source FROM core.analytics_events WHERE org_id = $1 AND name = 'ledger.entry_posted'`, [orgId]);
    expect(rows).toEqual([{ user_id: owner.id, source: 'server' }]);
  });

  it('writes an event without locking its organization\'s row, and only for the organization of the request', async () => {
    const writer = new pg.Client({ connectionString: t.db.apiUrl });
    await writer.connect();
    const other = await t.db.admin.connect();
    const insert = (org: string) => writer.query(
      `INSERT INTO core.analytics_events (org_id, occurred_at, name, source) VALUES ($1, now(), 'lock.probe', 'server')`, [org]);
    try {
      await writer.query('BEGIN');
      // as the API begins a request (its claims verified: writes as `authenticated` are closed to any other path)
      await writer.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: owner.id, role: 'authenticated', org_id: orgId })]);
      await insert(orgId);
      // a foreign key to core.organizations key-share locked the row until COMMIT (migration 20270118000100): every
      // posting of the organization took that lock, a MultiXact when they ran together
      await other.query('BEGIN');
      const locked = await other.query('SELECT id FROM core.organizations WHERE id = $1 FOR UPDATE NOWAIT', [orgId]);
      expect(locked.rows).toEqual([{ id: orgId }]);
      await other.query('ROLLBACK');
      // what the key guaranteed, the insert policy still does: the organization is the request's (verified) one
      await writer.query('SAVEPOINT other_org');
      await expect(insert(owner.personalOrgId)).rejects.toMatchObject({ code: '42501' });
      await writer.query('ROLLBACK TO SAVEPOINT other_org');
      await expect(insert(randomUUID())).rejects.toMatchObject({ code: '42501' });
    } finally {
      await writer.query('ROLLBACK').catch(() => undefined);
      await writer.end();
      await other.query('ROLLBACK').catch(() => undefined);
      other.release();
    }
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.analytics_events WHERE name = 'lock.probe'`);
    expect(rows[0].n).toBe(0);
  });

  it('takes events from an API key with analytics:write only', async () => {
    const write = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'app', scopes: ['analytics:write'] }).expect(201)).body;
    const read = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'ro', scopes: ['ledger:read'] }).expect(201)).body;
    const ok = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set({ Authorization: `Bearer ${write.secret}` })
      .send({ events: [{ name: 'app.opened', userId: 'app-user-1' }, { name: 'app.opened' }] }).expect(200);
    expect(ok.body).toEqual({ accepted: 1, rejected: [{ index: 1, problems: ['userId or anonymousId is required when the caller is not a signed-in user'] }] });
    const no = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set({ Authorization: `Bearer ${read.secret}` })
      .send({ events: [{ name: 'app.opened', userId: 'app-user-1' }] }).expect(403);
    expect(no.body.error.details.scope).toBe('analytics:write');
  });

  it('computes daily and monthly active users, daily counts and top events for a constructed history', async () => {
    const org = await createOrg(t, owner, 'History');
    const base = Date.now() - 20 * DAY;
    const at = (days: number) => new Date(base + days * DAY).toISOString();
    const history = [
      { name: 'doc.opened', userId: 'u1', timestamp: at(0) },
      { name: 'doc.opened', userId: 'u1', timestamp: at(0) },
      { name: 'doc.saved', userId: 'u2', timestamp: at(0) },
      { name: 'doc.opened', userId: 'u2', timestamp: at(1) },
      { name: 'doc.opened', userId: 'u3', timestamp: at(1) },
      { name: 'doc.opened', anonymousId: 'visitor', timestamp: at(2) },
      { name: 'doc.saved', userId: 'u4', timestamp: at(10) },
    ];
    await t.http.post(`/v1/orgs/${org}/analytics/events`).set(owner.auth).send({ events: history }).expect(200);
    await t.app.get(AnalyticsMaintenanceJob).rollUp(new Date(base - DAY), new Date(Date.now() + DAY));
    const from = isoDay(base);
    const to = isoDay(base + 10 * DAY);
    const active = await t.http.get(`/v1/orgs/${org}/analytics/active-users?from=${from}&to=${to}`).set(owner.auth).expect(200);
    expect(active.body.daily).toEqual([
      { day: isoDay(base), users: 2 }, { day: isoDay(base + DAY), users: 2 }, { day: isoDay(base + 10 * DAY), users: 1 },
    ]);
    // per calendar month: the users of the history that fall in each month
    const months = new Map<string, Set<string>>();
    for (const e of history) if (e.userId) (months.get(e.timestamp.slice(0, 7)) ?? months.set(e.timestamp.slice(0, 7), new Set()).get(e.timestamp.slice(0, 7))!).add(e.userId);
    expect(active.body.monthly).toEqual([...months].sort().map(([month, users]) => ({ month, users: users.size })));
    const daily = await t.http.get(`/v1/orgs/${org}/analytics/events/daily?from=${from}&to=${to}&event=doc.opened`).set(owner.auth).expect(200);
    expect(daily.body).toEqual([
      { day: isoDay(base), event: 'doc.opened', events: 2, users: 1 },
      { day: isoDay(base + DAY), event: 'doc.opened', events: 2, users: 2 },
      { day: isoDay(base + 2 * DAY), event: 'doc.opened', events: 1, users: 0 },
    ]);
    const top = await t.http.get(`/v1/orgs/${org}/analytics/events/top?from=${from}&to=${to}&limit=5`).set(owner.auth).expect(200);
    expect(top.body).toEqual([{ event: 'doc.opened', events: 5 }, { event: 'doc.saved', events: 2 }]);
    const bad = await t.http.get(`/v1/orgs/${org}/analytics/active-users?from=${to}&to=${from}`).set(owner.auth).expect(400);
    expect(bad.body.error.code).toBe('analytics.range');

    // feature usage by plan across organizations: for a service-role key only
    await onPlan(t, org, 'professional');
    const service = jwt.sign({ role: 'service_role', service: 'reports' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const usage = await t.http.get(`/v1/analytics/feature-usage?from=${from}&to=${to}`).set({ Authorization: `Bearer ${service}` }).expect(200);
    expect(usage.body.filter((r: any) => r.plan === 'professional')).toEqual([
      { plan: 'professional', event: 'doc.opened', organizations: 1, events: 5 },
      { plan: 'professional', event: 'doc.saved', organizations: 1, events: 2 },
    ]);
    await t.http.get(`/v1/analytics/feature-usage?from=${from}&to=${to}`).set(owner.auth).expect(403);
  });

  it('counts events an app dates days back at the next roll-up, and nightly every day an event may still be dated in', async () => {
    const org = await createOrg(t, owner, 'Late Events');
    const job = t.app.get(AnalyticsMaintenanceJob);
    const daily = async (day: string) => (await t.http.get(`/v1/orgs/${org}/analytics/events/daily?from=${day}&to=${day}`).set(owner.auth).expect(200)).body;
    const tenDaysAgo = clock.now() - 10 * DAY;
    const sent = [{ name: 'late.sent', userId: 'u1', timestamp: new Date(tenDaysAgo).toISOString() }, { name: 'late.sent', userId: 'u2', timestamp: new Date(tenDaysAgo + 1000).toISOString() }];
    expect((await t.http.post(`/v1/orgs/${org}/analytics/events`).set(owner.auth).send({ events: sent }).expect(200)).body.accepted).toBe(2);
    await job.rollUp(); // the 10-minute run: yesterday, today, and the days that received events since the last one
    expect(await daily(isoDay(tenDaysAgo))).toEqual([{ day: isoDay(tenDaysAgo), event: 'late.sent', events: 2, users: 2 }]);
    const { rows } = await t.db.admin.query('SELECT day::text, events::int FROM core.analytics_daily WHERE org_id = $1', [org]);
    expect(rows).toEqual([{ day: isoDay(tenDaysAgo), events: 2 }]);
    // stored by a process that stopped before its roll-up (this one never saw it): the next night's run counts it
    const monthAgo = clock.now() - 27 * DAY;
    await t.db.admin.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, user_id, source) VALUES ($1, $2, 'late.sent', 'u3', 'client')`, [org, new Date(monthAgo)]);
    await job.rollUp();
    expect(await daily(isoDay(monthAgo))).toEqual([]);
    clock.advance(DAY);
    try {
      await job.rollUpAcceptedAge();
    } finally {
      clock.advance(-DAY);
    }
    expect(await daily(isoDay(monthAgo))).toEqual([{ day: isoDay(monthAgo), event: 'late.sent', events: 1, users: 1 }]);
  });

  it('rolls up several back-dated days at once, and only the days that received events between them', async () => {
    const org = await createOrg(t, owner, 'Several Late Days');
    const job = t.app.get(AnalyticsMaintenanceJob);
    const today = clock.now() - (clock.now() % DAY);
    const ago = (days: number) => today - days * DAY + 3_600_000;
    // a day between them that received no event of this process: an earlier roll-up's count stays as it was
    await t.db.admin.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, user_id, source) VALUES ($1, $2, 'late.many', 'u9', 'client')`, [org, new Date(ago(5))]);
    const sent = [3, 9, 9, 20, 27].map((d, i) => ({ name: 'late.many', userId: `u${i % 2}`, timestamp: new Date(ago(d)).toISOString() }));
    expect((await t.http.post(`/v1/orgs/${org}/analytics/events`).set(owner.auth).send({ events: sent }).expect(200)).body.accepted).toBe(5);
    await job.rollUp();
    const daily = await t.http.get(`/v1/orgs/${org}/analytics/events/daily?from=${isoDay(ago(28))}&to=${isoDay(today)}`).set(owner.auth).expect(200);
    expect(daily.body).toEqual([
      { day: isoDay(ago(27)), event: 'late.many', events: 1, users: 1 },
      { day: isoDay(ago(20)), event: 'late.many', events: 1, users: 1 },
      { day: isoDay(ago(9)), event: 'late.many', events: 2, users: 2 },
      { day: isoDay(ago(3)), event: 'late.many', events: 1, users: 1 },
    ]);
    const { rows } = await t.db.admin.query('SELECT day::text, events::int, users::int FROM core.analytics_daily WHERE org_id = $1 ORDER BY day', [org]);
    expect(rows).toEqual(daily.body.map((r: { day: string; events: number; users: number }) => ({ day: r.day, events: r.events, users: r.users })));
  });

  it('deletes the roll-ups of the months whose events are past the retention', async () => {
    const org = await createOrg(t, owner, 'Old Roll-ups');
    const now = new Date(clock.now());
    // 13 months kept: this month and the 12 before it
    const keptFrom = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 12, 1);
    await t.db.admin.query(`INSERT INTO core.analytics_daily (org_id, day, event, events, users) VALUES ($1, $2, 'old.one', 3, 1), ($1, $3, 'kept.one', 4, 2)`,
      [org, isoDay(keptFrom - DAY), isoDay(keptFrom)]);
    const result = await t.app.get(AnalyticsMaintenanceJob).maintainPartitions();
    expect(result.rollUpsDeleted).toBe(1);
    const { rows } = await t.db.admin.query('SELECT day::text, event FROM core.analytics_daily WHERE org_id = $1', [org]);
    expect(rows).toEqual([{ day: isoDay(keptFrom), event: 'kept.one' }]);
  });

  it('forwards stored events to PostHog with our id as the event uuid', async () => {
    await events({ events: [{ name: 'posthog.checked', properties: { n: 1 } }] }).expect(200);
    await t.app.get(PostHogForwarder).flush();
    await posthog.received(1);
    const sent = posthog.events.find((e) => e.event === 'posthog.checked')!;
    const { rows: [row] } = await t.db.admin.query(`SELECT id FROM core.analytics_events WHERE name = 'posthog.checked'`);
    expect(sent).toMatchObject({ distinct_id: owner.id, uuid: row.id, properties: expect.objectContaining({ n: 1, source: 'client', org_id: orgId }) });
    expect(posthog.apiKeys[0]).toBe('phc_test_double');
  });

  it('forwards to PostHog only where a person\'s erasure can delete them there: POSTHOG_API_KEY alone refuses to start', () => {
    const env = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen', POSTHOG_API_KEY: 'phc_x' };
    expect(() => loadConfig(env)).toThrow(/POSTHOG_API_KEY needs POSTHOG_PERSONAL_API_KEY \(scope person:write\) and POSTHOG_PROJECT_ID/);
    expect(() => loadConfig({ ...env, POSTHOG_PERSONAL_API_KEY: 'phx_x' })).toThrow(/POSTHOG_PROJECT_ID/);
    // the private API is served by the app host, not the ingestion host
    expect(loadConfig({ ...env, POSTHOG_PERSONAL_API_KEY: 'phx_x', POSTHOG_PROJECT_ID: '1', POSTHOG_HOST: 'https://eu.i.posthog.com' }).analytics)
      .toMatchObject({ posthogHost: 'https://eu.i.posthog.com', posthogAppHost: 'https://eu.posthog.com', posthogProjectId: '1' });
  });

  it('a person\'s erasure deletes their PostHog persons while the deletion settings are set, forwarding turned off too; a job finding them gone waits for them', async () => {
    /** A forwarder of this app's configuration with `settings` changed (its jobs in a registry of its own). */
    const forwarderWith = (settings: Partial<AppConfig['analytics']>) => {
      const registry = new JobRegistry();
      const forwarder = new PostHogForwarder({ ...t.config, analytics: { ...t.config.analytics, ...settings } }, registry);
      forwarder.onModuleInit();
      return { forwarder, registry };
    };
    const erase = (f: PostHogForwarder, distinctId: string) =>
      t.app.get(PrivilegedDatabase).run('privacy.erasure', (db) => f.erasePersons({ db, orgId }, [distinctId]));
    const jobsOf = async (distinctId: string) =>
      (await t.db.admin.query(`SELECT topic, payload FROM core.outbox WHERE org_id = $1 AND payload->'distinctIds' ? $2`, [orgId, distinctId])).rows;
    // forwarding off (no POSTHOG_API_KEY), the deletion settings kept: the persons it forwarded before still go
    const off = forwarderWith({ posthogApiKey: undefined });
    const forwardedBefore = randomUUID();
    expect(await erase(off.forwarder, forwardedBefore)).toBe(true);
    expect(await jobsOf(forwardedBefore)).toEqual([{ topic: POSTHOG_ERASURE_JOB, payload: { distinctIds: [forwardedBefore] } }]);
    await t.db.admin.query(`DELETE FROM core.outbox WHERE org_id = $1 AND payload->'distinctIds' ? $2`, [orgId, forwardedBefore]);
    // without them nothing is written, and a job written before fails (the outbox keeps it pending and retries it) without
    // calling PostHog: it is not taken as done
    const gone = forwarderWith({ posthogApiKey: undefined, posthogPersonalApiKey: undefined, posthogProjectId: undefined });
    const never = randomUUID();
    expect(await erase(gone.forwarder, never)).toBe(false);
    expect(await jobsOf(never)).toEqual([]);
    const deletions = posthog.deletions.length;
    await expect(gone.registry.run({ id: '1', orgId, topic: POSTHOG_ERASURE_JOB, payload: { distinctIds: [forwardedBefore] } }))
      .rejects.toThrow('PostHog\'s deletion is not configured (POSTHOG_PERSONAL_API_KEY, POSTHOG_PROJECT_ID): 1 distinct id(s) wait for it');
    expect(posthog.deletions.length).toBe(deletions);
  });

  it('keeps an app\'s events from PostHog persons it cannot speak for and from the server\'s event names', async () => {
    // any member may send events, a viewer too; a PostHog person is shared by every organization of the project
    const viewer = await registerUser(t, 'analytics-viewer');
    await addMember(t, orgId, viewer, 'viewer');
    await t.app.get(PostHogForwarder).flush();
    const before = posthog.events.length;
    const res = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(viewer.auth).send({ events: [
      { name: 'profile.hijack', userId: owner.id, properties: { $set: { email: 'x@evil.test' } } },
      { name: 'profile.hijack', properties: { ok: 1, $set_once: { plan: 'free' } } },
      { name: 'ledger.entry_posted' },
      { name: 'user.signed_in', userId: viewer.id },
      { name: 'profile.named', userId: owner.id, properties: { n: 1 } },
      { name: 'profile.own', properties: { n: 2 } },
      { name: 'profile.anon', anonymousId: owner.id },
    ] }).expect(200);
    expect(res.body).toEqual({ accepted: 3, rejected: [
      { index: 0, problems: ['properties key $set is not allowed: keys starting with $ are reserved'] },
      { index: 1, problems: ['properties key $set_once is not allowed: keys starting with $ are reserved'] },
      { index: 2, problems: ['name ledger.entry_posted is reserved for the server\'s own events'] },
      { index: 3, problems: ['name user.signed_in is reserved for the server\'s own events'] },
    ] });
    const { rows } = await t.db.admin.query(`SELECT name, user_id, anonymous_id FROM core.analytics_events
      WHERE org_id = $1 AND source = 'client' AND (name LIKE 'profile.%' OR name IN ('ledger.entry_posted', 'user.signed_in')) ORDER BY name`, [orgId]);
    expect(rows).toEqual([
      { name: 'profile.anon', user_id: null, anonymous_id: owner.id },
      { name: 'profile.named', user_id: owner.id, anonymous_id: null },
      { name: 'profile.own', user_id: viewer.id, anonymous_id: null },
    ]);
    await t.app.get(PostHogForwarder).flush();
    await posthog.received(before + 3);
    const sent = posthog.events.slice(before);
    // the caller's own id names their person; any other id the caller chose is a person of this organization only
    expect(sent.map((e) => [e.event, e.distinct_id]).sort()).toEqual([
      ['profile.anon', `org:${orgId}:anon:${owner.id}`],
      ['profile.named', `org:${orgId}:user:${owner.id}`],
      ['profile.own', viewer.id],
    ]);
    for (const e of sent) {
      expect(Object.keys(e.properties).filter((k) => ['$set', '$set_once', '$unset'].includes(k))).toEqual([]);
    }
    expect(sent.find((e) => e.event === 'profile.named')!.properties).toMatchObject({ n: 1, source: 'client', org_id: orgId });
  });

  it('refuses the property keys PostHog reads as the event\'s own: an app\'s distinct_id named another organization\'s person', async () => {
    // a person of another organization: PostHog's capture takes properties.distinct_id before the event's distinct id
    const stranger = await registerUser(t, 'analytics-stranger');
    await t.app.get(PostHogForwarder).flush();
    const before = posthog.events.length;
    const res = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).send({ events: [
      { name: 'reserved.distinct', properties: { distinct_id: stranger.id, n: 1 } },
      { name: 'reserved.token', properties: { token: 'phc_other_project' } },
      { name: 'reserved.apikey', properties: { api_key: 'phc_other_project' } },
      { name: 'reserved.uuid', properties: { uuid: randomUUID() } },
      { name: 'reserved.timestamp', properties: { timestamp: '2020-01-01T00:00:00Z' } },
      { name: 'reserved.fine', properties: { distinctId: 'a key of the app', n: 2 } },
    ] }).expect(200);
    const refusal = (key: string) => [`properties key ${key} is not allowed: distinct_id, token, api_key, uuid, timestamp are reserved`];
    expect(res.body).toEqual({ accepted: 1, rejected: [
      { index: 0, problems: refusal('distinct_id') }, { index: 1, problems: refusal('token') }, { index: 2, problems: refusal('api_key') },
      { index: 3, problems: refusal('uuid') }, { index: 4, problems: refusal('timestamp') },
    ] });
    const { rows } = await t.db.admin.query(`SELECT name FROM core.analytics_events WHERE org_id = $1 AND name LIKE 'reserved.%'`, [orgId]);
    expect(rows).toEqual([{ name: 'reserved.fine' }]);
    await t.app.get(PostHogForwarder).flush();
    await posthog.received(before + 1);
    const sent = posthog.events.slice(before).filter((e) => e.event.startsWith('reserved.'));
    expect(sent.map((e) => [e.event, e.distinct_id])).toEqual([['reserved.fine', owner.id]]);
    expect(sent[0].properties).toMatchObject({ distinctId: 'a key of the app', n: 2, org_id: orgId });
  });

  it('runs one roll-up of a day at a time: one that finds another open skips the day at once (no failure), the next run redoes it', async () => {
    const org = await createOrg(t, owner, 'Raced Roll-up');
    // a day the default window (yesterday, today) does not cover: redone only because the skipping run kept it
    const day = clock.now() - (clock.now() % DAY) - 3 * DAY;
    const send = () => t.http.post(`/v1/orgs/${org}/analytics/events`).set(owner.auth)
      .send({ events: [{ name: 'race.counted', userId: 'u1', timestamp: new Date(day + 3_600_000).toISOString() }] }).expect(200);
    const count = async () => (await t.db.admin.query(`SELECT events::int FROM core.analytics_daily WHERE org_id = $1 AND event = 'race.counted'`, [org])).rows;
    const job = t.app.get(AnalyticsMaintenanceJob);
    await send();
    const first = await t.db.admin.connect();
    try {
      // another instance's roll-up of that day: under the lock, it counts the one event, and has not committed yet
      await first.query('BEGIN');
      await first.query('SELECT core.xact_lock(($1))', [ROLL_UP_LOCK]);
      await rollUpStatement((strings: TemplateStringsArray, ...values: unknown[]) =>
        first.query(strings.reduce((text, part, i) => text + `$${i}` + part), values), [new Date(day)]);
      await send();
      // this one does not wait (at volume past the lock timeout: a failure every night): every day's lock is held, all
      // skipped, nothing written, nothing thrown
      await expect(job.rollUp()).resolves.toBe(0);
      await first.query('COMMIT');
    } finally {
      await first.query('ROLLBACK').catch(() => undefined);
      first.release();
    }
    expect(await count()).toEqual([{ events: 1 }]);
    // the next run (the default window) redoes the day it skipped, counting after the first committed: both events
    await job.rollUp();
    expect(await count()).toEqual([{ events: 2 }]);
  });

  it('forwards an event to PostHog only once its transaction committed', async () => {
    const forwarder = t.app.get(PostHogForwarder);
    await forwarder.flush();
    const sentBefore = posthog.events.length;
    const posted = () => posthog.events.filter((e) => e.event === 'ledger.entry_posted').length;
    const postedBefore = posted();
    const { rows: chart } = await t.db.admin.query(`SELECT code, id FROM finance.accounts WHERE org_id = $1`, [orgId]);
    const accounts = chart.length ? Object.fromEntries(chart.map((r) => [r.code, r.id])) : await startBooks(t, orgId, owner);
    // the posting's analytics row is recorded, then its transaction fails at COMMIT (the outbox refuses its event)
    await t.db.admin.query(`
      CREATE FUNCTION public.refuse_posted_event() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payload ->> 'type' = 'journal_entry.posted' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '57014'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_posted_event BEFORE INSERT ON core.outbox FOR EACH ROW EXECUTE FUNCTION public.refuse_posted_event();`);
    try {
      await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth)
        .send({ date: '2026-01-03', memo: 'never committed', lines: [{ accountId: accounts['1100'], debit: '5.00' }, { accountId: accounts['3100'], credit: '5.00' }] }).expect(503);
    } finally {
      await t.db.admin.query('DROP TRIGGER refuse_posted_event ON core.outbox; DROP FUNCTION public.refuse_posted_event()');
    }
    // a committed event after it: flushed, it arrives, and nothing else did
    await events({ events: [{ name: 'posthog.after_rollback' }] }).expect(200);
    await forwarder.flush();
    await posthog.received(sentBefore + 1);
    expect(posthog.events.slice(sentBefore).map((e) => e.event)).toEqual(['posthog.after_rollback']);
    expect(posted()).toBe(postedBefore);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND memo = 'never committed'`, [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('creates partitions ahead and drops those past the retention, each with RLS forced and no grants', async () => {
    const job = t.app.get(AnalyticsMaintenanceJob);
    const partitions = async () => (await t.db.admin.query(
      `SELECT c.relname AS name, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, c.relacl::text AS acl,
              (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'core.analytics_events'::regclass ORDER BY 1`)).rows;
    const future = Date.UTC(2030, 5, 15); // mid-June 2030
    const made = await job.maintainPartitions(future);
    expect(made.created).toEqual(['analytics_events_p203005', 'analytics_events_p203006', 'analytics_events_p203007', 'analytics_events_p203008', 'analytics_events_p203009']);
    // everything before June 2029 (13 months: June 2029 .. June 2030) is gone, including this year's
    expect((await partitions()).map((p) => p.name)).toEqual(['analytics_events_p203005', 'analytics_events_p203006', 'analytics_events_p203007', 'analytics_events_p203008', 'analytics_events_p203009']);
    expect(made.dropped.length).toBeGreaterThan(0);
    for (const p of await partitions()) {
      expect(p).toMatchObject({ rls: true, forced: true, policies: 1 });
      // only the owner's own privileges: no API-facing role can reach a partition directly
      expect(p.acl ?? '').not.toMatch(/authenticated|anon|service_role/);
    }
    const again = await job.maintainPartitions(future);
    expect(again).toEqual({ created: [], dropped: [], rollUpsDeleted: 0 });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.analytics_events');
    expect(rows[0].n).toBe(0);
  });
});
