import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { sendStripeEvent, stripeEvent } from './stripe-events.js';

const WEBHOOK_SECRET = 'whsec_test_status_rules';
const T0 = Math.floor(Date.now() / 1000) - 3_600; // Stripe event times (seconds), an hour ago

const subscriptionObject = (id: string, status: string, orgId: string) => ({
  id, object: 'subscription', customer: `cus_${id}`, status, metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
  items: { object: 'list', data: [{ id: `si_${id}`, price: { id: 'price_omz_pro', object: 'price' }, current_period_end: T0 + 30 * 86_400 }] },
});
const invoice = (type: string, subscription: string, created: number) => stripeEvent(type, {
  id: `in_${randomBytes(6).toString('hex')}`, object: 'invoice', customer: `cus_${subscription}`,
  parent: { type: 'subscription_details', subscription_details: { subscription, metadata: {} } },
}, created);

/**
 * One set of status rules (src/modules/billing/subscription-status.ts), driven through the signed webhook route: only
 * active, trialing (before its end) and past_due (for the grace period) give full access. incomplete, unpaid, paused and
 * incomplete_expired are read-only, and a failed payment does not turn them into a past_due with a fresh grace period.
 * A checkout is refused while a Stripe subscription of the app has not ended, with a message that says why.
 */
