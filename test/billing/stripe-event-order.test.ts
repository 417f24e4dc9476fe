import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { StripeWebhookService } from '../../src/modules/billing/stripe-webhook.service.js';
import { billingRepository } from '../../src/modules/billing/billing.repository.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { until } from '../support/throwaway-servers.js';
import { postStripeEvent, sendStripeEvent, stripeEvent } from './stripe-events.js';

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
/** An invoice event as Stripe sends it: its own metadata empty, the subscription's (org_id) under parent. */
const invoiceEvent = (type: string, subscription: string, orgId: string, created: number) => stripeEvent(type, {
  id: `in_${randomBytes(6).toString('hex')}`, object: 'invoice', customer: `cus_${orgId}`, metadata: {},
  parent: { type: 'subscription_details', subscription_details: { subscription, metadata: { org_id: orgId } } },
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
  const storedId = async (stripeEventId: string) => (await t.db.admin.query(
    `SELECT id FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows[0].id as string;
  const lockWaiters = (n: number) => until(`${n} backend(s) wait for a lock`, async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n === n);

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise,price_omz_starter=omnizen:starter,price_sv_bstarter=app_securevault:business_starter',
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

  it('an invoice job that read the subscription before a deletion of the same second committed does not bring it back', async () => {
    const org = await createOrg(t, ada, 'Race Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_race', 'active', org), T0));
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_race', 'canceled', org), T0 + 100);
    const paid = invoiceEvent('invoice.paid', 'sub_race', org, T0 + 100); // e.g. a final invoice paid as it is canceled
    await postStripeEvent(t, WEBHOOK_SECRET, deleted);
    await postStripeEvent(t, WEBHOOK_SECRET, paid);
    // two jobs at once (Bull runs 16): the test holds the subscription row, the deletion's job waits for it first, then the
    // payment's, which has read 'active' by then; the deletion goes first once the row is free
    const svc = t.app.get(StripeWebhookService);
    const holder = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM hub."Subscription" WHERE "stripeSubscriptionId" = 'sub_race' FOR UPDATE`);
      const deletion = svc.process(await storedId(deleted.id));
      await lockWaiters(1);
      const payment = svc.process(await storedId(paid.id));
      await lockWaiters(2);
      await holder.query('COMMIT');
      await Promise.all([deletion, payment]);
    } finally {
      holder.release();
    }
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await eventRow(paid.id)).toEqual([{ status: 'ignored', reason: 'the subscription is canceled: an invoice does not change that' }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_race', status: 'canceled', trialEndsAt: null, lastEventAt: ms(T0 + 100), lastEventId: deleted.id }]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
  });

  it('canceled is final for its Stripe subscription: an update of the same second as the deletion, or later, does not undo it', async () => {
    const org = await createOrg(t, ada, 'Same Second Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_tie', 'active', org), T0));
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_tie', 'canceled', org), T0 + 100);
    await send(deleted);
    const tie = stripeEvent('customer.subscription.updated', subscriptionObject('sub_tie', 'past_due', org), T0 + 100);
    const later = stripeEvent('customer.subscription.updated', subscriptionObject('sub_tie', 'active', org), T0 + 200);
    await send(tie);
    await send(later);
    expect(await eventRow(tie.id)).toEqual([{ status: 'ignored', reason: 'Stripe subscription sub_tie is canceled, which is final: it does not become past_due' }]);
    expect(await eventRow(later.id)).toEqual([{ status: 'ignored', reason: 'Stripe subscription sub_tie is canceled, which is final: it does not become active' }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_tie', status: 'canceled', trialEndsAt: null, lastEventAt: ms(T0 + 100), lastEventId: deleted.id }]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
  });

  it("the expiry job's own end of a subscription canceled at period end is not final: Stripe's renewal still applies, an invoice alone does not revive it", async () => {
    const org = await createOrg(t, ada, 'Reactivated Co');
    const sub = (status: string, cancelAtPeriodEnd: boolean, periodEnd: number) => subscriptionObject('sub_reactivated', status, org, {
      cancel_at_period_end: cancelAtPeriodEnd,
      items: { object: 'list', data: [{ id: 'si_reactivated', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: periodEnd }] },
    });
    // the customer set cancel at period end; the period ended (T0 + 10, an hour ago)
    const cape = stripeEvent('customer.subscription.updated', sub('active', true, T0 + 10), T0);
    await send(cape);
    // the expiry job runs first (Stripe's event of the reactivation and renewal is late): it ends the row locally, Stripe is not called
    const stripeCalls = stripe.requests.length;
    const [ended] = await t.app.get(BillingExpiryJob).expire(ms(T0 + 60));
    expect(stripe.requests.length).toBe(stripeCalls);
    const endedRow = (await t.db.admin.query(`SELECT s.id, s.status, b.ended_locally_at AS "endedLocallyAt" FROM hub."Subscription" s
      JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
    expect(endedRow).toEqual([{ id: ended, status: 'canceled', endedLocallyAt: ms(T0 + 60) }]);
    // Stripe: the customer turned the cancellation off before the period end, and the subscription renewed
    const renewed = stripeEvent('customer.subscription.updated', sub('active', false, T0 + 30 * DAY), T0 + 5);
    await send(renewed);
    expect(await eventRow(renewed.id)).toEqual([{ status: 'processed', reason: null }]);
    const billing = async () => (await t.db.admin.query(`SELECT s.status, b.cancel_at_period_end AS cape, b.current_period_end AS "periodEnd",
      b.ended_locally_at AS "endedLocallyAt", b.last_event_id AS "lastEventId" FROM hub."Subscription" s
      JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
    expect(await billing()).toEqual([{ status: 'active', cape: false, periodEnd: ms(T0 + 30 * DAY), endedLocallyAt: null, lastEventId: renewed.id }]);
    expect(await entitlements(org)).toMatchObject({ status: 'active', access: 'full' });
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 120))).toEqual([]);

    // the same once more, and this time the renewal's invoice.paid arrives first, dated after Stripe's subscription
    // events of the renewal (review r12): it revives nothing (an invoice carries no period, no cancellation flag) and moves
    // no ordering mark, so those events, late, still apply
    const capeAgain = stripeEvent('customer.subscription.updated', sub('active', true, T0 + 20), T0 + 6);
    await send(capeAgain);
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 60))).toEqual([ended]);
    const paid = invoiceEvent('invoice.paid', 'sub_reactivated', org, T0 + 9);
    await send(paid);
    expect(await eventRow(paid.id)).toEqual([{ status: 'ignored', reason: "the subscription was ended here at its period end: Stripe's subscription events, not an invoice, bring it back" }]);
    expect(await billing()).toEqual([{ status: 'canceled', cape: true, periodEnd: ms(T0 + 20), endedLocallyAt: ms(T0 + 60), lastEventId: capeAgain.id }]);
    const renewedLate = stripeEvent('customer.subscription.updated', sub('active', false, T0 + 31 * DAY), T0 + 7);
    await send(renewedLate);
    expect(await eventRow(renewedLate.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billing()).toEqual([{ status: 'active', cape: false, periodEnd: ms(T0 + 31 * DAY), endedLocallyAt: null, lastEventId: renewedLate.id }]);
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 120))).toEqual([]);
    // an old open invoice paid after a local end revives nothing either, and Stripe's deletion (dated before that invoice)
    // still applies; a Stripe deletion after a local end is Stripe's word: final again
    await send(stripeEvent('customer.subscription.updated', sub('active', true, T0 + 20), T0 + 8));
    expect(await t.app.get(BillingExpiryJob).expire(ms(T0 + 60))).toEqual([ended]);
    const oldInvoice = invoiceEvent('invoice.paid', 'sub_reactivated', org, T0 + 12);
    await send(oldInvoice);
    expect(await eventRow(oldInvoice.id)).toEqual([{ status: 'ignored', reason: "the subscription was ended here at its period end: Stripe's subscription events, not an invoice, bring it back" }]);
    const deleted = stripeEvent('customer.subscription.deleted', sub('canceled', true, T0 + 20), T0 + 10);
    const revived = stripeEvent('customer.subscription.updated', sub('active', false, T0 + 30 * DAY), T0 + 11);
    await send(deleted);
    await send(revived);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await eventRow(revived.id)).toEqual([{ status: 'ignored', reason: 'Stripe subscription sub_reactivated is canceled, which is final: it does not become active' }]);
    expect(await billing()).toEqual([{ status: 'canceled', cape: true, periodEnd: ms(T0 + 20), endedLocallyAt: null, lastEventId: deleted.id }]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
  });

  it('a known subscription whose price is no longer in STRIPE_PRICES still ends: all but the plan applies', async () => {
    const org = await createOrg(t, ada, 'Retired Price Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_retired', 'active', org), T0));
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_retired', 'canceled', org, {
      items: { object: 'list', data: [{ id: 'si_retired', price: { id: 'price_omz_2025', object: 'price' }, current_period_end: T0 + 60 * DAY }] },
    }), T0 + 100);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: 'price price_omz_2025 is not mapped to an app plan (STRIPE_PRICES): the plan stays professional, read-only while the subscription is on that price' }]);
    const { rows } = await t.db.admin.query(
      `SELECT s.plan, s.status, b.stripe_price_id AS price, b.current_period_end AS "periodEnd" FROM hub."Subscription" s
       JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org]);
    expect(rows).toEqual([{ plan: 'professional', status: 'canceled', price: 'price_omz_2025', periodEnd: ms(T0 + 60 * DAY) }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'professional', status: 'canceled', access: 'read_only' });
  });

  it("an invoice with its own metadata {} (as Stripe sends it) is filed under the organization its subscription's metadata names", async () => {
    const org = await createOrg(t, ada, 'Invoice Metadata Co');
    const paid = invoiceEvent('invoice.paid', 'sub_not_yet_known', org, T0);
    await send(paid);
    const { rows } = await t.db.admin.query(`SELECT "orgId", status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [paid.id]);
    expect(rows).toEqual([{ orgId: org, status: 'ignored', reason: 'no subscription is known for Stripe subscription sub_not_yet_known' }]);
  });

  it("a plan switch's proration invoice, dated a second later and delivered first, does not put the switch out of order (either way); invoices are ordered among themselves", async () => {
    const org = await createOrg(t, ada, 'Proration Co');
    const onPrice = (price: string, status = 'active') => subscriptionObject('sub_prorated', status, org, {
      items: { object: 'list', data: [{ id: 'si_prorated', price: { id: price, object: 'price' }, current_period_end: T0 + 30 * DAY }] },
    });
    const marks = async () => (await t.db.admin.query(
      `SELECT s.plan, s.status, b.price_misfit AS "priceMisfit", b.last_event_id AS "lastEventId", b.last_invoice_event_id AS "lastInvoiceEventId"
       FROM hub."Subscription" s JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
    const created = stripeEvent('customer.subscription.created', onPrice('price_omz_ent'), T0);
    await send(created);
    // switched in the portal to another app's cheap business price: the proration invoice, a second later, comes first
    const paid = invoiceEvent('invoice.paid', 'sub_prorated', org, T0 + 11);
    const swapped = stripeEvent('customer.subscription.updated', onPrice('price_sv_bstarter'), T0 + 10);
    await send(paid);
    await send(swapped);
    expect(await eventRow(paid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await eventRow(swapped.id)).toEqual([{
      status: 'processed',
      reason: "price price_sv_bstarter is for app_securevault:business_starter, not omnizen: Stripe subscription sub_prorated is this organization's omnizen subscription: "
        + 'the plan stays enterprise, read-only while the subscription is on that price',
    }]);
    expect(await marks()).toEqual([{ plan: 'enterprise', status: 'paused', priceMisfit: 'price_sv_bstarter', lastEventId: swapped.id, lastInvoiceEventId: paid.id }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'enterprise', status: 'paused', access: 'read_only' });

    // switched back to an OmniZen price, its proration invoice first again: full again
    const paidBack = invoiceEvent('invoice.paid', 'sub_prorated', org, T0 + 21);
    const back = stripeEvent('customer.subscription.updated', onPrice('price_omz_ent'), T0 + 20);
    await send(paidBack);
    await send(back);
    expect(await eventRow(back.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await marks()).toEqual([{ plan: 'enterprise', status: 'active', priceMisfit: null, lastEventId: back.id, lastInvoiceEventId: paidBack.id }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'enterprise', status: 'active', access: 'full' });

    // an ordinary downgrade likewise
    const paidDown = invoiceEvent('invoice.paid', 'sub_prorated', org, T0 + 31);
    const down = stripeEvent('customer.subscription.updated', onPrice('price_omz_starter'), T0 + 30);
    await send(paidDown);
    await send(down);
    expect(await eventRow(down.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await marks()).toEqual([{ plan: 'starter', status: 'active', priceMisfit: null, lastEventId: down.id, lastInvoiceEventId: paidDown.id }]);

    // among invoices the newest wins: a failed payment dated before the last invoice paid changes nothing
    const failedOld = invoiceEvent('invoice.payment_failed', 'sub_prorated', org, T0 + 25);
    await send(failedOld);
    expect(await eventRow(failedOld.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 31).toISOString()} was already applied` }]);
    // an invoice older than the last subscription event (which carries the whole state) neither
    const renewed = stripeEvent('customer.subscription.updated', onPrice('price_omz_starter'), T0 + 40);
    await send(renewed);
    const failedBefore = invoiceEvent('invoice.payment_failed', 'sub_prorated', org, T0 + 35);
    await send(failedBefore);
    expect(await eventRow(failedBefore.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 40).toISOString()} was already applied` }]);
    // and a subscription event older than the last subscription event is still out of order
    const stale = stripeEvent('customer.subscription.updated', onPrice('price_omz_ent', 'past_due'), T0 + 39);
    await send(stale);
    expect(await eventRow(stale.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 40).toISOString()} was already applied` }]);
    expect(await marks()).toEqual([{ plan: 'starter', status: 'active', priceMisfit: null, lastEventId: renewed.id, lastInvoiceEventId: paidDown.id }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'starter', status: 'active', access: 'full' });
  });

  it('a late (retried) checkout completion after a plan change does not put the checkout plan back', async () => {
    const org = await createOrg(t, ada, 'Late Completion Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_late_completion', 'active', org), T0));
    const upgraded = stripeEvent('customer.subscription.updated', subscriptionObject('sub_late_completion', 'active', org, {
      items: { object: 'list', data: [{ id: 'si_late', price: { id: 'price_omz_ent', object: 'price' }, current_period_end: T0 + 30 * DAY }] },
    }), T0 + 10);
    await send(upgraded);
    const late = checkoutCompleted(org, 'sub_late_completion', T0 + 1);
    await send(late);
    expect(await eventRow(late.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 10).toISOString()} was already applied` }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'enterprise', status: 'active', access: 'full' });
  });

  /** the domain events emitted for the organization's subscriptions (type, status, previousStatus, occurredAt) */
  const domainEvents = async (org: string) => (await t.db.admin.query(
    `SELECT payload->>'type' AS type, payload->'payload'->>'status' AS status, payload->'payload'->>'previousStatus' AS "previousStatus",
       payload->>'occurredAt' AS "occurredAt" FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' LIKE 'subscription.%' ORDER BY id`, [org])).rows;
  const subscriptionAudits = async (org: string) => (await t.db.admin.query(
    `SELECT action, before->>'status' AS before, after->>'status' AS after, after->>'stripeEvent' AS "stripeEvent", after->'reapplied' AS reapplied
       FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.subscription_%' ORDER BY id`, [org])).rows;
  const billingRow = async (org: string) => (await t.db.admin.query(
    `SELECT s."stripeSubscriptionId" AS sub, s.status, b.current_period_end AS "currentPeriodEnd", b.cancel_at_period_end AS "cancelAtPeriodEnd",
       b.past_due_since AS "pastDueSince", b.last_event_id AS "lastEventId", b.last_invoice_event_id AS "lastInvoiceEventId"
     FROM hub."Subscription" s LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;

  it("a checkout completion that moves the row and applies its subscription's newest stored event again: one change, one audit row, one domain event", async () => {
    const org = await createOrg(t, ada, 'One Change Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_one_a', 'active', org), T0));
    const trialEnd = T0 + 14 * DAY;
    const trialing = stripeEvent('customer.subscription.created', subscriptionObject('sub_one_b', 'trialing', org, { trial_end: trialEnd }), T0 + 10);
    await send(trialing);
    expect(await eventRow(trialing.id)).toEqual([{ status: 'ignored', reason: expect.stringMatching(/^another Stripe subscription is live: sub_one_a \(active\)/) }]);
    const completed = checkoutCompleted(org, 'sub_one_b', T0 + 20);
    await send(completed);
    expect(await eventRow(completed.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await eventRow(trialing.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await hubRow(org)).toEqual([{ sub: 'sub_one_b', status: 'trialing', trialEndsAt: ms(trialEnd), lastEventAt: ms(T0 + 10), lastEventId: trialing.id }]);
    // from the row before the job (sub_one_a, active) to the row after it (sub_one_b, trialing), at the later time (the completion's)
    expect(await domainEvents(org)).toEqual([
      { type: 'subscription.created', status: 'active', previousStatus: null, occurredAt: ms(T0).toISOString() },
      { type: 'subscription.updated', status: 'trialing', previousStatus: 'active', occurredAt: ms(T0 + 20).toISOString() },
    ]);
    expect(await subscriptionAudits(org)).toEqual([
      { action: 'billing.subscription_created', before: null, after: 'active', stripeEvent: expect.any(String), reapplied: null },
      {
        action: 'billing.subscription_updated', before: 'active', after: 'trialing', stripeEvent: completed.id,
        reapplied: { stripeEvent: trialing.id, stripeEventType: 'customer.subscription.created', appliedAfter: completed.id },
      },
    ]);
  });

  it("a Stripe retry of an old event of an ended subscription does not take over the row another one held since (nor revive it); a newer event of it does", async () => {
    const org = await createOrg(t, ada, 'No Revival Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_rv_b', 'active', org), T0));
    const retried = stripeEvent('customer.subscription.updated', subscriptionObject('sub_rv_b', 'active', org, { cancel_at_period_end: true }), T0 + 5);
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_rv_b', 'canceled', org), T0 + 10);
    await send(deleted);
    await send(checkoutCompleted(org, 'sub_rv_c', T0 + 20));
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_rv_c', 'active', org), T0 + 19));
    const cDeleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_rv_c', 'canceled', org), T0 + 30);
    await send(cDeleted);
    const ended = await billingRow(org);
    expect(ended).toEqual([expect.objectContaining({ sub: 'sub_rv_c', status: 'canceled', lastEventId: cDeleted.id })]);
    const eventsBefore = (await domainEvents(org)).length;
    await send(retried); // the retry of an update from before sub_rv_b's deletion
    expect(await eventRow(retried.id)).toEqual([{
      status: 'ignored',
      reason: `Stripe subscription sub_rv_b has ended already (customer.subscription.deleted ${deleted.id}): it does not take over the row of sub_rv_c (canceled)`,
    }]);
    expect(await billingRow(org)).toEqual(ended);
    expect(await domainEvents(org)).toHaveLength(eventsBefore);
    expect(await t.db.admin.query(`SELECT after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.event_ignored' AND after->>'stripeEventId' = $2`,
      [org, retried.id]).then((r) => r.rows)).toEqual([{ reason: expect.stringMatching(/^Stripe subscription sub_rv_b has ended already/) }]);

    // not ended, but its newer event was applied (it held the row, then a checkout moved the row on): an older one is stale
    const other = await createOrg(t, ada, 'Stale Take Over Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_st_b', 'active', other), T0));
    const old = stripeEvent('customer.subscription.updated', subscriptionObject('sub_st_b', 'past_due', other), T0 + 5);
    const newer = stripeEvent('customer.subscription.updated', subscriptionObject('sub_st_b', 'active', other, { cancel_at_period_end: true }), T0 + 8);
    await send(newer);
    await send(checkoutCompleted(other, 'sub_st_c', T0 + 20));
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_st_c', 'canceled', other), T0 + 30));
    await send(old);
    expect(await eventRow(old.id)).toEqual([{
      status: 'ignored',
      reason: `out of order: Stripe subscription sub_st_b has a newer event (${newer.id} from ${ms(T0 + 8).toISOString()}): this one does not take over the row of sub_st_c (canceled)`,
    }]);
    expect(await billingRow(other)).toEqual([expect.objectContaining({ sub: 'sub_st_c', status: 'canceled' })]);
    // a newer event of it still takes over the ended row (the subscription still bills)
    const renewed = stripeEvent('customer.subscription.updated', subscriptionObject('sub_st_b', 'active', other), T0 + 40);
    await send(renewed);
    expect(await eventRow(renewed.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(other)).toEqual([expect.objectContaining({ sub: 'sub_st_b', status: 'active', lastEventId: renewed.id })]);
  });

  it('a subscription event older than the last invoice event applies its period and items, not its status: a failed renewal stays past_due, a paid one active', async () => {
    const org = await createOrg(t, ada, 'Late Update Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_late_upd', 'active', org), T0));
    const renewedEnd = T0 + 60 * DAY;
    const stale = stripeEvent('customer.subscription.updated', subscriptionObject('sub_late_upd', 'active', org, {
      cancel_at_period_end: true,
      items: { object: 'list', data: [{ id: 'si_late_upd', price: { id: 'price_omz_ent', object: 'price' }, current_period_end: renewedEnd }] },
    }), T0 + 5);
    const failed = invoiceEvent('invoice.payment_failed', 'sub_late_upd', org, T0 + 10);
    await send(failed);
    const pastDue = await billingRow(org);
    expect(pastDue).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 10), lastInvoiceEventId: failed.id })]);
    await send(stale);
    expect(await eventRow(stale.id)).toEqual([{
      status: 'processed', reason: `the status stays past_due (an invoice event from ${ms(T0 + 10).toISOString()} is newer than this active)`,
    }]);
    expect(await billingRow(org)).toEqual([{
      sub: 'sub_late_upd', status: 'past_due', currentPeriodEnd: ms(renewedEnd), cancelAtPeriodEnd: true, pastDueSince: ms(T0 + 10),
      lastEventId: stale.id, lastInvoiceEventId: failed.id,
    }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'enterprise', status: 'past_due' });

    // the other way: paid at T0+20, a past_due update of T0+15 delivered late leaves it active (no grace started)
    const paid = invoiceEvent('invoice.paid', 'sub_late_upd', org, T0 + 20);
    await send(paid);
    const lateFailure = stripeEvent('customer.subscription.updated', subscriptionObject('sub_late_upd', 'past_due', org), T0 + 15);
    await send(lateFailure);
    expect(await eventRow(lateFailure.id)).toEqual([{
      status: 'processed', reason: `the status stays active (an invoice event from ${ms(T0 + 20).toISOString()} is newer than this past_due)`,
    }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, cancelAtPeriodEnd: false, currentPeriodEnd: ms(T0 + 30 * DAY) })]);
    // an end still applies, older than the invoice or not
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_late_upd', 'canceled', org), T0 + 18);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'canceled', pastDueSince: null })]);
  });

  it("migration 20270211003000: a row moved by a checkout completion (before it) takes its subscription mark from the set-aside event that completion took it from", async () => {
    const org = await createOrg(t, ada, 'Upgraded Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_up_a', 'active', org), T0));
    const aside = stripeEvent('customer.subscription.created', subscriptionObject('sub_up_b', 'active', org), T0 + 10);
    await send(aside);
    const [{ reason }] = await eventRow(aside.id);
    await send(checkoutCompleted(org, 'sub_up_b', T0 + 20));
    const paid = invoiceEvent('invoice.paid', 'sub_up_b', org, T0 + 30);
    await send(paid);
    // as the code before 20270211003000 left it: the completion took the set-aside event's state and mark, and that
    // event stayed ignored; the mark was the last event applied, an invoice's
    await t.db.admin.query(`UPDATE hub."BillingEvent" SET status = 'ignored', reason = $2 WHERE "stripeEventId" = $1`, [aside.id, reason]);
    await t.db.admin.query(`UPDATE hub.subscription_billing b SET last_event_at = $2, last_event_id = $3, last_invoice_event_at = NULL, last_invoice_event_id = NULL
      FROM hub."Subscription" s WHERE s.id = b.subscription_id AND s."organizationId" = $1`, [org, ms(T0 + 30), paid.id]);
    const sql = readFileSync(join(projectRoot(), 'prisma', 'migrations', '20270211003000_subscription_invoice_order', 'migration.sql'), 'utf8');
    await t.db.admin.query(sql.slice(sql.indexOf('UPDATE hub.subscription_billing b')));
    expect(await hubRow(org)).toEqual([expect.objectContaining({ sub: 'sub_up_b', lastEventAt: ms(T0 + 10), lastEventId: aside.id })]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ lastInvoiceEventId: paid.id })]);
  });

  it('an event of the same second as its subscription\'s deletion, delivered late, does not take over (revive) the row another one held since', async () => {
    const org = await createOrg(t, ada, 'Same Second Take Over Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_ss_b', 'active', org), T0));
    // first delivered after everything below: dated the second of sub_ss_b's deletion (it sorts as the newest of its subscription)
    const update = stripeEvent('customer.subscription.updated', subscriptionObject('sub_ss_b', 'active', org), T0 + 10);
    const deleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_ss_b', 'canceled', org), T0 + 10);
    await send(deleted);
    await send(checkoutCompleted(org, 'sub_ss_c', T0 + 20));
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_ss_c', 'active', org), T0 + 19));
    const cDeleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_ss_c', 'canceled', org), T0 + 30);
    await send(cDeleted);
    const ended = await billingRow(org);
    expect(ended).toEqual([expect.objectContaining({ sub: 'sub_ss_c', status: 'canceled', lastEventId: cDeleted.id })]);
    const eventsBefore = await domainEvents(org);
    await send(update);
    expect(await eventRow(update.id)).toEqual([{
      status: 'ignored',
      reason: `Stripe subscription sub_ss_b has ended already (customer.subscription.deleted ${deleted.id}): it does not take over the row of sub_ss_c (canceled)`,
    }]);
    expect(await billingRow(org)).toEqual(ended);
    expect(await domainEvents(org)).toEqual(eventsBefore);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
  });

  it('a newer event of a subscription still queued (received) does not keep an older one from taking over an ended row; its own job applies it after', async () => {
    const org = await createOrg(t, ada, 'Queued Newer Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_q_b', 'active', org), T0));
    await send(checkoutCompleted(org, 'sub_q_c', T0 + 20));
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_q_c', 'canceled', org), T0 + 30));
    const queued = stripeEvent('customer.subscription.updated', subscriptionObject('sub_q_b', 'active', org, { cancel_at_period_end: true }), T0 + 40);
    const older = stripeEvent('customer.subscription.updated', subscriptionObject('sub_q_b', 'active', org), T0 + 35);
    await postStripeEvent(t, WEBHOOK_SECRET, queued);
    await postStripeEvent(t, WEBHOOK_SECRET, older);
    expect(await eventRow(queued.id)).toEqual([{ status: 'received', reason: null }]);
    await t.app.get(StripeWebhookService).process(await storedId(older.id));
    expect(await eventRow(older.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_q_b', status: 'active', cancelAtPeriodEnd: false, lastEventId: older.id })]);
    await t.app.get(StripeWebhookService).process(await storedId(queued.id));
    expect(await eventRow(queued.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_q_b', status: 'active', cancelAtPeriodEnd: true, lastEventId: queued.id })]);
  });

  it('a subscription event older than a failed payment applies its unpaid or paused status (as in Stripe\'s order: read-only), a live one stays past_due', async () => {
    // in Stripe's order: unpaid, then the failed payment, which leaves it unpaid
    const inOrder = await createOrg(t, ada, 'Unpaid In Order Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_unp_b', 'active', inOrder), T0));
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_unp_b', 'unpaid', inOrder), T0 + 5));
    const failedInOrder = invoiceEvent('invoice.payment_failed', 'sub_unp_b', inOrder, T0 + 10);
    await send(failedInOrder);
    expect(await eventRow(failedInOrder.id)).toEqual([{ status: 'ignored', reason: 'the subscription is unpaid: a failed payment leaves it so' }]);
    expect(await billingRow(inOrder)).toEqual([expect.objectContaining({ status: 'unpaid', pastDueSince: null })]);

    // the same events, the update delivered last: the same row
    const org = await createOrg(t, ada, 'Unpaid Late Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_unp_a', 'active', org), T0));
    const unpaid = stripeEvent('customer.subscription.updated', subscriptionObject('sub_unp_a', 'unpaid', org), T0 + 5);
    const failed = invoiceEvent('invoice.payment_failed', 'sub_unp_a', org, T0 + 10);
    await send(failed);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 10) })]);
    await send(unpaid);
    expect(await eventRow(unpaid.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'unpaid', pastDueSince: null, lastEventId: unpaid.id, lastInvoiceEventId: failed.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'unpaid', access: 'read_only' });

    // paused (Stripe's: a trial ended without a payment method) likewise
    const paused = await createOrg(t, ada, 'Paused Late Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_paused_late', 'active', paused), T0));
    await send(invoiceEvent('invoice.payment_failed', 'sub_paused_late', paused, T0 + 10));
    const pausedUpdate = stripeEvent('customer.subscription.updated', subscriptionObject('sub_paused_late', 'paused', paused), T0 + 5);
    await send(pausedUpdate);
    expect(await eventRow(pausedUpdate.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(paused)).toEqual([expect.objectContaining({ status: 'paused', pastDueSince: null, lastEventId: pausedUpdate.id })]);
    expect(await entitlements(paused)).toMatchObject({ status: 'paused', access: 'read_only' });

    // a trialing one is live: the failed payment is newer word, past_due stays
    const trial = await createOrg(t, ada, 'Trial Late Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_trial_late', 'active', trial), T0));
    await send(invoiceEvent('invoice.payment_failed', 'sub_trial_late', trial, T0 + 10));
    const trialing = stripeEvent('customer.subscription.updated', subscriptionObject('sub_trial_late', 'trialing', trial, { trial_end: T0 + DAY }), T0 + 5);
    await send(trialing);
    expect(await eventRow(trialing.id)).toEqual([{
      status: 'processed', reason: `the status stays past_due (an invoice event from ${ms(T0 + 10).toISOString()} is newer than this trialing)`,
    }]);
    expect(await billingRow(trial)).toEqual([expect.objectContaining({ status: 'past_due', pastDueSince: ms(T0 + 10) })]);

    // after a payment: an unpaid one applies, as in Stripe's order (unpaid, then paid: a payment does not end unpaid, Stripe's
    // own update, sent once the latest invoice is paid, does)
    const repaid = await createOrg(t, ada, 'Unpaid Then Paid Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_repaid', 'active', repaid), T0));
    await send(invoiceEvent('invoice.paid', 'sub_repaid', repaid, T0 + 10));
    const unpaidBefore = stripeEvent('customer.subscription.updated', subscriptionObject('sub_repaid', 'unpaid', repaid), T0 + 5);
    await send(unpaidBefore);
    expect(await eventRow(unpaidBefore.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await entitlements(repaid)).toMatchObject({ status: 'unpaid', access: 'read_only' });
    await send(stripeEvent('customer.subscription.updated', subscriptionObject('sub_repaid', 'active', repaid), T0 + 10));
    expect(await entitlements(repaid)).toMatchObject({ status: 'active', access: 'full' });
    // and a paused one too: in Stripe's order (paused, then paid) the payment makes it active
    const unpaused = await createOrg(t, ada, 'Paused Then Paid Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_unpaused', 'active', unpaused), T0));
    await send(invoiceEvent('invoice.paid', 'sub_unpaused', unpaused, T0 + 10));
    const pausedBefore = stripeEvent('customer.subscription.updated', subscriptionObject('sub_unpaused', 'paused', unpaused), T0 + 5);
    await send(pausedBefore);
    expect(await eventRow(pausedBefore.id)).toEqual([{
      status: 'processed', reason: `the status stays active (an invoice event from ${ms(T0 + 10).toISOString()} is newer than this paused)`,
    }]);
    expect(await entitlements(unpaused)).toMatchObject({ status: 'active', access: 'full' });
  });

  it('a row on a misfit price: an older event after a failed payment keeps its grace start; after the payment an older past_due one on a fitting price stays active', async () => {
    const org = await createOrg(t, ada, 'Misfit Late Co');
    const onPrice = (status: string, price: string) => subscriptionObject('sub_misfit_late', status, org, {
      items: { object: 'list', data: [{ id: 'si_misfit_late', price: { id: price, object: 'price' }, current_period_end: T0 + 30 * DAY }] },
    });
    await send(stripeEvent('customer.subscription.created', onPrice('active', 'price_omz_pro'), T0));
    await send(invoiceEvent('invoice.payment_failed', 'sub_misfit_late', org, T0 + 10));
    const swapped = stripeEvent('customer.subscription.updated', onPrice('active', 'price_sv_bstarter'), T0 + 5);
    await send(swapped);
    expect(await eventRow(swapped.id)).toEqual([{
      status: 'processed',
      reason: "price price_sv_bstarter is for app_securevault:business_starter, not omnizen: Stripe subscription sub_misfit_late is this organization's omnizen subscription: "
        + 'the plan stays professional, read-only while the subscription is on that price',
    }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'paused', pastDueSince: ms(T0 + 10), lastEventId: swapped.id })]);
    await send(invoiceEvent('invoice.paid', 'sub_misfit_late', org, T0 + 20));
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'paused', pastDueSince: null })]);
    const back = stripeEvent('customer.subscription.updated', onPrice('past_due', 'price_omz_pro'), T0 + 15);
    await send(back);
    expect(await eventRow(back.id)).toEqual([{
      status: 'processed', reason: `the status stays active (an invoice event from ${ms(T0 + 20).toISOString()} is newer than this past_due)`,
    }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ status: 'active', pastDueSince: null, lastEventId: back.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'active', access: 'full' });
  });

  it('a checkout completion that creates the row and applies again a stored deletion: subscription.created, then subscription.canceled; one audit row', async () => {
    const org = await createOrg(t, ada, 'Created Then Ended Co');
    const unmapped = (status: string, extra: Record<string, unknown> = {}) => subscriptionObject('sub_cte', status, org, {
      items: { object: 'list', data: [{ id: 'si_cte', price: { id: 'price_unmapped', object: 'price' }, current_period_end: T0 + 30 * DAY }] }, ...extra,
    });
    const deleted = stripeEvent('customer.subscription.deleted', unmapped('canceled'), T0 + 10);
    await send(deleted);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'ignored', reason: 'price price_unmapped is not mapped to an app plan (STRIPE_PRICES)' }]);
    const completed = checkoutCompleted(org, 'sub_cte', T0 + 5);
    await send(completed);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: expect.stringMatching(/^price price_unmapped is not mapped/) }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_cte', status: 'canceled', lastEventId: deleted.id })]);
    expect(await domainEvents(org)).toEqual([
      { type: 'subscription.created', status: 'active', previousStatus: null, occurredAt: ms(T0 + 5).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', previousStatus: 'active', occurredAt: ms(T0 + 10).toISOString() },
    ]);
    expect(await subscriptionAudits(org)).toEqual([{
      action: 'billing.subscription_created', before: null, after: 'canceled', stripeEvent: completed.id,
      reapplied: expect.objectContaining({ stripeEvent: deleted.id, stripeEventType: 'customer.subscription.deleted', appliedAfter: completed.id }),
    }]);

    // a re-applied trial_will_end (stored ignored: its subscription not known yet, on a price that cannot be placed
    // without a row): its own subscription.trial_ending besides subscription.created
    const trialOrg = await createOrg(t, ada, 'Created Trial Ending Co');
    const willEnd = stripeEvent('customer.subscription.trial_will_end', subscriptionObject('sub_cte_trial', 'trialing', trialOrg, {
      trial_end: T0 + 3 * DAY, items: { object: 'list', data: [{ id: 'si_cte_trial', price: { id: 'price_unmapped', object: 'price' }, current_period_end: T0 + 30 * DAY }] },
    }), T0 + 10);
    await send(willEnd);
    expect(await eventRow(willEnd.id)).toEqual([{ status: 'ignored', reason: 'price price_unmapped is not mapped to an app plan (STRIPE_PRICES)' }]);
    await send(checkoutCompleted(trialOrg, 'sub_cte_trial', T0 + 5));
    expect(await eventRow(willEnd.id)).toEqual([{ status: 'processed', reason: expect.stringMatching(/^price price_unmapped is not mapped/) }]);
    // the contract row's status: paused while on a price that is no plan (docs/plans.md)
    expect(await domainEvents(trialOrg)).toEqual([
      { type: 'subscription.created', status: 'paused', previousStatus: null, occurredAt: ms(T0 + 10).toISOString() },
      { type: 'subscription.trial_ending', status: 'paused', previousStatus: null, occurredAt: ms(T0 + 10).toISOString() },
    ]);
    expect(await subscriptionAudits(trialOrg)).toHaveLength(1);
  });

  /** A subscription object of `id` on `price` (price_unmapped: not in STRIPE_PRICES, so its events are stored ignored without a row). */
  const onPriceOf = (id: string, status: string, org: string, price: string, extra: Record<string, unknown> = {}) => subscriptionObject(id, status, org, {
    items: { object: 'list', data: [{ id: `si_${id}`, price: { id: price, object: 'price' }, current_period_end: T0 + 30 * DAY }] }, ...extra,
  });
  const misfitOf = async (org: string) => (await t.db.admin.query(
    `SELECT b.price_misfit AS misfit FROM hub."Subscription" s JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;

  it('a checkout completion that creates the row applies again the stored deletion of its subscription, not an update of the same second delivered after it; a new checkout is allowed', async () => {
    const org = await createOrg(t, ada, 'Ended Final New Row Co');
    const deleted = stripeEvent('customer.subscription.deleted', onPriceOf('sub_efn', 'canceled', org, 'price_unmapped'), T0 + 10);
    // same second, delivered after the deletion: it sorts as the newest of its subscription
    const update = stripeEvent('customer.subscription.updated', onPriceOf('sub_efn', 'active', org, 'price_unmapped'), T0 + 10);
    await send(deleted);
    await send(update);
    const unmapped = 'price price_unmapped is not mapped to an app plan (STRIPE_PRICES)';
    expect(await eventRow(update.id)).toEqual([{ status: 'ignored', reason: unmapped }]);
    const completed = checkoutCompleted(org, 'sub_efn', T0 + 5);
    await send(completed);
    expect(await eventRow(completed.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: `${unmapped}: the plan stays professional, read-only while the subscription is on that price` }]);
    expect(await eventRow(update.id)).toEqual([{ status: 'ignored', reason: unmapped }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_efn', status: 'canceled', lastEventId: deleted.id })]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
    expect(await domainEvents(org)).toEqual([
      { type: 'subscription.created', status: 'active', previousStatus: null, occurredAt: ms(T0 + 5).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', previousStatus: 'active', occurredAt: ms(T0 + 10).toISOString() },
    ]);
    expect(await subscriptionAudits(org)).toEqual([{
      action: 'billing.subscription_created', before: null, after: 'canceled', stripeEvent: completed.id,
      reapplied: expect.objectContaining({ stripeEvent: deleted.id, stripeEventType: 'customer.subscription.deleted', appliedAfter: completed.id }),
    }]);
    // the ended subscription holds nothing: the organization may buy again (it was 409 billing.subscription_exists)
    const again = await t.http.post(`/v1/orgs/${org}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' });
    expect(again.status).toBe(201);
    expect(again.body.url).toMatch(/^https:\/\/checkout\.stripe\.test\/c\/pay\/cs_test_/);
  });

  it("a subscription event that creates the row applies again its subscription's stored deletion, whatever the order of the others (and older than a linker that does not end it)", async () => {
    const org = await createOrg(t, ada, 'Ended Final Created Co');
    const deleted = stripeEvent('customer.subscription.deleted', onPriceOf('sub_efc', 'canceled', org, 'price_unmapped'), T0 + 10);
    const update = stripeEvent('customer.subscription.updated', onPriceOf('sub_efc', 'active', org, 'price_unmapped'), T0 + 10);
    await send(deleted);
    await send(update);
    const created = stripeEvent('customer.subscription.created', subscriptionObject('sub_efc', 'active', org), T0);
    await send(created);
    expect(await eventRow(created.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await eventRow(deleted.id)).toEqual([{ status: 'processed', reason: expect.stringMatching(/^price price_unmapped is not mapped/) }]);
    expect(await eventRow(update.id)).toEqual([{ status: 'ignored', reason: 'price price_unmapped is not mapped to an app plan (STRIPE_PRICES)' }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_efc', status: 'canceled', lastEventId: deleted.id })]);
    expect(await misfitOf(org)).toEqual([{ misfit: 'price_unmapped' }]);
    expect(await entitlements(org)).toMatchObject({ status: 'canceled', access: 'read_only' });
    expect(await domainEvents(org)).toEqual([
      { type: 'subscription.created', status: 'active', previousStatus: null, occurredAt: ms(T0).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', previousStatus: 'active', occurredAt: ms(T0 + 10).toISOString() },
    ]);

    // the deletion dated before the event that creates the row (a Stripe clock never does so, but an ended subscription
    // stays ended): it ends the row all the same
    const late = await createOrg(t, ada, 'Ended Final Late Linker Co');
    const lateDeleted = stripeEvent('customer.subscription.deleted', onPriceOf('sub_efl', 'canceled', late, 'price_unmapped'), T0 + 10);
    await send(lateDeleted);
    const lateLinker = stripeEvent('customer.subscription.updated', subscriptionObject('sub_efl', 'active', late), T0 + 20);
    await send(lateLinker);
    expect(await eventRow(lateDeleted.id)).toEqual([{ status: 'processed', reason: expect.stringMatching(/^price price_unmapped is not mapped/) }]);
    // the ordering mark stays the linker's (the later one): it never moves back
    expect(await billingRow(late)).toEqual([expect.objectContaining({ sub: 'sub_efl', status: 'canceled', lastEventId: lateLinker.id })]);
    expect(await entitlements(late)).toMatchObject({ status: 'canceled', access: 'read_only' });

    // and delivered after that later-dated update on the row it already holds (the order of the deliveries must not decide)
    const after = await createOrg(t, ada, 'Ended Final Delivered Last Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_efd', 'active', after), T0));
    const laterUpdate = stripeEvent('customer.subscription.updated', subscriptionObject('sub_efd', 'active', after), T0 + 20);
    await send(laterUpdate);
    const lastDeleted = stripeEvent('customer.subscription.deleted', subscriptionObject('sub_efd', 'canceled', after), T0 + 10);
    await send(lastDeleted);
    expect(await eventRow(lastDeleted.id)).toEqual([{ status: 'processed', reason: null }]);
    // the mark stays the later update's, and subscribers (who order by time) get the end no earlier than that update
    expect(await billingRow(after)).toEqual([expect.objectContaining({ sub: 'sub_efd', status: 'canceled', lastEventId: laterUpdate.id })]);
    expect(await entitlements(after)).toMatchObject({ status: 'canceled', access: 'read_only' });
    expect((await domainEvents(after)).slice(-2)).toEqual([
      { type: 'subscription.updated', status: 'active', previousStatus: 'active', occurredAt: ms(T0 + 20).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', previousStatus: 'active', occurredAt: ms(T0 + 20).toISOString() },
    ]);
    // another stale end in between is out of order (the mark did not move back to the deletion's time)
    const staleEnd = stripeEvent('customer.subscription.updated', subscriptionObject('sub_efd', 'canceled', after), T0 + 15);
    await send(staleEnd);
    expect(await eventRow(staleEnd.id)).toEqual([{ status: 'ignored', reason: `out of order: an event from ${ms(T0 + 20).toISOString()} was already applied` }]);
  });

  it('a trial_will_end that creates the row, its stored deletion applied again: subscription.created, subscription.canceled, no trial_ending', async () => {
    const org = await createOrg(t, ada, 'Trial Ended Co');
    const deleted = stripeEvent('customer.subscription.deleted', onPriceOf('sub_tec', 'canceled', org, 'price_unmapped'), T0 + 10);
    await send(deleted);
    const willEnd = stripeEvent('customer.subscription.trial_will_end', subscriptionObject('sub_tec', 'trialing', org, { trial_end: T0 + 3 * DAY }), T0 + 5);
    await send(willEnd);
    expect(await eventRow(willEnd.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await billingRow(org)).toEqual([expect.objectContaining({ sub: 'sub_tec', status: 'canceled', lastEventId: deleted.id })]);
    expect(await domainEvents(org)).toEqual([
      { type: 'subscription.created', status: 'trialing', previousStatus: null, occurredAt: ms(T0 + 5).toISOString() },
      { type: 'subscription.canceled', status: 'canceled', previousStatus: 'trialing', occurredAt: ms(T0 + 10).toISOString() },
    ]);
    expect(await subscriptionAudits(org)).toEqual([expect.objectContaining({ action: 'billing.subscription_created', before: null, after: 'canceled', stripeEvent: willEnd.id })]);
  });

  it('a trial_will_end that takes over an ended row or creates one is a change as any other (subscription.updated or .created), its trial_ending besides; on its own row only trial_ending', async () => {
    const org = await createOrg(t, ada, 'Trial Takes Over Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_tto_old', 'active', org), T0));
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_tto_old', 'canceled', org), T0 + 5));
    const before = (await domainEvents(org)).length;
    const trialEnd = T0 + 3 * DAY;
    const willEnd = stripeEvent('customer.subscription.trial_will_end', onPriceOf('sub_tto', 'trialing', org, 'price_omz_ent', { trial_end: trialEnd }), T0 + 10);
    await send(willEnd);
    expect(await eventRow(willEnd.id)).toEqual([{ status: 'processed', reason: null }]);
    expect(await hubRow(org)).toEqual([expect.objectContaining({ sub: 'sub_tto', status: 'trialing', trialEndsAt: ms(trialEnd), lastEventId: willEnd.id })]);
    expect((await domainEvents(org)).slice(before)).toEqual([
      { type: 'subscription.updated', status: 'trialing', previousStatus: 'canceled', occurredAt: ms(T0 + 10).toISOString() },
      { type: 'subscription.trial_ending', status: 'trialing', previousStatus: 'canceled', occurredAt: ms(T0 + 10).toISOString() },
    ]);
    // again, on the row of its own subscription: only its trial_ending
    await send(stripeEvent('customer.subscription.trial_will_end', onPriceOf('sub_tto', 'trialing', org, 'price_omz_ent', { trial_end: trialEnd }), T0 + 11));
    expect((await domainEvents(org)).slice(before + 2)).toEqual([
      { type: 'subscription.trial_ending', status: 'trialing', previousStatus: 'trialing', occurredAt: ms(T0 + 11).toISOString() },
    ]);

    const fresh = await createOrg(t, ada, 'Trial Creates Co');
    await send(stripeEvent('customer.subscription.trial_will_end', subscriptionObject('sub_ttc', 'trialing', fresh, { trial_end: trialEnd }), T0 + 10));
    expect(await domainEvents(fresh)).toEqual([
      { type: 'subscription.created', status: 'trialing', previousStatus: null, occurredAt: ms(T0 + 10).toISOString() },
      { type: 'subscription.trial_ending', status: 'trialing', previousStatus: null, occurredAt: ms(T0 + 10).toISOString() },
    ]);
  });

  it("the reads of a Stripe subscription's stored events (storedSubscriptionEvents: its ending and its newest) use billing_event_stripe_subscription_idx, even as a generic plan", async () => {
    const org = await createOrg(t, ada, 'Indexed Events Co');
    const compiled: Array<{ sql: string; parameters: readonly unknown[] }> = [];
    const capture = { run: async (q: { compile(): { sql: string; parameters: readonly unknown[] } }) => { compiled.push(q.compile()); return []; } } as never;
    const ended = ['canceled', 'incomplete_expired'];
    // as takeOverRefusal and applyNewestStored read them
    await billingRepository.storedSubscriptionEvents(capture, org, 'sub_idx', { except: 'evt_x', ended, settledOther: 'evt_x' });
    await billingRepository.storedSubscriptionEvents(capture, org, 'sub_idx', { except: 'evt_x', ended, newestEnding: true });
    const client = await t.db.admin.connect();
    try {
      // a generic plan cannot prove a partial index's predicate from a parameter (the type pattern): only from a literal
      await client.query(`SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off`);
      for (const [i, q] of compiled.entries()) {
        await client.query(`PREPARE events_read_${i} AS ${q.sql}`);
        const args = q.parameters.map((v) => (typeof v === 'number' ? String(v) : `'${String(v)}'`)).join(', ');
        const plan = (await client.query(`EXPLAIN (COSTS OFF) EXECUTE events_read_${i}(${args})`)).rows.map((r) => r['QUERY PLAN']).join('\n');
        // one statement, each of its two reads by the index
        expect(plan.match(/Index Scan[^\n]* using billing_event_stripe_subscription_idx/g)).toHaveLength(2);
        expect(plan.match(/Index Cond: \(\("orgId" = \$\d+\) AND \(\(\(\(payload -> 'data'::text\) -> 'object'::text\) ->> 'id'::text\) = \$\d+\)\)/g)).toHaveLength(2);
        expect(plan).not.toContain('Sort');
      }
    } finally {
      await client.query('DEALLOCATE ALL; RESET ALL');
      client.release();
    }
  });
});
