import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, verifyEmailOf } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { ErasureService } from '../../src/modules/privacy/erasure.service.js';
import type { AnalyticsWalk } from '../../src/modules/privacy/erasure.repository.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';

const PASSWORD = 'correct horse battery';
/** events of the person's organization: one statement scanning them all for the address outlasts the statement timeout */
const EVENTS = 400_000;
const STATEMENT_TIMEOUT_MS = 1500;
const DAY_MS = 86_400_000;

/**
 * A person's erasure in an organization with many analytics events (review: 2 million took 17.5 s in one statement of the
 * erasure's one transaction: past the statement timeout it answered 503 and rolled back, every time). The events are
 * walked first in batches, each its own short transaction; the erasure's transaction then scans only what arrived since.
 */
describe('erasure of a person whose organization has more analytics events than one statement can scan', () => {
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({
      AUTH_COOKIES: 'false', REDIS_URL: '',
      DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS), DATABASE_LOCK_TIMEOUT_MS: '1000',
    }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
  });
  afterAll(() => t.close());

  const q = (sql: string, values: unknown[] = []) => t.db.admin.query(sql, values);

  it('erases a person of an organization whose events no one statement of the erasure could scan', async () => {
    const owner = await registerUser(t, 'busy-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'busy-person', PASSWORD));
    const orgId = await createOrg(t, owner, 'Busier Ltd');
    await addMember(t, orgId, p, 'member');
    const now = clock.now();
    await q(`SELECT core.analytics_create_partitions(($1::timestamptz - interval '7 months')::date, 8)`, [new Date(now)]);
    await q(`INSERT INTO core.analytics_events (org_id, occurred_at, received_at, name, properties, anonymous_id, source)
      SELECT $1::uuid, ts, ts, 'page.viewed',
        jsonb_build_object('path', '/docs/page/' || g, 'referrer', 'https://search.example.test/?q=' || md5(g::text),
          'contact', CASE WHEN g % 50000 = 0 THEN $2 ELSE 'reader' || g || '@example.test' END),
        CASE WHEN g % 50000 = 0 THEN 'visitor-' || g END, 'client'
      FROM generate_series(1, $3::int) g, LATERAL (SELECT $4::timestamptz - (g * interval '36 seconds') AS ts) x`,
    [orgId, p.email, EVENTS, new Date(now - DAY_MS)]);

    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { userId: p.id, leftOrganizationIds: [orgId] } });
    const left = await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND properties::text ILIKE '%' || $2 || '%'`, [orgId, p.email]);
    expect(left.rows[0].n).toBe(0);
    expect((await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND anonymous_id IS NULL AND properties = '{}'`, [orgId])).rows[0].n).toBe(EVENTS / 50_000);
    expect((await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id])).rows[0].n).toBe(1);
  }, 180_000);

  it('walks the events in batches (a retry resumes the walk), erases the events that arrived meanwhile, and audits it', async () => {
    const owner = await registerUser(t, 'big-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'big-person', PASSWORD));
    const orgId = await createOrg(t, owner, 'Busy Ltd');
    await addMember(t, orgId, p, 'member');
    const now = clock.now();

    // five months of events (received as they occurred), over six monthly partitions; every 50,000th names the person
    // (an anonymous visitor's form, their address in its properties), and some are their own
    await q(`SELECT core.analytics_create_partitions(($1::timestamptz - interval '7 months')::date, 8)`, [new Date(now)]);
    await q(`INSERT INTO core.analytics_events (org_id, occurred_at, received_at, name, properties, user_id, anonymous_id, source)
      SELECT $1::uuid, ts, ts, 'page.viewed',
        jsonb_build_object('path', '/docs/page/' || g, 'referrer', 'https://search.example.test/?q=' || md5(g::text),
          'contact', CASE WHEN g % 50000 = 0 THEN upper($2) ELSE 'reader' || g || '@example.test' END),
        CASE WHEN g % 100000 = 1 THEN $3 END, CASE WHEN g % 50000 = 0 THEN 'visitor-' || g END, 'client'
      FROM generate_series(1, $4::int) g, LATERAL (SELECT $5::timestamptz - (g * interval '36 seconds') AS ts) x`,
    [orgId, p.email, p.id, EVENTS, new Date(now - DAY_MS)]);
    const naming = async () => (await q(`SELECT count(*)::int AS n FROM core.analytics_events
      WHERE org_id = $1 AND (properties::text || coalesce(user_id, '') || coalesce(anonymous_id, '')) ILIKE '%' || $2 || '%'`, [orgId, p.email])).rows[0].n;
    expect(await naming()).toBe(EVENTS / 50_000);

    const erasure = t.app.get(ErasureService);
    erasure.analyticsBatch = 10_000;
    const batches: AnalyticsWalk[] = [];
    let cutShortAfter: number | undefined = 3;
    let arrived = false;
    erasure.afterAnalyticsBatch = async (walk) => {
      batches.push(walk);
      // once the walk has passed the last four weeks' first events: an event naming the person arrives behind it, dated
      // three weeks back (as an app may date one), and one dated now
      if (!arrived && walk.cursor?.at && walk.cursor.at.getTime() > now - 20 * DAY_MS) {
        arrived = true;
        await q(`INSERT INTO core.analytics_events (org_id, occurred_at, name, properties, anonymous_id, source)
          VALUES ($1, $2, 'form.submitted', jsonb_build_object('email', $3::text), 'visitor-late', 'client'),
                 ($1, $4, 'form.submitted', jsonb_build_object('email', $3::text), 'visitor-now', 'client')`,
        [orgId, new Date(now - 21 * DAY_MS), p.email, new Date(now)]);
      }
      // the first erasure stops after three batches (its connection lost): what they did stays, the rest is not done
      if (batches.length === cutShortAfter) throw new DatabaseUnavailableError(new Error('Connection terminated unexpectedly'));
    };

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(503);
    const [cut] = (await q(`SELECT pseudonym, done, cursor_org::text AS cursor_org, cardinality(org_ids) AS orgs FROM core.erasure_prepasses WHERE user_id = $1`, [p.id])).rows;
    expect(cut).toMatchObject({ done: false, cursor_org: orgId, pseudonym: expect.stringMatching(/^erased-[0-9a-f-]{36}$/) });
    // three batches of the oldest events done (30,000: their one naming event), the person not erased
    expect(await naming()).toBe(EVENTS / 50_000 - 1);
    expect((await q(`SELECT email FROM core."User" WHERE id = $1`, [p.id])).rows[0].email).toBe(p.email);
    expect((await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id])).rows[0].n).toBe(0);

    // the retry resumes the walk where it stopped: the other batches only (the organization's events, and a batch more to
    // find their end; a batch for each other organization of theirs, which has none)
    cutShortAfter = undefined;
    const done = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    expect(done.body).toMatchObject({ userId: p.id, leftOrganizationIds: [orgId] });
    expect(batches.length).toBe(EVENTS / 10_000 + 1 + (cut.orgs - 1));
    expect(arrived).toBe(true);

    // nothing of their organization names them any more, the late event included; their events carry the walk's pseudonym
    expect(await naming()).toBe(0);
    const late = await q(`SELECT anonymous_id, properties FROM core.analytics_events WHERE org_id = $1 AND name = 'form.submitted' ORDER BY occurred_at`, [orgId]);
    expect(late.rows).toEqual([{ anonymous_id: null, properties: {} }, { anonymous_id: null, properties: {} }]);
    const own = await q(`SELECT DISTINCT user_id FROM core.analytics_events WHERE org_id = $1 AND user_id IS NOT NULL`, [orgId]);
    expect(own.rows).toEqual([{ user_id: cut.pseudonym }]);
    expect((await q(`SELECT count(*)::int AS n FROM core.analytics_events WHERE user_id = $1`, [p.id])).rows[0].n).toBe(0);
    // the other tables a value scan reads hold neither their address nor their id as a userId
    for (const table of ['core.outbox', 'core.webhook_messages', 'core.notifications', 'core.email_deliveries']) {
      const { rows } = await q(`SELECT count(*)::int AS n FROM ${table} x WHERE to_jsonb(x)::text ILIKE '%' || $1 || '%'
        OR ($3 AND to_jsonb(x)::text ~ ('"userId": ?"' || $2 || '"'))`, [p.email, p.id, table !== 'core.notifications']);
      expect({ table, n: rows[0].n }).toEqual({ table, n: 0 });
    }
    // the walk's row went with the erasure; the erasure is audited once, with the events it changed
    expect((await q(`SELECT count(*)::int AS n FROM core.erasure_prepasses`)).rows[0].n).toBe(0);
    const audit = await q(`SELECT after FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id]);
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0].after.rowsByTable['core.erasure_prepasses']).toBe(1);
    expect((await q(`SELECT email FROM core."User" WHERE id = $1`, [p.id])).rows[0].email).not.toBe(p.email);
    // and erased once: a third attempt is told so
    const again = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD });
    expect(again.status).toBeGreaterThanOrEqual(400);
    expect(again.status).toBeLessThan(500);
  }, 180_000);
});
