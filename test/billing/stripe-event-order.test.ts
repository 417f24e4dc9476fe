import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_event_order';
const T0 = Math.floor(Date.now() / 1000) - 3_600; // Stripe event times (seconds), an hour ago
const DAY = 86_400;
const ms = (s: number) => new Date(s * 1000);

const subscriptionObject = (id: string, status: string, orgId: string, extra: Record<string, unknown> = {}) => ({
  id, object: 'subscription', customer: `cus_${orgId}`, status, metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
  items: { object: 'list', data: [{ id: `si_${id}`, price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 30 * DAY }] },
  ...extra,
});
const checkoutCompleted = (orgId: string, subscription: string, created: number) => stripeEvent('checkout.session.completed', {
  id: `cs_test_${randomBytes(6).toString('hex')}`, object: 'checkout.session', mode: 'subscription', payment_status: 'paid', client_reference_id: orgId,
  customer: `cus_${orgId}`, subscription, metadata: { org_id: orgId, app: 'omnizen', plan: 'professional' },
}, created);

/**
 * Stripe does not keep the order of its events: a checkout completion may be applied before the events of its
 * subscription that Stripe dated earlier. The completion only links the subscription (with a provisional status); the
 * subscription's own events still apply, and among them the newest wins. And a NULL status (a Hub row, seed 000) reads
 * as 'active' everywhere: it blocks a second checkout.
 */
describe('billing: a checkout completion and the order of Stripe events', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const hubRow = async (org: string) => (await t.db.admin.query(
    `SELECT s."stripeSubscriptionId" AS sub, s.status, b.trial_ends_at AS "trialEndsAt", b.last_event_at AS "lastEventAt", b.last_event_id AS "lastEventId"
     FROM hub."Subscription" s LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('the checkout completion applied first: the earlier-dated customer.subscription.created still sets trialing and its trial end', async () => {
    const org = await createOrg(t, ada, 'Completion First Co');
    const trialEnd = T0 + 14 * DAY;
    const completed = checkoutCompleted(org, 'sub_first_trial', T0 + 5);
    expect(await send(completed)).toEqual({ received: true, duplicate: false });
    expect(await eventRow(completed.id)).toEqual([{ status: 'processed', reason: null }]);
    // provisional: no ordering mark, so the subscription's own events are not taken for older ones
    expect(await hubRow(org)).toEqual([{ sub: 'sub_first_trial', status: 'active', trialEndsAt: null, lastEventAt: null, lastEventId: null }]);

    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_first_trial', 'trialing', org, { trial_end: trialEnd }), T0);
    expect(await send(created)).toEqual({ received: true, duplicate: false });
    expect(await eventRow(created.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_first_trial', status: 'trialing', trialEndsAt: ms(trialEnd), lastEventAt: ms(T0), lastEventId: created.id }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'professional', status: 'trialing', access: 'full', trialEndsAt: ms(trialEnd).toISOString() });

    // the same event again: a duplicate, stored once, nothing changes
    expect(await send(created)).toEqual({ received: true, duplicate: true });
    expect(await eventRow(created.id)).toEqual([{ status: 'processed', reason: null }]);

    // among the subscription's own events the newest still wins
    const newer = stripeEvent('customer.subscription.updated', subscriptionObject('sub_first_trial', 'active', org), T0 + 200);
    const older = stripeEvent('customer.subscription.updated', subscriptionObject('sub_first_trial', 'past_due', org), T0 + 100);
    await send(newer);
    await send(older);
    expect(await eventRow(older.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 200).toISOString()} was already applied` }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_first_trial', status: 'active', trialEndsAt: null, lastEventAt: ms(T0 + 200), lastEventId: newer.id }]);
    expect(await entitlements(org)).toMatchObject({ status: 'active', access: 'full' });

    // a late completion (after newer subscription events) keeps their status and their mark
    const late = checkoutCompleted(org, 'sub_first_trial', T0 + 300);
    await send(late);
    expect(await eventRow(late.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_first_trial', status: 'active', trialEndsAt: null, lastEventAt: ms(T0 + 200), lastEventId: newer.id }]);
  });

  it("a completion that moves the row to a new Stripe subscription: that subscription's events dated before it still apply", async () => {
    const org = await createOrg(t, ada, 'Moved Row Co');
    const trialEnd = T0 + 7 * DAY;
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_gone', 'active', org), T0));
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_gone', 'canceled', org), T0 + 300));
    const completed = checkoutCompleted(org, 'sub_next', T0 + 200);
    await send(completed);
    expect(await eventRow(completed.id)).toEqual([{ status: 'processed', reason: null }]);
    // the old subscription's mark is gone with it
    expect(await hubRow(org)).toEqual([{ sub: 'sub_next', status: 'active', trialEndsAt: null, lastEventAt: null, lastEventId: null }]);

    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_next', 'trialing', org, { trial_end: trialEnd }), T0 + 150);
    await send(created);
    expect(await eventRow(created.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_next', status: 'trialing', trialEndsAt: ms(trialEnd), lastEventAt: ms(T0 + 150), lastEventId: created.id }]);
    expect(await entitlements(org)).toMatchObject({ status: 'trialing', access: 'full', trialEndsAt: ms(trialEnd).toISOString() });
  });

  it("a Hub row with a Stripe subscription and a NULL status (read as 'active') refuses a second checkout; Stripe is not called", async () => {
    const org = await createOrg(t, ada, 'Null Status Checkout Co');
    await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "userId", "organizationId", "appId", plan, status, "stripeSubscriptionId")
       VALUES (gen_random_uuid()::text, $1, $2, 'omnizen', 'professional', NULL, 'sub_hub_null')`, [ada.id, org]);
    const calls = stripe.requests.length;
    const res = await t.http.post(`/v1/orgs/${org}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' }).expect(409);
    expect(res.body.error).toEqual({
      code: 'billing.subscription_exists',
      message: `this organization already has a live omnizen subscription (professional, active); to change plans, open the billing portal (POST /v1/orgs/${org}/billing/portal) instead of starting another checkout`,
      details: { app: 'omnizen', plan: 'professional', status: 'active' },
    });
    expect(stripe.requests.length).toBe(calls);
    expect((await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [org])).rows).toEqual([]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_hub_null', status: null, trialEndsAt: null, lastEventAt: null, lastEventId: null }]);
  });
});