describe('billing: subscription statuses through the Stripe webhook', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const send = (event: object) => sendStripeEvent(t, WEBHOOK_SECRET, event);
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const hubRow = async (org: string) => (await t.db.admin.query(
    `SELECT s.status, b.past_due_since AS "pastDueSince" FROM hub."Subscription" s LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."organizationId" = $1`, [org])).rows;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(`SELECT status, reason FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows[0];
  const workspaces = async (org: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.workspaces WHERE org_id = $1`, [org])).rows[0].n;
  const checkout = (org: string) => t.http.post(`/v1/orgs/${org}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' });

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

  it.each(['incomplete', 'unpaid', 'paused', 'incomplete_expired'])('%s: read-only, and still so after a failed payment (no grace period)', async (status) => {
    const org = await createOrg(t, ada, `Status ${status} Co`);
    const sub = `sub_${status}_${randomBytes(4).toString('hex')}`;
    await send(stripeEvent('customer.subscription.created', subscriptionObject(sub, status, org), T0));
    expect(await entitlements(org)).toMatchObject({ status, access: 'read_only', readOnlyReason: `the subscription is ${status}`, graceEndsAt: null });

    const failed = invoice('invoice.payment_failed', sub, T0 + 10);
    await send(failed);
    // incomplete_expired has ended (Stripe bills nothing more: no invoice changes it); the others have not, but a failed
    // payment leaves them as they are
    expect(await eventRow(failed.id)).toEqual({
      status: 'ignored',
      reason: status === 'incomplete_expired' ? 'the subscription is incomplete_expired: an invoice does not change that' : `the subscription is ${status}: a failed payment leaves it so`,
    });
    expect(await hubRow(org)).toEqual([{ status, pastDueSince: null }]);
    expect(await entitlements(org)).toMatchObject({ status, access: 'read_only', graceEndsAt: null });
    const write = await t.http.post(`/v1/orgs/${org}/workspaces`).set(ada.auth).send({ name: 'Blocked' }).expect(402);
    expect(write.body.error).toMatchObject({ code: 'billing.subscription_inactive', details: { app: 'omnizen', plan: 'professional', status } });
    expect(await workspaces(org)).toBe(0);
  });

  it('incomplete_expired has ended: an invoice paid afterwards does not make it active (read-only, writes refused), and a checkout is allowed', async () => {
    const org = await createOrg(t, ada, 'Expired Invoice Co');
    const sub = `sub_expired_${randomBytes(4).toString('hex')}`;
    await send(stripeEvent('customer.subscription.created', subscriptionObject(sub, 'incomplete_expired', org), T0));
    const paid = invoice('invoice.paid', sub, T0 + 10);
    await send(paid);
    expect(await eventRow(paid.id)).toEqual({ status: 'ignored', reason: 'the subscription is incomplete_expired: an invoice does not change that' });
    expect(await hubRow(org)).toEqual([{ status: 'incomplete_expired', pastDueSince: null }]);
    expect(await entitlements(org)).toMatchObject({ status: 'incomplete_expired', access: 'read_only', readOnlyReason: 'the subscription is incomplete_expired' });
    const write = await t.http.post(`/v1/orgs/${org}/workspaces`).set(ada.auth).send({ name: 'Blocked' }).expect(402);
    expect(write.body.error).toMatchObject({ code: 'billing.subscription_inactive', details: { status: 'incomplete_expired' } });
    expect(await workspaces(org)).toBe(0);
    const res = await checkout(org).expect(201);
    expect(stripe.checkoutSessions.at(-1)).toBe(res.body.id);
  });

  it('a failed renewal of an active subscription is past_due: full access for the grace period', async () => {
    const org = await createOrg(t, ada, 'Renewal Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_renewal', 'active', org), T0));
    await send(invoice('invoice.payment_failed', 'sub_renewal', T0 + 10));
    expect(await hubRow(org)).toEqual([{ status: 'past_due', pastDueSince: new Date((T0 + 10) * 1000) }]);
    expect(await entitlements(org)).toMatchObject({ status: 'past_due', access: 'full', graceEndsAt: new Date((T0 + 10) * 1000 + 7 * 86_400_000).toISOString() });
  });

  it('a checkout completed with its payment pending is incomplete (read-only, checkout refused as pending) until invoice.paid', async () => {
    const org = await createOrg(t, ada, 'Bank Debit Co');
    const completed = stripeEvent('checkout.session.completed', {
      id: 'cs_test_pending', object: 'checkout.session', mode: 'subscription', payment_status: 'unpaid', client_reference_id: org,
      customer: 'cus_sub_pending', subscription: 'sub_pending', metadata: { org_id: org, app: 'omnizen', plan: 'professional' },
    }, T0);
    await send(completed);
    expect(await hubRow(org)).toEqual([{ status: 'incomplete', pastDueSince: null }]);
    expect(await entitlements(org)).toMatchObject({ plan: 'professional', status: 'incomplete', access: 'read_only' });

    const calls = stripe.requests.length;
    const pending = await checkout(org).expect(409);
    expect(pending.body.error).toEqual({
      code: 'billing.subscription_exists',
      message: 'a payment for this organization\'s omnizen subscription (professional) is pending (incomplete): complete it, or wait until Stripe expires the subscription (23 hours after it began), before starting another checkout',
      details: { app: 'omnizen', plan: 'professional', status: 'incomplete' },
    });
    expect(stripe.requests.length).toBe(calls);

    await send(invoice('invoice.paid', 'sub_pending', T0 + 60));
    expect(await hubRow(org)).toEqual([{ status: 'active', pastDueSince: null }]);
    expect(await entitlements(org)).toMatchObject({ status: 'active', access: 'full' });
  });

  it('a checkout is refused while the Stripe subscription is unpaid or paused (settle it in the portal), allowed once incomplete_expired', async () => {
    const calls = stripe.requests.length;
    for (const [status, remedy] of [['unpaid', 'pay its open invoice'], ['paused', 'resume it with a payment method']]) {
      const org = await createOrg(t, ada, `Refused ${status} Co`);
      await send(stripeEvent('customer.subscription.created', subscriptionObject(`sub_refused_${status}`, status, org), T0));
      const res = await checkout(org).expect(409);
      expect(res.body.error).toEqual({
        code: 'billing.subscription_exists',
        message: `this organization's omnizen subscription (professional) is ${status}, not ended: ${remedy} or cancel it in the billing portal (POST /v1/orgs/${org}/billing/portal) instead of starting another checkout`,
        details: { app: 'omnizen', plan: 'professional', status },
      });
      expect(await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [org]).then((r) => r.rows)).toEqual([]);
    }
    expect(stripe.requests.length).toBe(calls);

    const org = await createOrg(t, ada, 'Expired Co');
    await send(stripeEvent('customer.subscription.created', subscriptionObject('sub_expired', 'incomplete_expired', org), T0));
    const res = await checkout(org).expect(201);
    expect(stripe.checkoutSessions.at(-1)).toBe(res.body.id);
    expect(await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [org]).then((r) => r.rows))
      .toEqual([{ entity_id: res.body.id }]);
  });
});
