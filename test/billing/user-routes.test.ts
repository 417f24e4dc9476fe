import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

const PASSWORD = 'correct horse battery';
/** a well-formed API key: the auth guard refuses it on a user route before anyone verifies it */
const API_KEY = { Authorization: `Bearer ozk_live_${'ab'.repeat(16)}_${'x'.repeat(43)}` };

/**
 * The billing routes of the signed-in person: GET /v1/me/entitlements and the catalog run in the request's transaction
 * (@UserRoute), checkout and portal open their own around Stripe (@UserPreflightRoute). Both refuse every caller but a
 * signed-in person with a live session before any work: no Stripe call, no audit row.
 */
describe('billing: the routes of the signed-in person refuse everyone else', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let serviceAuth: { Authorization: string };

  const audits = async (org: string) =>
    (await t.db.admin.query(`SELECT action, actor_id, after FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.%' ORDER BY id`, [org])).rows;
  const checkout = (auth: { Authorization: string }) => t.http.post('/v1/me/billing/checkout').set(auth).send({ app: 'app_securevault', plan: 'pro' });
  const portal = (auth: { Authorization: string }) => t.http.post('/v1/me/billing/portal').set(auth).send({});
  /** one route of each kind: in the request's transaction (entitlements, catalog), and with a preflight (checkout, portal) */
  const routes = (auth: { Authorization: string }) => [
    t.http.get('/v1/me/entitlements?app=app_securevault').set(auth),
    t.http.get('/v1/billing/apps').set(auth),
    checkout(auth),
    portal(auth),
  ];

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({ ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_PRICES: 'price_sv_pro=app_securevault:pro' });
    ada = await registerUser(t, 'ada', PASSWORD);
    const key = jwt.sign({ role: 'service_role', service: 'billing-user-routes' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('a service key: 403 auth.user_required on every kind of route, before Stripe and with nothing audited', async () => {
    const calls = stripe.requests.length;
    for (const res of await Promise.all(routes(serviceAuth))) {
      expect([res.status, res.body.error]).toEqual([403, { code: 'auth.user_required', message: 'this route acts for a signed-in user; a service key or API key cannot call it' }]);
    }
    expect(stripe.requests.length).toBe(calls);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE actor_id = 'service:billing-user-routes'`);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('an API key: 403 api_keys.route_closed, refused by the auth guard on every kind of route', async () => {
    const calls = stripe.requests.length;
    for (const res of await Promise.all(routes(API_KEY))) {
      expect([res.status, res.body.error.code]).toEqual([403, 'api_keys.route_closed']);
    }
    expect(stripe.requests.length).toBe(calls);
  });

  it('a person: the portal acts in their personal organization (409 without a Stripe customer, then 201, audited there)', async () => {
    const bea = await registerUser(t, 'bea');
    const none = await portal(bea.auth).expect(409);
    expect(none.body.error.code).toBe('billing.no_customer');
    const [{ id }] = (await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "userId") VALUES (gen_random_uuid(), 'app_securevault', 'pro', 'active', $1) RETURNING id`, [bea.id])).rows;
    await t.db.admin.query('INSERT INTO hub.subscription_billing (subscription_id, user_id, stripe_customer_id) VALUES ($1, $2, $3)', [id, bea.id, 'cus_test_bea']);
    const opened = await portal(bea.auth).expect(201);
    expect(opened.body).toEqual({ id: expect.stringMatching(/^bps_test_/), url: `https://billing.stripe.test/p/session/${opened.body.id}` });
    expect(stripe.requests.at(-1)!.form).toMatchObject({ customer: 'cus_test_bea' });
    expect(await audits(bea.personalOrgId)).toEqual([{ action: 'billing.portal_opened', actor_id: bea.id, after: { customer: 'cus_test_bea' } }]);
  });

  it('an ended session (logout), and a person erased with their personal organization: 401 before Stripe', async () => {
    const calls = stripe.requests.length;
    const cy = await registerUser(t, 'cy');
    await t.http.post('/v1/auth/logout').set(cy.auth).expect(204);
    for (const res of [await checkout(cy.auth), await portal(cy.auth)]) {
      expect([res.status, res.body.error]).toEqual([401, { code: 'auth.unauthorized', message: 'the session of this access token has ended; log in again' }]);
    }

    await t.http.delete('/v1/me').set(ada.auth).send({ password: PASSWORD }).expect(200);
    const { rows } = await t.db.admin.query('SELECT deleted_at IS NOT NULL AS deleted FROM core.organizations WHERE id = $1', [ada.personalOrgId]);
    expect(rows).toEqual([{ deleted: true }]);
    for (const res of [await checkout(ada.auth), await portal(ada.auth)]) {
      expect([res.status, res.body.error.code]).toEqual([401, 'auth.unauthorized']);
    }
    expect(stripe.requests.length).toBe(calls);
    expect(await audits(cy.personalOrgId)).toEqual([]);
  });
});
