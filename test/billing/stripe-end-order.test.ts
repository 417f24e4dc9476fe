import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_end_order';
const T0 = Math.floor(Date.now() / 1000) - 3_600; // Stripe event times (seconds), an hour ago
const DAY = 86_400;
const ms = (s: number) => new Date(s * 1000);

const subscriptionObject = (id: string, status: string, orgId: string, extra: Record<string, unknown> = {}) => ({
  id, object: 'subscription', customer: `cus_${orgId}`, status, metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
  items: { object: 'list', data: [{ id: `si_${id}`, price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 30 * DAY }] },
  ...extra,
});
/** An invoice event as Stripe sends it, of invoice `invoice` (its id and its own creation time). */
const invoiceEvent = (type: string, subscription: string, orgId: string, created: number, invoice: { id: string; created: number }) => stripeEvent(type, {
  ...invoice, object: 'invoice', customer: `cus_${orgId}`, metadata: {},
  parent: { type: 'subscription_details', subscription_details: { subscription, metadata: { org_id: orgId } } },
}, created);

/**
 * Ends and payments applied from events older than what the row has seen: the row's state and the order of its domain
 * events (subscribers order them by time) stay those of the newest word.
 */
describe('billing: ends and payments older than what the subscription row has seen', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows;
  /** the organization's subscription domain events as a subscriber ordering by time sees them (ties in emission order) */
  const byTime = async (org: string) => (await t.db.admin.query(
    `SELECT payload->>'type' AS type, payload->'payload'->>'status' AS status, payload->>'occurredAt' AS "occurredAt"
       FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND (payload->>'type' LIKE 'subscription.%' OR payload->>'type' = 'payment.failed')
       ORDER BY (payload->>'occurredAt')::timestamptz, id`, [org])).rows;
  const billingRow = async (org: string) => (await t.db.admin.query(
    `SELECT s.status, b.past_due_since AS "pastDueSince", b.ended_locally_at AS "endedLocallyAt", b.last_event_id AS "lastEventId",
       b.last_invoice_event_id AS "lastInvoiceEventId"
     FROM hub."Subscription" s JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
  const audits = async (org: string, stripeEventId: string) => (await t.db.admin.query(
    `SELECT action, before->>'status' AS before, after->>'status' AS after FROM core.audit_logs
      WHERE org_id = $1 AND (after->>'stripeEvent' = $2 OR after->>'stripeEventId' = $2) ORDER BY id`, [org, stripeEventId])).rows;

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

  it("an end older than a final invoice's failed payment, delivered after it: subscription.canceled is dated no earlier than payment.failed", async () => {
    const org = await createOrg(t, ada, 'End Before Failure Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_ebf', 'active', org), T0));
    // canceled now, its final invoice (prorations) dated after the deletion fails: the failure is delivered first
    const failed = invoiceEvent('invoice.payment_failed', 'sub_ebf', org, T0 + 20, { id: 'in_ebf_final', created: T0 + 19 });
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_ebf', 'canceled', org), T0 + 10);
    await send(failed);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', pastDueSince: null, lastEventId: deleted.id, lastInvoiceEventId: failed.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
    // the last a subscriber ordering by time sees is the end (it was payment.failed, past_due: live, in grace)
    expect(await byTime(org)).toEqual([
      { type: 'subscription.created', status: 'active', occurredAt: ms(T0).toISOString() },
      { type: 'payment.failed', status: 'past_due', occurredAt: ms(T0 + 20).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', occurredAt: ms(T0 + 20).toISOString() },
    ]);
  });

  it('an unpaid status older than a failed payment applies (read-only) and is dated no earlier than that failure', async () => {
    const org = await createOrg(t, ada, 'Unpaid Before Failure Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_ubf', 'active', org), T0));
    await send(invoiceEvent('invoice.payment_failed', 'sub_ubf', org, T0 + 20, { id: 'in_ubf', created: T0 + 19 }));
    const unpaid = stripeEvent('customer.subscription.updated', subscriptionObject('sub_ubf', 'unpaid', org), T0 + 10);
    await send(unpaid);
    expect(await eventRow(unpaid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'unpaid', lastEventId: unpaid.id })]);
    expect((await byTime(org)).at(-1)).toEqual({ type: 'subscription.updated', status: 'unpaid', occurredAt: ms(T0 + 20).toISOString() });
  });

  it("Stripe's renewal after the expiry job's local end is dated no earlier than that end (subscription.canceled at the job's clock)", async () => {
    const org = await createOrg(t, ada, 'Renewed After Local End Co');
    const sub = (cancelAtPeriodEnd: boolean, periodEnd: number) => subscriptionObject('sub_rle', 'active', org, {
      cancel_at_period_end: cancelAtPeriodEnd,
      items: { object: 'list', data: [{ id: 'si_rle', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: periodEnd }] },
    });
    await send(stripeEvent('customer.subscription.updated', sub(true, T0 + 10), T0));
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 60))).toHaveLength(1);
    const renewed = stripeEvent('customer.subscription.updated', sub(false, T0 + 30 * DAY), T0 + 5);
    await send(renewed);
    expect(await eventRow(renewed.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', endedLocallyAt: null, lastEventId: renewed.id })]);
    expect(await byTime(org)).toEqual([
      { type: 'subscription.created', status: 'active', occurredAt: ms(T0).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', occurredAt: ms(T0 + 60).toISOString() },
      { type: 'subscription.updated', status: 'active', occurredAt: ms(T0 + 60).toISOString() },
    ]);
  });

  it("Stripe's deletion older than the last subscription event, delivered after the expiry job's local end, makes the end final (a later-dated event of it no longer revives the row)", async () => {
    const org = await createOrg(t, ada, 'Older Deletion After Local End Co');
    const sub = (status: string, periodEnd: number) => subscriptionObject('sub_odl', status, org, {
      cancel_at_period_end: true,
      items: { object: 'list', data: [{ id: 'si_odl', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: periodEnd }] },
    });
    await send(stripeEvent('customer.subscription.created', sub('active', T0 + 30), T0));
    const flagged = stripeEvent('customer.subscription.updated', sub('active', T0 + 30), T0 + 20);
    await send(flagged);
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 60))).toHaveLength(1);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', endedLocallyAt: ms(T0 + 60), lastEventId: flagged.id })]);
    const deleted = stripeEvent('customer.subscription.deleted', sub('canceled', T0 + 30), T0 + 15);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: null }]);
    // Stripe's word now: final; the ordering mark stays the later event's
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', endedLocallyAt: null, lastEventId: flagged.id })]);
    expect(await audits(org, deleted.id)).toEqual([
      { action: 'billing.event_received', before: null, after: null },
      { action: 'billing.subscription_updated', before: 'canceled', after: 'canceled' },
    ]);
    // a later-dated event of the deleted subscription (it revived the row while the end was local)
    const revived = stripeEvent('customer.subscription.updated', sub('active', T0 + 30 * DAY), T0 + 25);
    await send(revived);
    expect(await eventRow(revived.id)).toEqual([{ status: 'ignored', reason: 'Stripe subscription sub_odl is canceled, which is final: it does not become active' }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', endedLocallyAt: null })]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
  });

  it('a late payment of an older open invoice does not settle the failed payment of a newer one; that one paid does', async () => {
    const org = await createOrg(t, ada, 'Older Invoice Paid Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_oip', 'active', org), T0));
    const older = { id: 'in_oip_older', created: T0 + 1 };
    const renewal = { id: 'in_oip_renewal', created: T0 + 29 };
    const failed = invoiceEvent('invoice.payment_failed', 'sub_oip', org, T0 + 30, renewal);
    await send(failed);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 30), lastInvoiceEventId: failed.id })]);
    // the older invoice paid late: its event is newer than the failure
    const paidOlder = invoiceEvent('invoice.paid', 'sub_oip', org, T0 + 40, older);
    await send(paidOlder);
    expect(await eventRow(paidOlder.id)).toEqual([{
      status: 'ignored',
      reason: `invoice in_oip_older (from ${ms(T0 + 1).toISOString()}) is older than invoice in_oip_renewal (from ${ms(T0 + 29).toISOString()}), whose payment failed: paying it does not settle that one`,
    }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 30), lastInvoiceEventId: failed.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'past_due' });
    expect(await audits(org, paidOlder.id)).toEqual([
      { action: 'billing.event_received', before: null, after: null },
      { action: 'billing.event_ignored', before: null, after: null },
    ]);
    // an invoice event dated before the failure is out of order (as before)
    const paidEarly = invoiceEvent('invoice.paid', 'sub_oip', org, T0 + 25, renewal);
    await send(paidEarly);
    expect(await eventRow(paidEarly.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 30).toISOString()} was already applied` }]);
    // the failed invoice itself paid: active
    const paid = invoiceEvent('invoice.paid', 'sub_oip', org, T0 + 50, renewal);
    await send(paid);
    expect(await eventRow(paid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, lastInvoiceEventId: paid.id })]);
    // and once ended, an old invoice paid revives nothing (as before)
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_oip', 'canceled', org), T0 + 60));
    const paidAfterEnd = invoiceEvent('invoice.paid', 'sub_oip', org, T0 + 70, { id: 'in_oip_oldest', created: T0 });
    await send(paidAfterEnd);
    expect(await eventRow(paidAfterEnd.id)).toEqual([{ status: 'ignored', reason: 'the subscription is canceled: an invoice does not change that' }]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
  });
});
