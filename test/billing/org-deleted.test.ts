import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { DeletedOrgSubscriptions } from '../../src/modules/billing/deleted-org-subscriptions.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

/**
 * A deleted organization stops paying: its subscriptions end, in Stripe first (after deletion nobody can reach its
 * billing portal). Also for the personal plans of a person erased with their personal organization.
 */
const WEBHOOK_SECRET = 'whsec_test_org_deleted';

describe('billing: the subscriptions of a deleted organization are canceled', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;

  const drain = () => t.app.get(OutboxRelay).drain();
  /** a Hub subscription as the Stripe webhook leaves it (or, without a Stripe id, as the Hub provisions one by SQL) */
  const subscribe = async (holder: { orgId: string } | { userId: string }, app: string, plan: string, stripeId: string | null, status = 'active') => {
    const orgId = 'orgId' in holder ? holder.orgId : null;
    const userId = 'userId' in holder ? holder.userId : null;
    const [{ id }] = (await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId", "userId", "stripeSubscriptionId")
       VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6) RETURNING id`, [app, plan, status, orgId, userId, stripeId])).rows;
    await t.db.admin.query('INSERT INTO hub.subscription_billing (subscription_id, organization_id, user_id, stripe_customer_id) VALUES ($1, $2, $3, $4)',
      [id, orgId, userId, stripeId ? 'cus_test_leaving' : null]);
    if (stripeId) stripe.subscriptions.set(stripeId, { status, customer: 'cus_test_leaving' });
    return id as string;
  };
  const hubStatus = async (id: string) => (await t.db.admin.query('SELECT status FROM hub."Subscription" WHERE id = $1', [id])).rows[0].status;
  const cancels = (stripeId: string) => stripe.requests.filter((r) => r.method === 'DELETE' && r.path === `/v1/subscriptions/${stripeId}`);
  const audits = async (orgId: string) => (await t.db.admin.query(
    `SELECT entity_id, actor_id, before->>'status' AS before, after->>'reason' AS reason FROM core.audit_logs
     WHERE org_id = $1 AND action = 'billing.subscription_canceled' ORDER BY entity_id`, [orgId])).rows;
  const events = async (orgId: string, type: string) => (await t.db.admin.query(
    `SELECT payload->'payload' AS payload, attempts, last_error, processed_at IS NOT NULL AS done FROM core.outbox
     WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = $2 ORDER BY id`, [orgId, type])).rows;

  /** a Stripe event, signed as Stripe signs it, delivered to the webhook */
  const deliver = (type: string, object: Record<string, unknown>) => {
    const payload = JSON.stringify({ id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', created: Math.floor(Date.now() / 1000), type, data: { object } });
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    return t.http.post('/v1/billing/stripe/webhook').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload).expect(200);
  };

  const eventId = async (orgId: string) =>
    (await t.db.admin.query(`SELECT id FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'organization.deleted'`, [orgId])).rows[0].id;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PRICES: 'price_omz_pro=omnizen:professional',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('DELETE /v1/orgs/:orgId cancels its Stripe subscription in Stripe, then in the Hub; a Stripe failure is tried again later', async () => {
    const leaving = await createOrg(t, ada, 'Leaving Co');
    const staying = await createOrg(t, ada, 'Staying Co');
    const paid = await subscribe({ orgId: leaving }, 'omnizen', 'professional', 'sub_leaving_1');
    const local = await subscribe({ orgId: leaving }, 'app_securevault', 'business_pro', null, 'trialing');
    const other = await subscribe({ orgId: staying }, 'omnizen', 'professional', 'sub_staying_1');

    await t.http.delete(`/v1/orgs/${leaving}`).set(ada.auth).expect(204);
    expect(await events(leaving, 'organization.deleted')).toEqual([
      { payload: { organizationId: leaving, accountType: 'business', reason: 'deleted' }, attempts: 0, last_error: null, done: false },
    ]);
    expect(await hubStatus(paid)).toBe('active'); // the cancellation happens in the event's job, not in the request

    // Stripe refuses the first try: nothing changes in the Hub, and the event's job is left for a later try
    stripe.failNext(400, 'Stripe is having a moment');
    await drain();
    expect(await hubStatus(paid)).toBe('active');
    const [failed] = await events(leaving, 'organization.deleted');
    expect(failed).toMatchObject({ attempts: 1, done: false, last_error: expect.stringContaining('billing: Stripe could not cancel the subscription: Stripe is having a moment') });

    // the backoff moved instead of waited for
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE org_id = $1 AND processed_at IS NULL`, [leaving]);
    await drain();
    expect(await hubStatus(paid)).toBe('canceled');
    expect(await hubStatus(local)).toBe('canceled'); // no Stripe subscription: ended in the Hub only
    expect(stripe.subscriptions.get('sub_leaving_1')!.status).toBe('canceled');
    expect(cancels('sub_leaving_1')).toHaveLength(2); // the refused try, then the one that worked, with the same key
    expect(new Set(cancels('sub_leaving_1').map((r) => r.idempotencyKey))).toEqual(new Set([`omnizen-org-deleted-${await eventId(leaving)}:${paid}`]));
    expect(cancels('sub_staying_1')).toEqual([]);
    expect(await hubStatus(other)).toBe('active');

    expect(await audits(leaving)).toEqual([paid, local].sort().map((id) => ({ entity_id: id, actor_id: 'service:billing', before: id === paid ? 'active' : 'trialing', reason: 'organization_deleted' })));
    const canceled = await events(leaving, 'subscription.canceled');
    expect(canceled.map((e) => [e.payload.subscriptionId, e.payload.status, e.payload.previousStatus]).sort()).toEqual(
      [[paid, 'canceled', 'active'], [local, 'canceled', 'trialing']].sort());
    expect(await events(staying, 'subscription.canceled')).toEqual([]);

    // the event delivered once more (subscribers run at least once): nothing is called or written again
    const [row] = (await t.db.admin.query(`SELECT id, org_id, payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'organization.deleted'`, [leaving])).rows;
    const requests = stripe.requests.length;
    const again = await t.app.get(DeletedOrgSubscriptions).cancelAll({
      id: row.id, orgId: row.org_id, type: 'organization.deleted', version: 1, occurredAt: row.payload.occurredAt, payload: row.payload.payload,
    });
    expect(again).toEqual([]);
    expect(stripe.requests.length).toBe(requests);
    expect(await audits(leaving)).toHaveLength(2);
  });

  it('a subscription Stripe has canceled already (Stripe answers 404 to the cancel) is ended in the Hub; one ended in the Hub is left alone', async () => {
    const org = await createOrg(t, ada, 'Canceled in Stripe');
    const sub = await subscribe({ orgId: org }, 'omnizen', 'professional', 'sub_gone_1');
    const old = await subscribe({ orgId: org }, 'app_securevault', 'business_pro', 'sub_gone_old', 'canceled');
    stripe.subscriptions.get('sub_gone_1')!.status = 'canceled'; // its customer.subscription.deleted has not arrived yet
    await t.http.delete(`/v1/orgs/${org}`).set(ada.auth).expect(204);
    await drain();
    expect(cancels('sub_gone_1')).toHaveLength(1);
    expect(stripe.requests.at(-1)).toMatchObject({ method: 'GET', path: '/v1/subscriptions/sub_gone_1' });
    expect(await hubStatus(sub)).toBe('canceled');
    expect(cancels('sub_gone_old')).toEqual([]);
    expect(await audits(org)).toEqual([{ entity_id: sub, actor_id: 'service:billing', before: 'active', reason: 'organization_deleted' }]);
    expect(await hubStatus(old)).toBe('canceled');
    expect((await events(org, 'organization.deleted'))[0]).toMatchObject({ attempts: 1, done: true, last_error: null });
  });

  it('a subscription the expiry job ended on its own (Stripe not asked; it may renew) is canceled in Stripe too, and its end made final', async () => {
    const org = await createOrg(t, ada, 'Ended Here Only');
    const sub = await subscribe({ orgId: org }, 'omnizen', 'professional', 'sub_ended_here', 'canceled');
    await t.db.admin.query(`UPDATE hub.subscription_billing SET ended_locally_at = now() - interval '1 hour' WHERE subscription_id = $1`, [sub]);
    stripe.subscriptions.get('sub_ended_here')!.status = 'active'; // Stripe's end not processed yet (or renewed): it would bill on
    await t.http.delete(`/v1/orgs/${org}`).set(ada.auth).expect(204);
    await drain();
    expect(stripe.subscriptions.get('sub_ended_here')!.status).toBe('canceled');
    expect(cancels('sub_ended_here').map((r) => r.idempotencyKey)).toEqual([`omnizen-org-deleted-${await eventId(org)}:${sub}`]);
    expect((await t.db.admin.query(`SELECT s.status, b.ended_locally_at AS "endedLocallyAt" FROM hub."Subscription" s
      JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s.id = $1`, [sub])).rows).toEqual([{ status: 'canceled', endedLocallyAt: null }]);
    expect(await audits(org)).toEqual([{ entity_id: sub, actor_id: 'service:billing', before: 'canceled', reason: 'organization_deleted' }]);
    expect(await events(org, 'subscription.canceled')).toEqual([]); // sent when the job ended it
    // Stripe's late renewal of it changes nothing now: canceled is final
    await deliver('customer.subscription.updated', {
      id: 'sub_ended_here', object: 'subscription', customer: 'cus_test_leaving', status: 'active', metadata: { org_id: org }, cancel_at_period_end: false, trial_end: null,
      items: { object: 'list', data: [{ id: 'si_ended_here', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: Math.floor(Date.now() / 1000) + 30 * 86_400 }] },
    });
    await drain();
    expect(await hubStatus(sub)).toBe('canceled');
    expect(cancels('sub_ended_here')).toHaveLength(1);
  });

  it('a subscription Stripe still bills is never taken for ended: the event stays unfinished until Stripe cancels it', async () => {
    const org = await createOrg(t, ada, 'Stripe says no');
    const sub = await subscribe({ orgId: org }, 'omnizen', 'professional', 'sub_refused_1');
    await t.http.delete(`/v1/orgs/${org}`).set(ada.auth).expect(204);
    stripe.failNext(404, 'No such subscription (a transient answer)'); // the read that follows says it is active
    await drain();
    expect(await hubStatus(sub)).toBe('active');
    expect(stripe.subscriptions.get('sub_refused_1')!.status).toBe('active');
    expect((await events(org, 'organization.deleted'))[0]).toMatchObject({ attempts: 1, done: false, last_error: expect.stringContaining('Stripe could not cancel the subscription') });
  });

  it('an organization.deleted event for an organization that is not deleted (a forged outbox row) cancels nothing', async () => {
    const org = await createOrg(t, ada, 'Still Here');
    const sub = await subscribe({ orgId: org }, 'omnizen', 'professional', 'sub_still_here');
    // what a member's REST insert into core.outbox wrote before migration 20270202000200 (owner connection here)
    await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'domain_event', $2)`, [org, {
      type: 'organization.deleted', version: 1, occurredAt: new Date().toISOString(),
      payload: { organizationId: org, accountType: 'business', reason: 'deleted' },
    }]);
    const requests = stripe.requests.length;
    await drain();
    expect(stripe.requests.length).toBe(requests);
    expect(stripe.subscriptions.get('sub_still_here')!.status).toBe('active');
    expect(await hubStatus(sub)).toBe('active');
    expect(await audits(org)).toEqual([]);
    expect(await events(org, 'subscription.canceled')).toEqual([]);
    expect((await events(org, 'organization.deleted'))[0]).toMatchObject({ done: true, last_error: null });
  });

  it('a checkout paid after the deletion leaves no live subscription: it is canceled in Stripe and stored canceled, audited', async () => {
    const org = await createOrg(t, ada, 'Paid Too Late');
    // the admin starts a checkout (its URL stays valid for a day), then the owner deletes the organization
    const checkout = await t.http.post(`/v1/orgs/${org}/billing/checkout`).set(ada.auth).send({ app: 'omnizen', plan: 'professional' }).expect(201);
    const form = stripe.requests.find((r) => r.path === '/v1/checkout/sessions' && r.form.client_reference_id === org)!.form;
    await t.http.delete(`/v1/orgs/${org}`).set(ada.auth).expect(204);
    await drain(); // organization.deleted: nothing to cancel yet
    expect((await t.db.admin.query(`SELECT id FROM hub."Subscription" WHERE "organizationId" = $1`, [org])).rows).toEqual([]);

    // the admin pays: Stripe now bills the subscription and sends both events
    stripe.subscriptions.set('sub_paid_too_late', { status: 'active', customer: 'cus_test_late' });
    const metadata = { org_id: form['metadata[org_id]'], app: form['metadata[app]'], plan: form['metadata[plan]'] };
    await deliver('checkout.session.completed', {
      id: checkout.body.id, object: 'checkout.session', mode: 'subscription', client_reference_id: org, customer: 'cus_test_late', subscription: 'sub_paid_too_late', metadata,
    });
    await deliver('customer.subscription.created', {
      id: 'sub_paid_too_late', object: 'subscription', customer: 'cus_test_late', status: 'active', metadata, cancel_at_period_end: false, trial_end: null,
      items: { object: 'list', data: [{ id: 'si_late', price: { id: 'price_omz_pro', object: 'price' }, current_period_end: Math.floor(Date.now() / 1000) + 30 * 86_400 }] },
    });
    await drain();

    expect((await t.db.admin.query(`SELECT "appId", plan, status, "stripeSubscriptionId" FROM hub."Subscription" WHERE "organizationId" = $1`, [org])).rows).toEqual([
      { appId: 'omnizen', plan: 'professional', status: 'canceled', stripeSubscriptionId: 'sub_paid_too_late' },
    ]);
    expect(stripe.subscriptions.get('sub_paid_too_late')!.status).toBe('canceled');
    // canceled in Stripe by the first event; the second (active) finds it canceled, which is final: Stripe is not asked again
    expect(cancels('sub_paid_too_late').map((r) => r.idempotencyKey)).toEqual(['omnizen-org-deleted-sub_paid_too_late']);
    expect((await t.db.admin.query(`SELECT type, status, reason FROM hub."BillingEvent" WHERE "orgId" = $1 ORDER BY type`, [org])).rows).toEqual([
      { type: 'checkout.session.completed', status: 'processed', reason: null },
      { type: 'customer.subscription.created', status: 'ignored', reason: 'Stripe subscription sub_paid_too_late is canceled, which is final: it does not become active' },
    ]);
    expect((await t.db.admin.query(
      `SELECT action, after->>'status' AS status, after->>'reason' AS reason, after->>'stripeCanceled' AS "stripeCanceled" FROM core.audit_logs
       WHERE org_id = $1 AND action LIKE 'billing.subscription_%' ORDER BY id`, [org])).rows).toEqual([
      { action: 'billing.subscription_created', status: 'canceled', reason: 'organization_deleted', stripeCanceled: 'true' },
    ]);
    expect((await events(org, 'subscription.created')).map((e) => e.payload.status)).toEqual(['canceled']);
    // nothing is left for the entitlements of anyone: the organization is gone (404)
    await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(404);
  });

  it("erasing a person (DELETE /v1/me) cancels their personal plans with their personal organization", async () => {
    const eve = await registerUser(t, 'eve');
    const personal = await subscribe({ userId: eve.id }, 'app_securevault', 'pro', 'sub_eve_personal');
    const adas = await subscribe({ userId: ada.id }, 'app_securevault', 'pro', 'sub_ada_personal');
    await t.http.delete('/v1/me').set(eve.auth).send({}).expect(200);
    expect(await events(eve.personalOrgId, 'organization.deleted')).toEqual([
      { payload: { organizationId: eve.personalOrgId, accountType: 'personal', reason: 'erased' }, attempts: 0, last_error: null, done: false },
    ]);
    await drain();
    expect(await hubStatus(personal)).toBe('canceled');
    expect(stripe.subscriptions.get('sub_eve_personal')!.status).toBe('canceled');
    expect(await hubStatus(adas)).toBe('active');
    expect(cancels('sub_ada_personal')).toEqual([]);
    expect(await audits(eve.personalOrgId)).toEqual([{ entity_id: personal, actor_id: 'service:billing', before: 'active', reason: 'organization_deleted' }]);
  });
});
