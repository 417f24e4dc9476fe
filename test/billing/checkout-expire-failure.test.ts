import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

const BAD_GATEWAY = 'Stripe could not expire the previous checkout session: upstream unavailable';

/**
 * A different checkout (another plan) supersedes the recorded open Stripe session: it expires that session in Stripe
 * before creating its own. When Stripe answers the expire 502 (stripe-node retries it once, answered the same from its
 * Idempotency-Key), the checkout answers 502 billing.stripe_failed, creates no session, and the old session stays
 * recorded, so a retry tries the expire again. The same request again while the first is still expiring (a double
 * click) used to take the first one's key and create its session without expiring the old one, which then left the
 * record: a failed expire left it open and unknown, two sessions payable. So did a checkout whose process stopped after
 * drawing its key, before the expire: the next checkout learned the key's session and recorded it over the open one.
 */
describe('billing: a checkout whose expire of the previous session fails at Stripe', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan: string) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_key IS NOT NULL AS "hasKey", checkout_session_id AS session, checkout_params IS NOT NULL AS "inDoubt" FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  const sessionsOf = (orgId: string) => stripe.checkoutSessions
    .filter((id) => stripe.sessions.get(id)!.metadata.org_id === orgId).map((id) => ({ id, status: stripe.sessions.get(id)!.status, plan: stripe.sessions.get(id)!.metadata.plan }));
  const expiries = async (orgId: string) => (await t.db.admin.query(
    `SELECT entity_id AS session, after FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_expired' ORDER BY audit_logs.id`, [orgId])).rows;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_expire_failure',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('Stripe answers the expire 502: 502 in our shape, no new session, the old one still recorded; the retry expires it', async () => {
    const orgId = await createOrg(t, ada, 'Bad Gateway Co');
    const pro = await checkout(orgId, 'professional');
    expect(pro.status).toBe(201);

    stripe.failNext(502, 'upstream unavailable');
    const failed = await checkout(orgId, 'enterprise');
    expect([failed.status, failed.body.error]).toEqual([502, { code: 'billing.stripe_failed', message: BAD_GATEWAY, details: { stripeType: 'StripeAPIError', stripeStatus: 502 } }]);
    expect(sessionsOf(orgId)).toEqual([{ id: pro.body.id, status: 'open', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ hasKey: false, session: pro.body.id, inDoubt: false });
    expect(await expiries(orgId)).toEqual([]);

    const retried = await checkout(orgId, 'enterprise');
    expect(retried.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([{ id: pro.body.id, status: 'expired', plan: 'professional' }, { id: retried.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ hasKey: true, session: retried.body.id, inDoubt: false });
    expect(await expiries(orgId)).toEqual([{ session: pro.body.id, after: { app: 'omnizen', reason: 'replaced' } }]);
  });

  it('a checkout that stopped between drawing its key and expiring the recorded session: the next one expires that session before learning the key\'s', async () => {
    const orgId = await createOrg(t, ada, 'Stopped Midway Co');
    const pro = await checkout(orgId, 'professional');
    expect(pro.status).toBe(201);
    // an enterprise checkout drew its key (its Stripe parameters kept) and its process stopped before the expire
    const metadata = { org_id: orgId, app: 'omnizen', plan: 'enterprise' };
    const params = {
      mode: 'subscription', line_items: [{ price: 'price_omz_ent', quantity: 1 }], client_reference_id: orgId, customer_email: ada.email, metadata,
      subscription_data: { metadata }, success_url: 'http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'http://localhost:3000/billing/canceled',
    };
    await t.db.admin.query(
      `UPDATE hub.limit_locks SET checkout_key = gen_random_uuid(), checkout_key_at = $2, checkout_request = 'the stopped request', checkout_params = $3
       WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId, new Date(clock.now()), JSON.stringify(params)]);
    expect(await keyRow(orgId)).toEqual({ hasKey: true, session: pro.body.id, inDoubt: true });

    // the expire fails at Stripe: 502, nothing learned or created, the key still in doubt, the open session still recorded
    stripe.failNext(502, 'upstream unavailable');
    const failed = await checkout(orgId, 'professional');
    expect([failed.status, failed.body.error]).toEqual([502, { code: 'billing.stripe_failed', message: BAD_GATEWAY, details: { stripeType: 'StripeAPIError', stripeStatus: 502 } }]);
    expect(sessionsOf(orgId)).toEqual([{ id: pro.body.id, status: 'open', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ hasKey: true, session: pro.body.id, inDoubt: true });

    // again: the recorded session is expired, the key's create replayed (Stripe creates it now), expired, and a new one made
    const next = await checkout(orgId, 'professional');
    expect(next.status).toBe(201);
    const sessions = sessionsOf(orgId);
    expect(sessions).toEqual([
      { id: pro.body.id, status: 'expired', plan: 'professional' },
      { id: expect.any(String), status: 'expired', plan: 'enterprise' },
      { id: next.body.id, status: 'open', plan: 'professional' },
    ]);
    expect(await keyRow(orgId)).toEqual({ hasKey: true, session: next.body.id, inDoubt: false });
    expect(await expiries(orgId)).toEqual([
      { session: pro.body.id, after: { app: 'omnizen', reason: 'replaced' } },
      { session: sessions[1].id, after: { app: 'omnizen', reason: 'replaced' } },
    ]);
  });

  it('the same request again while the first is expiring: it expires the old session too; the first failing leaves one open session, recorded', async () => {
    const orgId = await createOrg(t, ada, 'Double Click During Expire Co');
    const pro = await checkout(orgId, 'professional');
    expect(pro.status).toBe(201);

    const hold = stripe.holdNext();
    let first: Promise<{ status: number; body: any }> | undefined;
    try {
      first = checkout(orgId, 'enterprise');
      const held = await hold.arrived; // the first request's expire of the professional session is in Stripe
      expect(held.path).toBe(`/v1/checkout/sessions/${pro.body.id}/expire`);
      const second = await checkout(orgId, 'enterprise');
      expect(second.status).toBe(201);
      // the held expire fails at Stripe (502, and stripe-node's retry answered the same)
      stripe.failNext(502, 'upstream unavailable');
      hold.release();
      const failed = await first;
      expect([failed.status, failed.body.error?.code]).toEqual([502, 'billing.stripe_failed']);
      // no session open but the one recorded
      const open = sessionsOf(orgId).filter((s) => s.status === 'open');
      expect(open).toEqual([{ id: second.body.id, status: 'open', plan: 'enterprise' }]);
      expect(sessionsOf(orgId)).toEqual([{ id: pro.body.id, status: 'expired', plan: 'professional' }, { id: second.body.id, status: 'open', plan: 'enterprise' }]);
      expect((await keyRow(orgId)).session).toBe(second.body.id);
    } finally {
      hold.release();
      await first;
    }
  });
});
