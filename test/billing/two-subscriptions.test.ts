import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_omnizen_billing';
const T0 = Math.floor(Date.now() / 1000) - 86_400; // Stripe event times (seconds), a day ago


function subscriptionObject(id: string, price: string, status: string, metadata: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    id, object: 'subscription', customer: 'cus_test_two', status, metadata, cancel_at_period_end: false, trial_end: null,
    items: { object: 'list', data: [{ id: `si_${id}`, price: { id: price, object: 'price' }, current_period_end: T0 + 30 * 86_400 }] },
    ...extra,
  };
}

function checkoutCompleted(sessionId: string, orgId: string, subscription: string, plan: string, created: number) {
  return stripeEvent('checkout.session.completed', {
    id: sessionId, object: 'checkout.session', mode: 'subscription', client_reference_id: orgId, customer: 'cus_test_two',
    subscription, metadata: { org_id: orgId, app: 'omnizen', plan },
  }, created);
}

/**
 * One hub."Subscription" row per organization and app, and a customer with two Stripe subscriptions for that app: the
 * checkout refuses a second one while one bills, and the webhook never lets the events of one overwrite the other (the
 * old one's cancellation must not make the organization read-only while the new one is paid).
 */
describe('billing: two Stripe subscriptions for one app', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const hubRows = async (org: string) => (await t.db.admin.query(
    `SELECT "stripeSubscriptionId", plan, status FROM hub."Subscription" WHERE "organizationId" = $1`, [org])).rows;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows[0];
  const domainEvents = async (org: string, type: string) => (await t.db.admin.query(
    `SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = $2`, [org, type])).rows;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise,price_sv_pro=app_securevault:pro',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('refuses a second checkout (409, pointing to the portal) while a Stripe subscription of the app bills; Stripe is not called', async () => {
    const orgId = await createOrg(t, ada, 'Live Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_live_1', 'price_omz_pro', 'active', { org_id: orgId }), T0));
    const before = stripe.requests.length;
    const res = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'enterprise' }).expect(409);
    expect(res.body.error).toEqual({
      code: 'billing.subscription_exists',
      message: `this organization already has a live omnizen subscription (professional, active); to change plans, open the billing portal (POST /v1/orgs/${orgId}/billing/portal) instead of starting another checkout`,
      details: { app: 'omnizen', plan: 'professional', status: 'active' },
    });
    expect(stripe.requests.slice(before)).toEqual([]);
    expect(stripe.requests.filter((r) => r.path === '/v1/checkout/sessions')).toEqual([]);
    const audit = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [orgId]);
    expect(audit.rows[0].n).toBe(0);
    // the portal (where plans change) stays open
    await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({}).expect(201);
    // once it has ended, a new checkout is allowed
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_live_1', 'price_omz_pro', 'canceled', { org_id: orgId }), T0 + 10));
    const again = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'enterprise' }).expect(201);
    expect(stripe.requests.at(-1)).toMatchObject({ method: 'POST', path: '/v1/checkout/sessions', form: { 'line_items[0][price]': 'price_omz_ent' } });
    expect(again.body.id).toMatch(/^cs_test_/);
  });

  it('a person with a live personal plan: 409 on /v1/me too', async () => {
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_personal_live', 'price_sv_pro', 'trialing',
      { org_id: ada.personalOrgId, user_id: ada.id }, { trial_end: T0 + 14 * 86_400 }), T0));
    const before = stripe.requests.length;
    const res = await t.http.post('/v1/me/billing/checkout').set(ada.auth).send({ app: 'app_securevault', plan: 'pro' }).expect(409);
    expect(res.body.error).toMatchObject({ code: 'billing.subscription_exists', message: expect.stringContaining('POST /v1/me/billing/portal'), details: { status: 'trialing' } });
    expect(stripe.requests.length).toBe(before);
  });

  it("the reviewer's sequence: the new subscription's checkout takes the row over; the old one's cancellation is recorded as ignored", async () => {
    const orgId = await createOrg(t, ada, 'Two Subs Co');
    const md = { org_id: orgId };
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_old', 'price_omz_pro', 'active', md), T0));
    // a checkout started elsewhere (before this one was live, or in the Stripe dashboard) completes
    await send(checkoutCompleted('cs_two', orgId, 'sub_new', 'enterprise', T0 + 100));
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_new', 'price_omz_ent', 'active', md), T0 + 101));
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'active', access: 'full' });
    // the old subscription's own events, newer than the new one's, change nothing: neither an update nor its deletion
    const updated = stripeEvent('customer.subscription.updated', subscriptionObject('sub_old', 'price_omz_pro', 'past_due', md), T0 + 150);
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_old', 'price_omz_pro', 'canceled', md), T0 + 200);
    await send(updated);
    await send(deleted);
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'active', access: 'full' });
    expect(await hubRows(orgId)).toEqual([{ stripeSubscriptionId: 'sub_new', plan: 'enterprise', status: 'active' }]);
    for (const e of [updated, deleted]) {
      expect(await eventRow(e.id)).toEqual({
        status: 'ignored',
        reason: 'another Stripe subscription is live: sub_new (active) holds this organization\'s omnizen subscription; sub_old does not change it',
      });
    }
    const ignored = await t.db.admin.query(
      `SELECT after->>'stripeEventId' AS event FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.event_ignored' ORDER BY id`, [orgId]);
    expect(ignored.rows).toEqual([{ event: updated.id }, { event: deleted.id }]);
    expect(await domainEvents(orgId, 'subscription.canceled')).toEqual([]);
    // the new subscription goes on being applied
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_new', 'price_omz_ent', 'active', md, { cancel_at_period_end: true }), T0 + 300));
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'active', cancelAtPeriodEnd: true });
  });

  it('a Stripe subscription the Hub recorded with a NULL status reads as active (statusOf): another subscription\'s events do not overwrite it', async () => {
    const orgId = await createOrg(t, ada, 'Hub Null Status Co');
    // the Hub links a Stripe subscription by SQL and leaves the status to its default (NULL), as seed 000 may
    const [{ id }] = (await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId", "stripeSubscriptionId") VALUES (gen_random_uuid(), 'omnizen', 'professional', NULL, $1, 'sub_hub_null') RETURNING id`, [orgId])).rows;
    expect(await entitlements(orgId)).toMatchObject({ plan: 'professional', status: 'active', access: 'full' });
    // the checkout reads it as live too
    expect((await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'enterprise' }).expect(409)).body.error)
      .toMatchObject({ code: 'billing.subscription_exists', details: { status: 'active' } });
    const other = stripeEvent('customer.subscription.created', subscriptionObject('sub_other', 'price_omz_ent', 'canceled', { org_id: orgId }), T0);
    await send(other);
    expect(await eventRow(other.id)).toEqual({
      status: 'ignored',
      reason: 'another Stripe subscription is live: sub_hub_null (active) holds this organization\'s omnizen subscription; sub_other does not change it',
    });
    expect(await hubRows(orgId)).toEqual([{ stripeSubscriptionId: 'sub_hub_null', plan: 'professional', status: null }]);
    expect(await entitlements(orgId)).toMatchObject({ plan: 'professional', status: 'active', access: 'full' });
    expect(await domainEvents(orgId, 'subscription.canceled')).toEqual([]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM hub.subscription_billing WHERE subscription_id = $1`, [id])).rows[0].n).toBe(0);
  });

  it("the new subscription's own event before its checkout completion: set aside, then applied when the checkout takes the row over", async () => {
    const orgId = await createOrg(t, ada, 'Trial Upgrade Co');
    const md = { org_id: orgId };
    const trialEnd = T0 + 14 * 86_400;
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_first', 'price_omz_pro', 'active', md), T0));
    const early = stripeEvent('customer.subscription.created', subscriptionObject('sub_second', 'price_omz_ent', 'trialing', md, { trial_end: trialEnd }), T0 + 100);
    await send(early);
    expect(await eventRow(early.id)).toMatchObject({ status: 'ignored', reason: expect.stringMatching(/^another Stripe subscription is live: sub_first \(active\)/) });
    expect(await entitlements(orgId)).toMatchObject({ plan: 'professional', status: 'active' });
    // the completion (same second or later): the row moves to sub_second, with the state its own event reported
    await send(checkoutCompleted('cs_second', orgId, 'sub_second', 'enterprise', T0 + 100));
    const ent = await entitlements(orgId);
    expect(ent).toMatchObject({ plan: 'enterprise', status: 'trialing', access: 'full' });
    expect(new Date(ent.trialEndsAt).getTime()).toBe(trialEnd * 1000);
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_first', 'price_omz_pro', 'canceled', md), T0 + 200));
    expect(await hubRows(orgId)).toEqual([{ stripeSubscriptionId: 'sub_second', plan: 'enterprise', status: 'trialing' }]);
  });

  it("the old subscription's cancellation applied first: the new subscription's earlier-dated events still apply (another subscription's clock)", async () => {
    const orgId = await createOrg(t, ada, 'Late Upgrade Co');
    const md = { org_id: orgId };
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_a', 'price_omz_pro', 'active', md), T0));
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_a', 'price_omz_pro', 'canceled', md), T0 + 300));
    expect(await entitlements(orgId)).toMatchObject({ status: 'canceled', access: 'read_only' });
    const completed = checkoutCompleted('cs_b', orgId, 'sub_b', 'enterprise', T0 + 100);
    await send(completed);
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_b', 'price_omz_ent', 'active', md), T0 + 101));
    expect(await eventRow(completed.id)).toEqual({ status: 'processed', reason: null });
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'active', access: 'full' });
    expect(await hubRows(orgId)).toEqual([{ stripeSubscriptionId: 'sub_b', plan: 'enterprise', status: 'active' }]);
    // and an old event of sub_b itself, older than what was applied, is still out of order
    const stale = stripeEvent('customer.subscription.updated', subscriptionObject('sub_b', 'price_omz_pro', 'past_due', md), T0 + 99);
    await send(stale);
    expect(await eventRow(stale.id)).toMatchObject({ status: 'ignored', reason: expect.stringMatching(/^out of order/) });
  });

  it('a subscription the expiry job ended at its period end: no second checkout while Stripe has not ended it; once it has, its late events revive nothing', async () => {
    const orgId = await createOrg(t, ada, 'Ended Here Co');
    const md = { org_id: orgId };
    const periodEnding = (status: string, cancelAtPeriodEnd: boolean, periodEnd: number) => subscriptionObject('sub_ended_here', 'price_omz_pro', status, md, {
      cancel_at_period_end: cancelAtPeriodEnd, items: { object: 'list', data: [{ id: 'si_ended_here', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: periodEnd }] },
    });
    // canceled at period end; the period ended (T0 + 10) and the expiry job ends the row before Stripe's own event comes
    await send(stripeEvent('customer.subscription.updated', periodEnding('active', true, T0 + 10), T0));
    stripe.subscriptions.set('sub_ended_here', { status: 'active', customer: 'cus_test_two' }); // Stripe has not ended it yet
    await t.app.get(BillingExpiryJob).expire(new Date((T0 + 60) * 1000));
    const ended = async () => (await t.db.admin.query(`SELECT s.status, b.ended_locally_at IS NOT NULL AS "endedLocally" FROM hub."Subscription" s
      JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [orgId])).rows;
    expect(await ended()).toEqual([{ status: 'canceled', endedLocally: true }]);

    // a new checkout would be billed besides it: Stripe is asked, and says it bills it still
    const before = stripe.requests.length;
    const checkout = () => t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'enterprise' });
    const refused = await checkout().expect(409);
    expect(refused.body.error).toEqual({
      code: 'billing.subscription_end_pending',
      message: `this organization's omnizen subscription (professional) was ended at its period end, but Stripe has not ended it yet (active: its end is not processed yet, or it was renewed); `
        + `try again once Stripe has ended it, or manage it in the billing portal (POST /v1/orgs/${orgId}/billing/portal), instead of starting a second subscription`,
      details: { app: 'omnizen', plan: 'professional', status: 'active' },
    });
    expect(stripe.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/subscriptions/sub_ended_here']);
    expect(await ended()).toEqual([{ status: 'canceled', endedLocally: true }]);

    // Stripe ends it (its customer.subscription.deleted not delivered yet): the checkout goes on, and the end is final
    stripe.subscriptions.get('sub_ended_here')!.status = 'canceled';
    await checkout().expect(201);
    expect(await ended()).toEqual([{ status: 'canceled', endedLocally: false }]);
    const confirmed = (await t.db.admin.query(`SELECT actor_id AS "actorId", before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.subscription_end_confirmed'`, [orgId])).rows;
    expect(confirmed).toEqual([{ actorId: ada.id, before: expect.objectContaining({ status: 'canceled', plan: 'professional' }), after: { status: 'canceled', plan: 'professional', stripeStatus: 'canceled' } }]);
    // a late event of it dated before Stripe's end (and after the last one applied) no longer revives the row
    const late = stripeEvent('customer.subscription.updated', periodEnding('active', false, T0 + 30 * 86_400), T0 + 5);
    await send(late);
    expect(await eventRow(late.id)).toEqual({ status: 'ignored', reason: 'Stripe subscription sub_ended_here is canceled, which is final: it does not become active' });
    // the new checkout's subscription takes the row: one subscription, live in Stripe and here
    await send(checkoutCompleted('cs_after_end', orgId, 'sub_after_end', 'enterprise', T0 + 100));
    expect(await hubRows(orgId)).toEqual([{ stripeSubscriptionId: 'sub_after_end', plan: 'enterprise', status: 'active' }]);

    // a personal plan the same (on /v1/me, pointing to its portal)
    const bo = await registerUser(t, 'bo');
    const [{ id: personal }] = (await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "appId", plan, status, "userId", "stripeSubscriptionId")
      VALUES (gen_random_uuid(), 'app_securevault', 'pro', 'canceled', $1, 'sub_bo_ended_here') RETURNING id`, [bo.id])).rows;
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, user_id, stripe_customer_id, ended_locally_at) VALUES ($1, $2, 'cus_bo', now())`, [personal, bo.id]);
    stripe.subscriptions.set('sub_bo_ended_here', { status: 'past_due', customer: 'cus_bo' });
    expect((await t.http.post('/v1/me/billing/checkout').set(bo.auth).send({ app: 'app_securevault', plan: 'pro' }).expect(409)).body.error).toMatchObject({
      code: 'billing.subscription_end_pending', message: expect.stringContaining('(POST /v1/me/billing/portal)'), details: { app: 'app_securevault', plan: 'pro', status: 'past_due' },
    });
  });
});
