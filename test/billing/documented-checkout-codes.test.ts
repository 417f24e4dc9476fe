import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

/**
 * The error codes the OpenAPI document declares for the checkout and portal of a person and of an organization, over
 * real HTTP against the Stripe test double (the coverage recorder had never seen them). A refusal before Stripe asks
 * Stripe nothing and audits nothing; Stripe's own failures answer 502 naming what Stripe said; a server without
 * STRIPE_SECRET_KEY answers 503.
 */
describe('documented error codes of checkout and portal, as answered', () => {
  let t: TestApp;
  let bare: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let orgId: string;

  const errorOf = (res: { status: number; body: { error?: { code: string; message: string } } }) => [res.status, res.body.error?.code, res.body.error?.message];
  const billingAudits = async (app: TestApp, org: string) =>
    (await app.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.%' ORDER BY id`, [org])).rows;
  /** A Stripe customer for a person (their personal plans) or an organization, as a paid checkout leaves. */
  async function customer(app: TestApp, who: { userId?: string; orgId?: string }, id: string): Promise<void> {
    const [{ id: sub }] = (await app.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "userId", "organizationId") VALUES (gen_random_uuid(), $1, $2, 'active', $3, $4) RETURNING id`,
      [who.userId ? 'app_securevault' : 'omnizen', who.userId ? 'pro' : 'professional', who.userId ?? null, who.orgId ?? null])).rows;
    await app.db.admin.query('INSERT INTO hub.subscription_billing (subscription_id, user_id, organization_id, stripe_customer_id) VALUES ($1, $2, $3, $4)',
      [sub, who.userId ?? null, who.orgId ?? null, id]);
  }

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', RATE_LIMITS_ENABLED: 'false', STRIPE_SECRET_KEY: 'sk_test_double',
      STRIPE_PRICES: 'price_sv_pro=app_securevault:pro,price_sv_growth=app_securevault:growth,price_omz_pro=omnizen:professional',
    });
    bare = await createTestApp({ REDIS_URL: '', STRIPE_SECRET_KEY: '', STRIPE_PRICES: 'price_sv_pro=app_securevault:pro,price_omz_pro=omnizen:professional' });
    ada = await registerUser(t, 'ada');
    orgId = await createOrg(t, ada, 'Checkout Codes Ltd');
  });
  afterAll(async () => {
    await t?.close();
    await bare?.close();
    await stripe?.close();
  });

  it('refused before Stripe: app.not_found, billing.plan_unknown, billing.plan_audience, billing.plan_not_for_sale', async () => {
    const calls = stripe.requests.length;
    const my = (body: object) => t.http.post('/v1/me/billing/checkout').set(ada.auth).send(body);
    const answers = await Promise.all([
      my({ app: 'no_such_app', plan: 'pro' }),
      t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'no_such_app', plan: 'pro' }),
      my({ app: 'app_securevault', plan: 'platinum' }),
      my({ app: 'app_securevault', plan: 'business_pro' }),
      my({ app: 'app_securevault', plan: 'starter' }),
    ]);
    expect(answers.map(errorOf)).toEqual([
      [404, 'app.not_found', 'app no_such_app was not found'],
      [404, 'app.not_found', 'app no_such_app was not found'],
      [422, 'billing.plan_unknown', 'app_securevault has no plan platinum'],
      [422, 'billing.plan_audience', 'the app_securevault plan business_pro is a business plan; this is a personal account'],
      [422, 'billing.plan_not_for_sale', 'no Stripe price is configured for app_securevault:starter (STRIPE_PRICES); contact sales'],
    ]);
    expect(stripe.requests.length).toBe(calls);
    expect([await billingAudits(t, ada.personalOrgId), await billingAudits(t, orgId)]).toEqual([[], []]);
  });

  it('billing.stripe_failed: Stripe refuses the checkout session (502 naming what Stripe said), nothing audited', async () => {
    stripe.failNext(400, 'No such price: price_sv_pro');
    const res = await t.http.post('/v1/me/billing/checkout').set(ada.auth).send({ app: 'app_securevault', plan: 'pro' });
    expect(errorOf(res)).toEqual([502, 'billing.stripe_failed', 'Stripe could not create a checkout session: No such price: price_sv_pro']);
    expect(await billingAudits(t, ada.personalOrgId)).toEqual([]);
  });

  it('billing.stripe_no_url: Stripe answers a checkout session without a URL, for a person and for an organization', async () => {
    stripe.withoutUrlNext();
    const mine = await t.http.post('/v1/me/billing/checkout').set(ada.auth).send({ app: 'app_securevault', plan: 'growth' });
    stripe.withoutUrlNext();
    const ours = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' });
    expect([errorOf(mine), errorOf(ours)]).toEqual([
      [502, 'billing.stripe_no_url', 'Stripe returned a checkout session without a URL'],
      [502, 'billing.stripe_no_url', 'Stripe returned a checkout session without a URL'],
    ]);
  });

  it('billing.checkout_superseded: the person starts another checkout while Stripe creates the first one\'s session', async () => {
    const bea = await registerUser(t, 'bea');
    const my = (plan: string) => t.http.post('/v1/me/billing/checkout').set(bea.auth).send({ app: 'app_securevault', plan });
    const hold = stripe.holdNext();
    let first: Promise<{ status: number; body: any }> | undefined;
    try {
      first = my('pro').then((r) => r);
      await hold.arrived;
      const second = await my('growth');
      expect(second.status).toBe(201);
      hold.release();
      const overtaken = await first;
      const [beas] = stripe.checkoutSessions.filter((id) => id !== second.body.id && stripe.sessions.get(id)!.metadata.user_id === bea.id);
      expect(errorOf(overtaken)).toEqual([409, 'billing.checkout_superseded',
        `another checkout of app_securevault started while this one's session was being created (another plan, or another admin); that one is the open checkout, and this session (${beas}) was expired`]);
      expect([stripe.sessions.get(beas)!.status, stripe.sessions.get(second.body.id)!.status]).toEqual(['expired', 'open']);
    } finally {
      hold.release();
      await first;
    }
  });

  it('billing.stripe_failed on the portal of a person and of an organization: Stripe refuses, nothing audited', async () => {
    await customer(t, { userId: ada.id }, 'cus_test_ada');
    await customer(t, { orgId }, 'cus_test_org');
    stripe.failNext(400, 'No such customer: cus_test_ada');
    const mine = await t.http.post('/v1/me/billing/portal').set(ada.auth).send({});
    stripe.failNext(400, 'No such customer: cus_test_org');
    const ours = await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({});
    expect([errorOf(mine), errorOf(ours)]).toEqual([
      [502, 'billing.stripe_failed', 'Stripe could not open a portal session: No such customer: cus_test_ada'],
      [502, 'billing.stripe_failed', 'Stripe could not open a portal session: No such customer: cus_test_org'],
    ]);
    const portals = async (org: string) => (await billingAudits(t, org)).filter((a) => a.action === 'billing.portal_opened');
    expect([await portals(ada.personalOrgId), await portals(orgId)]).toEqual([[], []]);
  });

  it('billing.stripe_not_configured: checkout and portal of a person and of an organization on a server without STRIPE_SECRET_KEY', async () => {
    const cy = await registerUser(bare, 'cy');
    const cyOrg = await createOrg(bare, cy, 'No Stripe Ltd');
    await customer(bare, { userId: cy.id }, 'cus_test_cy');
    await customer(bare, { orgId: cyOrg }, 'cus_test_cy_org');
    const locks = async () => (await bare.db.admin.query(
      `SELECT org_id::text AS org, app_id AS app, checkout_key AS key FROM hub.limit_locks WHERE org_id = ANY ($1::uuid[]) ORDER BY org_id, app_id`, [[cy.personalOrgId, cyOrg]])).rows;
    const before = await locks();
    const answers = await Promise.all([
      bare.http.post('/v1/me/billing/checkout').set(cy.auth).send({ app: 'app_securevault', plan: 'pro' }),
      bare.http.post(`/v1/orgs/${cyOrg}/billing/checkout`).set(cy.auth).send({ app: 'omnizen', plan: 'professional' }),
      bare.http.post('/v1/me/billing/portal').set(cy.auth).send({}),
      bare.http.post(`/v1/orgs/${cyOrg}/billing/portal`).set(cy.auth).send({}),
    ]);
    const refused = [503, 'billing.stripe_not_configured', 'Stripe is not configured on this server (STRIPE_SECRET_KEY is missing)'];
    expect(answers.map(errorOf)).toEqual([refused, refused, refused, refused]);
    expect([await billingAudits(bare, cy.personalOrgId), await billingAudits(bare, cyOrg)]).toEqual([[], []]);
    // refused before any work: no checkout lock row created (nor key drawn) for either
    expect(await locks()).toEqual(before);
  });
});
