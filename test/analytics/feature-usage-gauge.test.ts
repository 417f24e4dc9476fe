import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { FEATURE_LABEL_LIMIT } from '../../src/platform/observability/metrics.js';

const TOKEN = 'feature-usage-gauge-metrics-token-0123456789';
const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);
const times = (name: string, n: number) => Array.from({ length: n }, () => ({ name }));

/**
 * omnizen_feature_usage as Prometheus reads it from /metrics: per plan tier its FEATURE_LABEL_LIMIT most used events of
 * today and "other", the rest summed, so that a plan's series add up to every event of its organizations today
 * (deploy/grafana/omnizen.json sums them by plan). Each organization counts under its current plan as billing resolves
 * it: a business organization's own subscription, a personal one's owner's personal subscription, else the app's
 * default plan; a subscription to another app does not count, nor does a deleted organization.
 */
describe('analytics: the feature usage gauge by plan', () => {
  let t: TestApp;
  let owner: TestUser;
  const clock = new ManualClock().atMidday(); // today read by the test and by the roll-up at different moments

  beforeAll(async () => {
    t = await createTestApp({ METRICS_TOKEN: TOKEN }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
    owner = await registerUser(t, 'gauge');
  });
  afterAll(() => t.close());

  const send = (org: string, events: object[]) => t.http.post(`/v1/orgs/${org}/analytics/events`).set(owner.auth).send({ events }).expect(200);
  /** The gauge's series from /metrics, as plan → feature → value. */
  const scrapeGauge = async () => {
    const text = (await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text;
    const gauge = new Map<string, Map<string, number>>();
    for (const m of text.matchAll(/^omnizen_feature_usage\{plan="([^"]*)",feature="([^"]*)"\} (\S+)$/gm)) {
      if (!gauge.has(m[1])) gauge.set(m[1], new Map());
      gauge.get(m[1])!.set(m[2], Number(m[3]));
    }
    return gauge;
  };
  /** Every event today of the given organizations, from the roll-ups. */
  const eventsOf = async (orgs: string[]) => (await t.db.admin.query<{ n: number }>(
    'SELECT coalesce(sum(events), 0)::int AS n FROM core.analytics_daily WHERE org_id = ANY($1::uuid[]) AND day = $2::date', [orgs, isoDay(clock.now())])).rows[0].n;
  const sum = (series: Map<string, number> | undefined) => [...(series ?? new Map<string, number>()).values()].reduce((a, b) => a + b, 0);

  it('adds up, per plan, to the plan\'s events: the most used by name, the rest (an event named "other" with it) as "other"', async () => {
    // professional: two business organizations (one also subscribed to another app) and a deleted one
    const a = await createOrg(t, owner, 'Busy');
    const b = await createOrg(t, owner, 'Quiet');
    const gone = await createOrg(t, owner, 'Gone');
    for (const org of [a, b, gone]) await onPlan(t, org, 'professional');
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, NULL, 'app_securevault', 'business_pro', 'active', $1, now(), now())`, [a]);
    // starter: no subscription, the app's default plan
    const trial = await createOrg(t, owner, 'Trial');
    // enterprise: the personal organization, through its owner's personal subscription
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, $1, 'omnizen', 'enterprise', 'active', NULL, now(), now())`, [owner.id]);

    // a: an event its app named "other" 40 times, f.00 .. f.49 three times each, f.50 .. f.59 once; b: f.00 twice and g.1
    const f = (i: number) => `f.${String(i).padStart(2, '0')}`;
    await send(a, [...times('other', 40), ...Array.from({ length: 60 }, (_, i) => times(f(i), i < 50 ? 3 : 1)).flat()]);
    await send(b, [...times(f(0), 2), ...times('g.1', 1)]);
    await send(gone, times(f(1), 7));
    await send(trial, times('e.a', 2));
    await send(owner.personalOrgId, times('e.b', 1));
    await t.http.delete(`/v1/orgs/${gone}`).set(owner.auth).expect(204);
    await t.app.get(AnalyticsMaintenanceJob).rollUp();
    const gauge = await scrapeGauge();

    // each plan's series add up to its organizations' events today (the personal one also has its owner's sign-in)
    const professional = await eventsOf([a, b]);
    expect(professional).toBe(40 + 150 + 10 + 3);
    expect(sum(gauge.get('professional'))).toBe(professional);
    expect(sum(gauge.get('starter'))).toBe(await eventsOf([trial]));
    expect(sum(gauge.get('enterprise'))).toBe(await eventsOf([owner.personalOrgId]));
    expect(gauge.get('enterprise')?.get('e.b')).toBe(1);
    expect([...gauge.keys()].sort()).toEqual(['enterprise', 'professional', 'starter']);

    // professional's 50 most used: "other" (40), f.00 (5), f.01 .. f.48 (3); the rest: f.49, f.50 .. f.59 and g.1 (14)
    // and the event named "other" share the label "other"
    expect(Object.fromEntries(gauge.get('professional')!)).toEqual({
      other: 40 + 14,
      [f(0)]: 5,
      ...Object.fromEntries(Array.from({ length: 48 }, (_, i) => [f(i + 1), 3])),
    });
    expect(gauge.get('professional')!.size).toBe(FEATURE_LABEL_LIMIT);
  });
});
