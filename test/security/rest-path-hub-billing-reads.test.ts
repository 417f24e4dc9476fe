import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { OrgRateLimits } from '../../src/platform/http/rate-limit.js';

const PERIOD_END = '2030-01-31T00:00:00.000Z';

/**
 * hub.subscription_billing (the Stripe customer id: every member), hub."BillingEvent" (Stripe's raw event payloads: the
 * owners and admins) and hub.rate_limit_overrides (every member) were readable over Supabase's REST path (PostgREST:
 * `authenticated` with the token's claims, never through begin_request). No client is meant to read them there: the API
 * reads them in its own transactions. Now their reads need the API (migration 20270209100100), and the API's routes that
 * read them go on: the entitlements (an organization's, a person's through a service key, an accepted invitation's
 * checks, the last two in transactions whose claims were replaced to enter the organization), the billing events, the
 * rate limiter. hub."Subscription" (seed 000's contract, read by apps directly) and the catalog stay readable.
 */
describe('the Supabase REST path cannot read the hub\'s Stripe bookkeeping, billing events or rate-limit overrides', () => {
  let t: TestApp;
  let gateway: RestGateway;
  let owner: TestUser;
  let admin: TestUser;
  let viewer: TestUser;
  let orgId: string;
  let subscriptionId: string;
  let serviceAuth: { Authorization: string };

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '' });
    gateway = await restGateway(t.db);
    owner = await verifyEmailOf(t, await registerUser(t, 'owner'));
    admin = await registerUser(t, 'admin');
    viewer = await registerUser(t, 'viewer');
    orgId = await createOrg(t, owner, 'Stripe Bookkeeping Co');
    await addMember(t, orgId, admin, 'admin');
    await addMember(t, orgId, viewer, 'viewer');
    await onPlan(t, orgId, 'professional');
    subscriptionId = (await t.db.admin.query(`SELECT id FROM hub."Subscription" WHERE "organizationId" = $1 AND "appId" = 'omnizen'`, [orgId])).rows[0].id;
    await t.db.admin.query(
      `INSERT INTO hub.subscription_billing (subscription_id, organization_id, stripe_customer_id, stripe_price_id, current_period_end, cancel_at_period_end)
       VALUES ($1, $2, 'cus_test_private', 'price_omz_pro', $3, true)`, [subscriptionId, orgId, PERIOD_END]);
    await t.db.admin.query(
      `INSERT INTO hub."BillingEvent" ("stripeEventId", type, "orgId", "subscriptionId", "stripeCreatedAt", payload, status, "processedAt")
       VALUES ('evt_test_private', 'customer.subscription.updated', $1, $2, now(), $3, 'processed', now())`,
      [orgId, subscriptionId, JSON.stringify({ data: { object: { customer: 'cus_test_private', customer_email: owner.email } } })]);
    await t.db.admin.query(`INSERT INTO hub.rate_limit_overrides (org_id, requests_per_minute, reason) VALUES ($1, 777, 'negotiated: contract 42')`, [orgId]);
    t.app.get(OrgRateLimits).clear();
    const key = jwt.sign({ role: 'service_role', service: 'rest-path-hub-reads' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
  });

  const rest = (user: TestUser, sql: string, org: string | null = orgId) =>
    gateway.rest('authenticated', { sub: user.id, email: user.email, aud: 'authenticated', ...(org ? { org_id: org } : {}) }, sql);

  it('a member\'s or an admin\'s token reads no row of them; the organization\'s subscription and the catalog stay readable', async () => {
    for (const user of [viewer, admin, owner]) {
      expect(await rest(user, 'SELECT subscription_id, stripe_customer_id FROM hub.subscription_billing')).toEqual([]);
      expect(await rest(user, 'SELECT "stripeEventId", payload FROM hub."BillingEvent"')).toEqual([]);
      expect(await rest(user, 'SELECT org_id, requests_per_minute, reason FROM hub.rate_limit_overrides')).toEqual([]);
      // the contract table and the catalog: read over REST by design
      expect(await rest(user, 'SELECT id, plan FROM hub."Subscription"')).toEqual([{ id: subscriptionId, plan: 'professional' }]);
      expect((await rest(user, `SELECT code FROM hub.plans WHERE app_id = 'omnizen' AND code = 'professional'`))).toEqual([{ code: 'professional' }]);
    }
    // the rows are there (the owner connection reads them)
    expect((await t.db.admin.query('SELECT stripe_customer_id AS customer FROM hub.subscription_billing WHERE subscription_id = $1', [subscriptionId])).rows)
      .toEqual([{ customer: 'cus_test_private' }]);
  });

  it('a person\'s own personal plan\'s Stripe bookkeeping is not readable over REST either', async () => {
    const person = await registerUser(t, 'person');
    const personal = 'sub_test_personal_' + person.id.slice(0, 8);
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "createdAt", "updatedAt") VALUES ($1, $2, 'app_securevault', 'pro', 'active', now(), now())`, [personal, person.id]);
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, user_id, stripe_customer_id, current_period_end, cancel_at_period_end) VALUES ($1, $2, 'cus_test_person', $3, true)`,
      [personal, person.id, PERIOD_END]);
    expect(await rest(person, 'SELECT subscription_id FROM hub.subscription_billing', null)).toEqual([]);
    expect(await rest(person, 'SELECT id FROM hub."Subscription"', null)).toEqual([{ id: personal }]);

    // the service key's route reads it (a transaction whose claims were replaced to enter the person's organization)
    const read = await t.http.get(`/v1/billing/users/${person.id}/entitlements?app=app_securevault`).set(serviceAuth).expect(200);
    expect(read.body).toMatchObject({ app: 'app_securevault', plan: 'pro', status: 'active', subscriptionId: personal, currentPeriodEnd: PERIOD_END, cancelAtPeriodEnd: true });
    // and so does the person's own route
    const mine = await t.http.get('/v1/me/entitlements?app=app_securevault').set(person.auth).expect(200);
    expect(mine.body).toMatchObject({ subscriptionId: personal, currentPeriodEnd: PERIOD_END, cancelAtPeriodEnd: true });
  });

  it('the API\'s routes still read them: entitlements, billing events, the rate limit', async () => {
    const entitlements = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(viewer.auth).expect(200);
    expect(entitlements.body).toMatchObject({ plan: 'professional', status: 'active', subscriptionId, currentPeriodEnd: PERIOD_END, cancelAtPeriodEnd: true });

    const events = await t.http.get(`/v1/orgs/${orgId}/billing/events`).set(admin.auth).expect(200);
    expect(events.body.items).toEqual([expect.objectContaining({ stripeEventId: 'evt_test_private', type: 'customer.subscription.updated', subscriptionId, status: 'processed' })]);
    // a viewer is refused by the route as before
    expect((await t.http.get(`/v1/orgs/${orgId}/billing/events`).set(viewer.auth)).status).toBe(403);

    // the override is the organization's limit
    const read = await t.http.get(`/v1/orgs/${orgId}`).set(viewer.auth).expect(200);
    expect(read.headers['ratelimit-limit']).toBe('777');
  });

  it('an accepted invitation\'s checks read the Stripe bookkeeping (claims replaced to enter the organization): a past-due grace over refuses it', async () => {
    const other = await createOrg(t, owner, 'Past Due Co');
    await onPlan(t, other, 'professional');
    const ann = await verifyEmailOf(t, await registerUser(t, 'ann'));
    const invitation = (await t.http.post(`/v1/orgs/${other}/invitations`).set(owner.auth).send({ email: ann.email, role: 'member' }).expect(201)).body as { id: string; token: string };
    // then past due for 30 days (Stripe's event recorded it), the row itself updated just now: without the bookkeeping
    // the grace would count from that update, and the acceptance would pass
    await onPlan(t, other, 'professional', 'past_due');
    const sid = (await t.db.admin.query(`SELECT id FROM hub."Subscription" WHERE "organizationId" = $1 AND "appId" = 'omnizen'`, [other])).rows[0].id;
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, organization_id, past_due_since) VALUES ($1, $2, now() - interval '30 days')`, [sid, other]);

    const refused = await t.http.post('/v1/invitations/accept').set(ann.auth).send({ orgId: other, token: invitation.token });
    expect([refused.status, refused.body.error?.code, refused.body.error?.details]).toEqual([402, 'billing.subscription_inactive', { app: 'omnizen', plan: 'professional', status: 'past_due' }]);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.memberships WHERE org_id = $1 AND user_id = $2', [other, ann.id])).rows).toEqual([{ n: 0 }]);
    expect((await t.db.admin.query('SELECT accepted_at FROM core.invitations WHERE id = $1', [invitation.id])).rows).toEqual([{ accepted_at: null }]);
  });
});
