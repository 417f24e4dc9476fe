import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { billingRepository } from '../../src/modules/billing/billing.repository.js';

/**
 * A Stripe Checkout session created but never recorded stayed payable: when Stripe's answer to the create was lost
 * (timeout, network error) the checkout key was dropped, and when the transaction recording the session failed it was
 * never written; either way a later different checkout did not know the session, so did not expire it, and two could be
 * paid. Now a key whose create had no answer is kept with the request's Stripe parameters, and the next different
 * checkout replays that create under the key's Idempotency-Key (the double keeps answers by key, as Stripe does): Stripe
 * answers the session it created, which is recorded, audited if it was not, and expired before the new one is created.
 */
describe('billing: a checkout session Stripe created but the Hub never recorded', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan: string) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_key AS key, checkout_session_id AS session, checkout_params IS NOT NULL AS "inDoubt" FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  const audits = async (orgId: string) => (await t.db.admin.query(
    `SELECT action, entity_id AS session, actor_id AS actor, after FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.checkout_%' ORDER BY audit_logs.id`, [orgId])).rows;
  /** the Checkout sessions the double created for an organization, with their status */
  const sessionsOf = (orgId: string) => stripe.checkoutSessions
    .filter((id) => stripe.sessions.get(id)!.metadata.org_id === orgId).map((id) => ({ id, status: stripe.sessions.get(id)!.status, plan: stripe.sessions.get(id)!.metadata.plan }));

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_unrecorded',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('Stripe created the session but its answer was lost: 502, and the next different checkout learns the session and expires it first', async () => {
    const orgId = await createOrg(t, ada, 'Lost Answer Co');
    stripe.loseNext(2); // the create and stripe-node's retry (answered from the key) both go unanswered
    const lost = await checkout(orgId, 'professional');
    expect([lost.status, lost.body.error.code, lost.body.error.details]).toEqual([502, 'billing.stripe_failed', { stripeType: 'StripeConnectionError', stripeStatus: null }]);
    const [first] = sessionsOf(orgId);
    expect(first).toEqual({ id: expect.any(String), status: 'open', plan: 'professional' });
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: null, inDoubt: true });
    expect(await audits(orgId)).toEqual([]);

    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([{ ...first, status: 'expired' }, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false });
    expect(await audits(orgId)).toEqual([
      { action: 'billing.checkout_started', session: first.id, actor: ada.id, after: { app: 'omnizen', plan: 'professional', price: 'price_omz_pro', customer: null } },
      { action: 'billing.checkout_expired', session: first.id, actor: ada.id, after: { app: 'omnizen', reason: 'replaced' } },
      { action: 'billing.checkout_started', session: next.body.id, actor: ada.id, after: { app: 'omnizen', plan: 'enterprise', price: 'price_omz_ent', customer: null } },
    ]);
  });

  it('the transaction recording the session failed: the next different checkout expires it; the same one again answers it, audited once', async () => {
    const orgId = await createOrg(t, ada, 'Record Failed Co');
    const spy = jest.spyOn(billingRepository, 'recordCheckoutSession').mockRejectedValueOnce(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
    let failed;
    try {
      failed = await checkout(orgId, 'professional');
    } finally {
      spy.mockRestore();
    }
    expect(failed.status).toBeGreaterThanOrEqual(500);
    const [first] = sessionsOf(orgId);
    expect(first).toEqual({ id: expect.any(String), status: 'open', plan: 'professional' });
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: null, inDoubt: true });
    expect(await audits(orgId)).toEqual([]);

    // the same request again: Stripe answers the same session (replayed), recorded and audited now, once
    const again = await checkout(orgId, 'professional');
    expect([again.status, again.body.id]).toEqual([201, first.id]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: first.id, inDoubt: false });
    const twice = await checkout(orgId, 'professional');
    expect([twice.status, twice.body.id]).toEqual([201, first.id]);
    expect(await audits(orgId)).toEqual([
      { action: 'billing.checkout_started', session: first.id, actor: ada.id, after: { app: 'omnizen', plan: 'professional', price: 'price_omz_pro', customer: null } },
    ]);
    expect(sessionsOf(orgId)).toEqual([first]);
  });

  it('the recording failed and a different checkout comes next: the unrecorded session is expired before the new one is created', async () => {
    const orgId = await createOrg(t, ada, 'Record Failed Then Other Co');
    const spy = jest.spyOn(billingRepository, 'recordCheckoutSession').mockRejectedValueOnce(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
    try {
      expect((await checkout(orgId, 'professional')).status).toBeGreaterThanOrEqual(500);
    } finally {
      spy.mockRestore();
    }
    const [first] = sessionsOf(orgId);
    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([{ ...first, status: 'expired' }, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false });
    expect((await audits(orgId)).map((a) => [a.action, a.session])).toEqual([
      ['billing.checkout_started', first.id], ['billing.checkout_expired', first.id], ['billing.checkout_started', next.body.id],
    ]);
  });

  it('Stripe\'s answer to the replay is a refusal kept under the key: no session, the key is dropped and the checkout goes on', async () => {
    const orgId = await createOrg(t, ada, 'Refused Replay Co');
    const created = stripe.checkoutSessions.length;
    stripe.loseNext(2);
    stripe.failNext(400, 'No such price: price_omz_pro'); // Stripe refused (and kept the refusal), the answer was lost
    expect((await checkout(orgId, 'professional')).status).toBe(502);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: null, inDoubt: true });
    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(stripe.checkoutSessions.slice(created)).toEqual([next.body.id]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false });
  });

  it('Stripe replays a 5xx it kept under the key (it executed the create, which failed): no session, the key is dropped and the checkout goes on', async () => {
    const orgId = await createOrg(t, ada, 'Kept Failure Replay Co');
    const created = stripe.checkoutSessions.length;
    stripe.loseNext(2);
    stripe.failNext(500, 'An unknown error occurred'); // Stripe executed the create, failed, kept the 500; the answer was lost
    expect((await checkout(orgId, 'professional')).status).toBe(502);
    const inDoubt = await keyRow(orgId);
    expect(inDoubt).toEqual({ key: expect.any(String), session: null, inDoubt: true });

    const before = stripe.requests.length;
    const next = await checkout(orgId, 'enterprise');
    // was: 502, the key kept in doubt, and every checkout of the app 502 (the kept 500 replayed) for 24 hours
    expect([next.status, next.body]).toEqual([201, { id: expect.any(String), url: expect.stringContaining('https://checkout.stripe.test/c/pay/') }]);
    const sent = stripe.requests.slice(before);
    expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/checkout/sessions', 'POST /v1/checkout/sessions']); // the replay, then its own
    expect(sent[0].idempotencyKey).toContain(inDoubt.key);
    expect(sent[1].idempotencyKey).not.toContain(inDoubt.key);
    expect(stripe.checkoutSessions.slice(created)).toEqual([next.body.id]);
    const row = await keyRow(orgId);
    expect(row).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false });
    expect(row.key).not.toBe(inDoubt.key);
    expect((await audits(orgId)).map((a) => [a.action, a.session])).toEqual([['billing.checkout_started', next.body.id]]);
  });

  it('Stripe answers the replay with a 5xx it did not keep (not replayed: the first create\'s outcome unknown): 502, the key stays in doubt', async () => {
    const orgId = await createOrg(t, ada, 'Fresh Failure Replay Co');
    stripe.loseNext(2); // Stripe created the session, its answer was lost
    expect((await checkout(orgId, 'professional')).status).toBe(502);
    const [first] = sessionsOf(orgId);
    const inDoubt = await keyRow(orgId);
    expect(inDoubt).toEqual({ key: expect.any(String), session: null, inDoubt: true });

    const before = stripe.requests.length;
    stripe.failNext(500, 'An unknown error occurred', { notKept: true });
    const failed = await checkout(orgId, 'enterprise');
    // the details keep their documented shape (StripeCallError.replayed is for the service only)
    expect([failed.status, failed.body.error?.code, failed.body.error?.details]).toEqual([502, 'billing.stripe_failed', { stripeType: 'StripeAPIError', stripeStatus: 500 }]);
    expect(stripe.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/checkout/sessions']); // the replay only
    expect(await keyRow(orgId)).toEqual(inDoubt);
    expect(sessionsOf(orgId)).toEqual([first]);
    expect(await audits(orgId)).toEqual([]);
  });

  it('Stripe refuses the create (a 4xx it executed and kept): the key is dropped, and the next checkout creates its session without replaying it', async () => {
    const orgId = await createOrg(t, ada, 'Refused Create Co');
    stripe.failNext(400, 'No such price: price_omz_pro');
    const refused = await checkout(orgId, 'professional');
    expect([refused.status, refused.body.error?.code, refused.body.error?.details]).toEqual([502, 'billing.stripe_failed', { stripeType: 'StripeInvalidRequestError', stripeStatus: 400 }]);
    expect(sessionsOf(orgId)).toEqual([]);
    expect(await keyRow(orgId)).toEqual({ key: null, session: null, inDoubt: false });

    const before = stripe.requests.length;
    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(stripe.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/checkout/sessions']);
    expect(sessionsOf(orgId)).toEqual([{ id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false });
  });

  it('Stripe rate-limits the replay (429, which says nothing about the first create): 502, the key stays in doubt, and the next checkout learns the session and expires it', async () => {
    const orgId = await createOrg(t, ada, 'Rate Limited Replay Co');
    stripe.loseNext(2); // Stripe created the session, its answer was lost
    expect((await checkout(orgId, 'professional')).status).toBe(502);
    const [first] = sessionsOf(orgId);
    const inDoubt = await keyRow(orgId);
    expect(inDoubt).toEqual({ key: expect.any(String), session: null, inDoubt: true });

    const before = stripe.requests.length;
    stripe.failNext(429, 'Too many requests hit the API too quickly.'); // the replay of the create is rate-limited
    const limited = await checkout(orgId, 'enterprise');
    expect([limited.status, limited.body.error?.code, limited.body.error?.details]).toEqual([502, 'billing.stripe_failed', { stripeType: 'StripeRateLimitError', stripeStatus: 429 }]);
    expect(stripe.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/checkout/sessions']); // the replay only, not retried
    // the key is kept in doubt (was: dropped, and the checkout went on next to the first session, open and unknown)
    expect(await keyRow(orgId)).toEqual(inDoubt);
    expect(sessionsOf(orgId)).toEqual([first]);
    expect(await audits(orgId)).toEqual([]);

    // Stripe answers the replay now: the first session is recorded, expired, then the new one created
    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([{ ...first, status: 'expired' }, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: next.body.id, inDoubt: false });
    expect((await audits(orgId)).map((a) => [a.action, a.session])).toEqual([
      ['billing.checkout_started', first.id], ['billing.checkout_expired', first.id], ['billing.checkout_started', next.body.id],
    ]);
  });
});
