import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_omnizen_billing';
const T0 = Math.floor(Date.now() / 1000) - 86_400; // Stripe event times (seconds), a day ago

function subscriptionObject(id: string, price: string, status: string, metadata: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    id, object: 'subscription', customer: `cus_${id}`, status, metadata, cancel_at_period_end: false, trial_end: null,
    items: { object: 'list', data: [{ id: `si_${id}`, price: { id: price, object: 'price' }, current_period_end: T0 + 30 * 86_400 }] },
    ...extra,
  };
}

/**
 * The customer portal (one configuration for every app) lets a customer switch a subscription to any product's price:
 * another app's, or a plan of another audience. Checkout sells neither, so the webhook does not put such a plan on the
 * subscription row (which stays the app and plan it was bought for); the rest of the event (status, period,
 * cancellation) still applies, and the event is recorded processed with what was not applied.
 */
describe('billing: a Stripe event naming a plan that does not fit the subscription row', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string, app: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=${app}`).set(ada.auth).expect(200)).body;
  const hubRows = async (org: string) => (await t.db.admin.query(
    `SELECT "appId", "stripeSubscriptionId", plan, status FROM hub."Subscription" WHERE "organizationId" = $1 ORDER BY "appId"`, [org])).rows;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows[0];
  const audits = async (org: string, stripeEventId: string) => (await t.db.admin.query(
    `SELECT action, after->>'plan' AS plan, after->>'notApplied' AS "notApplied", after->>'reason' AS reason FROM core.audit_logs
      WHERE org_id = $1 AND (after->>'stripeEvent' = $2 OR after->>'stripeEventId' = $2) ORDER BY id`, [org, stripeEventId])).rows;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_starter=omnizen:starter,price_sv_ent=app_securevault:enterprise,price_sv_bpro=app_securevault:business_pro,price_sv_pro=app_securevault:pro',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it("another app's price on the subscription: the row keeps its app and plan, the rest applies, the event says what was not applied", async () => {
    const orgId = await createOrg(t, ada, 'Portal Swap Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_swap', 'price_omz_starter', 'active', { org_id: orgId }), T0));
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'starter', status: 'active' }]);

    // switched in the portal to SecureVault Enterprise (and set to cancel at period end)
    const swapped = stripeEvent('customer.subscription.updated',
      subscriptionObject('sub_swap', 'price_sv_ent', 'active', { org_id: orgId }, { cancel_at_period_end: true }), T0 + 10);
    await send(swapped);
    const reason = "price price_sv_ent is for app_securevault:enterprise, not omnizen: Stripe subscription sub_swap is this organization's omnizen subscription: the plan stays starter";
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'starter', status: 'active' }]);
    const ent = await entitlements(orgId, 'omnizen');
    expect(ent).toMatchObject({ plan: 'starter', status: 'active', source: 'subscription', cancelAtPeriodEnd: true });
    expect(ent.features.find((f: any) => f.feature === 'white_label')?.enabled ?? false).toBe(false);
    expect(await eventRow(swapped.id)).toEqual({ status: 'processed', reason });
    expect(await audits(orgId, swapped.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null },
      { action: 'billing.subscription_updated', plan: 'starter', notApplied: reason, reason: null },
    ]);
    // the app it names gets nothing from it
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ source: 'default' });
    const events = await t.http.get(`/v1/orgs/${orgId}/billing/events`).set(ada.auth).expect(200);
    expect(events.body.items.find((e: any) => e.stripeEventId === swapped.id)).toMatchObject({ status: 'processed', reason });

    // its deletion (on that price) still ends the row
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_swap', 'price_sv_ent', 'canceled', { org_id: orgId }), T0 + 20);
    await send(deleted);
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'starter', status: 'canceled' }]);
    expect(await eventRow(deleted.id)).toMatchObject({ status: 'processed', reason: expect.stringContaining('the plan stays starter') });
  });

  it("a plan of another audience: an organization's business plan stays; a new subscription on a personal plan is ignored", async () => {
    const orgId = await createOrg(t, ada, 'Audience Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_biz', 'price_sv_bpro', 'active', { org_id: orgId }), T0));
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_biz', plan: 'business_pro', status: 'active' }]);

    const personal = stripeEvent('customer.subscription.updated', subscriptionObject('sub_biz', 'price_sv_pro', 'past_due', { org_id: orgId }), T0 + 10);
    await send(personal);
    const reason = 'price price_sv_pro is for app_securevault:pro: the app_securevault plan pro is a personal plan; this is a business account: the plan stays business_pro';
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_biz', plan: 'business_pro', status: 'past_due' }]);
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ plan: 'business_pro', status: 'past_due' });
    expect(await eventRow(personal.id)).toEqual({ status: 'processed', reason });
    expect(await audits(orgId, personal.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null },
      { action: 'billing.subscription_updated', plan: 'business_pro', notApplied: reason, reason: null },
    ]);

    // no row to keep: a subscription created on a plan the organization cannot hold is not recorded
    const other = await createOrg(t, ada, 'Audience New Co');
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_new_personal', 'price_sv_pro', 'active', { org_id: other }), T0 + 20);
    await send(created);
    const ignored = 'price price_sv_pro is for app_securevault:pro: the app_securevault plan pro is a personal plan; this is a business account';
    expect(await hubRows(other)).toEqual([]);
    expect(await eventRow(created.id)).toEqual({ status: 'ignored', reason: ignored });
    expect(await entitlements(other, 'app_securevault')).toMatchObject({ source: 'default' });
    expect(await audits(other, created.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null },
      { action: 'billing.event_ignored', plan: null, notApplied: null, reason: ignored },
    ]);
  });
});
