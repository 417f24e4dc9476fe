import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/**
 * The expiry job ends local trials only: a trial Stripe manages is converted to paid (or ended) by Stripe, whose event may
 * come late; the job must not cancel it meanwhile (nor tell the customer it was canceled). Its end makes it read-only.
 */
describe('billing: the expiry job leaves Stripe-managed trials to Stripe', () => {
  let t: TestApp;
  const clock = new ManualClock();
  let owner: TestUser;
  let stripeOrg: string;
  let localOrg: string;
  let job: BillingExpiryJob;

  const trialSubscription = async (orgId: string, id: string, trialEndsAt: Date, stripeId: string | null) => {
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "stripeSubscriptionId", "createdAt", "updatedAt")
      VALUES ($1, NULL, 'omnizen', 'professional', 'trialing', $2, $3, now(), now())`, [id, orgId, stripeId]);
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, organization_id, trial_ends_at) VALUES ($1, $2, $3)`, [id, orgId, trialEndsAt]);
  };
  const row = async (id: string) => (await t.db.admin.query(`SELECT status, "stripeSubscriptionId" FROM hub."Subscription" WHERE id = $1`, [id])).rows[0];
  const canceledEvents = async (orgId: string) => (await t.db.admin.query(
    `SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = 'subscription.canceled'`, [orgId])).rows.map((r) => r.payload);
  const expiredAudits = async (orgId: string) => (await t.db.admin.query(
    `SELECT entity_id, after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.subscription_expired'`, [orgId])).rows;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined }, { clock });
    owner = await registerUser(t, 'owner');
    stripeOrg = await createOrg(t, owner, 'Stripe Trial Co');
    localOrg = await createOrg(t, owner, 'Local Trial Co');
    job = t.app.get(BillingExpiryJob);
    // the Stripe trial ended an hour ago (Stripe's conversion event has not come yet); the local one ends in a day
    await trialSubscription(stripeOrg, 'sub-stripe-trial', new Date(clock.now() - HOUR_MS), 'sub_stripe_converts_it');
    await trialSubscription(localOrg, 'sub-local-trial', new Date(clock.now() + DAY_MS), null);
  });
  afterAll(() => t.close());

  it('does not cancel a Stripe trial past its end (no subscription.canceled); it is read-only until Stripe says what became of it', async () => {
    expect(await job.expire()).toEqual([]);
    expect(await row('sub-stripe-trial')).toEqual({ status: 'trialing', stripeSubscriptionId: 'sub_stripe_converts_it' });
    expect(await canceledEvents(stripeOrg)).toEqual([]);
    expect(await expiredAudits(stripeOrg)).toEqual([]);
    const ent = await t.http.get(`/v1/orgs/${stripeOrg}/entitlements?app=omnizen`).set(owner.auth).expect(200);
    expect(ent.body).toMatchObject({ status: 'trialing', access: 'read_only', readOnlyReason: expect.stringMatching(/^the trial ended on /) });
    await t.http.post(`/v1/orgs/${stripeOrg}/workspaces`).set(owner.auth).send({ name: 'During the wait' }).expect(402);
  });

  it('still ends a local trial once its end has passed on the injected clock, with its subscription.canceled; the Stripe trial still not', async () => {
    expect(await job.expire()).toEqual([]); // the local trial has a day left
    clock.advance(2 * DAY_MS);
    expect(await job.expire()).toEqual(['sub-local-trial']);
    expect(await row('sub-local-trial')).toEqual({ status: 'canceled', stripeSubscriptionId: null });
    expect(await canceledEvents(localOrg)).toEqual([expect.objectContaining({
      type: 'subscription.canceled', payload: expect.objectContaining({ subscriptionId: 'sub-local-trial', status: 'canceled', previousStatus: 'trialing' }),
    })]);
    expect(await expiredAudits(localOrg)).toEqual([{ entity_id: 'sub-local-trial', reason: 'trial_ended' }]);
    expect(await row('sub-stripe-trial')).toEqual({ status: 'trialing', stripeSubscriptionId: 'sub_stripe_converts_it' });
    expect(await canceledEvents(stripeOrg)).toEqual([]);
    expect(await job.expire()).toEqual([]);
  });

  it('a Stripe subscription canceled at period end is still ended by the job once the period is over', async () => {
    const org = await createOrg(t, owner, 'Period Co');
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId", "stripeSubscriptionId", "createdAt", "updatedAt")
      VALUES ('sub-period', 'omnizen', 'professional', 'active', $1, 'sub_stripe_period', now(), now())`, [org]);
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, organization_id, cancel_at_period_end, current_period_end) VALUES ('sub-period', $1, true, $2)`,
      [org, new Date(clock.now() - HOUR_MS)]);
    expect(await job.expire()).toEqual(['sub-period']);
    expect(await expiredAudits(org)).toEqual([{ entity_id: 'sub-period', reason: 'canceled_at_period_end' }]);
  });
});
