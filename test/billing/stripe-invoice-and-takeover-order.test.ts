import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_invoice_takeover_order';
const T0 = Math.floor(Date.now() / 1000) - 3_600; // Stripe event times (seconds), an hour ago
const DAY = 86_400;
const ms = (s: number) => new Date(s * 1000);
const iso = (s: number) => ms(s).toISOString();

const subscriptionObject = (id: string, status: string, orgId: string, extra: Record<string, unknown> = {}) => ({
  id, object: 'subscription', customer: `cus_${orgId}`, status, metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
  items: { object: 'list', data: [{ id: `si_${id}`, price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 30 * DAY }] },
  ...extra,
});
/** An invoice event as Stripe sends it, of invoice `invoice` (its id, its own creation time, maybe its status_transitions). */
const invoiceEvent = (type: string, subscription: string, orgId: string, created: number, invoice: { id: string; created: number; status_transitions?: object }) =>
  stripeEvent(type, {
    ...invoice, object: 'invoice', customer: `cus_${orgId}`, metadata: {},
    parent: { type: 'subscription_details', subscription_details: { subscription, metadata: { org_id: orgId } } },
  }, created);
const checkoutCompleted = (orgId: string, subscription: string, created: number) => stripeEvent('checkout.session.completed', {
  id: `cs_${subscription}`, object: 'checkout.session', mode: 'subscription', payment_status: 'paid', client_reference_id: orgId,
  customer: `cus_${orgId}`, subscription, metadata: { org_id: orgId, app: 'omnizen', plan: 'professional' },
}, created);

/**
 * The order of Stripe's invoice events by their invoices (an older invoice's events never move the row), an ended
 * subscription's events against a row another one holds, and the time order of a row's domain events.
 */
