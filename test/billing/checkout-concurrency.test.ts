import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { until } from '../support/throwaway-servers.js';

const WEBHOOK_SECRET = 'whsec_test_checkout_concurrency';
const HOUR_MS = 3_600_000;

/**
 * One open checkout of an app at a time per organization. Two concurrent checkouts (a double-click) both read "no live
 * subscription" and both created a Stripe Checkout session: the customer could pay two subscriptions. Now the second
 * is served after the first, with the same Idempotency-Key, and Stripe (the double keeps answers by key, as Stripe does)
 * answers it with the same session. A different checkout (another plan, another admin) expires the open session in
 * Stripe before creating its own (the double keeps each session's status, and refuses to expire one that is not open).
 */
describe('billing: concurrent and repeated checkouts', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let bob: TestUser;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan = 'professional', user = ada) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(user.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const audited = async (orgId: string) => (await t.db.admin.query(
    `SELECT entity_id AS session, actor_id AS actor FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started' ORDER BY audit_logs.id`, [orgId])).rows;
  const auditedExpiries = async (orgId: string) => (await t.db.admin.query(
    `SELECT entity_id AS session, actor_id AS actor, after FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_expired' ORDER BY audit_logs.id`, [orgId])).rows;
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_key AS key, checkout_session_id AS session FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  /** the sessions the double was asked to expire, in order (Stripe's answer aside) */
  const expired = () => stripe.requests.filter((r) => r.path.endsWith('/expire')).map((r) => r.path.split('/')[4]);
  const sessionStatus = (ids: string[]) => ids.map((id) => stripe.sessions.get(id)?.status);
  const send = async (event: object) => {
    const payload = JSON.stringify(event);
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    await t.http.post('/v1/billing/stripe/webhook').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload).expect(200);
    await t.app.get(OutboxRelay).drain();
  };
  const stripeEvent = (type: string, object: Record<string, unknown>, created: number) =>
    ({ id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', api_version: '2026-10-28.endive', created, livemode: false, pending_webhooks: 1, type, data: { object } });

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('two concurrent checkouts of one organization and app: one Stripe session, both answered with it, audited once', async () => {
    const orgId = await createOrg(t, ada, 'Double Click Co');
    await addMember(t, orgId, bob, 'admin');
    const sessions = stripe.checkoutSessions.length;
    // the test holds the organization's row of the app: both requests reach it before either goes on
    const holder = await t.db.admin.connect();
    let answers: Array<{ status: number; body: any }>;
    try {
      await holder.query('BEGIN');
      await holder.query(`INSERT INTO hub.limit_locks (org_id, app_id) VALUES ($1, 'omnizen') ON CONFLICT DO NOTHING`, [orgId]);
      await holder.query(`SELECT 1 FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen' FOR UPDATE`, [orgId]);
      const first = checkout(orgId, 'professional', ada);
      const second = checkout(orgId, 'professional', ada);
      let settled = 0;
      void first.then(() => settled++);
      void second.then(() => settled++);
      // both wait for the row (or, without the lock, have been answered already)
      await until('both checkouts wait for the row or are answered', async () => settled === 2 || (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND usename = 'omnizen_api' AND wait_event_type = 'Lock'`)).rows[0].n === 2);
      await holder.query('COMMIT');
      answers = await Promise.all([first, second]);
    } finally {
      holder.release();
    }
    expect(answers.map((r) => r.status)).toEqual([201, 201]);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([answers[0].body.id]);
    expect(answers[1].body).toEqual(answers[0].body);
    expect(answers[0].body).toEqual({ id: expect.stringMatching(/^cs_test_/), url: `https://checkout.stripe.test/c/pay/${answers[0].body.id}` });
    expect(await audited(orgId)).toEqual([{ session: answers[0].body.id, actor: ada.id }]);
    expect(await keyRow(orgId)).toEqual({ key: expect.stringMatching(/^[0-9a-f-]{36}$/), session: answers[0].body.id });
  });

  it('the same checkout later: the same open session; another plan or another admin: a new one, the previous expired; a Stripe event or 23 hours: a new one', async () => {
    const orgId = await createOrg(t, ada, 'Repeat Co');
    await addMember(t, orgId, bob, 'admin');
    const sessions = stripe.checkoutSessions.length;
    const pro = await checkout(orgId);
    expect(pro.status).toBe(201);
    expect((await checkout(orgId)).body).toEqual(pro.body); // a retry, a back button
    expect(expired().length).toBe(0);
    const enterprise = await checkout(orgId, 'enterprise');
    const bobs = await checkout(orgId, 'professional', bob); // another e-mail on the session: another request
    expect([enterprise.status, bobs.status]).toEqual([201, 201]);
    expect(new Set([pro.body.id, enterprise.body.id, bobs.body.id]).size).toBe(3);
    expect(expired()).toEqual([pro.body.id, enterprise.body.id]);
    expect(sessionStatus([pro.body.id, enterprise.body.id, bobs.body.id])).toEqual(['expired', 'expired', 'open']);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: bobs.body.id });
    const { key } = await keyRow(orgId);

    // bob's checkout is paid, and the subscription canceled at once: the spent session is not offered again
    const now = Math.floor(clock.now() / 1000);
    const subscription = (status: string) => ({
      id: 'sub_repeat_1', object: 'subscription', customer: 'cus_test_repeat', status, metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
      items: { object: 'list', data: [{ id: 'si_repeat_1', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: now + 30 * 86_400 }] },
    });
    Object.assign(stripe.sessions.get(bobs.body.id)!, { status: 'complete', subscription: 'sub_repeat_1' });
    stripe.subscriptions.set('sub_repeat_1', { status: 'canceled', customer: 'cus_test_repeat' });
    await send(stripeEvent('checkout.session.completed', {
      id: bobs.body.id, object: 'checkout.session', mode: 'subscription', payment_status: 'paid', client_reference_id: orgId, customer: 'cus_test_repeat',
      subscription: 'sub_repeat_1', metadata: { org_id: orgId, app: 'omnizen', plan: 'professional' },
    }, now + 1));
    await send(stripeEvent('customer.subscription.deleted', subscription('canceled'), now + 2));
    clock.advance(60_000);
    // (the completed session cannot be expired: Stripe answers 400, and its subscription has ended: the checkout goes on)
    const again = await checkout(orgId);
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(bobs.body.id);
    const { key: afterEvent } = await keyRow(orgId);
    expect(afterEvent).not.toBe(key);
    expect((await checkout(orgId)).body).toEqual(again.body);

    // 23 hours on: a new key, a new session (Stripe keeps a key's answer, and the session, for 24 hours); the open one expired
    clock.advance(23 * HOUR_MS);
    const tomorrow = await checkout(orgId);
    expect(tomorrow.status).toBe(201);
    expect(tomorrow.body.id).not.toBe(again.body.id);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([pro.body.id, enterprise.body.id, bobs.body.id, again.body.id, tomorrow.body.id]);
    expect((await audited(orgId)).map((a) => a.session)).toEqual(stripe.checkoutSessions.slice(sessions));
    expect(await auditedExpiries(orgId)).toEqual([
      { session: pro.body.id, actor: ada.id, after: { app: 'omnizen', reason: 'replaced' } },
      { session: enterprise.body.id, actor: bob.id, after: { app: 'omnizen', reason: 'replaced' } },
      { session: again.body.id, actor: ada.id, after: { app: 'omnizen', reason: 'replaced' } },
    ]);
    expect(sessionStatus([bobs.body.id, again.body.id, tomorrow.body.id])).toEqual(['complete', 'expired', 'open']);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: tomorrow.body.id });
    expect((await keyRow(orgId)).key).not.toBe(afterEvent);
  });

  it('two checkouts for different plans: the first session is expired in Stripe before the second is created and returned', async () => {
    const orgId = await createOrg(t, ada, 'Plan Switch Co');
    const pro = await checkout(orgId, 'professional');
    expect(pro.status).toBe(201);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: pro.body.id });
    const calls = stripe.requests.length;
    const enterprise = await checkout(orgId, 'enterprise');
    expect(enterprise.status).toBe(201);
    expect(enterprise.body).toEqual({ id: expect.stringMatching(/^cs_test_/), url: `https://checkout.stripe.test/c/pay/${enterprise.body.id}` });
    // the expiry first, then the new session: at no time can both be paid
    expect(stripe.requests.slice(calls).map((r) => `${r.method} ${r.path}`)).toEqual([
      `POST /v1/checkout/sessions/${pro.body.id}/expire`, 'POST /v1/checkout/sessions',
    ]);
    expect(stripe.requests.at(-1)!.form).toMatchObject({ 'line_items[0][price]': 'price_omz_ent', 'metadata[plan]': 'enterprise' });
    expect(sessionStatus([pro.body.id, enterprise.body.id])).toEqual(['expired', 'open']);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: enterprise.body.id });
    expect(await audited(orgId)).toEqual([{ session: pro.body.id, actor: ada.id }, { session: enterprise.body.id, actor: ada.id }]);
    expect(await auditedExpiries(orgId)).toEqual([{ session: pro.body.id, actor: ada.id, after: { app: 'omnizen', reason: 'replaced' } }]);

    // the enterprise checkout again: the same session, nothing expired
    const repeat = stripe.requests.length;
    expect((await checkout(orgId, 'enterprise')).body).toEqual(enterprise.body);
    expect(stripe.requests.slice(repeat).map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/checkout/sessions']);
    expect(sessionStatus([enterprise.body.id])).toEqual(['open']);

    // a session Stripe expired itself (after 24 hours, or the customer's cancel): Stripe answers 400, and the checkout goes on
    stripe.sessions.get(enterprise.body.id)!.status = 'expired';
    const back = await checkout(orgId, 'professional');
    expect(back.status).toBe(201);
    expect(back.body.id).not.toBe(pro.body.id); // not the expired professional session of before
    expect(sessionStatus([back.body.id])).toEqual(['open']);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: back.body.id });
    expect((await auditedExpiries(orgId)).map((a) => a.session)).toEqual([pro.body.id]); // this checkout expired nothing
  });

  it('the session being replaced was just paid, its subscription not recorded yet: 409 while that subscription is live in Stripe; a new checkout once it has ended', async () => {
    const orgId = await createOrg(t, ada, 'Just Paid Co');
    const pro = await checkout(orgId, 'professional');
    Object.assign(stripe.sessions.get(pro.body.id)!, { status: 'complete', subscription: 'sub_just_paid' });
    stripe.subscriptions.set('sub_just_paid', { status: 'active', customer: 'cus_test_just_paid' });
    const sessions = stripe.checkoutSessions.length;
    const refused = await checkout(orgId, 'enterprise');
    expect([refused.status, refused.body.error]).toEqual([409, {
      code: 'billing.subscription_exists',
      message: `this organization already has a live omnizen subscription (professional, active); to change plans, open the billing portal (POST /v1/orgs/${orgId}/billing/portal) instead of starting another checkout`,
      details: { app: 'omnizen', plan: 'professional', status: 'active' },
    }]);
    expect(stripe.checkoutSessions.length).toBe(sessions);
    // the paid session stays recorded, and no key is left for the refused request: the next checkout asks Stripe again
    expect(await keyRow(orgId)).toEqual({ key: null, session: pro.body.id });
    expect(await audited(orgId)).toEqual([{ session: pro.body.id, actor: ada.id }]);
    expect(await auditedExpiries(orgId)).toEqual([]);

    stripe.subscriptions.get('sub_just_paid')!.status = 'canceled';
    const later = await checkout(orgId, 'enterprise');
    expect(later.status).toBe(201);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([later.body.id]);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: later.body.id });
  });

  it('another checkout starts while Stripe creates the first one\'s session: the later one stays open, the first is expired and answered 409', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Co');
    await addMember(t, orgId, bob, 'admin');
    const hold = stripe.holdNext();
    let first: Promise<{ status: number; body: any }> | undefined;
    try {
      first = checkout(orgId, 'professional', ada);
      await hold.arrived; // ada's session is being created in Stripe
      const second = await checkout(orgId, 'enterprise', bob);
      expect(second.status).toBe(201);
      expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: second.body.id });
      hold.release();
      const overtaken = await first;
      const [adas] = stripe.checkoutSessions.filter((id) => id !== second.body.id && stripe.sessions.get(id)!.metadata.org_id === orgId);
      expect([overtaken.status, overtaken.body.error]).toEqual([409, {
        code: 'billing.checkout_superseded',
        message: `another checkout of omnizen started while this one's session was being created (another plan, or another admin); that one is the open checkout, and this session (${adas}) was expired`,
        details: { app: 'omnizen', plan: 'professional' },
      }]);
      expect(sessionStatus([adas, second.body.id])).toEqual(['expired', 'open']);
      expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: second.body.id });
      expect(await audited(orgId)).toEqual([{ session: second.body.id, actor: bob.id }, { session: adas, actor: ada.id }]);
      expect(await auditedExpiries(orgId)).toEqual([{ session: adas, actor: ada.id, after: { app: 'omnizen', reason: 'superseded' } }]);
    } finally {
      hold.release();
      await first;
    }
  });

  it('a checkout Stripe refused: 502, and the next one is not answered with the same refusal', async () => {
    const orgId = await createOrg(t, ada, 'Refused Once Co');
    const sessions = stripe.checkoutSessions.length;
    stripe.failNext(400, 'No such price: price_omz_pro');
    const refused = await checkout(orgId);
    expect([refused.status, refused.body.error]).toEqual([502, {
      code: 'billing.stripe_failed', message: 'Stripe could not create a checkout session: No such price: price_omz_pro', details: { stripeType: 'StripeInvalidRequestError', stripeStatus: 400 },
    }]);
    expect(await keyRow(orgId)).toEqual({ key: null, session: null });
    expect(await audited(orgId)).toEqual([]);
    const next = await checkout(orgId);
    expect(next.status).toBe(201);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([next.body.id]);
    expect(await audited(orgId)).toEqual([{ session: next.body.id, actor: ada.id }]);

    // Stripe refuses to expire the open session (and a read says it is still open): 502, no second session, and the
    // next checkout tries to expire it again
    stripe.failNext(400, 'This Checkout Session cannot be expired right now');
    const unexpired = await checkout(orgId, 'enterprise');
    expect([unexpired.status, unexpired.body.error]).toEqual([502, {
      code: 'billing.stripe_failed', message: 'Stripe could not expire the previous checkout session: This Checkout Session cannot be expired right now',
      details: { stripeType: 'StripeInvalidRequestError', stripeStatus: 400 },
    }]);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([next.body.id]);
    expect(sessionStatus([next.body.id])).toEqual(['open']);
    expect(await keyRow(orgId)).toEqual({ key: null, session: next.body.id });
    const retried = await checkout(orgId, 'enterprise');
    expect(retried.status).toBe(201);
    expect(sessionStatus([next.body.id, retried.body.id])).toEqual(['expired', 'open']);
    expect(await keyRow(orgId)).toEqual({ key: expect.any(String), session: retried.body.id });
  });
});
