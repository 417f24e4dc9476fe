import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_unpaid_floor';
const T0 = Math.floor(Date.now() / 1000) - 3_600; // Stripe event times (seconds), an hour ago
const DAY = 86_400;
const ms = (s: number) => new Date(s * 1000);

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

/**
 * An unpaid subscription comes back through Stripe's own subscription event, not an invoice's payment; the floor of a
 * row's domain events is kept on the row (events_dated_until), whoever emitted them; an invoice finalized on one side
 * only is ordered by each one's later time.
 */
describe('billing: unpaid rows, the floor of domain events, invoices finalized on one side', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows;
  const billingRow = async (org: string) => (await t.db.admin.query(
    `SELECT s.status, b.ended_locally_at AS "endedLocallyAt", b.last_invoice_event_id AS "lastInvoiceEventId", b.events_dated_until AS "eventsDatedUntil"
     FROM hub."Subscription" s JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
  /** the organization's subscription domain events as a subscriber ordering by time sees them (ties in emission order) */
  const byTime = async (org: string) => (await t.db.admin.query(
    `SELECT id, payload->>'type' AS type, payload->'payload'->>'status' AS status, payload->>'occurredAt' AS "occurredAt"
       FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND (payload->>'type' LIKE 'subscription.%' OR payload->>'type' = 'payment.failed')
       ORDER BY (payload->>'occurredAt')::timestamptz, id`, [org])).rows;
  /** the same, in the order they were emitted */
  const byEmission = async (org: string) => [...(await byTime(org))].sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));

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

  it('an unpaid row stays unpaid when an invoice is paid (even the one its invoice mark is on): Stripe\'s subscription event makes it active', async () => {
    const org = await createOrg(t, ada, 'Unpaid Paid Older Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_unpaid_i1', 'active', org), T0));
    const i1 = { id: 'in_unpaid_1', created: T0 + 1, status_transitions: { finalized_at: T0 + 1 } };
    const i2 = { id: 'in_unpaid_2', created: T0 + 20, status_transitions: { finalized_at: T0 + 21 } };
    const failed1 = invoiceEvent('invoice.payment_failed', 'sub_unpaid_i1', org, T0 + 2, i1);
    await send(failed1);
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_unpaid_i1', 'unpaid', org), T0 + 10)); // retries exhausted
    // the customer's attempt on the newest invoice fails: left unpaid, the invoice mark stays on I1
    const failed2 = invoiceEvent('invoice.payment_failed', 'sub_unpaid_i1', org, T0 + 30, i2);
    await send(failed2);
    expect(await eventRow(failed2.id)).toEqual([{ status: 'ignored', reason: 'the subscription is unpaid: a failed payment leaves it so' }]);
    // paying only the older I1: Stripe keeps the subscription unpaid (its latest invoice I2 is open)
    const paid1 = invoiceEvent('invoice.paid', 'sub_unpaid_i1', org, T0 + 40, i1);
    await send(paid1);
    expect(await eventRow(paid1.id)).toEqual([{
      status: 'ignored', reason: "the subscription is unpaid: Stripe's subscription event, sent once its latest invoice is paid, makes it active again",
    }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'unpaid', lastInvoiceEventId: failed1.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'unpaid', access: 'read_only' });
    // I2 paid: Stripe says the subscription is active again
    const paid2 = invoiceEvent('invoice.paid', 'sub_unpaid_i1', org, T0 + 50, i2);
    await send(paid2);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'unpaid' })]);
    const active = stripeEvent('customer.subscription.updated', subscriptionObject('sub_unpaid_i1', 'active', org), T0 + 50);
    await send(active);
    expect(await eventRow(active.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active' })]);
    expect(await entitlements(org)).toMatchObject({ status: 'active', access: 'full' });
  });

  it('a local end cleared by a late renewal keeps the floor: a later-applied older change is dated after the local end', async () => {
    const org = await createOrg(t, ada, 'Local End Floor Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_floor_local', 'active', org, {
      cancel_at_period_end: true, items: { object: 'list', data: [{ id: 'si_floor_local', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 10 }] },
    }), T0));
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 60))).toHaveLength(1);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', endedLocallyAt: ms(T0 + 60) })]);
    // delivered late: the customer had turned the cancellation off (T0+5), then the renewal's payment failed (T0+20)
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_floor_local', 'active', org), T0 + 5));
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', endedLocallyAt: null })]);
    const pastDue = stripeEvent('customer.subscription.updated', subscriptionObject('sub_floor_local', 'past_due', org), T0 + 20);
    await send(pastDue);
    expect(await eventRow(pastDue.id)).toEqual([{ status: 'processed', reason: null }]);
    expect((await byTime(org)).map(({ type, status, occurredAt }) => ({ type, status, occurredAt }))).toEqual([
      { type: 'subscription.created', status: 'active', occurredAt: ms(T0).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', occurredAt: ms(T0 + 60).toISOString() },
      { type: 'subscription.updated', status: 'active', occurredAt: ms(T0 + 60).toISOString() },
      { type: 'subscription.updated', status: 'past_due', occurredAt: ms(T0 + 60).toISOString() },
    ]);
    // the floor, kept on the row (the local end's time) after Stripe's events cleared the local end
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', endedLocallyAt: null, eventsDatedUntil: ms(T0 + 60) })]);
  });

  it('a local end set without raising the floor (the expiry job of an instance before it, in a rolling deploy) still floors the next events', async () => {
    const org = await createOrg(t, ada, 'Deploy Window Floor Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_floor_deploy', 'active', org, {
      cancel_at_period_end: true, items: { object: 'list', data: [{ id: 'si_floor_deploy', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 10 }] },
    }), T0));
    // what the expiry job before events_dated_until did: the row canceled, its local end at its clock, the floor untouched
    const [{ id }] = (await t.db.admin.query(`SELECT id FROM hub."Subscription" WHERE "organizationId" = $1`, [org])).rows;
    await t.db.admin.query(`UPDATE hub."Subscription" SET status = 'canceled' WHERE id = $1`, [id]);
    await t.db.admin.query(`UPDATE hub.subscription_billing SET ended_locally_at = $2 WHERE subscription_id = $1`, [id, ms(T0 + 60)]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', endedLocallyAt: ms(T0 + 60), eventsDatedUntil: ms(T0) })]);
    // delivered late: the customer had turned the cancellation off (T0+5)
    const renewed = stripeEvent('customer.subscription.updated', subscriptionObject('sub_floor_deploy', 'active', org), T0 + 5);
    await send(renewed);
    expect(await eventRow(renewed.id)).toEqual([{ status: 'processed', reason: null }]);
    expect((await byTime(org)).at(-1)).toMatchObject({ type: 'subscription.updated', status: 'active', occurredAt: ms(T0 + 60).toISOString() });
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', endedLocallyAt: null, eventsDatedUntil: ms(T0 + 60) })]);
  });

  it('an organization\'s deletion raises the floor: a Stripe event applied after it is dated no earlier than its subscription.canceled', async () => {
    const org = await createOrg(t, ada, 'Deleted Floor Co');
    stripe.subscriptions.set('sub_floor_deleted', { status: 'active', customer: `cus_${org}` });
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_floor_deleted', 'active', org), T0));
    await t.http.delete(`/v1/orgs/${org}`).set(ada.auth).expect(204);
    await t.app.get(OutboxRelay).drain(); // organization.deleted: DeletedOrgSubscriptions cancels it in Stripe, then here
    const [canceled] = (await byTime(org)).filter((e) => e.type === 'subscription.canceled');
    expect(canceled).toMatchObject({ status: 'canceled' });
    expect(new Date(canceled.occurredAt).getTime()).toBeGreaterThan(ms(T0 + 60).getTime()); // dated when it ran
    // Stripe's own deletion (the cancel's), its time earlier than the Hub's end
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_floor_deleted', 'canceled', org), T0 + 10);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: null }]);
    const events = await byTime(org);
    expect(events.at(-1)).toMatchObject({ status: 'canceled', occurredAt: canceled.occurredAt });
    expect(events.map((e) => e.id)).toEqual((await byEmission(org)).map((e) => e.id));
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', eventsDatedUntil: new Date(canceled.occurredAt) })]);
  });

  it('an invoice finalized on one side only is ordered by each one\'s later time (creation or finalization)', async () => {
    // a renewal drafted before a one-off invoice but finalized after it: newer, its payment applies
    const org = await createOrg(t, ada, 'Finalized One Side Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_fin_one', 'active', org), T0));
    const oneOff = { id: 'in_fin_one_oneoff', created: T0 + 20 }; // no status_transitions in the payload
    const renewal = { id: 'in_fin_one_renewal', created: T0 + 10, status_transitions: { finalized_at: T0 + 40 } };
    await send(invoiceEvent('invoice.payment_failed', 'sub_fin_one', org, T0 + 22, oneOff));
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due' })]);
    const paid = invoiceEvent('invoice.paid', 'sub_fin_one', org, T0 + 41, renewal);
    await send(paid);
    expect(await eventRow(paid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', lastInvoiceEventId: paid.id })]);

    // the other way round: the renewal (finalized T0+40) failed; a one-off created at T0+20 paid afterwards is older
    const other = await createOrg(t, ada, 'Finalized Other Side Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_fin_two', 'active', other), T0));
    const failed = invoiceEvent('invoice.payment_failed', 'sub_fin_two', other, T0 + 41, { ...renewal, id: 'in_fin_two_renewal' });
    await send(failed);
    const olderPaid = invoiceEvent('invoice.paid', 'sub_fin_two', other, T0 + 45, { ...oneOff, id: 'in_fin_two_oneoff' });
    await send(olderPaid);
    expect(await eventRow(olderPaid.id)).toEqual([{
      status: 'ignored',
      reason: `invoice in_fin_two_oneoff (from ${ms(T0 + 20).toISOString()}) is older than invoice in_fin_two_renewal (finalized ${ms(T0 + 40).toISOString()}), `
        + 'whose payment failed: paying it does not settle that one',
    }]);
    expect(await billingRow(other)).toEqual([expect.objectContaining({ status: 'past_due', lastInvoiceEventId: failed.id })]);
    expect(await entitlements(other)).toMatchObject({ status: 'past_due' });
  });
});
