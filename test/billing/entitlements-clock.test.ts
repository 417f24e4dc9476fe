import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';

const DAY_MS = 86_400_000;

/**
 * Trials and past-due grace periods end on the application's clock (src/platform/clock), not the wall clock: a test
 * moves the injected clock past the end and the very next request is read-only, without sleeping.
 */
describe('billing: entitlements on the injected clock', () => {
  let t: TestApp;
  let ada: TestUser;
  const clock = new ManualClock();

  const entitlements = async (org: string) => (await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(ada.auth).expect(200)).body;
  const workspaces = async (org: string) => (await t.db.admin.query(`SELECT name FROM core.workspaces WHERE org_id = $1 ORDER BY name`, [org])).rows.map((r) => r.name);

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined }, { clock });
    ada = await registerUser(t, 'ada');
  });
  afterAll(() => t.close());

  it("the default trial: full until its end, read-only once the clock passes it (14 days after the organization's creation)", async () => {
    const org = await createOrg(t, ada, 'Trial Clock Co');
    const before = await entitlements(org);
    expect(before).toMatchObject({ source: 'default', status: 'trialing', access: 'full', readOnlyReason: null });
    const trialEndsAt = new Date(before.trialEndsAt);

    clock.advance(trialEndsAt.getTime() - clock.now() - 60_000); // a minute before the end
    expect(await entitlements(org)).toMatchObject({ access: 'full' });
    await t.http.post(`/v1/orgs/${org}/workspaces`).set(ada.auth).send({ name: 'Before the end' }).expect(201);

    clock.advance(2 * 60_000); // a minute after
    expect(await entitlements(org)).toMatchObject({
      status: 'trialing', access: 'read_only', readOnlyReason: `the trial ended on ${trialEndsAt.toISOString().slice(0, 10)}`,
    });
    const refused = await t.http.post(`/v1/orgs/${org}/workspaces`).set(ada.auth).send({ name: 'After the end' }).expect(402);
    expect(refused.body.error).toMatchObject({ code: 'billing.subscription_inactive', message: expect.stringContaining('the trial ended on') });
    expect(await workspaces(org)).toEqual(['Before the end']);
  });

  it('past_due: full for the grace period from the first failed payment (7 days), read-only once the clock passes its end', async () => {
    const org = await createOrg(t, ada, 'Grace Clock Co');
    await onPlan(t, org, 'professional', 'past_due');
    const since = new Date(clock.now());
    await t.db.admin.query(
      `INSERT INTO hub.subscription_billing (subscription_id, organization_id, past_due_since) SELECT id, $1, $2 FROM hub."Subscription" WHERE "organizationId" = $1`, [org, since]);
    const graceEndsAt = new Date(since.getTime() + 7 * DAY_MS).toISOString();
    expect(await entitlements(org)).toMatchObject({ status: 'past_due', access: 'full', graceEndsAt });
    await t.http.post(`/v1/orgs/${org}/workspaces`).set(ada.auth).send({ name: 'In the grace period' }).expect(201);

    clock.advance(7 * DAY_MS + 1000);
    expect(await entitlements(org)).toMatchObject({
      status: 'past_due', access: 'read_only', graceEndsAt, readOnlyReason: `the payment is past due since ${since.toISOString().slice(0, 10)}`,
    });
    await t.http.post(`/v1/orgs/${org}/workspaces`).set(ada.auth).send({ name: 'After the grace period' }).expect(402);
    expect(await workspaces(org)).toEqual(['In the grace period']);
  });
});
