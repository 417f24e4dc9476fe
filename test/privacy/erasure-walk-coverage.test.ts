import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, verifyEmailOf } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { ErasureService } from '../../src/modules/privacy/erasure.service.js';
import { RetentionJob } from '../../src/modules/privacy/retention.job.js';
import type { AnalyticsWalk } from '../../src/modules/privacy/erasure.repository.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';

const PASSWORD = 'correct horse battery';
const DAY_MS = 86_400_000;
/** events of a busy organization: one statement scanning them all for the address outlasts the statement timeout */
const EVENTS = 400_000;

/**
 * An erasure's walk of the analytics events (core.erasure_prepasses) searches the events it passes for the addresses and
 * organizations it knew when it began (review of 47103f4): an address proven or an organization joined since, or a walk
 * left long ago by a failed attempt, and the erasure's transaction starts it over rather than commit over it. Its
 * transaction checks the credential again (the walk takes a while), and the retention job deletes the walks of erasures
 * that never committed.
 */
describe('erasure: the analytics walk covers what the erasure erases', () => {
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '', DATABASE_STATEMENT_TIMEOUT_MS: '1500', DATABASE_LOCK_TIMEOUT_MS: '1000' }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
  });
  afterAll(() => t.close());
  afterEach(() => {
    const erasure = t.app.get(ErasureService);
    erasure.afterAnalyticsBatch = undefined;
    erasure.analyticsBatch = 20_000;
  });

  const q = (sql: string, values: unknown[] = []) => t.db.admin.query(sql, values);
  /** `n` events received `daysAgo` days back (as they occurred), the third naming `contact` (an anonymous visitor's form) */
  const oldEvents = (orgId: string, n: number, contact: string, daysAgo = 10) => q(`INSERT INTO core.analytics_events (org_id, occurred_at, received_at, name, properties, anonymous_id, source)
      SELECT $1::uuid, now() - ($4::int * interval '1 day') - g * interval '1 minute', now() - ($4::int * interval '1 day') - g * interval '1 minute', 'page.viewed',
        jsonb_build_object('contact', CASE WHEN g = 3 THEN $2 ELSE 'r' || g || '@example.test' END), CASE WHEN g = 3 THEN 'visitor-' || $4 END, 'client'
      FROM generate_series(1, $3::int) g`, [orgId, contact, n, daysAgo]);
  const naming = async (orgId: string, email: string) =>
    (await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND properties::text ILIKE '%' || $2 || '%'`, [orgId, email])).rows[0].n;
  const walkRow = async (userId: string) => (await q(`SELECT done, started_at > now() - interval '1 minute' AS fresh, org_ids::text[] AS org_ids, emails
    FROM core.erasure_prepasses WHERE user_id = $1`, [userId])).rows[0];
  const emailOf = async (userId: string) => (await q(`SELECT email FROM core."User" WHERE id = $1`, [userId])).rows[0].email;
  /** the first attempt's walk completes, then its connection is lost before the erasure's transaction */
  const cutAfterWalk = () => {
    t.app.get(ErasureService).afterAnalyticsBatch = async (walk: AnalyticsWalk) => {
      if (walk.done) throw new DatabaseUnavailableError(new Error('Connection terminated unexpectedly'));
    };
  };

  it('an address proven while the walk runs: the events the walk had passed are searched for it too', async () => {
    const owner = await registerUser(t, 'p1-owner');
    const p = await registerUser(t, 'p1-person', PASSWORD); // their address not proven yet
    const orgId = await createOrg(t, owner, 'P1 Ltd');
    await addMember(t, orgId, p, 'member');
    await oldEvents(orgId, 50, p.email);
    const erasure = t.app.get(ErasureService);
    erasure.analyticsBatch = 10;
    let proven = false;
    erasure.afterAnalyticsBatch = async () => {
      if (!proven) {
        proven = true;
        await verifyEmailOf(t, p);
      }
    };
    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { userId: p.id, leftOrganizationIds: [orgId] } });
    expect(proven).toBe(true);
    expect(await naming(orgId, p.email)).toBe(0);
    expect((await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND anonymous_id IS NOT NULL`, [orgId])).rows[0].n).toBe(0);
    expect(await walkRow(p.id)).toBeUndefined();
    expect(await emailOf(p.id)).not.toBe(p.email);
  }, 60_000);

  it('a walk left done by a failed attempt, and an address proven since: the retry walks again for it', async () => {
    const owner = await registerUser(t, 'p2-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'p2-person', PASSWORD));
    const orgId = await createOrg(t, owner, 'P2 Ltd');
    await addMember(t, orgId, p, 'member');
    const second = `p2-second-${Date.now()}@example.test`;
    await oldEvents(orgId, 50, p.email);
    await oldEvents(orgId, 50, second, 12);
    t.app.get(ErasureService).analyticsBatch = 10;
    cutAfterWalk();
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(503);
    expect(await walkRow(p.id)).toMatchObject({ done: true });
    expect(await naming(orgId, p.email)).toBe(0);
    expect(await naming(orgId, second)).toBe(1);

    // they prove a second address (a confirmed e-mail change), then retry
    await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, confirmed_at) VALUES ($1, $2, $3, now() + interval '1 day', now())`, [p.id, p.email, second]);
    const walked: string[][] = [];
    t.app.get(ErasureService).afterAnalyticsBatch = async () => { walked.push((await walkRow(p.id)).emails); };
    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
    expect(res.status).toBe(200);
    expect(await naming(orgId, second)).toBe(0);
    // (walked again, for both addresses)
    expect(walked[0]).toEqual([p.email, second].sort());
    expect((await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND anonymous_id IS NOT NULL`, [orgId])).rows[0].n).toBe(0);
    expect(await walkRow(p.id)).toBeUndefined();
  }, 60_000);

  it('a walk left done by a failed attempt, then an organization joined: the retry walks it (a fresh walk)', async () => {
    const owner = await registerUser(t, 'p3-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'p3-person', PASSWORD));
    const small = await createOrg(t, owner, 'P3 small');
    await addMember(t, small, p, 'member');
    cutAfterWalk();
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(503);
    const big = await createOrg(t, owner, 'P3 joined');
    await addMember(t, big, p, 'member');
    await oldEvents(big, 30, p.email);
    const seen: { done: boolean; fresh: boolean; org_ids: string[] }[] = [];
    t.app.get(ErasureService).afterAnalyticsBatch = async () => { seen.push(await walkRow(p.id)); };
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    // the retry walked the organization joined since, in a walk begun now
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]).toMatchObject({ fresh: true, org_ids: expect.arrayContaining([small, big]) });
    expect(await naming(big, p.email)).toBe(0);
    expect(await walkRow(p.id)).toBeUndefined();
  }, 60_000);

  it('a walk left done long ago: the retry starts it over, rather than scan every event received since (503 every time)', async () => {
    const owner = await registerUser(t, 'p6-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'p6-person', PASSWORD));
    const orgId = await createOrg(t, owner, 'P6 Ltd');
    await addMember(t, orgId, p, 'member');
    cutAfterWalk();
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(503);
    // months pass: the walk's row as the failed attempt left it then; the organization's events since, one naming them
    await q(`UPDATE core.erasure_prepasses SET started_at = now() - interval '150 days', occurred_from = now() - interval '179 days' WHERE user_id = $1`, [p.id]);
    const now = clock.now();
    await q(`SELECT core.analytics_create_partitions(($1::timestamptz - interval '7 months')::date, 8)`, [new Date(now)]);
    await q(`INSERT INTO core.analytics_events (org_id, occurred_at, received_at, name, properties, anonymous_id, source)
      SELECT $1::uuid, ts, ts, 'page.viewed', jsonb_build_object('path', '/docs/page/' || g, 'referrer', 'https://search.example.test/?q=' || md5(g::text),
        'contact', CASE WHEN g = 77777 THEN $2 ELSE 'reader' || g || '@example.test' END), CASE WHEN g = 77777 THEN 'visitor-old' END, 'client'
      FROM generate_series(1, $3::int) g, LATERAL (SELECT $4::timestamptz - (g * interval '36 seconds') AS ts) x`, [orgId, p.email, EVENTS, new Date(now - DAY_MS)]);
    await q('ANALYZE core.analytics_events');
    t.app.get(ErasureService).afterAnalyticsBatch = undefined;
    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { userId: p.id } });
    expect(await naming(orgId, p.email)).toBe(0);
    expect((await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND anonymous_id = 'visitor-old'`, [orgId])).rows[0].n).toBe(0);
    expect(await walkRow(p.id)).toBeUndefined();
  }, 240_000);

  it('the erasure\'s transaction checks the credential again: a session ended or a password changed during the walk refuses', async () => {
    const owner = await registerUser(t, 'cred-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'cred-person', PASSWORD));
    const orgId = await createOrg(t, owner, 'Cred Ltd');
    await addMember(t, orgId, p, 'member');
    const erasure = t.app.get(ErasureService);
    // signed out everywhere while the walk runs
    erasure.afterAnalyticsBatch = async () => { await q(`UPDATE core.sessions SET revoked_at = now(), revoked_reason = 'logout' WHERE user_id = $1 AND revoked_at IS NULL`, [p.id]); };
    const revoked = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
    expect({ status: revoked.status, code: revoked.body.error?.code }).toEqual({ status: 401, code: 'auth.unauthorized' });
    expect(await emailOf(p.id)).toBe(p.email);
    expect((await q(`SELECT count(*)::int AS n FROM core.memberships WHERE user_id = $1`, [p.id])).rows[0].n).toBeGreaterThan(0);

    // refused after its walk: the walk's row stays (the retention job's to delete) and the events it redacted stay so
    expect(await walkRow(p.id)).toMatchObject({ done: true });

    // another person: their password changed while the walk runs (the password sent is no longer the account's)
    const p2 = await verifyEmailOf(t, await registerUser(t, 'cred-person2', PASSWORD));
    await addMember(t, orgId, p2, 'member');
    const other = await registerUser(t, 'cred-other', 'another horse battery');
    erasure.afterAnalyticsBatch = async () => {
      await q(`UPDATE core.user_credentials SET password_hash = (SELECT password_hash FROM core.user_credentials WHERE user_id = $2) WHERE user_id = $1`, [p2.id, other.id]);
    };
    const changed = await t.http.delete('/v1/me').set(p2.auth).send({ password: PASSWORD });
    expect({ status: changed.status, code: changed.body.error?.code }).toEqual({ status: 403, code: 'privacy.password_incorrect' });
    expect(await emailOf(p2.id)).toBe(p2.email);
    expect((await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = ANY($1::text[])`, [[p.id, p2.id]])).rows[0].n).toBe(0);
  }, 60_000);

  it('the retention job deletes the walks of erasures that did not commit, a week after they began', async () => {
    const a = await registerUser(t, 'walk-old');
    const b = await registerUser(t, 'walk-recent');
    const now = clock.now();
    await q(`INSERT INTO core.erasure_prepasses (user_id, pseudonym, started_at, occurred_from, org_ids, done, posthog_ids)
      VALUES ($1, 'erased-' || gen_random_uuid(), $3, $3, '{}', true, '[{"orgId":"x","userId":null,"anonymousId":"v"}]'),
             ($2, 'erased-' || gen_random_uuid(), $4, $4, '{}', true, '[]')`,
    [a.id, b.id, new Date(now - 8 * DAY_MS), new Date(now - 6 * DAY_MS)]);
    await t.app.get(RetentionJob).run();
    const left = await q(`SELECT user_id FROM core.erasure_prepasses WHERE user_id = ANY($1::text[])`, [[a.id, b.id]]);
    expect(left.rows).toEqual([{ user_id: b.id }]);
  }, 60_000);
});
