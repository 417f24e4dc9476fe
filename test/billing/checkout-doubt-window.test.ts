import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';

const HOUR_MS = 3_600_000;

/**
 * A checkout key whose create Stripe never answered is kept "in doubt" with the request's Stripe parameters
 * (hub.limit_locks.checkout_params), which hold the requesting admin's e-mail (customer_email) while the organization
 * has no Stripe customer. They were kept until a later checkout settled the key: if none came, forever. Now they are
 * kept only within Stripe's idempotency window (24 hours from the key): BillingExpiryJob drops the key with them after
 * it, and a checkout after it no longer replays the create (Stripe would create a new session rather than answer the old).
 */
describe('billing: a checkout key in doubt is kept only within Stripe\'s idempotency window', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let job: BillingExpiryJob;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan: string) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_key AS key, checkout_key_at AS "drawnAt", checkout_request AS request, checkout_params AS params, checkout_session_id AS session
     FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  /** the Checkout sessions the double created for an organization, with their status */
  const sessionsOf = (orgId: string) => stripe.checkoutSessions
    .filter((id) => stripe.sessions.get(id)!.metadata.org_id === orgId).map((id) => ({ id, status: stripe.sessions.get(id)!.status, plan: stripe.sessions.get(id)!.metadata.plan }));
  const createsOf = (key: string) => stripe.requests.filter((r) => r.path === '/v1/checkout/sessions' && r.idempotencyKey?.startsWith(`omnizen-checkout-${key}-`));

  /** a checkout whose create Stripe executed but whose answer was lost: 502, its key left in doubt with ada's e-mail */
  const lostCheckout = async (orgId: string) => {
    stripe.loseNext(2); // the create and stripe-node's retry (answered from the key) both go unanswered
    const lost = await checkout(orgId, 'professional');
    expect([lost.status, lost.body.error.code]).toEqual([502, 'billing.stripe_failed']);
    const row = await keyRow(orgId);
    expect(row).toEqual({ key: expect.any(String), drawnAt: expect.any(Date), request: expect.any(String), params: expect.any(String), session: null });
    expect(JSON.parse(row.params).customer_email).toBe(ada.email);
    return row as { key: string };
  };

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_doubt_window',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
    job = t.app.get(BillingExpiryJob);
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('the billing job drops a key in doubt, with its parameters (the admin\'s e-mail), once 24 hours have passed since it was drawn', async () => {
    const orgId = await createOrg(t, ada, 'Doubt Window Job Co');
    const { key } = await lostCheckout(orgId);
    const other = await createOrg(t, ada, 'Doubt Window Fresh Co');

    clock.advance(23 * HOUR_MS + 59 * 60_000); // still within Stripe's window: the next checkout may need to learn the session
    const fresh = await lostCheckout(other);
    expect((await job.dropStaleCheckoutKeys()).filter((d) => d.orgId === orgId || d.orgId === other)).toEqual([]);
    expect((await keyRow(orgId)).key).toBe(key);

    clock.advance(60_000);
    expect((await job.dropStaleCheckoutKeys()).filter((d) => d.orgId === orgId || d.orgId === other)).toEqual([{ orgId, appId: 'omnizen', key }]);
    expect(await keyRow(orgId)).toEqual({ key: null, drawnAt: null, request: null, params: null, session: null });
    // a key drawn later keeps its window
    expect((await keyRow(other)).key).toBe(fresh.key);
    expect((await keyRow(other)).params).toEqual(expect.any(String));
    const emails = await t.db.admin.query(`SELECT 1 FROM hub.limit_locks WHERE org_id = $1 AND checkout_params ILIKE '%' || $2 || '%'`, [orgId, ada.email]);
    expect(emails.rowCount).toBe(0);
    // nothing left to drop: a second run changes nothing
    expect((await job.dropStaleCheckoutKeys()).filter((d) => d.orgId === orgId)).toEqual([]);

    // a checkout afterwards starts afresh (no replay of the dropped key's create)
    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(createsOf(key)).toHaveLength(2); // the lost create and stripe-node's retry, nothing since
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), drawnAt: expect.any(Date), request: expect.any(String), params: null, session: next.body.id });

    // that settled key keeps its request's hash (an unsalted SHA-256 of the parameters, ada's e-mail among them) while the
    // key may be reused, and no longer than 24 hours; its session stays (to be expired by the next checkout)
    clock.advance(23 * HOUR_MS + 59 * 60_000);
    expect((await job.dropStaleCheckoutKeys()).filter((d) => d.orgId === orgId)).toEqual([]);
    expect((await keyRow(orgId)).request).toEqual(expect.any(String));
    clock.advance(60_000);
    expect((await job.dropStaleCheckoutKeys()).filter((d) => d.orgId === orgId)).toEqual([]); // not a key in doubt
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), drawnAt: expect.any(Date), request: null, params: null, session: next.body.id });
  });

  it('a checkout after the window does not replay the create of a key in doubt the job has not dropped yet: it draws a new key', async () => {
    const orgId = await createOrg(t, ada, 'Doubt Window Checkout Co');
    const { key } = await lostCheckout(orgId);
    const [first] = sessionsOf(orgId);
    clock.advance(24 * HOUR_MS); // Stripe has expired that session by now (24 h), and would create a new one for a replay

    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(createsOf(key)).toHaveLength(2); // not replayed
    expect(sessionsOf(orgId)).toEqual([first, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    const row = await keyRow(orgId);
    expect(row).toEqual({ key: expect.any(String), drawnAt: expect.any(Date), request: expect.any(String), params: null, session: next.body.id });
    expect(row.key).not.toBe(key);
  });
});
