import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, orgWithRoles, registerUser, type TestUser } from '../support/factories.js';

/**
 * Counted limits hold under concurrency: the gate locks the (organization, app) row FOR UPDATE in
 * the request transaction, counts, and the handler writes before the lock is released.
 */
describe('billing: counted plan limits under concurrency', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ API_DATABASE_POOL_SIZE: '10' });
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  const outcome = (responses: { status: number }[]) => {
    const counts: Record<number, number> = {};
    for (const r of responses) counts[r.status] = (counts[r.status] ?? 0) + 1;
    return counts;
  };

  it('members: 20 parallel invitations with one seat left → exactly 1 created, 19 × 402 naming the limit and the plan that lifts it', async () => {
    const orgId = await createOrg(t, owner, 'Seats');
    for (let i = 0; i < 3; i++) await addMember(t, orgId, await registerUser(t, `m${i}`), 'member'); // 4 of 5 seats used
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: `invitee${i}@example.test`, role: 'member' })));
    expect(outcome(responses)).toEqual({ 201: 1, 402: 19 });
    for (const r of responses.filter((r) => r.status === 402)) {
      expect(r.body.error).toMatchObject({
        code: 'billing.limit_reached',
        message: 'the starter plan allows 5 users; upgrade to professional',
        details: { app: 'omnizen', feature: 'users', plan: 'starter', limit: 5, usage: 5, upgradeTo: 'professional' },
      });
    }
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.invitations WHERE org_id = $1`, [orgId]);
    expect(rows[0].n).toBe(1);
    const ent = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(owner.auth).expect(200);
    expect(ent.body.features.find((f: any) => f.feature === 'users')).toMatchObject({ limit: 5, usage: 5 });
  });

  it('workspaces: 20 parallel creates with one workspace left → exactly 1 created, 19 × 402', async () => {
    const orgId = await createOrg(t, owner, 'Spaces');
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: `Space ${i}` })));
    expect(outcome(responses)).toEqual({ 201: 1, 402: 19 });
    for (const r of responses.filter((r) => r.status === 402)) {
      expect(r.body.error.code).toBe('billing.limit_reached');
      expect(r.body.error.message).toBe('the starter plan allows 1 workspace; upgrade to enterprise');
    }
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.workspaces WHERE org_id = $1`, [orgId]);
    expect(rows[0].n).toBe(1);
  });

  it('lifts the limit as soon as the plan changes (no cache), and unlimited plans never block', async () => {
    const orgId = await createOrg(t, owner, 'Upgrades');
    const workspaces = async () => (await t.db.admin.query(`SELECT name FROM core.workspaces WHERE org_id = $1 ORDER BY created_at, name`, [orgId])).rows.map((r) => r.name);
    const one = await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'One' }).expect(201);
    expect(one.body).toMatchObject({ name: 'One' });
    const refused = await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'Two' }).expect(402);
    expect(refused.body.error).toMatchObject({
      code: 'billing.limit_reached', message: 'the starter plan allows 1 workspace; upgrade to enterprise',
      details: { app: 'omnizen', feature: 'workspaces', plan: 'starter', limit: 1, usage: 1, upgradeTo: 'enterprise' },
    });
    expect(await workspaces()).toEqual(['One']);
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'omnizen', 'enterprise', 'active', $1)`, [orgId]);
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'Two' }).expect(201);
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'Three' }).expect(201);
    expect(await workspaces()).toEqual(['One', 'Two', 'Three']);
    const ent = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(owner.auth).expect(200);
    expect(ent.body).toMatchObject({ plan: 'enterprise', status: 'active' });
    expect(ent.body.features.find((f: any) => f.feature === 'workspaces')).toMatchObject({ limit: null, usage: 3 });
  });

  it('status rules: past_due within grace writes, after grace and when canceled is read-only (402), reads still work', async () => {
    const orgId = await createOrg(t, owner, 'Statuses');
    const [{ id }] = (await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'omnizen', 'professional', 'past_due', $1) RETURNING id`, [orgId])).rows;
    await t.db.admin.query(`INSERT INTO hub.subscription_billing (subscription_id, organization_id, past_due_since) VALUES ($1, $2, now() - interval '2 days')`, [id, orgId]);
    const grace = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(owner.auth).expect(200);
    expect(grace.body).toMatchObject({ status: 'past_due', access: 'full' });
    expect(new Date(grace.body.graceEndsAt).getTime()).toBeGreaterThan(Date.now());
    await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'In grace' }).expect(201);

    await t.db.admin.query(`UPDATE hub.subscription_billing SET past_due_since = now() - interval '8 days' WHERE subscription_id = $1`, [id]);
    const late = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(owner.auth).expect(200);
    expect(late.body).toMatchObject({ status: 'past_due', access: 'read_only' });
    const denied = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: 'late@example.test', role: 'member' }).expect(402);
    expect(denied.body.error.code).toBe('billing.subscription_inactive');
    expect(denied.body.error.message).toMatch(/read-only: the payment is past due since/);

    await t.db.admin.query(`UPDATE hub."Subscription" SET status = 'canceled' WHERE id = $1`, [id]);
    const canceled = await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'Nope' }).expect(402);
    expect(canceled.body.error.message).toMatch(/read-only: the subscription is canceled/);
    await t.http.get(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).expect(200);
  });

  it('checks the role before the plan: a viewer gets 403, not a billing answer', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Roles');
    const res = await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(users.viewer.auth).send({ name: 'Viewer space' }).expect(403);
    expect(res.body.error).toMatchObject({ code: 'forbidden.role', message: expect.stringContaining('you are viewer') });
    expect((await t.db.admin.query(`SELECT name FROM core.workspaces WHERE org_id = $1`, [orgId])).rows).toEqual([]);
  });
});
