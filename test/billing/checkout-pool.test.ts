import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

/**
 * Checkout and the billing portal hold no database connection while Stripe answers (up to 20 s per try, one retry):
 * they read in one short transaction, call Stripe with none open, then audit in another. Otherwise a few dozen slow
 * checkouts would hold every connection of the API's pool, for every tenant. The Stripe double holds its answer until
 * the test releases it.
 */
describe('billing: checkout and portal wait on Stripe with no transaction open', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let orgId: string;

  /** what the API's runtime login holds while Stripe has not answered: pool connections, and its open transactions */
  const held = async () => ({
    poolInUse: t.app.get(DatabaseService).poolStats().inUse,
    openTransactions: (await t.db.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND usename = $1 AND xact_start IS NOT NULL`,
      [decodeURIComponent(new URL(t.config.apiDatabaseUrl).username)])).rows[0].n,
  });
  const audits = async (org: string, action: string) =>
    (await t.db.admin.query(`SELECT entity_id, actor_id, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id`, [org, action])).rows;

  /** sends the request, lets Stripe take it and hold it, and returns what the API held meanwhile, then the answer */
  const whileStripeWaits = async (send: () => PromiseLike<{ status: number; body: any }>, path: string) => {
    const hold = stripe.holdNext();
    const response = Promise.resolve(send());
    try {
      // an answer before Stripe was called fails here, not at the test's timeout
      const request = await Promise.race([hold.arrived, response.then((r) => { throw new Error(`answered ${r.status} without calling Stripe: ${JSON.stringify(r.body)}`); })]);
      expect(request.path).toBe(path);
      const during = await held();
      hold.release();
      return { during, response: await response };
    } finally {
      hold.release();
    }
  };

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise,price_sv_pro=app_securevault:pro',
    });
    ada = await registerUser(t, 'ada');
    orgId = await createOrg(t, ada, 'Slow Stripe Co');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it("an organization's checkout: nothing held while Stripe answers; the checkout is audited once it has", async () => {
    const { during, response } = await whileStripeWaits(
      () => t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' }), '/v1/checkout/sessions');
    expect(during).toEqual({ poolInUse: 0, openTransactions: 0 });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ id: expect.stringMatching(/^cs_test_/), url: `https://checkout.stripe.test/c/pay/${response.body.id}` });
    expect(await audits(orgId, 'billing.checkout_started')).toEqual([{
      entity_id: response.body.id, actor_id: ada.id, after: { app: 'omnizen', plan: 'professional', price: 'price_omz_pro', customer: null },
    }]);
  });

  it("a checkout that replaces an open one: nothing held while Stripe expires the open session", async () => {
    const switching = await createOrg(t, ada, 'Slow Switch Co');
    const first = await t.http.post(`/v1/orgs/${switching}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' }).expect(201);
    const { during, response } = await whileStripeWaits(
      () => t.http.post(`/v1/orgs/${switching}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'enterprise' }), `/v1/checkout/sessions/${first.body.id}/expire`);
    expect(during).toEqual({ poolInUse: 0, openTransactions: 0 });
    expect(response.status).toBe(201);
    expect(stripe.sessions.get(first.body.id)!.status).toBe('expired');
    expect((await audits(switching, 'billing.checkout_expired')).map((a) => a.entity_id)).toEqual([first.body.id]);
  });

  it("an organization's portal: the same", async () => {
    const [{ id }] = (await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'omnizen', 'professional', 'active', $1) RETURNING id`, [orgId])).rows;
    await t.db.admin.query('INSERT INTO hub.subscription_billing (subscription_id, organization_id, stripe_customer_id) VALUES ($1, $2, $3)', [id, orgId, 'cus_test_slow']);
    const { during, response } = await whileStripeWaits(
      () => t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({}), '/v1/billing_portal/sessions');
    expect(during).toEqual({ poolInUse: 0, openTransactions: 0 });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ id: expect.stringMatching(/^bps_test_/), url: `https://billing.stripe.test/p/session/${response.body.id}` });
    expect(await audits(orgId, 'billing.portal_opened')).toEqual([{ entity_id: response.body.id, actor_id: ada.id, after: { customer: 'cus_test_slow' } }]);
  });

  it("a person's checkout (/v1/me): the same, in their personal organization", async () => {
    const { during, response } = await whileStripeWaits(
      () => t.http.post('/v1/me/billing/checkout').set(ada.auth).send({ app: 'app_securevault', plan: 'pro' }), '/v1/checkout/sessions');
    expect(during).toEqual({ poolInUse: 0, openTransactions: 0 });
    expect(response.status).toBe(201);
    expect(stripe.requests.at(-1)!.form).toMatchObject({ client_reference_id: ada.personalOrgId, 'metadata[user_id]': ada.id, customer_email: ada.email });
    expect(await audits(ada.personalOrgId, 'billing.checkout_started')).toEqual([{
      entity_id: response.body.id, actor_id: ada.id, after: { app: 'app_securevault', plan: 'pro', price: 'price_sv_pro', customer: null },
    }]);
  });

  it('refused before Stripe: a stranger (404), a service key on /v1/me (403), no token (401), a body without a plan (400)', async () => {
    const calls = stripe.requests.length;
    const eve = await registerUser(t, 'eve');
    const stranger = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(eve.auth).send({ app: 'omnizen', plan: 'professional' }).expect(404);
    expect(stranger.body.error.code).toBe('organization.not_found');
    const key = jwt.sign({ role: 'service_role', service: 'securevault' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const service = await t.http.post('/v1/me/billing/checkout').set({ Authorization: `Bearer ${key}` }).send({ app: 'app_securevault', plan: 'pro' }).expect(403);
    expect(service.body.error).toMatchObject({ code: 'auth.user_required', message: expect.stringContaining('signed-in user') });
    const anonymous = await t.http.post('/v1/me/billing/portal').send({}).expect(401);
    expect(anonymous.body.error.code).toBe('auth.unauthorized');
    const invalid = await t.http.post('/v1/me/billing/checkout').set(eve.auth).send({ app: 'app_securevault' }).expect(400);
    expect(invalid.body.error).toMatchObject({ code: 'validation_failed', details: [expect.objectContaining({ field: 'plan' })] });
    expect(stripe.requests.length).toBe(calls);
    expect(await audits(eve.personalOrgId, 'billing.checkout_started')).toEqual([]);
  });
});
