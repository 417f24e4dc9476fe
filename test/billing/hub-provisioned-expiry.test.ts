import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';

const DAY_MS = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);

/**
 * Subscriptions the Hub provisions by SQL as seed 000 does (id, "userId", "organizationId", "appId", plan, status; no
 * timestamps, no hub.subscription_billing row). Their trials and grace periods end like any other: a trial "trialDays"
 * after the row's creation (the organization's when NULL), a grace period counted from a start the expiry job records once
 * (never from the request's now, never restarted by a later update of the row). On the injected clock, no sleeps.
 */
describe('billing: trials and grace periods of subscriptions provisioned by SQL (seed 000)', () => {
  let t: TestApp;
  let job: BillingExpiryJob;
  let trialDays: number;
  const clock = new ManualClock();

  /** seed 000's provisioning INSERT, optionally with the timestamps a Hub may set */
  const provision = async (org: string, owner: TestUser, status: string | null, at: { createdAt?: Date; updatedAt?: Date } = {}) => {
    const { rows } = await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "userId", "organizationId", "appId", plan, status, "createdAt", "updatedAt")
       VALUES (gen_random_uuid()::text, $1, $2, 'omnizen', 'professional', $3, $4::timestamptz AT TIME ZONE 'utc', $5::timestamptz AT TIME ZONE 'utc') RETURNING id`,
      [owner.id, org, status, at.createdAt ?? null, at.updatedAt ?? null]);
    return rows[0].id as string;
  };
  /** an update of the row by the Hub (any column; "updatedAt" as a careful Hub sets it) */
  const hubUpdate = (id: string, set: { plan?: string; status?: string; updatedAt?: Date }) => t.db.admin.query(
    `UPDATE hub."Subscription" SET plan = coalesce($2, plan), status = coalesce($3, status),
       "updatedAt" = coalesce($4::timestamptz AT TIME ZONE 'utc', "updatedAt") WHERE id = $1`, [id, set.plan ?? null, set.status ?? null, set.updatedAt ?? null]);
  const orgCreatedAt = async (org: string) => (await t.db.admin.query(`SELECT created_at FROM core.organizations WHERE id = $1`, [org])).rows[0].created_at as Date;
  const billingRow = async (id: string) => (await t.db.admin.query(
    `SELECT past_due_since, user_id, organization_id FROM hub.subscription_billing WHERE subscription_id = $1`, [id])).rows[0];
  const subscriptionRow = async (id: string) => (await t.db.admin.query(`SELECT plan, status FROM hub."Subscription" WHERE id = $1`, [id])).rows[0];
  /** the audit rows of the past-due starts recorded and cleared in `org` (by the job, as the system), oldest first */
  const pastDueAudits = async (org: string) => (await t.db.admin.query(
    `SELECT action, entity_id, principal_type, before, after FROM core.audit_logs
     WHERE org_id = $1 AND action IN ('billing.past_due_recorded', 'billing.past_due_cleared') ORDER BY id`, [org])).rows;
  const recordedAudit = (id: string, since: Date) =>
    ({ action: 'billing.past_due_recorded', entity_id: id, principal_type: 'system',
      before: { subscriptionId: id, pastDueSince: null }, after: { subscriptionId: id, pastDueSince: since.toISOString() } });
  const clearedAudit = (id: string, since: Date) => ({ action: 'billing.past_due_cleared', entity_id: id, principal_type: 'system',
    before: { subscriptionId: id, pastDueSince: since.toISOString() }, after: { subscriptionId: id, pastDueSince: null } });
  const entitlements = async (user: TestUser, org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(user.auth).expect(200)).body;
  const addWorkspace = (user: TestUser, org: string, name: string) => t.http.post(`/v1/orgs/${org}/workspaces`).set(user.auth).send({ name });
  const workspaces = async (org: string) => (await t.db.admin.query(`SELECT name FROM core.workspaces WHERE org_id = $1 ORDER BY name`, [org])).rows.map((r) => r.name);
  const refused = async (user: TestUser, org: string, name: string, reason: string) => {
    const res = await addWorkspace(user, org, name).expect(402);
    expect(res.body.error).toMatchObject({ code: 'billing.subscription_inactive', message: expect.stringContaining(reason) });
  };

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined }, { clock });
    job = t.app.get(BillingExpiryJob);
    trialDays = (await t.db.admin.query(`SELECT "trialDays" FROM hub."App" WHERE id = 'omnizen'`)).rows[0].trialDays;
  });
  afterAll(() => t.close());

  it("past_due without timestamps: the grace counts from the organization's creation, not from each request; recorded once, an update does not restart it", async () => {
    const ada = await registerUser(t, 'ada');
    const org = await createOrg(t, ada, 'Past Due By SQL Co');
    const created = await orgCreatedAt(org);
    const id = await provision(org, ada, 'past_due');
    const graceEndsAt = new Date(created.getTime() + 7 * DAY_MS).toISOString();

    expect(await entitlements(ada, org)).toMatchObject({ source: 'subscription', subscriptionId: id, status: 'past_due', access: 'full', graceEndsAt });
    clock.advance(DAY_MS); // a day later the grace period has not moved with the clock
    expect(await entitlements(ada, org)).toMatchObject({ status: 'past_due', access: 'full', graceEndsAt });
    await addWorkspace(ada, org, 'In the grace period').expect(201);

    // the job records that start once (the row had no subscription_billing: one is created for its owner)
    expect(await job.recordPastDueStarts()).toContain(id);
    expect(await billingRow(id)).toEqual({ past_due_since: created, user_id: null, organization_id: org });
    expect(await pastDueAudits(org)).toEqual([recordedAudit(id, created)]);
    // the Hub changes the plan and sets "updatedAt": the grace is not restarted
    await hubUpdate(id, { plan: 'enterprise', updatedAt: new Date(clock.now()) });
    expect(await entitlements(ada, org)).toMatchObject({ plan: 'enterprise', status: 'past_due', access: 'full', graceEndsAt });
    expect(await job.recordPastDueStarts()).not.toContain(id);
    expect(await billingRow(id)).toMatchObject({ past_due_since: created });
    expect(await pastDueAudits(org)).toEqual([recordedAudit(id, created)]); // nothing changed: no second row

    clock.advance(7 * DAY_MS); // past the end of the grace period
    expect(await entitlements(ada, org)).toMatchObject({
      status: 'past_due', access: 'read_only', graceEndsAt, readOnlyReason: `the payment is past due since ${day(created)}`,
    });
    await refused(ada, org, 'After the grace period', `the payment is past due since ${day(created)}`);
    expect(await workspaces(org)).toEqual(['In the grace period']);
    expect(await subscriptionRow(id)).toEqual({ plan: 'enterprise', status: 'past_due' });
  });

  it('past_due since an "updatedAt" 30 days back: read-only, and stays so when the row is updated again; a new past_due after active gets a new grace', async () => {
    const bob = await registerUser(t, 'bob');
    const org = await createOrg(t, bob, 'Long Past Due Co');
    const since = new Date(clock.now() - 30 * DAY_MS);
    const id = await provision(org, bob, 'past_due', { createdAt: since, updatedAt: since });
    const ended = { status: 'past_due', access: 'read_only', graceEndsAt: new Date(since.getTime() + 7 * DAY_MS).toISOString() };

    expect(await entitlements(bob, org)).toMatchObject(ended);
    expect(await job.recordPastDueStarts()).toContain(id);
    expect(await billingRow(id)).toEqual({ past_due_since: since, user_id: null, organization_id: org });
    expect(await pastDueAudits(org)).toEqual([recordedAudit(id, since)]);
    await hubUpdate(id, { updatedAt: new Date(clock.now()) }); // an unrelated update of the row
    expect(await entitlements(bob, org)).toMatchObject(ended);
    await refused(bob, org, 'Touched', `the payment is past due since ${day(since)}`);
    expect(await workspaces(org)).toEqual([]);

    // paid: the start is forgotten; the next failed payment starts a grace period of its own
    await hubUpdate(id, { status: 'active', updatedAt: new Date(clock.now()) });
    expect(await job.recordPastDueStarts()).not.toContain(id);
    expect(await billingRow(id)).toMatchObject({ past_due_since: null });
    expect(await pastDueAudits(org)).toEqual([recordedAudit(id, since), clearedAudit(id, since)]);
    expect(await job.recordPastDueStarts()).not.toContain(id); // already cleared: nothing to audit
    expect(await pastDueAudits(org)).toEqual([recordedAudit(id, since), clearedAudit(id, since)]);
    expect(await entitlements(bob, org)).toMatchObject({ status: 'active', access: 'full', graceEndsAt: null });
    const again = new Date(clock.now() - DAY_MS);
    await hubUpdate(id, { status: 'past_due', updatedAt: again });
    expect(await job.recordPastDueStarts()).toContain(id);
    expect(await billingRow(id)).toMatchObject({ past_due_since: again });
    expect(await job.recordPastDueStarts()).not.toContain(id);
    expect(await pastDueAudits(org)).toEqual([recordedAudit(id, since), clearedAudit(id, since), recordedAudit(id, again)]);
    expect(await entitlements(bob, org)).toMatchObject({ status: 'past_due', access: 'full', graceEndsAt: new Date(again.getTime() + 7 * DAY_MS).toISOString() });
    await addWorkspace(bob, org, 'Second grace').expect(201);
    expect(await workspaces(org)).toEqual(['Second grace']);
  });

  it("trialing without a trial end nor createdAt, in an organization created 400 days ago: ended (trialDays after the organization's creation), and canceled by the job", async () => {
    const carol = await registerUser(t, 'carol');
    const org = await createOrg(t, carol, 'Old Trial Co');
    const created = new Date(clock.now() - 400 * DAY_MS);
    await t.db.admin.query(`UPDATE core.organizations SET created_at = $2 WHERE id = $1`, [org, created]);
    const trialEndsAt = new Date(created.getTime() + trialDays * DAY_MS).toISOString();
    expect(await entitlements(carol, org)).toMatchObject({ source: 'default', status: 'trialing', access: 'read_only', trialEndsAt });

    const id = await provision(org, carol, 'trialing');
    expect(await entitlements(carol, org)).toMatchObject({
      source: 'subscription', subscriptionId: id, plan: 'professional', status: 'trialing', access: 'read_only', trialEndsAt,
      readOnlyReason: `the trial ended on ${trialEndsAt.slice(0, 10)}`,
    });
    await refused(carol, org, 'After the trial', 'the trial ended on');
    expect(await workspaces(org)).toEqual([]);

    expect(await job.expire()).toContain(id);
    expect(await subscriptionRow(id)).toEqual({ plan: 'professional', status: 'canceled' });
    expect((await t.db.admin.query(
      `SELECT entity_id, after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'billing.subscription_expired'`, [org])).rows)
      .toEqual([{ entity_id: id, reason: 'trial_ended' }]);
    expect((await t.db.admin.query(
      `SELECT payload->'payload'->>'previousStatus' AS previous FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = 'subscription.canceled'`, [org])).rows)
      .toEqual([{ previous: 'trialing' }]);
    expect(await entitlements(carol, org)).toMatchObject({ status: 'canceled', access: 'read_only' });
    expect(await job.expire()).not.toContain(id);
  });

  it('trialing with a createdAt and no trial end: full until trialDays after it, announced before its end, then ended by the job', async () => {
    const dan = await registerUser(t, 'dan');
    const org = await createOrg(t, dan, 'Recent Trial Co');
    await t.db.admin.query(`UPDATE core.organizations SET created_at = $2 WHERE id = $1`, [org, new Date(clock.now() - 400 * DAY_MS)]);
    const createdAt = new Date(clock.now() - (trialDays - 2) * DAY_MS); // two days left
    const trialEndsAt = new Date(createdAt.getTime() + trialDays * DAY_MS);
    const id = await provision(org, dan, 'trialing', { createdAt });

    expect(await entitlements(dan, org)).toMatchObject({ status: 'trialing', access: 'full', trialEndsAt: trialEndsAt.toISOString() });
    await addWorkspace(dan, org, 'During the trial').expect(201);
    expect(await job.expire()).not.toContain(id);
    expect((await job.noticeEndingTrials()).filter((n) => n.subscriptionId === id)).toEqual([
      { orgId: org, appId: 'omnizen', subscriptionId: id, plan: 'professional', trialEndsAt },
    ]);

    clock.advance(2 * DAY_MS + 60_000);
    expect(await entitlements(dan, org)).toMatchObject({ status: 'trialing', access: 'read_only', trialEndsAt: trialEndsAt.toISOString() });
    await refused(dan, org, 'After the trial', `the trial ended on ${day(trialEndsAt)}`);
    expect(await job.expire()).toContain(id);
    expect(await subscriptionRow(id)).toEqual({ plan: 'professional', status: 'canceled' });
    expect(await workspaces(org)).toEqual(['During the trial']);
  });

  it("a NULL status reads as 'active' (seed 000's default): full access, and the job leaves it alone", async () => {
    const eve = await registerUser(t, 'eve');
    const org = await createOrg(t, eve, 'Null Status Co');
    const id = await provision(org, eve, null);
    expect(await entitlements(eve, org)).toMatchObject({ subscriptionId: id, status: 'active', access: 'full', trialEndsAt: null, graceEndsAt: null });
    await addWorkspace(eve, org, 'Active').expect(201);
    expect(await job.recordPastDueStarts()).not.toContain(id);
    expect(await job.expire()).not.toContain(id);
    expect(await subscriptionRow(id)).toEqual({ plan: 'professional', status: null });
    expect(await billingRow(id)).toBeUndefined();
    expect(await workspaces(org)).toEqual(['Active']);
  });
});
