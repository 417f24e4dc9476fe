import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';

const EXPIRE_FAILED = 'Stripe could not expire the previous checkout session: upstream unavailable';

/**
 * Checkout sessions Stripe keeps open that the Hub forgot, or never should have kept as the open checkout:
 * - the same request again (a double-click) while the first one's create is in Stripe also expires the previous
 *   session; when that expire failed it dropped the key, though the key was the first request's: the first one's
 *   answer lost, its session stayed open and unknown, and the next checkout created another one next to it;
 * - a session Stripe answered without a URL was recorded (and audited as started) as the open checkout, answered 502,
 *   and left open in Stripe;
 * - a checkout overtaken while Stripe created its session expires it itself; when that expire failed the session
 *   stayed open, and no key held it.
 */
describe('billing: checkout sessions left open in Stripe', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let bob: TestUser;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan: string, user = ada) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(user.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_key::text AS key, checkout_session_id AS session, checkout_params IS NOT NULL AS "inDoubt", checkout_sessions_to_expire AS "toExpire"
     FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  const audits = async (orgId: string) => (await t.db.admin.query(
    `SELECT action, entity_id AS session, actor_id AS actor, after FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.checkout_%' ORDER BY audit_logs.id`, [orgId])).rows;
  const sessionsOf = (orgId: string) => stripe.checkoutSessions
    .filter((id) => stripe.sessions.get(id)!.metadata.org_id === orgId).map((id) => ({ id, status: stripe.sessions.get(id)!.status, plan: stripe.sessions.get(id)!.metadata.plan }));

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_left_sessions',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('the same request again fails to expire the previous session while the first one creates its own: the key stays the first one\'s, and the next checkout expires that session', async () => {
    const orgId = await createOrg(t, ada, 'Reused Key Expire Failed Co');
    const pro = await checkout(orgId, 'professional');
    expect(pro.status).toBe(201);

    const expireHeld = stripe.holdNext();
    let createHeld: ReturnType<StripeDouble['holdNext']> | undefined;
    let first: Promise<{ status: number; body: any }> | undefined;
    try {
      first = checkout(orgId, 'enterprise');
      expect((await expireHeld.arrived).path).toBe(`/v1/checkout/sessions/${pro.body.id}/expire`);
      expireHeld.release();
      createHeld = stripe.holdNext(); // set before the expire is answered: the first request's create is held next
      expect((await createHeld.arrived).path).toBe('/v1/checkout/sessions');
      const drawn = await keyRow(orgId);
      expect(drawn).toEqual({ key: expect.any(String), session: pro.body.id, inDoubt: true, toExpire: [] });

      // the double-click: the same request reuses the key, and its expire of the previous session fails at Stripe
      stripe.failNext(502, 'upstream unavailable');
      const second = await checkout(orgId, 'enterprise');
      expect([second.status, second.body.error]).toEqual([502, { code: 'billing.stripe_failed', message: EXPIRE_FAILED, details: { stripeType: 'StripeAPIError', stripeStatus: 502 } }]);
      // the key is still the first request's, with its parameters
      expect(await keyRow(orgId)).toEqual(drawn);

      // the first request's session is created, and its answer lost (and stripe-node's retry's)
      stripe.loseNext(2);
      createHeld.release();
      const lost = await first;
      expect([lost.status, lost.body.error?.code, lost.body.error?.details]).toEqual([502, 'billing.stripe_failed', { stripeType: 'StripeConnectionError', stripeStatus: null }]);
    } finally {
      expireHeld.release();
      createHeld?.release();
      await first;
    }
    const [, lostSession] = sessionsOf(orgId);
    expect(sessionsOf(orgId)).toEqual([{ id: pro.body.id, status: 'expired', plan: 'professional' }, { id: lostSession.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: pro.body.id, inDoubt: true, toExpire: [] });

    // the next different checkout learns the lost session from the key and expires it before creating its own
    const next = await checkout(orgId, 'professional');
    expect(next.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([
      { id: pro.body.id, status: 'expired', plan: 'professional' },
      { id: lostSession.id, status: 'expired', plan: 'enterprise' },
      { id: next.body.id, status: 'open', plan: 'professional' },
    ]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false, toExpire: [] });
    expect((await audits(orgId)).map((a) => [a.action, a.session, a.after.reason ?? null])).toEqual([
      ['billing.checkout_started', pro.body.id, null],
      ['billing.checkout_expired', pro.body.id, 'replaced'],
      ['billing.checkout_started', lostSession.id, null],
      ['billing.checkout_expired', lostSession.id, 'replaced'],
      ['billing.checkout_started', next.body.id, null],
    ]);
  });

  it('Stripe answers a session without a URL: 502, the session expired and not kept as the open checkout; the next checkout creates a new one', async () => {
    const orgId = await createOrg(t, ada, 'No URL Co');
    stripe.withoutUrlNext();
    const failed = await checkout(orgId, 'professional');
    expect([failed.status, failed.body.error]).toEqual([502, { code: 'billing.stripe_no_url', message: 'Stripe returned a checkout session without a URL' }]);
    const [noUrl] = sessionsOf(orgId);
    expect(sessionsOf(orgId)).toEqual([{ id: noUrl.id, status: 'expired', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ key: null, session: null, inDoubt: false, toExpire: [] });
    expect(await audits(orgId)).toEqual([{ action: 'billing.checkout_expired', session: noUrl.id, actor: ada.id, after: { app: 'omnizen', reason: 'no_url' } }]);

    // the same request again: a new key, a new session (not Stripe's kept answer without a URL)
    const again = await checkout(orgId, 'professional');
    expect(again.status).toBe(201);
    expect(again.body).toEqual({ id: expect.not.stringMatching(noUrl.id), url: `https://checkout.stripe.test/c/pay/${again.body.id}` });
    expect(sessionsOf(orgId)).toEqual([{ id: noUrl.id, status: 'expired', plan: 'professional' }, { id: again.body.id, status: 'open', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: again.body.id, inDoubt: false, toExpire: [] });
  });

  it('a session without a URL that Stripe fails to expire: its key stays in doubt, and the next different checkout expires it', async () => {
    const orgId = await createOrg(t, ada, 'No URL Expire Failed Co');
    const createHeld = stripe.holdNext();
    let expireHeld: ReturnType<StripeDouble['holdNext']> | undefined;
    let failed: Promise<{ status: number; body: any }> | undefined;
    try {
      stripe.withoutUrlNext();
      failed = checkout(orgId, 'professional');
      expect((await createHeld.arrived).path).toBe('/v1/checkout/sessions');
      createHeld.release();
      expireHeld = stripe.holdNext(); // the expire of the session without a URL is held next (unless answered without one)
      const unexpired = failed.then((r) => ({ path: `answered ${r.status} without expiring the session` }));
      expect((await Promise.race([expireHeld.arrived, unexpired])).path).toMatch(/^\/v1\/checkout\/sessions\/cs_test_[0-9a-f]+\/expire$/);
      stripe.failNext(502, 'upstream unavailable');
      expireHeld.release();
      const answered = await failed;
      expect([answered.status, answered.body.error?.code]).toEqual([502, 'billing.stripe_no_url']);
    } finally {
      createHeld.release();
      expireHeld?.release();
      await failed;
    }
    const [noUrl] = sessionsOf(orgId);
    expect(sessionsOf(orgId)).toEqual([{ id: noUrl.id, status: 'open', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: null, inDoubt: true, toExpire: [] });
    expect(await audits(orgId)).toEqual([]);

    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([{ id: noUrl.id, status: 'expired', plan: 'professional' }, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false, toExpire: [] });
  });

  it('a checkout overtaken while Stripe creates its session fails to expire it: 409, the session kept to expire, and the billing job expires it', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Expire Failed Co');
    await addMember(t, orgId, bob, 'admin');
    const createHeld = stripe.holdNext();
    let expireHeld: ReturnType<StripeDouble['holdNext']> | undefined;
    let first: Promise<{ status: number; body: any }> | undefined;
    let overtaken: { status: number; body: any };
    let second: { status: number; body: any };
    try {
      first = checkout(orgId, 'professional', ada);
      expect((await createHeld.arrived).path).toBe('/v1/checkout/sessions'); // ada's session is being created
      second = await checkout(orgId, 'enterprise', bob);
      expect(second.status).toBe(201);
      createHeld.release();
      expireHeld = stripe.holdNext(); // ada's expire of her own session is held next, and fails
      expect((await expireHeld.arrived).path).toMatch(/^\/v1\/checkout\/sessions\/cs_test_[0-9a-f]+\/expire$/);
      stripe.failNext(502, 'upstream unavailable');
      expireHeld.release();
      overtaken = await first;
    } finally {
      createHeld.release();
      expireHeld?.release();
      await first;
    }
    const [adas] = sessionsOf(orgId).filter((s) => s.id !== second.body.id);
    expect([overtaken.status, overtaken.body.error]).toEqual([409, {
      code: 'billing.checkout_superseded',
      message: `another checkout of omnizen started while this one's session was being created (another plan, or another admin); that one is the open checkout, and this session (${adas.id}) is expired shortly (Stripe could not expire it now)`,
      details: { app: 'omnizen', plan: 'professional' },
    }]);
    expect(sessionsOf(orgId)).toEqual([{ id: second.body.id, status: 'open', plan: 'enterprise' }, { id: adas.id, status: 'open', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: second.body.id, inDoubt: false, toExpire: [adas.id] });

    // the billing job expires it, audited, and forgets it; the open checkout is untouched
    const job = t.app.get(BillingExpiryJob);
    expect(await job.expireLeftCheckoutSessions()).toEqual([adas.id]);
    expect(sessionsOf(orgId)).toEqual([{ id: second.body.id, status: 'open', plan: 'enterprise' }, { id: adas.id, status: 'expired', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: second.body.id, inDoubt: false, toExpire: [] });
    expect(await audits(orgId)).toEqual([
      { action: 'billing.checkout_started', session: second.body.id, actor: bob.id, after: { app: 'omnizen', plan: 'enterprise', price: 'price_omz_ent', customer: null } },
      { action: 'billing.checkout_started', session: adas.id, actor: ada.id, after: { app: 'omnizen', plan: 'professional', price: 'price_omz_pro', customer: null } },
      { action: 'billing.checkout_expired', session: adas.id, actor: null, after: { app: 'omnizen', reason: 'superseded' } },
    ]);
    expect(await job.expireLeftCheckoutSessions()).toEqual([]);
  });
});
