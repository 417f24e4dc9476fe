import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { billingRepository } from '../../src/modules/billing/billing.repository.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';
import { ConfigError, loadConfig } from '../../src/platform/config/config.js';

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
 * The customer portal (without an app's own configuration, STRIPE_PORTAL_CONFIGURATIONS, it lists every app's products)
 * lets a customer switch a subscription to any product's price: another app's, or a plan of another audience, often a
 * cheaper one; STRIPE_PRICES may not map a price at all. Checkout sells none of these, and such a price entitles nothing:
 * the subscription row (its own Stripe subscription) keeps its plan and is read-only (price_misfit, writes refused) until
 * it is on a plan of its app again; the rest of the event (status, period, cancellation) still applies, and the event is
 * recorded processed with what happened. Any other Stripe subscription on such a plan is ignored (a deleted
 * organization's is canceled in Stripe all the same).
 */
describe('billing: a Stripe event naming a plan that does not fit the subscription row', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string, app: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=${app}`).set(ada.auth).expect(200)).body;
  const hubRows = async (org: string) => (await t.db.admin.query(
    `SELECT s."appId", s."stripeSubscriptionId", s.plan, s.status, b.price_misfit AS "priceMisfit" FROM hub."Subscription" s
      LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1 ORDER BY s."appId"`, [org])).rows;
  const accounts = async (org: string) => Number((await t.db.admin.query(`SELECT count(*) AS n FROM finance.accounts WHERE org_id = $1`, [org])).rows[0].n);
  const misfitReason = (price: string, app: string, holder: string) =>
    `the subscription is on price ${price}, which is not a plan of ${app} for this ${holder}: change it in the billing portal`;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows[0];
  const audits = async (org: string, stripeEventId: string) => (await t.db.admin.query(
    `SELECT action, after->>'plan' AS plan, after->>'notApplied' AS "notApplied", after->>'reason' AS reason, after->>'priceMisfit' AS "priceMisfit"
      FROM core.audit_logs WHERE org_id = $1 AND (after->>'stripeEvent' = $2 OR after->>'stripeEventId' = $2 OR after->'reapplied'->>'stripeEvent' = $2) ORDER BY id`,
    [org, stripeEventId])).rows;
  /** the domain events emitted for the organization's subscriptions (type, status, previousStatus, occurredAt) */
  const domainEvents = async (org: string) => (await t.db.admin.query(
    `SELECT payload->>'type' AS type, payload->'payload'->>'status' AS status, payload->'payload'->>'previousStatus' AS "previousStatus",
       payload->>'occurredAt' AS "occurredAt" FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' LIKE 'subscription.%' ORDER BY id`, [org])).rows;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_starter=omnizen:starter,price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise,price_omz_ghost=omnizen:ghost,'
        + 'price_sv_ent=app_securevault:enterprise,price_sv_bpro=app_securevault:business_pro,price_sv_bstarter=app_securevault:business_starter,'
        + 'price_sv_pro=app_securevault:pro,price_sv_starter=app_securevault:starter',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it("another app's price on the subscription: the row keeps its app and its plan, read-only until a plan of the app is back; the event says so", async () => {
    const orgId = await createOrg(t, ada, 'Portal Swap Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_swap', 'price_omz_pro', 'active', { org_id: orgId }), T0));
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'professional', status: 'active', priceMisfit: null }]);

    // switched in the portal to SecureVault Enterprise (and set to cancel at period end)
    const swapped = stripeEvent('customer.subscription.updated',
      subscriptionObject('sub_swap', 'price_sv_ent', 'active', { org_id: orgId }, { cancel_at_period_end: true }), T0 + 10);
    await send(swapped);
    const reason = "price price_sv_ent is for app_securevault:enterprise, not omnizen: Stripe subscription sub_swap is this organization's omnizen subscription: "
      + 'the plan stays professional, read-only while the subscription is on that price';
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'professional', status: 'paused', priceMisfit: 'price_sv_ent' }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'professional', status: 'paused', source: 'subscription', cancelAtPeriodEnd: true, access: 'read_only',
      readOnlyReason: misfitReason('price_sv_ent', 'omnizen', 'organization'),
    });
    expect(await eventRow(swapped.id)).toEqual({ status: 'processed', reason });
    expect(await audits(orgId, swapped.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.subscription_updated', plan: 'professional', notApplied: reason, reason: null, priceMisfit: 'price_sv_ent' },
    ]);
    // the app it names gets nothing from it
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ source: 'default' });
    const events = await t.http.get(`/v1/orgs/${orgId}/billing/events`).set(ada.auth).expect(200);
    expect(events.body.items.find((e: any) => e.stripeEventId === swapped.id)).toMatchObject({ status: 'processed', reason });

    // switched back to an OmniZen price: that plan applies, as any plan change does, with the access its status gives
    const back = stripeEvent('customer.subscription.updated', subscriptionObject('sub_swap', 'price_omz_pro', 'active', { org_id: orgId }), T0 + 20);
    await send(back);
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'professional', status: 'active', priceMisfit: null }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({ plan: 'professional', status: 'active', source: 'subscription', access: 'full', readOnlyReason: null });
    expect(await eventRow(back.id)).toEqual({ status: 'processed', reason: null });

    // its deletion on another app's price still ends the row (its plan kept); the status says why it is read-only
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_swap', 'price_sv_ent', 'canceled', { org_id: orgId }), T0 + 30);
    await send(deleted);
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_swap', plan: 'professional', status: 'canceled', priceMisfit: 'price_sv_ent' }]);
    expect(await eventRow(deleted.id)).toMatchObject({ status: 'processed', reason: expect.stringContaining('the plan stays professional, read-only while the subscription is on that price') });
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({ status: 'canceled', access: 'read_only', readOnlyReason: 'the subscription is canceled' });
  });

  it("the reviewer's case: enterprise switched to another app's cheapest business price keeps enterprise, read-only (writes refused), until an OmniZen price is back", async () => {
    const orgId = await createOrg(t, ada, 'Cheap Swap Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_cheap', 'price_omz_ent', 'active', { org_id: orgId }), T0));
    const swapped = stripeEvent('customer.subscription.updated', subscriptionObject('sub_cheap', 'price_sv_bstarter', 'active', { org_id: orgId }), T0 + 10);
    await send(swapped);
    // renewed at that price: still nothing of OmniZen entitled
    const renewed = stripeEvent('customer.subscription.updated', subscriptionObject('sub_cheap', 'price_sv_bstarter', 'active', { org_id: orgId },
      { items: { object: 'list', data: [{ id: 'si_sub_cheap', price: { id: 'price_sv_bstarter', object: 'price' }, current_period_end: T0 + 400 * 86_400 }] } }), T0 + 20);
    await send(renewed);
    const misfit = misfitReason('price_sv_bstarter', 'omnizen', 'organization');
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'enterprise', status: 'paused', source: 'subscription', access: 'read_only', readOnlyReason: misfit,
      currentPeriodEnd: new Date((T0 + 400 * 86_400) * 1000).toISOString(),
    });
    const reason = "price price_sv_bstarter is for app_securevault:business_starter, not omnizen: Stripe subscription sub_cheap is this organization's omnizen subscription: "
      + 'the plan stays enterprise, read-only while the subscription is on that price';
    expect(await eventRow(swapped.id)).toEqual({ status: 'processed', reason });
    expect(await eventRow(renewed.id)).toEqual({ status: 'processed', reason });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_cheap', plan: 'enterprise', status: 'paused', priceMisfit: 'price_sv_bstarter' }]);
    expect(await audits(orgId, renewed.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.subscription_updated', plan: 'enterprise', notApplied: reason, reason: null, priceMisfit: 'price_sv_bstarter' },
    ]);
    // a ledger write is refused as for any read-only subscription; nothing written
    const refused = await t.http.post(`/v1/orgs/${orgId}/ledger/books`).set(ada.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' }).expect(402);
    expect(refused.body.error).toMatchObject({
      code: 'billing.subscription_inactive', message: `the omnizen subscription of this organization is read-only: ${misfit}; renew or upgrade it to make changes`,
      details: { app: 'omnizen', plan: 'enterprise', status: 'paused' },
    });
    expect(await accounts(orgId)).toBe(0);
    // reads still work
    await t.http.get(`/v1/orgs/${orgId}/ledger/accounts`).set(ada.auth).expect(200);

    // back on an OmniZen price: full again, the column cleared, writes allowed
    const back = stripeEvent('customer.subscription.updated', subscriptionObject('sub_cheap', 'price_omz_ent', 'active', { org_id: orgId }), T0 + 30);
    await send(back);
    expect(await eventRow(back.id)).toEqual({ status: 'processed', reason: null });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_cheap', plan: 'enterprise', status: 'active', priceMisfit: null }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({ plan: 'enterprise', status: 'active', access: 'full', readOnlyReason: null });
    await t.http.post(`/v1/orgs/${orgId}/ledger/books`).set(ada.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' }).expect(201);
    expect(await accounts(orgId)).toBeGreaterThan(0);
  });

  it('a price not in STRIPE_PRICES, or mapped to a plan the catalog does not have, on the subscription: the plan stays, read-only until a plan of the app is back', async () => {
    const orgId = await createOrg(t, ada, 'Unmapped Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_unmapped', 'price_omz_ent', 'active', { org_id: orgId }), T0));
    const unmapped = stripeEvent('customer.subscription.updated', subscriptionObject('sub_unmapped', 'price_cheap_unmapped', 'active', { org_id: orgId }), T0 + 10);
    await send(unmapped);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'enterprise', status: 'paused', access: 'read_only', readOnlyReason: misfitReason('price_cheap_unmapped', 'omnizen', 'organization'),
    });
    const reason = 'price price_cheap_unmapped is not mapped to an app plan (STRIPE_PRICES): the plan stays enterprise, read-only while the subscription is on that price';
    expect(await eventRow(unmapped.id)).toEqual({ status: 'processed', reason });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_unmapped', plan: 'enterprise', status: 'paused', priceMisfit: 'price_cheap_unmapped' }]);
    expect(await audits(orgId, unmapped.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.subscription_updated', plan: 'enterprise', notApplied: reason, reason: null, priceMisfit: 'price_cheap_unmapped' },
    ]);
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(ada.auth).send({ name: 'Unmapped' }).expect(402);

    const ghost = stripeEvent('customer.subscription.updated', subscriptionObject('sub_unmapped', 'price_omz_ghost', 'active', { org_id: orgId }), T0 + 20);
    await send(ghost);
    expect(await eventRow(ghost.id)).toEqual({
      status: 'processed', reason: 'STRIPE_PRICES maps price_omz_ghost to omnizen:ghost, which is not in the catalog: the plan stays enterprise, read-only while the subscription is on that price',
    });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_unmapped', plan: 'enterprise', status: 'paused', priceMisfit: 'price_omz_ghost' }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({ access: 'read_only', readOnlyReason: misfitReason('price_omz_ghost', 'omnizen', 'organization') });

    // an invoice names no price: what the subscription is on stays as it was
    await send(stripeEvent('invoice.paid', { id: 'in_unmapped', object: 'invoice', subscription: 'sub_unmapped', customer: 'cus_sub_unmapped' }, T0 + 25));
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_unmapped', plan: 'enterprise', status: 'paused', priceMisfit: 'price_omz_ghost' }]);

    const back = stripeEvent('customer.subscription.updated', subscriptionObject('sub_unmapped', 'price_omz_pro', 'active', { org_id: orgId }), T0 + 30);
    await send(back);
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_unmapped', plan: 'professional', status: 'active', priceMisfit: null }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({ plan: 'professional', access: 'full', readOnlyReason: null });
  });

  it("a person's subscription switched to another app's personal price: /v1/me/entitlements is read-only with the reason, the plan kept", async () => {
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_me', 'price_omz_pro', 'active', { org_id: ada.personalOrgId }), T0));
    const swapped = stripeEvent('customer.subscription.updated', subscriptionObject('sub_me', 'price_sv_starter', 'active', { org_id: ada.personalOrgId }), T0 + 10);
    await send(swapped);
    const me = async () => (await t.http.get('/v1/me/entitlements?app=omnizen').set(ada.auth).expect(200)).body;
    expect(await me()).toMatchObject({
      subject: { type: 'user', userId: ada.id }, plan: 'professional', status: 'paused', access: 'read_only',
      readOnlyReason: misfitReason('price_sv_starter', 'omnizen', 'account'),
    });
    expect(await eventRow(swapped.id)).toEqual({
      status: 'processed',
      reason: "price price_sv_starter is for app_securevault:starter, not omnizen: Stripe subscription sub_me is this account's omnizen subscription: "
        + 'the plan stays professional, read-only while the subscription is on that price',
    });
    const { rows } = await t.db.admin.query(
      `SELECT s.plan, b.price_misfit FROM hub."Subscription" s JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."stripeSubscriptionId" = 'sub_me'`);
    expect(rows).toEqual([{ plan: 'professional', price_misfit: 'price_sv_starter' }]);

    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_me', 'price_omz_pro', 'active', { org_id: ada.personalOrgId }), T0 + 20));
    expect(await me()).toMatchObject({ plan: 'professional', access: 'full', readOnlyReason: null });
  });

  it('the contract row hub."Subscription", which the apps read themselves, is paused while the price misfits (whatever live status Stripe says), and takes the event\'s own status once it fits', async () => {
    const orgId = await createOrg(t, ada, 'Contract Row Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_contract', 'price_sv_bpro', 'trialing', { org_id: orgId }), T0));
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_contract', plan: 'business_pro', status: 'trialing', priceMisfit: null }]);
    const statusAudit = async (stripeEventId: string) => (await t.db.admin.query(
      `SELECT after->>'status' AS status FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.subscription_updated' AND after->>'stripeEvent' = $2`,
      [orgId, stripeEventId])).rows;
    const misfit = misfitReason('price_sv_pro', 'app_securevault', 'organization');

    // switched to the personal price: Stripe says active, the contract row says paused (SecureVault serves nothing of business_pro)
    const personal = stripeEvent('customer.subscription.updated', subscriptionObject('sub_contract', 'price_sv_pro', 'active', { org_id: orgId }), T0 + 10);
    await send(personal);
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_contract', plan: 'business_pro', status: 'paused', priceMisfit: 'price_sv_pro' }]);
    expect(await statusAudit(personal.id)).toEqual([{ status: 'paused' }]);
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ plan: 'business_pro', status: 'paused', access: 'read_only', readOnlyReason: misfit });
    // its renewal paid, then a failed renewal (past_due in Stripe): still paused on the row, the misfit the reason
    await send(stripeEvent('invoice.paid', { id: 'in_contract_1', object: 'invoice', subscription: 'sub_contract', customer: 'cus_sub_contract' }, T0 + 20));
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_contract', plan: 'business_pro', status: 'paused', priceMisfit: 'price_sv_pro' }]);
    const failed = stripeEvent('invoice.payment_failed', { id: 'in_contract_2', object: 'invoice', subscription: 'sub_contract', customer: 'cus_sub_contract' }, T0 + 30);
    await send(failed);
    expect(await eventRow(failed.id)).toEqual({ status: 'processed', reason: null });
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_contract', plan: 'business_pro', status: 'paused', priceMisfit: 'price_sv_pro' }]);
    const { rows: [billing] } = await t.db.admin.query(
      `SELECT b.past_due_since FROM hub.subscription_billing b JOIN hub."Subscription" s ON s.id = b.subscription_id WHERE s."stripeSubscriptionId" = 'sub_contract'`);
    expect(billing.past_due_since).toEqual(new Date((T0 + 30) * 1000));
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ status: 'paused', access: 'read_only', readOnlyReason: misfit });

    // back on the business price: the event's own status (past_due) is written again
    const back = stripeEvent('customer.subscription.updated', subscriptionObject('sub_contract', 'price_sv_bpro', 'past_due', { org_id: orgId }), T0 + 40);
    await send(back);
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_contract', plan: 'business_pro', status: 'past_due', priceMisfit: null }]);
    expect(await statusAudit(back.id)).toEqual([{ status: 'past_due' }]);
    const { rows: [after] } = await t.db.admin.query(
      `SELECT b.past_due_since FROM hub.subscription_billing b JOIN hub."Subscription" s ON s.id = b.subscription_id WHERE s."stripeSubscriptionId" = 'sub_contract'`);
    expect(after.past_due_since).toEqual(new Date((T0 + 30) * 1000)); // the grace counts from the failure, not from the fit
  });

  it('a subscription with an add-on item before its plan item: the plan item applies (its period end too), the subscription stays full', async () => {
    const orgId = await createOrg(t, ada, 'Add-on Co');
    const items = (planPrice: string, end: number) => ({ items: { object: 'list', data: [
      { id: 'si_addon', price: { id: 'price_metered_addon', object: 'price' }, current_period_end: T0 + 5 * 86_400 },
      { id: 'si_plan', price: { id: planPrice, object: 'price' }, current_period_end: end },
    ] } });
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_addon', 'unused', 'active', { org_id: orgId }, items('price_omz_pro', T0 + 30 * 86_400)), T0);
    await send(created);
    expect(await eventRow(created.id)).toEqual({ status: 'processed', reason: null });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_addon', plan: 'professional', status: 'active', priceMisfit: null }]);
    // an operator's update (the add-on still first), and a plan change in the portal: the plan item decides
    const upgraded = stripeEvent('customer.subscription.updated', subscriptionObject('sub_addon', 'unused', 'active', { org_id: orgId }, items('price_omz_ent', T0 + 60 * 86_400)), T0 + 10);
    await send(upgraded);
    expect(await eventRow(upgraded.id)).toEqual({ status: 'processed', reason: null });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_addon', plan: 'enterprise', status: 'active', priceMisfit: null }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'enterprise', status: 'active', access: 'full', readOnlyReason: null, currentPeriodEnd: new Date((T0 + 60 * 86_400) * 1000).toISOString(),
    });
    const { rows } = await t.db.admin.query(
      `SELECT b.stripe_price_id FROM hub.subscription_billing b JOIN hub."Subscription" s ON s.id = b.subscription_id WHERE s."stripeSubscriptionId" = 'sub_addon'`);
    expect(rows).toEqual([{ stripe_price_id: 'price_omz_ent' }]);
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(ada.auth).send({ name: 'Add-on' }).expect(201);
  });

  it("an organization's business plan switched to a cheaper personal price: the plan stays, read-only while it renews on it, until a business price is back", async () => {
    const orgId = await createOrg(t, ada, 'Audience Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_biz', 'price_sv_bpro', 'active', { org_id: orgId }), T0));
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_biz', plan: 'business_pro', status: 'active', priceMisfit: null }]);

    const personal = stripeEvent('customer.subscription.updated', subscriptionObject('sub_biz', 'price_sv_pro', 'active', { org_id: orgId }), T0 + 10);
    await send(personal);
    const reason = 'price price_sv_pro is for app_securevault:pro: the app_securevault plan pro is a personal plan; this is a business account: '
      + 'the plan stays business_pro, read-only while the subscription is on that price';
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_biz', plan: 'business_pro', status: 'paused', priceMisfit: 'price_sv_pro' }]);
    expect(await eventRow(personal.id)).toEqual({ status: 'processed', reason });
    expect(await audits(orgId, personal.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.subscription_updated', plan: 'business_pro', notApplied: reason, reason: null, priceMisfit: 'price_sv_pro' },
    ]);
    // a renewal at the cheaper price (a new period, paid) keeps it so: nothing is entitled
    const renewed = stripeEvent('customer.subscription.updated',
      subscriptionObject('sub_biz', 'price_sv_pro', 'active', { org_id: orgId }, { items: { object: 'list', data: [{ id: 'si_sub_biz', price: { id: 'price_sv_pro', object: 'price' }, current_period_end: T0 + 60 * 86_400 }] } }), T0 + 20);
    await send(renewed);
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_biz', plan: 'business_pro', status: 'paused', priceMisfit: 'price_sv_pro' }]);
    expect(await eventRow(renewed.id)).toEqual({ status: 'processed', reason });
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({
      plan: 'business_pro', status: 'paused', source: 'subscription', currentPeriodEnd: new Date((T0 + 60 * 86_400) * 1000).toISOString(),
      access: 'read_only', readOnlyReason: misfitReason('price_sv_pro', 'app_securevault', 'organization'),
    });

    // no STRIPE_PORTAL_CONFIGURATIONS here: the portal session names no configuration (Stripe's default, every product)
    await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({}).expect(201);
    const portal = stripe.requests.filter((r) => r.path === '/v1/billing_portal/sessions').at(-1)!;
    expect(portal.form).toMatchObject({ customer: 'cus_sub_biz' });
    expect(portal.form.configuration).toBeUndefined();

    // back on the business price: the plan applies
    const back = stripeEvent('customer.subscription.updated', subscriptionObject('sub_biz', 'price_sv_bpro', 'active', { org_id: orgId }), T0 + 30);
    await send(back);
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_biz', plan: 'business_pro', status: 'active', priceMisfit: null }]);
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ plan: 'business_pro', status: 'active', source: 'subscription', access: 'full' });
    expect(await eventRow(back.id)).toEqual({ status: 'processed', reason: null });

    // no row to keep: a subscription created on a plan the organization cannot hold is not recorded
    const other = await createOrg(t, ada, 'Audience New Co');
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_new_personal', 'price_sv_pro', 'active', { org_id: other }), T0 + 20);
    await send(created);
    const ignored = 'price price_sv_pro is for app_securevault:pro: the app_securevault plan pro is a personal plan; this is a business account';
    expect(await hubRows(other)).toEqual([]);
    expect(await eventRow(created.id)).toEqual({ status: 'ignored', reason: ignored });
    expect(await entitlements(other, 'app_securevault')).toMatchObject({ source: 'default' });
    expect(await audits(other, created.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.event_ignored', plan: null, notApplied: null, reason: ignored, priceMisfit: null },
    ]);
  });

  it("a new subscription on a plan the organization cannot hold is ignored although the app's row has ended: the ended row is not its own", async () => {
    const orgId = await createOrg(t, ada, 'Ended Row Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_old', 'price_sv_bpro', 'active', { org_id: orgId }), T0));
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_old', 'price_sv_bpro', 'canceled', { org_id: orgId }), T0 + 10));
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_old', plan: 'business_pro', status: 'canceled', priceMisfit: null }]);

    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_new', 'price_sv_pro', 'active', { org_id: orgId }), T0 + 20);
    await send(created);
    const ignored = 'price price_sv_pro is for app_securevault:pro: the app_securevault plan pro is a personal plan; this is a business account';
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_old', plan: 'business_pro', status: 'canceled', priceMisfit: null }]);
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({ plan: 'business_pro', status: 'canceled', access: 'read_only' });
    expect(await eventRow(created.id)).toEqual({ status: 'ignored', reason: ignored });
    expect(await audits(orgId, created.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.event_ignored', plan: null, notApplied: null, reason: ignored, priceMisfit: null },
    ]);
  });

  it("a deleted organization's new subscription on a plan it cannot hold is canceled in Stripe, and not recorded", async () => {
    const orgId = await createOrg(t, ada, 'Deleted Misfit Co');
    await t.http.delete(`/v1/orgs/${orgId}`).set(ada.auth).expect(204);
    stripe.subscriptions.set('sub_deleted_personal', { status: 'active', customer: 'cus_sub_deleted_personal' });

    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_deleted_personal', 'price_sv_pro', 'active', { org_id: orgId }), T0);
    await send(created);
    const reason = 'price price_sv_pro is for app_securevault:pro: the app_securevault plan pro is a personal plan; this is a business account; '
      + 'the organization is deleted: Stripe subscription sub_deleted_personal was canceled in Stripe';
    expect(stripe.requests.filter((r) => r.method === 'DELETE' && r.path === '/v1/subscriptions/sub_deleted_personal').map((r) => r.idempotencyKey))
      .toEqual(['omnizen-org-deleted-sub_deleted_personal']);
    expect(stripe.subscriptions.get('sub_deleted_personal')!.status).toBe('canceled');
    expect(await hubRows(orgId)).toEqual([]);
    expect(await eventRow(created.id)).toEqual({ status: 'ignored', reason });
    expect(await audits(orgId, created.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.event_ignored', plan: null, notApplied: null, reason, priceMisfit: null },
    ]);
  });

  // review of the misfit price (its scratch cases R2, R4, R4b, R5, R6), and what the fixes changed

  const checkoutCompleted = (orgId: string, subscription: string, plan: string, created: number) => stripeEvent('checkout.session.completed', {
    id: `cs_test_${subscription}_${created}`, object: 'checkout.session', mode: 'subscription', payment_status: 'paid', client_reference_id: orgId,
    customer: `cus_${subscription}`, subscription, metadata: { org_id: orgId, app: 'omnizen', plan },
  }, created);
  /** the audit rows that say `stripeEventId` was applied again after another event: its linker's one row (`reapplied`), or its own ignored one */
  const appliedAfter = async (org: string, stripeEventId: string) => (await t.db.admin.query(
    `SELECT action, after->>'stripeEvent' AS "stripeEvent", coalesce(after->'reapplied'->>'appliedAfter', after->>'appliedAfter') AS "appliedAfter",
       after->'reapplied'->>'notApplied' AS "notApplied" FROM core.audit_logs
      WHERE org_id = $1 AND (after->'reapplied'->>'stripeEvent' = $2 OR (after->>'stripeEventId' = $2 AND after ? 'appliedAfter')) ORDER BY id`, [org, stripeEventId])).rows;
  const unmappedNote = (plan: string) => `price price_cheap_unmapped is not mapped to an app plan (STRIPE_PRICES): the plan stays ${plan}, read-only while the subscription is on that price`;

  it('an update stored before its subscription was known (its created event retried later) is applied when the subscription becomes the row\'s: a misfit, not lost', async () => {
    const orgId = await createOrg(t, ada, 'Retried Created Co');
    const swapped = stripeEvent('customer.subscription.updated', subscriptionObject('sub_retried', 'price_cheap_unmapped', 'active', { org_id: orgId }), T0 + 10);
    await send(swapped);
    const unplaced = 'price price_cheap_unmapped is not mapped to an app plan (STRIPE_PRICES)';
    expect(await eventRow(swapped.id)).toEqual({ status: 'ignored', reason: unplaced });
    expect(await hubRows(orgId)).toEqual([]);

    // Stripe's retry of the created event: it creates the row, then the newer update, ignored before, applies to it
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_retried', 'price_omz_ent', 'active', { org_id: orgId }), T0);
    await send(created);
    expect(await eventRow(created.id)).toEqual({ status: 'processed', reason: null });
    expect(await eventRow(swapped.id)).toEqual({ status: 'processed', reason: unmappedNote('enterprise') });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_retried', plan: 'enterprise', status: 'paused', priceMisfit: 'price_cheap_unmapped' }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'enterprise', status: 'paused', access: 'read_only', readOnlyReason: misfitReason('price_cheap_unmapped', 'omnizen', 'organization'),
    });
    expect(await audits(orgId, swapped.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.event_ignored', plan: null, notApplied: null, reason: unplaced, priceMisfit: null },
      // one audit row for the created event's job: the row as the update applied again left it
      { action: 'billing.subscription_created', plan: 'enterprise', notApplied: null, reason: null, priceMisfit: 'price_cheap_unmapped' },
    ]);
    expect(await appliedAfter(orgId, swapped.id)).toEqual([
      { action: 'billing.subscription_created', stripeEvent: created.id, appliedAfter: created.id, notApplied: unmappedNote('enterprise') },
    ]);
    // and one domain event, the row created as it is now, at the later event's time (the update's)
    expect(await domainEvents(orgId)).toEqual([{ type: 'subscription.created', status: 'paused', previousStatus: null, occurredAt: new Date((T0 + 10) * 1000).toISOString() }]);
    // its checkout completion, dated before the update, changes nothing (the newest state stays)
    const completed = checkoutCompleted(orgId, 'sub_retried', 'enterprise', T0 + 1);
    await send(completed);
    expect(await eventRow(completed.id)).toEqual({ status: 'ignored', reason: `out of order: an event from ${new Date((T0 + 10) * 1000).toISOString()} was already applied` });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_retried', plan: 'enterprise', status: 'paused', priceMisfit: 'price_cheap_unmapped' }]);
  });

  it('an update processed before the checkout completion\'s job committed (Bull runs jobs side by side): the completion applies it after linking the subscription', async () => {
    const orgId = await createOrg(t, ada, 'Side By Side Co');
    const swapped = stripeEvent('customer.subscription.updated', subscriptionObject('sub_side', 'price_omz_ghost', 'active', { org_id: orgId }), T0 + 10);
    await send(swapped);
    // a price mapped to a plan the catalog does not have: a subscription no row holds cannot be placed, ignored for now
    expect(await eventRow(swapped.id)).toEqual({ status: 'ignored', reason: 'STRIPE_PRICES maps price_omz_ghost to omnizen:ghost, which is not in the catalog' });
    const completed = checkoutCompleted(orgId, 'sub_side', 'enterprise', T0 + 1);
    await send(completed);
    const note = 'STRIPE_PRICES maps price_omz_ghost to omnizen:ghost, which is not in the catalog: the plan stays enterprise, read-only while the subscription is on that price';
    expect(await eventRow(completed.id)).toEqual({ status: 'processed', reason: null });
    expect(await eventRow(swapped.id)).toEqual({ status: 'processed', reason: note });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_side', plan: 'enterprise', status: 'paused', priceMisfit: 'price_omz_ghost' }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'enterprise', status: 'paused', access: 'read_only', readOnlyReason: misfitReason('price_omz_ghost', 'omnizen', 'organization'),
    });
    expect(await appliedAfter(orgId, swapped.id)).toEqual([{ action: 'billing.subscription_created', stripeEvent: completed.id, appliedAfter: completed.id, notApplied: note }]);
    expect(await domainEvents(orgId)).toEqual([{ type: 'subscription.created', status: 'paused', previousStatus: null, occurredAt: new Date((T0 + 10) * 1000).toISOString() }]);
    // the created event, older, comes last: out of order
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_side', 'price_omz_ent', 'active', { org_id: orgId }), T0);
    await send(created);
    expect(await eventRow(created.id)).toMatchObject({ status: 'ignored', reason: expect.stringMatching(/^out of order/) });
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_side', plan: 'enterprise', status: 'paused', priceMisfit: 'price_omz_ghost' }]);
  });

  it('a second subscription set aside, then moved to an unmapped price, then taken over by its checkout: its newest event applies, a misfit', async () => {
    const orgId = await createOrg(t, ada, 'Set Aside Misfit Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_aside_a', 'price_omz_starter', 'active', { org_id: orgId }), T0));
    // a second subscription (a left checkout session paid), switched in the portal to an unmapped price
    const early = stripeEvent('customer.subscription.created', subscriptionObject('sub_aside_b', 'price_omz_ent', 'active', { org_id: orgId }), T0 + 5);
    const swapped = stripeEvent('customer.subscription.updated', subscriptionObject('sub_aside_b', 'price_cheap_unmapped', 'active', { org_id: orgId }), T0 + 10);
    await send(early);
    await send(swapped);
    expect(await eventRow(early.id)).toMatchObject({ status: 'ignored', reason: expect.stringMatching(/^another Stripe subscription is live: sub_aside_a/) });
    expect(await eventRow(swapped.id)).toEqual({ status: 'ignored', reason: 'price price_cheap_unmapped is not mapped to an app plan (STRIPE_PRICES)' });
    const completed = checkoutCompleted(orgId, 'sub_aside_b', 'enterprise', T0 + 6);
    await send(completed);
    expect(await eventRow(completed.id)).toEqual({ status: 'processed', reason: null });
    expect(await eventRow(swapped.id)).toEqual({ status: 'processed', reason: unmappedNote('enterprise') });
    expect(await eventRow(early.id)).toMatchObject({ status: 'ignored' }); // older than the newest: not applied
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_aside_b', plan: 'enterprise', status: 'paused', priceMisfit: 'price_cheap_unmapped' }]);
    expect(await entitlements(orgId, 'omnizen')).toMatchObject({
      plan: 'enterprise', status: 'paused', access: 'read_only', readOnlyReason: misfitReason('price_cheap_unmapped', 'omnizen', 'organization'),
    });
  });

  it("the plan item is the one of the row's app and audience: a personal price beside the business one, or another app's personal price first", async () => {
    const orgId = await createOrg(t, ada, 'Two Items Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_two_items', 'price_sv_bpro', 'active', { org_id: orgId }), T0));
    const items = (...prices: string[]) => ({ items: { object: 'list', data: prices.map((p, i) => ({ id: `si_two_${i}`, price: { id: p, object: 'price' }, current_period_end: T0 + (40 + i) * 86_400 })) } });
    const updated = stripeEvent('customer.subscription.updated', subscriptionObject('sub_two_items', 'unused', 'active', { org_id: orgId }, items('price_sv_pro', 'price_sv_bpro')), T0 + 10);
    await send(updated);
    expect(await eventRow(updated.id)).toEqual({ status: 'processed', reason: null });
    expect(await hubRows(orgId)).toEqual([{ appId: 'app_securevault', stripeSubscriptionId: 'sub_two_items', plan: 'business_pro', status: 'active', priceMisfit: null }]);
    expect(await entitlements(orgId, 'app_securevault')).toMatchObject({
      plan: 'business_pro', status: 'active', access: 'full', readOnlyReason: null, currentPeriodEnd: new Date((T0 + 41 * 86_400) * 1000).toISOString(),
    });

    // a new subscription of a business organization: SecureVault's personal price first, an OmniZen plan beside it
    const other = await createOrg(t, ada, 'Two Items New Co');
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_two_new', 'unused', 'active', { org_id: other }, items('price_sv_pro', 'price_omz_pro')), T0);
    await send(created);
    expect(await eventRow(created.id)).toEqual({ status: 'processed', reason: null });
    expect(await hubRows(other)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_two_new', plan: 'professional', status: 'active', priceMisfit: null }]);
    const { rows } = await t.db.admin.query(
      `SELECT b.stripe_price_id FROM hub.subscription_billing b JOIN hub."Subscription" s ON s.id = b.subscription_id WHERE s."stripeSubscriptionId" = 'sub_two_new'`);
    expect(rows).toEqual([{ stripe_price_id: 'price_omz_pro' }]);
  });

  it("a deleted organization's new subscription on an unmapped price is canceled in Stripe all the same", async () => {
    const orgId = await createOrg(t, ada, 'Deleted Unmapped Co');
    await t.http.delete(`/v1/orgs/${orgId}`).set(ada.auth).expect(204);
    stripe.subscriptions.set('sub_deleted_unmapped', { status: 'active', customer: 'cus_sub_deleted_unmapped' });
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_deleted_unmapped', 'price_cheap_unmapped', 'active', { org_id: orgId }), T0);
    await send(created);
    const reason = 'price price_cheap_unmapped is not mapped to an app plan (STRIPE_PRICES); the organization is deleted: Stripe subscription sub_deleted_unmapped was canceled in Stripe';
    expect(stripe.requests.filter((r) => r.method === 'DELETE' && r.path === '/v1/subscriptions/sub_deleted_unmapped').map((r) => r.idempotencyKey))
      .toEqual(['omnizen-org-deleted-sub_deleted_unmapped']);
    expect(stripe.subscriptions.get('sub_deleted_unmapped')!.status).toBe('canceled');
    expect(await hubRows(orgId)).toEqual([]);
    expect(await eventRow(created.id)).toEqual({ status: 'ignored', reason });
    expect(await audits(orgId, created.id)).toEqual([
      { action: 'billing.event_received', plan: null, notApplied: null, reason: null, priceMisfit: null },
      { action: 'billing.event_ignored', plan: null, notApplied: null, reason, priceMisfit: null },
    ]);
    // its deletion (Stripe's answer to the cancel) cancels nothing more
    const deletes = stripe.requests.filter((r) => r.method === 'DELETE').length;
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_deleted_unmapped', 'price_cheap_unmapped', 'canceled', { org_id: orgId }), T0 + 1);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual({ status: 'ignored', reason: 'price price_cheap_unmapped is not mapped to an app plan (STRIPE_PRICES)' });
    expect(stripe.requests.filter((r) => r.method === 'DELETE').length).toBe(deletes);
  });

  it('one event reads the catalog once per app, and the subscription once, locked', async () => {
    const orgId = await createOrg(t, ada, 'Reads Once Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_reads', 'price_omz_pro', 'active', { org_id: orgId }), T0));
    const plans = jest.spyOn(billingRepository, 'plans');
    const byStripeId = jest.spyOn(billingRepository, 'subscriptionByStripeId');
    const locked = jest.spyOn(billingRepository, 'lockSubscription');
    try {
      await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_reads', 'price_omz_ent', 'active', { org_id: orgId }), T0 + 10));
      expect(plans.mock.calls.map(([, app]) => app)).toEqual(['omnizen']);
      // found by its Stripe id, then locked and read again: the event is read against that row only
      expect(byStripeId.mock.calls.map(([, id]) => id)).toEqual(['sub_reads']);
      expect(byStripeId.mock.invocationCallOrder[0]).toBeLessThan(locked.mock.invocationCallOrder[0]);
    } finally {
      plans.mockRestore();
      byStripeId.mockRestore();
      locked.mockRestore();
    }
    expect(await hubRows(orgId)).toEqual([{ appId: 'omnizen', stripeSubscriptionId: 'sub_reads', plan: 'enterprise', status: 'active', priceMisfit: null }]);
  });

  it("a misfit row's trial end and failed payment still go out (subscription.trial_ending, payment.failed), with the row's status, paused, as the catalog says", async () => {
    const orgId = await createOrg(t, ada, 'Misfit Trial Co');
    const trialEnd = T0 + 3 * 86_400;
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_misfit_trial', 'price_omz_pro', 'trialing', { org_id: orgId }, { trial_end: trialEnd }), T0));
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_misfit_trial', 'price_sv_bstarter', 'trialing', { org_id: orgId }, { trial_end: trialEnd }), T0 + 10));
    await send(stripeEvent('customer.subscription.trial_will_end', subscriptionObject('sub_misfit_trial', 'price_sv_bstarter', 'trialing', { org_id: orgId }, { trial_end: trialEnd }), T0 + 20));
    await send(stripeEvent('invoice.payment_failed', { id: 'in_misfit_trial', object: 'invoice', subscription: 'sub_misfit_trial', customer: 'cus_sub_misfit_trial' }, T0 + 30));
    const emitted = async (type: string) => (await t.db.admin.query(
      `SELECT payload->'payload' AS payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = $2`, [orgId, type])).rows.map((r) => r.payload);
    expect(await emitted('subscription.trial_ending')).toEqual([expect.objectContaining({ app: 'omnizen', plan: 'professional', status: 'paused', previousStatus: 'paused' })]);
    expect(await emitted('payment.failed')).toEqual([expect.objectContaining({ app: 'omnizen', plan: 'professional', status: 'paused', previousStatus: 'paused' })]);
    const catalog = (await t.http.get('/v1/webhooks/event-types').expect(200)).body as { type: string; description: string }[];
    for (const type of ['subscription.trial_ending', 'payment.failed']) {
      expect(catalog.find((e) => e.type === type)!.description).toContain('paused while it is on a Stripe price that is not a plan of its app for the account');
    }
  });
});

