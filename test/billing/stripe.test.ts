import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

const WEBHOOK_SECRET = 'whsec_test_omnizen_billing';
const T0 = Math.floor(Date.now() / 1000) - 86_400; // Stripe event times (seconds), a day ago: past_due grace counts from them

/** A Stripe event as Stripe sends it (only the fields the billing module reads, plus the envelope). */
function stripeEvent(type: string, object: Record<string, unknown>, created: number, id = `evt_${randomBytes(8).toString('hex')}`) {
  return { id, object: 'event', api_version: '2026-10-28.endive', created, livemode: false, pending_webhooks: 1, type, data: { object } };
}

function subscriptionObject(id: string, price: string, status: string, metadata: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    id, object: 'subscription', customer: 'cus_test_1', status, metadata, cancel_at_period_end: false, trial_end: null,
    items: { object: 'list', data: [{ id: `si_${id}`, price: { id: price, object: 'price' }, current_period_end: T0 + 30 * 86_400 }] },
    ...extra,
  };
}

describe('billing: Stripe checkout, portal, webhooks and the expiry job', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let orgId: string;

  const send = (event: object, signature?: string) => {
    const payload = JSON.stringify(event);
    const header = signature ?? Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    return t.http.post('/v1/billing/stripe/webhook').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload);
  };
  const drain = () => t.app.get(OutboxRelay).drain();
  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const eventRow = async (stripeEventId: string) => (await t.db.admin.query(`SELECT * FROM hub."BillingEvent" WHERE "stripeEventId" = $1`, [stripeEventId])).rows[0];

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env,
      REDIS_URL: '', // the outbox runs jobs in-process: drain() processes them before it returns
      STRIPE_SECRET_KEY: 'sk_test_double',
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise,price_sv_pro=app_securevault:pro,price_sv_bpro=app_securevault:business_pro',
    });
    ada = await registerUser(t, 'ada');
    orgId = await createOrg(t, ada, 'Stripe Co');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('creates a Checkout session for an organization through the SDK (to the double), with metadata, and audits it', async () => {
    const res = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' }).expect(201);
    expect(res.body.url).toMatch(/^https:\/\/checkout\.stripe\.test\/c\/pay\/cs_test_/);
    const call = stripe.requests.at(-1)!;
    expect(call).toMatchObject({ method: 'POST', path: '/v1/checkout/sessions', authorization: 'Bearer sk_test_double' });
    expect(call.form).toMatchObject({
      mode: 'subscription', 'line_items[0][price]': 'price_omz_pro', client_reference_id: orgId,
      'metadata[org_id]': orgId, 'metadata[app]': 'omnizen', 'metadata[plan]': 'professional', 'subscription_data[metadata][org_id]': orgId,
      customer_email: ada.email,
    });
    const audit = await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [orgId]);
    expect(audit.rows).toEqual([{ action: 'billing.checkout_started', entity_id: res.body.id }]);
  });

  it('refuses checkouts that cannot be sold: no price, wrong audience, unknown plan; viewers and strangers', async () => {
    const checkouts = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [orgId])).rows[0].n;
    const before = { checkouts: await checkouts(), stripeCalls: stripe.requests.length };
    const checkout = (body: object, auth?: Record<string, string>) => {
      const req = t.http.post(`/v1/orgs/${orgId}/billing/checkout`);
      return (auth ? req.set(auth) : req).send(body);
    };
    const custom = await checkout({ app: 'omnizen', plan: 'custom' }, ada.auth).expect(422);
    expect(custom.body.error).toMatchObject({ code: 'billing.plan_not_for_sale' });
    const personal = await checkout({ app: 'app_securevault', plan: 'pro' }, ada.auth).expect(422);
    expect(personal.body.error).toMatchObject({ code: 'billing.plan_audience', message: 'the app_securevault plan pro is a personal plan; this is a business account' });
    const gold = await checkout({ app: 'omnizen', plan: 'gold' }, ada.auth).expect(422);
    expect(gold.body.error).toMatchObject({ code: 'billing.plan_unknown', message: expect.stringContaining('gold') });
    const coupon = await checkout({ app: 'omnizen', plan: 'professional', coupon: 'x' }, ada.auth).expect(400);
    expect(coupon.body.error).toMatchObject({ code: 'validation_failed', details: [expect.objectContaining({ field: 'coupon' })] });
    const viewer = await registerUser(t, 'viewer');
    await addMember(t, orgId, viewer, 'viewer');
    const asViewer = await checkout({ app: 'omnizen', plan: 'professional' }, viewer.auth).expect(403);
    expect(asViewer.body.error.code).toBe('forbidden.role');
    const stranger = await registerUser(t, 'stranger');
    const asStranger = await checkout({ app: 'omnizen', plan: 'professional' }, stranger.auth).expect(404);
    expect(asStranger.body.error.code).toBe('organization.not_found');
    const anonymous = await checkout({ app: 'omnizen', plan: 'professional' }).expect(401);
    expect(anonymous.body.error.code).toBe('auth.unauthorized');
    const unsigned = await t.http.post('/v1/billing/stripe/webhook').send({}).expect(400);
    expect(unsigned.body.error.code).toBe('billing.webhook_signature');
    // nothing was started: no audit row, no call to Stripe
    expect({ checkouts: await checkouts(), stripeCalls: stripe.requests.length }).toEqual(before);
  });

  it('answers 502 naming what Stripe said when Stripe refuses, and writes nothing', async () => {
    // another organization: the first test's checkout, asked again, is answered with its open session (checkout-concurrency.test.ts)
    const refusedOrg = await createOrg(t, ada, 'Refused Co');
    stripe.failNext(400, 'No such price: price_omz_pro');
    const res = await t.http.post(`/v1/orgs/${refusedOrg}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' }).expect(502);
    expect(res.body.error).toMatchObject({ code: 'billing.stripe_failed', message: 'Stripe could not create a checkout session: No such price: price_omz_pro' });
    expect(JSON.stringify(res.body)).not.toContain('sk_test_double');
    const audit = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.checkout_started'`, [refusedOrg]);
    expect(audit.rows[0].n).toBe(0);
  });

  it('rejects a bad signature with 400 and changes nothing', async () => {
    const event = stripeEvent('customer.subscription.created', subscriptionObject('sub_bad', 'price_omz_pro', 'active', { org_id: orgId }), T0);
    const forged = Stripe.webhooks.generateTestHeaderString({ payload: JSON.stringify(event), secret: 'whsec_someone_else' });
    const res = await send(event, forged).expect(400);
    expect(res.body.error.code).toBe('billing.webhook_signature');
    const garbage = await send(event, 'garbage').expect(400);
    expect(garbage.body.error.code).toBe('billing.webhook_signature');
    // a body altered after signing
    const signed = Stripe.webhooks.generateTestHeaderString({ payload: JSON.stringify(event), secret: WEBHOOK_SECRET });
    const altered = await send({ ...event, type: 'customer.subscription.deleted' }, signed).expect(400);
    expect(altered.body.error.code).toBe('billing.webhook_signature');
    // signed, but not an event
    const notEvent = await send({ hello: 'world' }).expect(400);
    expect(notEvent.body.error.code).toBe('billing.webhook_payload');
    await drain();
    expect(await eventRow(event.id)).toBeUndefined();
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM hub."BillingEvent"`)).rows[0].n).toBe(0);
    expect((await entitlements(orgId)).source).toBe('default');
  });

  it('applies a subscription event through the outbox, once, even when Stripe retries it', async () => {
    const event = stripeEvent('customer.subscription.created', subscriptionObject('sub_org_1', 'price_omz_pro', 'active', { org_id: orgId }), T0 + 10);
    expect((await send(event).expect(200)).body).toEqual({ received: true, duplicate: false });
    expect((await eventRow(event.id)).status).toBe('received'); // the endpoint only stores and enqueues
    await drain();
    expect(await eventRow(event.id)).toMatchObject({ status: 'processed', orgId });
    const ent = await entitlements(orgId);
    expect(ent).toMatchObject({ plan: 'professional', status: 'active', source: 'subscription', access: 'full', cancelAtPeriodEnd: false });
    expect(new Date(ent.currentPeriodEnd).getTime()).toBe((T0 + 30 * 86_400) * 1000);
    expect(ent.features.find((f: any) => f.feature === 'users').limit).toBe(25);

    expect((await send(event).expect(200)).body).toEqual({ received: true, duplicate: true });
    await drain();
    const { rows } = await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM hub."BillingEvent" WHERE "stripeEventId" = $1) AS events,
              (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $2 AND action LIKE 'billing.subscription_%') AS audits`, [event.id, orgId]);
    expect(rows[0]).toEqual({ events: 1, audits: 1 });
    const audit = await t.db.admin.query(`SELECT actor_id, principal_type, action FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.subscription_created'`, [orgId]);
    expect(audit.rows).toEqual([{ actor_id: 'service:stripe', principal_type: 'service', action: 'billing.subscription_created' }]);
  });

  it('keeps the newest state when events arrive out of order', async () => {
    const newer = stripeEvent('customer.subscription.updated', subscriptionObject('sub_org_1', 'price_omz_ent', 'active', { org_id: orgId }), T0 + 300);
    const older = stripeEvent('customer.subscription.updated', subscriptionObject('sub_org_1', 'price_omz_pro', 'past_due', { org_id: orgId }), T0 + 200);
    await send(newer).expect(200);
    await drain();
    await send(older).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'active' });
    expect(await eventRow(older.id)).toMatchObject({ status: 'ignored', reason: expect.stringMatching(/^out of order/) });
  });

  it('an unknown price: a known subscription takes all but the plan, read-only while on it (the contract row paused); a new one is recorded as ignored, logged, and changes nothing', async () => {
    const known = stripeEvent('customer.subscription.updated',
      subscriptionObject('sub_org_1', 'price_unknown', 'past_due', { org_id: orgId }, { cancel_at_period_end: true }), T0 + 400);
    await send(known).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({
      plan: 'enterprise', status: 'paused', cancelAtPeriodEnd: true, access: 'read_only',
      readOnlyReason: 'the subscription is on price price_unknown, which is not a plan of omnizen for this organization: change it in the billing portal',
    });
    expect(await eventRow(known.id)).toMatchObject({
      status: 'processed', reason: 'price price_unknown is not mapped to an app plan (STRIPE_PRICES): the plan stays enterprise, read-only while the subscription is on that price',
    });
    const event = stripeEvent('customer.subscription.created', subscriptionObject('sub_org_unknown', 'price_unknown', 'active', { org_id: orgId }), T0 + 450);
    await send(event).expect(200);
    await drain();
    expect(await eventRow(event.id)).toMatchObject({ status: 'ignored', reason: 'price price_unknown is not mapped to an app plan (STRIPE_PRICES)' });
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'paused', cancelAtPeriodEnd: true });
    const { rows: subscriptions } = await t.db.admin.query(`SELECT "stripeSubscriptionId" AS sub, plan, status FROM hub."Subscription" WHERE "organizationId" = $1`, [orgId]);
    expect(subscriptions).toEqual([{ sub: 'sub_org_1', plan: 'enterprise', status: 'paused' }]);
    // the organization's admins see the event log
    const events = await t.http.get(`/v1/orgs/${orgId}/billing/events`).set(ada.auth).expect(200);
    expect(events.body.items.find((e: any) => e.stripeEventId === event.id)).toMatchObject({ status: 'ignored' });
    // in pages, filtered: every event of the organization once, newest received first
    const expected = (await t.db.admin.query(`SELECT "stripeEventId" AS id, status, type FROM hub."BillingEvent" WHERE "orgId" = $1 ORDER BY "receivedAt" DESC, id DESC`, [orgId])).rows;
    const pages = async (query: string) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await t.http.get(`/v1/orgs/${orgId}/billing/events?limit=2${query}${cursor ? `&cursor=${cursor}` : ''}`).set(ada.auth).expect(200);
        seen.push(...res.body.items.map((e: any) => e.stripeEventId));
        cursor = res.body.nextCursor;
      } while (cursor && seen.length < 100);
      return seen;
    };
    expect(expected.length).toBeGreaterThan(2);
    expect(await pages('')).toEqual(expected.map((e) => e.id));
    expect(await pages('&status=ignored')).toEqual(expected.filter((e) => e.status === 'ignored').map((e) => e.id));
    expect((await t.http.get(`/v1/orgs/${orgId}/billing/events?type=customer.subscription.updated&status=ignored`).set(ada.auth).expect(200)).body.items
      .map((e: any) => e.stripeEventId)).toEqual(expected.filter((e) => e.status === 'ignored' && e.type === 'customer.subscription.updated').map((e) => e.id));
    const bad = await t.http.get(`/v1/orgs/${orgId}/billing/events?status=lost`).set(ada.auth).expect(400);
    expect(bad.body.error.details).toEqual([expect.objectContaining({ field: 'status' })]);
    const audited = await t.db.admin.query(
      `SELECT action, principal_type FROM core.audit_logs WHERE org_id = $1 AND after->>'stripeEventId' = $2 ORDER BY id`, [orgId, event.id]);
    expect(audited.rows).toEqual([
      { action: 'billing.event_received', principal_type: 'service' },
      { action: 'billing.event_ignored', principal_type: 'service' },
    ]);
    // back on a mapped price: the access its status gives (past_due, in its grace period)
    await send(stripeEvent('customer.subscription.updated',
      subscriptionObject('sub_org_1', 'price_omz_ent', 'past_due', { org_id: orgId }, { cancel_at_period_end: true }), T0 + 460)).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({ plan: 'enterprise', status: 'past_due', access: 'full', readOnlyReason: null });
  });

  it('invoice.payment_failed → past_due (grace), invoice.paid → active, deleted → canceled (read-only)', async () => {
    const invoice = (type: string, at: number) => stripeEvent(type, {
      id: `in_${at}`, object: 'invoice', customer: 'cus_test_1',
      parent: { type: 'subscription_details', subscription_details: { subscription: 'sub_org_1', metadata: {} } },
    }, at);
    await send(invoice('invoice.payment_failed', T0 + 500)).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({ status: 'past_due', access: 'full' });
    await send(invoice('invoice.paid', T0 + 600)).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({ status: 'active', graceEndsAt: null });
    await send(stripeEvent('customer.subscription.deleted', subscriptionObject('sub_org_1', 'price_omz_ent', 'canceled', { org_id: orgId }), T0 + 700)).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({ status: 'canceled', access: 'read_only' });
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(ada.auth).send({ name: 'After cancel' }).expect(402);
    // canceled stays canceled: the last open invoice paid later, and a failed payment of the same second, change nothing
    await send(invoice('invoice.paid', T0 + 750)).expect(200);
    await send(invoice('invoice.payment_failed', T0 + 750)).expect(200);
    await drain();
    expect(await entitlements(orgId)).toMatchObject({ status: 'canceled', access: 'read_only' });
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(ada.auth).send({ name: 'Revived?' }).expect(402);
    const ignored = await t.db.admin.query(
      `SELECT after->>'type' AS type, after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.event_ignored' ORDER BY id DESC LIMIT 2`, [orgId]);
    expect(ignored.rows).toEqual(['invoice.payment_failed', 'invoice.paid'].map((type) => ({ type, reason: 'the subscription is canceled: an invoice does not change that' })));
  });

  it('opens the customer portal once Stripe has named the customer', async () => {
    const fresh = await createOrg(t, ada, 'No customer');
    const none = await t.http.post(`/v1/orgs/${fresh}/billing/portal`).set(ada.auth).send({}).expect(409);
    expect(none.body.error.code).toBe('billing.no_customer');
    const res = await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({ returnPath: '/settings/billing' }).expect(201);
    expect(res.body.url).toMatch(/^https:\/\/billing\.stripe\.test\//);
    expect(stripe.requests.at(-1)).toMatchObject({ path: '/v1/billing_portal/sessions', form: { customer: 'cus_test_1', return_url: 'http://localhost:3000/settings/billing' } });
  });

  it('checkout.session.completed provisions a personal plan (organizationId NULL) for the person', async () => {
    const checkout = await t.http.post('/v1/me/billing/checkout').set(ada.auth).send({ app: 'app_securevault', plan: 'pro' }).expect(201);
    expect(stripe.requests.at(-1)!.form).toMatchObject({ 'metadata[user_id]': ada.id, 'metadata[org_id]': ada.personalOrgId, 'line_items[0][price]': 'price_sv_pro' });
    const event = stripeEvent('checkout.session.completed', {
      id: checkout.body.id, object: 'checkout.session', mode: 'subscription', subscription: 'sub_personal_1', customer: 'cus_test_ada',
      client_reference_id: ada.personalOrgId, metadata: { org_id: ada.personalOrgId, app: 'app_securevault', plan: 'pro', user_id: ada.id },
    }, T0 + 800);
    await send(event).expect(200);
    await drain();
    const me = await t.http.get('/v1/me/entitlements?app=app_securevault').set(ada.auth).expect(200);
    expect(me.body).toMatchObject({ plan: 'pro', status: 'active', subject: { type: 'user', userId: ada.id } });
    const { rows } = await t.db.admin.query(`SELECT "userId", "organizationId", "stripeSubscriptionId" FROM hub."Subscription" WHERE "userId" = $1`, [ada.id]);
    expect(rows).toEqual([{ userId: ada.id, organizationId: null, stripeSubscriptionId: 'sub_personal_1' }]);
  });

  it('keeps the trialing status Stripe reported when the checkout completion arrives after it', async () => {
    const trialOrg = await createOrg(t, ada, 'Trialing');
    const trialEnd = T0 + 14 * 86_400;
    const created = stripeEvent('customer.subscription.created',
      subscriptionObject('sub_trial_1', 'price_omz_pro', 'trialing', { org_id: trialOrg }, { trial_end: trialEnd }), T0 + 1000);
    const completed = stripeEvent('checkout.session.completed', {
      id: 'cs_test_trial', object: 'checkout.session', mode: 'subscription', subscription: 'sub_trial_1', customer: 'cus_test_trial',
      client_reference_id: trialOrg, metadata: { org_id: trialOrg, app: 'omnizen', plan: 'professional' },
    }, T0 + 1001);
    await send(created).expect(200);
    await send(completed).expect(200);
    await drain();
    const ent = await entitlements(trialOrg);
    expect(ent).toMatchObject({ plan: 'professional', status: 'trialing', access: 'full' });
    expect(new Date(ent.trialEndsAt).getTime()).toBe(trialEnd * 1000);
    // the trial's own zero invoice, paid at once, does not end the trial
    await send(stripeEvent('invoice.paid', { id: 'in_trial_0', object: 'invoice', customer: 'cus_test_trial', amount_paid: 0,
      parent: { type: 'subscription_details', subscription_details: { subscription: 'sub_trial_1', metadata: {} } } }, T0 + 1002)).expect(200);
    await drain();
    expect(await entitlements(trialOrg)).toMatchObject({ status: 'trialing', trialEndsAt: ent.trialEndsAt });
  });

  it('ignores (and records) an event it cannot place', async () => {
    const event = stripeEvent('customer.subscription.updated', subscriptionObject('sub_nobody', 'price_omz_pro', 'active', {}), T0 + 900);
    await send(event).expect(200);
    expect(await eventRow(event.id)).toMatchObject({ status: 'ignored', orgId: null });
  });

  it('the scheduled job ends expired trials and subscriptions canceled at period end, and audits it', async () => {
    const trialOrg = await createOrg(t, ada, 'Trial ends');
    const periodOrg = await createOrg(t, ada, 'Period ends');
    const insert = async (org: string, status: string, billing: string) => {
      const [{ id }] = (await t.db.admin.query(
        `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'omnizen', 'professional', $1, $2) RETURNING id`, [status, org])).rows;
      await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, organization_id, ${billing}) VALUES ($1, $2, ${billing.includes(',') ? 'true, now() - interval \'1 hour\'' : 'now() - interval \'1 hour\''})`, [id, org]);
      return id;
    };
    const trial = await insert(trialOrg, 'trialing', 'trial_ends_at');
    const period = await insert(periodOrg, 'active', 'cancel_at_period_end, current_period_end');
    expect((await entitlements(trialOrg)).access).toBe('read_only'); // an ended trial is read-only at once, before the job

    const ended = await t.app.get(BillingExpiryJob).expire();
    expect(ended.sort()).toEqual([trial, period].sort());
    expect(await entitlements(trialOrg)).toMatchObject({ status: 'canceled', access: 'read_only' });
    expect(await entitlements(periodOrg)).toMatchObject({ status: 'canceled', access: 'read_only' });
    const audit = await t.db.admin.query(`SELECT org_id, principal_type, after->>'reason' AS reason FROM core.audit_logs WHERE action = 'billing.subscription_expired' ORDER BY reason`);
    expect(audit.rows).toEqual([
      { org_id: periodOrg, principal_type: 'system', reason: 'canceled_at_period_end' },
      { org_id: trialOrg, principal_type: 'system', reason: 'trial_ended' },
    ]);
    expect(await t.app.get(BillingExpiryJob).expire()).toEqual([]);
  });
});
