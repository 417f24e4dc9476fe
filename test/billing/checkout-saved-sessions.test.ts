import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';

/**
 * Sessions of overtaken checkouts (another checkout drew a new key while Stripe created theirs), which no key holds:
 * - one was saved to be expired (hub.limit_locks.checkout_sessions_to_expire) only after Stripe had failed to expire it,
 *   in a transaction of its own: when that write failed the session was lost, open and payable, and the request
 *   answered 500. Now it is saved in the transaction that finds it overtaken, before Stripe is asked to expire it;
 * - saved ones waited for BillingExpiryJob (up to 10 minutes): the organization's next checkout, or portal call, did not
 *   expire them. Now both try them first (one Stripe fails to expire stays saved for the job);
 * - one the customer paid was forgotten at once (with the 409 of the subscription it started): until the webhook
 *   recorded that subscription, a retry did not see it and could start a second one. Now it stays saved until the
 *   subscription is recorded (or has ended in Stripe), and BillingExpiryJob forgets it then.
 */
describe('billing: checkout sessions saved to be expired', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let bob: TestUser;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan: string, user = ada) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(user.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_session_id AS session, checkout_params IS NOT NULL AS "inDoubt", checkout_sessions_to_expire AS "toExpire"
     FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  const audits = async (orgId: string) => (await t.db.admin.query(
    `SELECT action, entity_id AS session, actor_id AS actor, after FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.%' ORDER BY audit_logs.id`, [orgId])).rows;
  const sessionsOf = (orgId: string) => stripe.checkoutSessions
    .filter((id) => stripe.sessions.get(id)!.metadata.org_id === orgId).map((id) => ({ id, status: stripe.sessions.get(id)!.status, plan: stripe.sessions.get(id)!.metadata.plan }));
  /** An open checkout session of the organization that no key holds any longer, saved to be expired (as an overtaken checkout leaves it). */
  async function savedSession(orgId: string, plan = 'professional'): Promise<string> {
    const started = await checkout(orgId, plan);
    expect(started.status).toBe(201);
    await t.db.admin.query(
      `UPDATE hub.limit_locks SET checkout_key = NULL, checkout_key_at = NULL, checkout_request = NULL, checkout_params = NULL,
         checkout_session_id = NULL, checkout_sessions_to_expire = ARRAY[$2]
       WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId, started.body.id]);
    return started.body.id;
  }
  /** A Stripe customer of the organization (a paid omnizen subscription), so that its portal opens. */
  async function customer(orgId: string, id: string): Promise<void> {
    const [{ id: sub }] = (await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'omnizen', 'professional', 'active', $1) RETURNING id`, [orgId])).rows;
    await t.db.admin.query('INSERT INTO hub.subscription_billing (subscription_id, organization_id, stripe_customer_id) VALUES ($1, $2, $3)', [sub, orgId, id]);
  }

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_saved_sessions',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('an overtaken checkout saves its session before asking Stripe to expire it: Stripe and the database failing after that answer 409, the session stays saved, and the next checkout expires it', async () => {
    const orgId = await createOrg(t, ada, 'Saved Before Expire Co');
    await addMember(t, orgId, bob, 'admin');
    const createHeld = stripe.holdNext();
    let expireHeld: ReturnType<StripeDouble['holdNext']> | undefined;
    let first: Promise<{ status: number; body: any }> | undefined;
    let second: { status: number; body: any };
    let overtaken: { status: number; body: any };
    let whileExpiring: { toExpire: string[] };
    try {
      first = checkout(orgId, 'professional', ada);
      expect((await createHeld.arrived).path).toBe('/v1/checkout/sessions'); // ada's session is being created
      second = await checkout(orgId, 'enterprise', bob); // bob's checkout overtakes hers
      expect(second.status).toBe(201);
      expireHeld = stripe.holdNext(); // ada's expire of her own session is held next
      createHeld.release();
      expect((await expireHeld.arrived).path).toMatch(/^\/v1\/checkout\/sessions\/cs_test_[0-9a-f]+\/expire$/);
      whileExpiring = await keyRow(orgId);
      // from now on every write of the organization's checkout row fails (as a database failing would), and Stripe
      // fails the expire: nothing may be left to write for the session not to be lost
      await t.db.admin.query(`CREATE FUNCTION public.test_limit_locks_down() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the checkout row cannot be written' USING ERRCODE = 'XX000'; END $$`);
      await t.db.admin.query(`CREATE TRIGGER test_limit_locks_down BEFORE UPDATE ON hub.limit_locks FOR EACH ROW
        WHEN (NEW.org_id = '${orgId}'::uuid) EXECUTE FUNCTION public.test_limit_locks_down()`);
      stripe.failNext(502, 'upstream unavailable');
      expireHeld.release();
      overtaken = await first;
    } finally {
      createHeld.release();
      expireHeld?.release();
      await first;
      await t.db.admin.query('DROP TRIGGER IF EXISTS test_limit_locks_down ON hub.limit_locks');
      await t.db.admin.query('DROP FUNCTION IF EXISTS public.test_limit_locks_down()');
    }
    const [adas] = sessionsOf(orgId).filter((s) => s.id !== second.body.id);
    expect([overtaken.status, overtaken.body.error]).toEqual([409, {
      code: 'billing.checkout_superseded',
      message: `another checkout of omnizen started while this one's session was being created (another plan, or another admin); that one is the open checkout, and this session (${adas.id}) is expired shortly (Stripe could not expire it now)`,
      details: { app: 'omnizen', plan: 'professional' },
    }]);
    // saved when Stripe was asked to expire it, and still
    expect(whileExpiring.toExpire).toEqual([adas.id]);
    expect(sessionsOf(orgId)).toEqual([{ id: second.body.id, status: 'open', plan: 'enterprise' }, { id: adas.id, status: 'open', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ session: second.body.id, inDoubt: false, toExpire: [adas.id] });
    expect((await audits(orgId)).map((a) => [a.action, a.session, a.actor])).toEqual([
      ['billing.checkout_started', second.body.id, bob.id],
      ['billing.checkout_started', adas.id, ada.id],
    ]);

    // the next checkout of the organization expires the saved session first (not waiting for the job), then bob's as replaced
    const next = await checkout(orgId, 'professional', ada);
    expect(next.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([
      { id: second.body.id, status: 'expired', plan: 'enterprise' },
      { id: adas.id, status: 'expired', plan: 'professional' },
      { id: next.body.id, status: 'open', plan: 'professional' },
    ]);
    expect(await keyRow(orgId)).toEqual({ session: next.body.id, inDoubt: false, toExpire: [] });
    expect((await audits(orgId)).slice(2)).toEqual([
      { action: 'billing.checkout_expired', session: adas.id, actor: ada.id, after: { app: 'omnizen', reason: 'superseded' } },
      { action: 'billing.checkout_expired', session: second.body.id, actor: ada.id, after: { app: 'omnizen', reason: 'replaced' } },
      { action: 'billing.checkout_started', session: next.body.id, actor: ada.id, after: { app: 'omnizen', plan: 'professional', price: 'price_omz_pro', customer: null } },
    ]);
    expect(await t.app.get(BillingExpiryJob).expireLeftCheckoutSessions()).toEqual([]);
  });

  it('the next checkout fails to expire a saved session: the checkout goes on, the session stays saved, and the billing job expires it', async () => {
    const orgId = await createOrg(t, ada, 'Saved Expire Failed Co');
    const saved = await savedSession(orgId);
    const before = stripe.requests.length;
    stripe.failNext(502, 'upstream unavailable'); // the first Stripe call of the checkout: the saved session's expire
    const next = await checkout(orgId, 'enterprise');
    expect(next.status).toBe(201);
    expect(stripe.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([
      `POST /v1/checkout/sessions/${saved}/expire`, `POST /v1/checkout/sessions/${saved}/expire`, 'POST /v1/checkout/sessions', // stripe-node's retry answered from its key
    ]);
    expect(sessionsOf(orgId)).toEqual([{ id: saved, status: 'open', plan: 'professional' }, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ session: next.body.id, inDoubt: false, toExpire: [saved] });

    expect(await t.app.get(BillingExpiryJob).expireLeftCheckoutSessions()).toEqual([saved]);
    expect(sessionsOf(orgId)).toEqual([{ id: saved, status: 'expired', plan: 'professional' }, { id: next.body.id, status: 'open', plan: 'enterprise' }]);
    expect(await keyRow(orgId)).toEqual({ session: next.body.id, inDoubt: false, toExpire: [] });
  });

  it('a saved session the customer paid meanwhile: the next checkout of the app is 409 subscription_exists and the session stays saved (a retry is 409 again) until the webhook records the subscription; the portal keeps it too', async () => {
    const orgId = await createOrg(t, ada, 'Saved Then Paid Co');
    const saved = await savedSession(orgId);
    stripe.sessions.get(saved)!.status = 'complete';
    stripe.sessions.get(saved)!.subscription = 'sub_test_saved_paid';
    stripe.subscriptions.set('sub_test_saved_paid', { status: 'active', customer: 'cus_test_saved_paid' });
    const next = await checkout(orgId, 'enterprise');
    expect([next.status, next.body.error?.code, next.body.error?.details]).toEqual([409, 'billing.subscription_exists', { app: 'omnizen', plan: 'professional', status: 'active' }]);
    expect(sessionsOf(orgId)).toEqual([{ id: saved, status: 'complete', plan: 'professional' }]);
    // the webhook has not recorded the subscription: the session is what tells the next checkout it exists, so it is kept
    expect(await keyRow(orgId)).toEqual({ session: null, inDoubt: false, toExpire: [saved] });
    // an immediate retry: the same 409, no second session (was: the session forgotten, and a second subscription could start)
    const retry = await checkout(orgId, 'enterprise');
    expect([retry.status, retry.body.error?.code, retry.body.error?.details]).toEqual([409, 'billing.subscription_exists', { app: 'omnizen', plan: 'professional', status: 'active' }]);
    expect(sessionsOf(orgId)).toEqual([{ id: saved, status: 'complete', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ session: null, inDoubt: false, toExpire: [saved] });
    expect((await audits(orgId)).map((a) => a.action)).toEqual(['billing.checkout_started']);
    // nor does the billing job forget it while the subscription is live in Stripe and not recorded
    expect(await t.app.get(BillingExpiryJob).expireLeftCheckoutSessions()).toEqual([]);
    expect(await keyRow(orgId)).toEqual({ session: null, inDoubt: false, toExpire: [saved] });

    // the webhook records the subscription: the job forgets the session (not audited: Stripe did not expire it), and a
    // checkout is refused by the recorded subscription itself
    await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId", "stripeSubscriptionId")
       VALUES (gen_random_uuid(), 'omnizen', 'professional', 'active', $1, 'sub_test_saved_paid')`, [orgId]);
    expect(await t.app.get(BillingExpiryJob).expireLeftCheckoutSessions()).toEqual([saved]);
    expect(await keyRow(orgId)).toEqual({ session: null, inDoubt: false, toExpire: [] });
    const after = await checkout(orgId, 'enterprise');
    expect([after.status, after.body.error?.code]).toEqual([409, 'billing.subscription_exists']);
    expect((await audits(orgId)).map((a) => a.action)).toEqual(['billing.checkout_started']);

    // on the portal (no 409 there): a paid saved session whose subscription is not recorded stays saved, the portal opens
    const other = await createOrg(t, ada, 'Saved Then Paid Portal Co');
    const paid = await savedSession(other);
    stripe.sessions.get(paid)!.status = 'complete';
    stripe.sessions.get(paid)!.subscription = 'sub_test_saved_paid_portal';
    stripe.subscriptions.set('sub_test_saved_paid_portal', { status: 'active', customer: 'cus_test_saved_paid_portal' });
    await customer(other, 'cus_test_saved_paid_portal');
    const portal = await t.http.post(`/v1/orgs/${other}/billing/portal`).set(ada.auth).send({});
    expect(portal.status).toBe(201);
    expect(await keyRow(other)).toEqual({ session: null, inDoubt: false, toExpire: [paid] });
    // Stripe says the subscription has ended: nothing left to tell, the job forgets it
    stripe.subscriptions.get('sub_test_saved_paid_portal')!.status = 'canceled';
    expect(await t.app.get(BillingExpiryJob).expireLeftCheckoutSessions()).toEqual([paid]);
    expect(await keyRow(other)).toEqual({ session: null, inDoubt: false, toExpire: [] });
  });

  it('the portal expires the organization\'s saved sessions before opening; one Stripe fails to expire stays saved and the portal opens anyway', async () => {
    const orgId = await createOrg(t, ada, 'Saved Portal Co');
    const saved = await savedSession(orgId);
    await customer(orgId, 'cus_test_saved_portal');
    const portal = await t.http.post(`/v1/orgs/${orgId}/billing/portal`).set(ada.auth).send({});
    expect(portal.status).toBe(201);
    expect(sessionsOf(orgId)).toEqual([{ id: saved, status: 'expired', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ session: null, inDoubt: false, toExpire: [] });
    expect((await audits(orgId)).slice(1).map((a) => [a.action, a.session, a.actor, a.after])).toEqual([
      ['billing.checkout_expired', saved, ada.id, { app: 'omnizen', reason: 'superseded' }],
      ['billing.portal_opened', portal.body.id, ada.id, { customer: 'cus_test_saved_portal' }],
    ]);

    // Stripe fails the expire: saved still, the portal opens
    const other = await createOrg(t, ada, 'Saved Portal Failed Co');
    const kept = await savedSession(other);
    await customer(other, 'cus_test_saved_portal_failed');
    stripe.failNext(502, 'upstream unavailable');
    const opened = await t.http.post(`/v1/orgs/${other}/billing/portal`).set(ada.auth).send({});
    expect(opened.status).toBe(201);
    expect(sessionsOf(other)).toEqual([{ id: kept, status: 'open', plan: 'professional' }]);
    expect(await keyRow(other)).toEqual({ session: null, inDoubt: false, toExpire: [kept] });
    expect((await audits(other)).slice(1).map((a) => a.action)).toEqual(['billing.portal_opened']);
  });
});
