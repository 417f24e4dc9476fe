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
 * One checkout of an app at a time per organization. Two concurrent checkouts (a double-click) both read "no live
 * subscription" and both created a Stripe Checkout session: the customer could pay two subscriptions. Now the second
 * is served after the first, with the same Idempotency-Key, and Stripe (the double keeps answers by key, as Stripe does)
 * answers it with the same session.
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
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_key AS key FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
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
    expect(await keyRow(orgId)).toEqual({ key: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });

  it('the same checkout later: the same open session; another plan or another admin: another; a Stripe event or 23 hours: a new one', async () => {
    const orgId = await createOrg(t, ada, 'Repeat Co');
    await addMember(t, orgId, bob, 'admin');
    const sessions = stripe.checkoutSessions.length;
    const pro = await checkout(orgId);
    expect(pro.status).toBe(201);
    expect((await checkout(orgId)).body).toEqual(pro.body); // a retry, a back button
    const enterprise = await checkout(orgId, 'enterprise');
    const bobs = await checkout(orgId, 'professional', bob); // another e-mail on the session: another request
    expect([enterprise.status, bobs.status]).toEqual([201, 201]);
    expect(new Set([pro.body.id, enterprise.body.id, bobs.body.id]).size).toBe(3);
    const { key } = await keyRow(orgId);

    // the professional checkout is paid, and the subscription canceled at once: the spent session is not offered again
    const now = Math.floor(clock.now() / 1000);
    const subscription = (status: string) => ({
      id: 'sub_repeat_1', object: 'subscription', customer: 'cus_test_repeat', status, metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
      items: { object: 'list', data: [{ id: 'si_repeat_1', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: now + 30 * 86_400 }] },
    });
    await send(stripeEvent('checkout.session.completed', {
      id: pro.body.id, object: 'checkout.session', mode: 'subscription', payment_status: 'paid', client_reference_id: orgId, customer: 'cus_test_repeat',
      subscription: 'sub_repeat_1', metadata: { org_id: orgId, app: 'omnizen', plan: 'professional' },
    }, now + 1));
    await send(stripeEvent('customer.subscription.deleted', subscription('canceled'), now + 2));
    clock.advance(60_000);
    const again = await checkout(orgId);
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(pro.body.id);
    const { key: afterEvent } = await keyRow(orgId);
    expect(afterEvent).not.toBe(key);
    expect((await checkout(orgId)).body).toEqual(again.body);

    // 23 hours on: a new key, a new session (Stripe keeps a key's answer, and the session, for 24 hours)
    clock.advance(23 * HOUR_MS);
    const tomorrow = await checkout(orgId);
    expect(tomorrow.status).toBe(201);
    expect(tomorrow.body.id).not.toBe(again.body.id);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([pro.body.id, enterprise.body.id, bobs.body.id, again.body.id, tomorrow.body.id]);
    expect((await audited(orgId)).map((a) => a.session)).toEqual(stripe.checkoutSessions.slice(sessions));
    expect((await keyRow(orgId)).key).not.toBe(afterEvent);
  });

  it('a checkout Stripe refused: 502, and the next one is not answered with the same refusal', async () => {
    const orgId = await createOrg(t, ada, 'Refused Once Co');
    const sessions = stripe.checkoutSessions.length;
    stripe.failNext(400, 'No such price: price_omz_pro');
    const refused = await checkout(orgId);
    expect([refused.status, refused.body.error]).toEqual([502, {
      code: 'billing.stripe_failed', message: 'Stripe could not create a checkout session: No such price: price_omz_pro', details: { stripeType: 'StripeInvalidRequestError', stripeStatus: 400 },
    }]);
    expect(await keyRow(orgId)).toEqual({ key: null });
    expect(await audited(orgId)).toEqual([]);
    const next = await checkout(orgId);
    expect(next.status).toBe(201);
    expect(stripe.checkoutSessions.slice(sessions)).toEqual([next.body.id]);
    expect(await audited(orgId)).toEqual([{ session: next.body.id, actor: ada.id }]);
  });
});