/**
 * At the source: with STRIPE_PORTAL_CONFIGURATIONS, a portal session of an app uses that app's configuration (for the
 * kind of account first), so the customer is offered that app's products only.
 */
describe('billing: the portal session uses the app\'s portal configuration (STRIPE_PORTAL_CONFIGURATIONS)', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const portalRequests = () => stripe.requests.filter((r) => r.path === '/v1/billing_portal/sessions');
  const portalAudit = async (org: string, sessionId: string) => (await t.db.admin.query(
    `SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.portal_opened' AND entity_id = $2`, [org, sessionId])).rows.map((r) => r.after);

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_sv_bpro=app_securevault:business_pro,price_sv_pro=app_securevault:pro',
      STRIPE_PORTAL_CONFIGURATIONS: 'omnizen=bpc_omz, app_securevault=bpc_sv_any,app_securevault:business=bpc_sv_business',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it("an organization's portal: the app asked for, else its first subscription's, with the configuration for business accounts first", async () => {
    const orgId = await createOrg(t, ada, 'Portal Config Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_cfg_sv', 'price_sv_bpro', 'active', { org_id: orgId }), T0));
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_cfg_omz', 'price_omz_pro', 'active', { org_id: orgId }), T0 + 10));

    const first = await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({}).expect(201);
    expect(portalRequests().at(-1)!.form).toMatchObject({ customer: expect.stringMatching(/^cus_sub_cfg_/), configuration: 'bpc_sv_business' });
    expect(await portalAudit(orgId, first.body.id)).toEqual([{ customer: expect.any(String), app: 'app_securevault', configuration: 'bpc_sv_business' }]);

    const omnizen = await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({ app: 'omnizen' }).expect(201);
    expect(portalRequests().at(-1)!.form).toMatchObject({ configuration: 'bpc_omz' });
    expect(await portalAudit(orgId, omnizen.body.id)).toEqual([{ customer: expect.any(String), app: 'omnizen', configuration: 'bpc_omz' }]);

    // an unknown app: 404 naming it, before any Stripe call
    const before = portalRequests().length;
    const unknown = await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({ app: 'no_such_app' }).expect(404);
    expect(unknown.body.error).toEqual({ code: 'app.not_found', message: 'app no_such_app was not found' });
    expect(portalRequests().length).toBe(before);
    await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({ app: 'Not An App' }).expect(400);
  });

  it("a person's portal: the app's configuration for personal accounts, else the app's", async () => {
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_cfg_me', 'price_sv_pro', 'active', { org_id: ada.personalOrgId }), T0));
    const res = await t.http.post('/v1/me/billing/portal').set(ada.auth).send({}).expect(201);
    expect(portalRequests().at(-1)!.form).toMatchObject({ customer: 'cus_sub_cfg_me', configuration: 'bpc_sv_any' });
    expect(await portalAudit(ada.personalOrgId, res.body.id)).toEqual([{ customer: 'cus_sub_cfg_me', app: 'app_securevault', configuration: 'bpc_sv_any' }]);
    // an unknown app: 404 naming it, before any Stripe call, nothing audited
    const before = portalRequests().length;
    const unknown = await t.http.post('/v1/me/billing/portal').set(ada.auth).send({ app: 'no_such_app' }).expect(404);
    expect(unknown.body.error).toEqual({ code: 'app.not_found', message: 'app no_such_app was not found' });
    expect(portalRequests().length).toBe(before);
    const { rows: [opened] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.portal_opened'`, [ada.personalOrgId]);
    expect(opened.n).toBe(1);
  });

  it('STRIPE_PORTAL_CONFIGURATIONS is validated at boot', () => {
    const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen', API_DATABASE_PASSWORD: 'not-the-development-one' };
    expect(loadConfig({ ...base, STRIPE_PORTAL_CONFIGURATIONS: 'omnizen=bpc_1, app_securevault:personal=bpc_2' }).billing.stripePortalConfigurations)
      .toEqual({ omnizen: 'bpc_1', 'app_securevault:personal': 'bpc_2' });
    expect(loadConfig(base).billing.stripePortalConfigurations).toEqual({});
    for (const bad of ['omnizen=price_1', 'omnizen:team=bpc_1', 'omnizen']) {
      expect(() => loadConfig({ ...base, STRIPE_PORTAL_CONFIGURATIONS: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ ...base, STRIPE_PORTAL_CONFIGURATIONS: bad })).toThrow(`STRIPE_PORTAL_CONFIGURATIONS entry "${bad}"`);
    }
    expect(() => loadConfig({ ...base, STRIPE_PORTAL_CONFIGURATIONS: 'omnizen=bpc_1,omnizen=bpc_2' })).toThrow('STRIPE_PORTAL_CONFIGURATIONS names omnizen twice');
  });
});
