import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';

const DAY_MS = 86_400_000;

/**
 * `subscription.trial_ending` for trials without Stripe: the billing job's check (on the injected clock) emits it
 * within the three days before the trial's end, once per trial, for local subscriptions and for the default trial
 * of an organization without a subscription; the notifications module routes it to the owners.
 */
describe('billing: trial ending without Stripe', () => {
  let t: TestApp;
  const clock = new ManualClock();
  let owner: TestUser;
  let admin: TestUser;
  let defaultTrialOrg: string;
  let localOrg: string;
  let stripeOrg: string;
  let paidOrg: string;
  let deletedOrg: string;
  let deletedLocalOrg: string;
  let job: BillingExpiryJob;

  const settle = async () => {
    const relay = t.app.get(OutboxRelay);
    for (let i = 0; i < 20; i++) if ((await relay.drain()) === 0) return;
    throw new Error('the outbox did not settle');
  };
  const events = async (orgId: string) => (await t.db.admin.query(
    `SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = 'subscription.trial_ending' ORDER BY id`, [orgId])).rows.map((r) => r.payload);
  const trialSubscription = async (orgId: string, id: string, trialEndsAt: Date, stripeId: string | null) => {
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "stripeSubscriptionId", "createdAt", "updatedAt")
      VALUES ($1, NULL, 'omnizen', 'professional', 'trialing', $2, $3, now(), now())`, [id, orgId, stripeId]);
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, organization_id, trial_ends_at) VALUES ($1, $2, $3)`, [id, orgId, trialEndsAt]);
  };

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined }, { clock });
    owner = await registerUser(t, 'owner');
    admin = await registerUser(t, 'admin');
    defaultTrialOrg = await createOrg(t, owner, 'Default Trial Co');
    await addMember(t, defaultTrialOrg, admin, 'admin');
    localOrg = await createOrg(t, owner, 'Local Trial Co');
    stripeOrg = await createOrg(t, owner, 'Stripe Trial Co');
    paidOrg = await createOrg(t, owner, 'Paid Co');
    await onPlan(t, paidOrg, 'professional');
    // deleted during their trials (the default one; a local trial subscription): no "choose a plan" notice for either
    deletedOrg = await createOrg(t, owner, 'Deleted In Trial Co');
    deletedLocalOrg = await createOrg(t, owner, 'Deleted Local Trial Co');
    const now = clock.now();
    await trialSubscription(localOrg, 'sub-local-trial', new Date(now + 2 * DAY_MS), null);
    await trialSubscription(stripeOrg, 'sub-stripe-trial', new Date(now + 2 * DAY_MS), 'sub_stripe_announces_its_own');
    await t.http.delete(`/v1/orgs/${deletedOrg}`).set(owner.auth).expect(204);
    await t.http.delete(`/v1/orgs/${deletedLocalOrg}`).set(owner.auth).expect(204);
    job = t.app.get(BillingExpiryJob);
    await settle();
    // still trialing: as before the deletion's job (which cancels it) has run
    await trialSubscription(deletedLocalOrg, 'sub-deleted-trial', new Date(now + 2 * DAY_MS), null);
  });
  afterAll(() => t.close());

  it('announces a local subscription\'s trial once, within three days of its end; Stripe\'s own trials are left to Stripe', async () => {
    const announced = await job.noticeEndingTrials();
    expect(announced.map((a) => [a.orgId, a.subscriptionId])).toEqual([[localOrg, 'sub-local-trial']]);
    expect(await events(localOrg)).toEqual([expect.objectContaining({
      type: 'subscription.trial_ending', version: 1,
      payload: expect.objectContaining({ subscriptionId: 'sub-local-trial', app: 'omnizen', plan: 'professional', status: 'trialing', trialEndsAt: announced[0].trialEndsAt.toISOString() }),
    })]);
    expect(await events(stripeOrg)).toEqual([]);
    expect(await events(deletedLocalOrg)).toEqual([]);
    // the default trial of a new organization (14 days) is not near its end yet
    expect(await events(defaultTrialOrg)).toEqual([]);
    // the next check (or another instance's) emits nothing more
    expect(await job.noticeEndingTrials()).toEqual([]);
    expect(await events(localOrg)).toHaveLength(1);
  });

  it('announces the default trial of an organization without a subscription 3 days before its end (on the injected clock), once, and routes it to the owners', async () => {
    clock.advance(11.5 * DAY_MS);
    const announced = await job.noticeEndingTrials();
    expect(announced.map((a) => a.orgId)).toEqual([defaultTrialOrg]); // not the organization deleted during its trial
    const [created] = (await t.db.admin.query('SELECT created_at FROM core.organizations WHERE id = $1', [defaultTrialOrg])).rows;
    const trialEndsAt = new Date(created.created_at.getTime() + 14 * DAY_MS).toISOString();
    expect(await events(defaultTrialOrg)).toEqual([{
      type: 'subscription.trial_ending', version: 1, occurredAt: expect.any(String),
      payload: { subscriptionId: null, app: 'omnizen', plan: 'starter', status: 'trialing', previousStatus: 'trialing', trialEndsAt, currentPeriodEnd: null, cancelAtPeriodEnd: false },
    }]);
    expect(await events(paidOrg)).toEqual([]);
    expect(await events(deletedOrg)).toEqual([]);
    expect(await job.noticeEndingTrials()).toEqual([]);
    expect(await t.db.admin.query('SELECT org_id, app_id, subscription_id FROM hub.trial_notices ORDER BY emitted_at').then((r) => r.rows)).toEqual([
      { org_id: localOrg, app_id: 'omnizen', subscription_id: 'sub-local-trial' },
      { org_id: defaultTrialOrg, app_id: 'omnizen', subscription_id: null },
    ]);

    // outbox → notifications: the owner is told (inbox), the admin is not (the route names owners)
    await settle();
    const inbox = await t.http.get('/v1/me/notifications').set(owner.auth).expect(200);
    const notices = inbox.body.items.filter((n: { eventType: string }) => n.eventType === 'subscription.trial_ending');
    expect(notices.map((n: { orgId: string; title: string; category: string }) => [n.orgId, n.title, n.category]).sort()).toEqual([
      [defaultTrialOrg, 'The omnizen trial of Default Trial Co ends soon', 'billing'],
      [localOrg, 'The omnizen trial of Local Trial Co ends soon', 'billing'],
    ].sort());
    const adminInbox = await t.http.get('/v1/me/notifications').set(admin.auth).expect(200);
    expect(adminInbox.body.items.filter((n: { eventType: string }) => n.eventType === 'subscription.trial_ending')).toEqual([]);
    const rows = (await t.db.admin.query(`SELECT org_id, user_id FROM core.notifications WHERE event_type = 'subscription.trial_ending' ORDER BY org_id`)).rows;
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.user_id === owner.id)).toBe(true);
  });

  it('announces a trial moved to a new end again (a new trial), once', async () => {
    const newEnd = new Date(clock.now() + 2.5 * DAY_MS);
    await t.db.admin.query('UPDATE hub.subscription_billing SET trial_ends_at = $2 WHERE subscription_id = $1', ['sub-local-trial', newEnd]);
    const announced = await job.noticeEndingTrials();
    expect(announced.map((a) => [a.orgId, a.trialEndsAt.toISOString()])).toEqual([[localOrg, newEnd.toISOString()]]);
    expect(await job.noticeEndingTrials()).toEqual([]);
    expect((await events(localOrg)).map((e) => e.payload.trialEndsAt)).toEqual([expect.any(String), newEnd.toISOString()]);
  });
});