describe('billing: older invoices, ended take-overs and domain event order', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows;
  const billingRow = async (org: string) => (await t.db.admin.query(
    `SELECT s.status, s."stripeSubscriptionId" AS sub, b.past_due_since AS "pastDueSince", b.ended_locally_at AS "endedLocallyAt",
       b.last_invoice_event_id AS "lastInvoiceEventId"
     FROM hub."Subscription" s JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
  const ignoredAudits = async (org: string, stripeEventId: string) => (await t.db.admin.query(
    `SELECT after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.event_ignored' AND after->>'stripeEventId' = $2`,
    [org, stripeEventId])).rows;
  /** the organization's subscription domain events as a subscriber ordering by time sees them (ties in emission order) */
  const byTime = async (org: string) => (await t.db.admin.query(
    `SELECT payload->>'type' AS type, payload->'payload'->>'status' AS status, payload->>'occurredAt' AS "occurredAt"
       FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' LIKE 'subscription.%'
       ORDER BY (payload->>'occurredAt')::timestamptz, id`, [org])).rows;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it("a retried failure of an older invoice after a newer one failed does not move the invoice mark: paying the older one leaves the row past_due", async () => {
    const org = await createOrg(t, ada, 'Older Retry Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_orf', 'active', org), T0));
    const older = { id: 'in_orf_older', created: T0 + 1 };
    const renewal = { id: 'in_orf_renewal', created: T0 + 29 };
    const failed = invoiceEvent('invoice.payment_failed', 'sub_orf', org, T0 + 30, renewal);
    await send(failed);
    // Stripe's smart retry of the older open invoice fails too
    const retry = invoiceEvent('invoice.payment_failed', 'sub_orf', org, T0 + 32, older);
    await send(retry);
    const retryReason = `invoice in_orf_older (from ${iso(T0 + 1)}) is older than invoice in_orf_renewal (from ${iso(T0 + 29)}), whose payment failed: its failed payment does not change the status that one left`;
    expect(await eventRow(retry.id)).toEqual([{ status: 'ignored', reason: retryReason }]);
    expect(await ignoredAudits(org, retry.id)).toEqual([{ reason: retryReason }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 30), lastInvoiceEventId: failed.id })]);
    // the older invoice paid: the renewal is still unpaid, Stripe's subscription stays past_due
    const paidOlder = invoiceEvent('invoice.paid', 'sub_orf', org, T0 + 40, older);
    await send(paidOlder);
    const paidReason = `invoice in_orf_older (from ${iso(T0 + 1)}) is older than invoice in_orf_renewal (from ${iso(T0 + 29)}), whose payment failed: paying it does not settle that one`;
    expect(await eventRow(paidOlder.id)).toEqual([{ status: 'ignored', reason: paidReason }]);
    expect(await ignoredAudits(org, paidOlder.id)).toEqual([{ reason: paidReason }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 30), lastInvoiceEventId: failed.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'past_due' });
    // the renewal itself paid: active
    const paid = invoiceEvent('invoice.paid', 'sub_orf', org, T0 + 50, renewal);
    await send(paid);
    expect(await eventRow(paid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, lastInvoiceEventId: paid.id })]);
  });

  it('a late failure of an older invoice after a newer one was paid leaves the row active', async () => {
    const org = await createOrg(t, ada, 'Older Late Failure Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_olf', 'active', org), T0));
    const older = { id: 'in_olf_older', created: T0 + 1 };
    const renewal = { id: 'in_olf_renewal', created: T0 + 29 };
    await send(invoiceEvent('invoice.payment_failed', 'sub_olf', org, T0 + 5, older));
    const paid = invoiceEvent('invoice.paid', 'sub_olf', org, T0 + 30, renewal);
    await send(paid);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, lastInvoiceEventId: paid.id })]);
    const lateFail = invoiceEvent('invoice.payment_failed', 'sub_olf', org, T0 + 35, older);
    await send(lateFail);
    const reason = `invoice in_olf_older (from ${iso(T0 + 1)}) is older than invoice in_olf_renewal (from ${iso(T0 + 29)}), which was paid: its failed payment does not change the status that one left`;
    expect(await eventRow(lateFail.id)).toEqual([{ status: 'ignored', reason }]);
    expect(await ignoredAudits(org, lateFail.id)).toEqual([{ reason }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, lastInvoiceEventId: paid.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'active', access: 'full' });
  });

  it("invoices are ordered by their finalization: a renewal drafted before another invoice but finalized after it settles that one's failure", async () => {
    const org = await createOrg(t, ada, 'Finalized Order Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_fin', 'active', org), T0));
    // the renewal is created as a draft at T0+10 and finalized an hour later; a one-off invoice is created and finalized between
    const renewal = { id: 'in_fin_renewal', created: T0 + 10, status_transitions: { finalized_at: T0 + 40 } };
    const oneOff = { id: 'in_fin_oneoff', created: T0 + 20, status_transitions: { finalized_at: T0 + 21 } };
    const failed = invoiceEvent('invoice.payment_failed', 'sub_fin', org, T0 + 22, oneOff);
    await send(failed);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', lastInvoiceEventId: failed.id })]);
    // the renewal (the latest finalized invoice) paid: Stripe's subscription is active
    const paid = invoiceEvent('invoice.paid', 'sub_fin', org, T0 + 41, renewal);
    await send(paid);
    expect(await eventRow(paid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, lastInvoiceEventId: paid.id })]);
    // the one-off invoice's retry then fails: older by finalization, it changes nothing
    const retry = invoiceEvent('invoice.payment_failed', 'sub_fin', org, T0 + 50, oneOff);
    await send(retry);
    expect(await eventRow(retry.id)).toEqual([{
      status: 'ignored',
      reason: `invoice in_fin_oneoff (finalized ${iso(T0 + 21)}) is older than invoice in_fin_renewal (finalized ${iso(T0 + 40)}), which was paid: its failed payment does not change the status that one left`,
    }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', lastInvoiceEventId: paid.id })]);
  });

  it("a late deletion of another, older subscription does not take over a row whose own subscription ended locally; the organization's deletion still cancels that one in Stripe", async () => {
    const org = await createOrg(t, ada, 'Ended Take Over Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_eto_old', 'active', org), T0));
    await send(checkoutCompleted(org, 'sub_eto_new', T0 + 1));
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_eto_new', 'active', org, {
      cancel_at_period_end: true, items: { object: 'list', data: [{ id: 'si_eto_new', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 10 }] },
    }), T0 + 2));
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 60))).toHaveLength(1);
    const ended = await billingRow(org);
    expect(ended).toEqual([expect.objectContaining({ sub: 'sub_eto_new', status: 'canceled', endedLocallyAt: ms(T0 + 60) })]);
    const oldDeleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_eto_old', 'canceled', org), T0 + 3);
    await send(oldDeleted);
    const reason = 'Stripe subscription sub_eto_old is canceled: an ended subscription does not take over the row of sub_eto_new (canceled)';
    expect(await eventRow(oldDeleted.id)).toEqual([{ status: 'ignored', reason }]);
    expect(await ignoredAudits(org, oldDeleted.id)).toEqual([{ reason }]);
    expect(await billingRow(org)).toEqual(ended);
    // Stripe still bills the row's own (the customer turned the cancellation off; its event not delivered yet)
    stripe.subscriptions.set('sub_eto_new', { status: 'active', customer: `cus_${org}` } as any);
    await t.http.delete(`/v1/orgs/${org}`).set(ada.auth).expect(204);
    await t.app.get(OutboxRelay).drain();
    expect(stripe.subscriptions.get('sub_eto_new')!.status).toBe('canceled');
  });

  it("a subscription's own older event after the checkout completion that linked it: the last domain event by time is its state", async () => {
    const org = await createOrg(t, ada, 'Checkout First Co');
    await send(checkoutCompleted(org, 'sub_cf', T0 + 10));
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_cf', 'trialing', org, { trial_end: T0 + 14 * DAY }), T0 + 5);
    await send(created);
    expect(await eventRow(created.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_cf', status: 'trialing' })]);
    expect(await byTime(org)).toEqual([
      { type: 'subscription.created', status: 'active', occurredAt: iso(T0 + 10) },
      { type: 'subscription.updated', status: 'trialing', occurredAt: iso(T0 + 10) },
    ]);
  });

  it("a checkout moving the row to another subscription: that one's older events are dated no earlier than the row's earlier domain events", async () => {
    const org = await createOrg(t, ada, 'Checkout Move Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_cm_a', 'active', org), T0));
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_cm_a', 'active', org, { cancel_at_period_end: true }), T0 + 50));
    await send(checkoutCompleted(org, 'sub_cm_b', T0 + 20));
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_cm_b', status: 'active' })]);
    // the new subscription's own created event (trialing), older than all of it, delivered last
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_cm_b', 'trialing', org, { trial_end: T0 + 14 * DAY }), T0 + 15);
    await send(created);
    expect(await eventRow(created.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_cm_b', status: 'trialing' })]);
    expect(await entitlements(org)).toMatchObject({ status: 'trialing' });
    expect(await byTime(org)).toEqual([
      { type: 'subscription.created', status: 'active', occurredAt: iso(T0) },
      { type: 'subscription.updated', status: 'active', occurredAt: iso(T0 + 50) },
      { type: 'subscription.updated', status: 'active', occurredAt: iso(T0 + 50) },
      { type: 'subscription.updated', status: 'trialing', occurredAt: iso(T0 + 50) },
    ]);
  });
});
