import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, orgWithRoles, registerUser, type TestUser } from '../support/factories.js';

// Seed 000, "Provisioning a Subscription", character for character; only the placeholder is filled in.
const SEED_000_PROVISIONING_SQL = `INSERT INTO hub."Subscription" (
    id, "userId", "appId", "plan", "status"
) VALUES (
    gen_random_uuid(),
    'USER_UUID_FROM_CORE',
    'app_securevault',
    'pro',
    'active'
)
ON CONFLICT ("userId", "appId")
DO UPDATE SET "plan" = 'pro', "status" = 'active';`;

const feature = (body: any, name: string) => body.features.find((f: any) => f.feature === name);

describe('billing: catalog, the Hub contract and entitlements', () => {
  let t: TestApp;
  let ada: TestUser;
  let bob: TestUser;
  let serviceAuth: { Authorization: string };

  beforeAll(async () => {
    t = await createTestApp();
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
    const key = jwt.sign({ role: 'service_role', service: 'securevault' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
  });
  afterAll(() => t.close());

  it('serves the catalog with the exact plan identifiers of seeds 000 and 002', async () => {
    const res = await t.http.get('/v1/billing/apps').set(ada.auth).expect(200);
    const plans = Object.fromEntries(res.body.map((a: any) => [a.id, a.plans.map((p: any) => p.code)]));
    expect(plans).toEqual({
      app_securevault: ['trial', 'starter', 'growth', 'pro', 'business_starter', 'business_growth', 'business_pro', 'enterprise'],
      omnizen: ['starter', 'professional', 'enterprise', 'custom'],
    });
    const omnizen = res.body.find((a: any) => a.id === 'omnizen');
    const starter = omnizen.plans.find((p: any) => p.code === 'starter');
    expect(feature(starter, 'users').limit).toBe(5);
    expect(feature(starter, 'ai_agents').limit).toBe(2);
    expect(feature(starter, 'basic_invoicing').enabled).toBe(true);
    expect(feature(starter, 'inventory_management').enabled).toBe(false);
    const enterprise = omnizen.plans.find((p: any) => p.code === 'enterprise');
    expect(feature(enterprise, 'ai_agents').limit).toBeNull();
    expect(feature(enterprise, 'white_label').enabled).toBe(true);
  });

  it('runs seed 000\'s provisioning SQL verbatim; the very next call shows the new plan', async () => {
    const before = await t.http.get('/v1/me/entitlements?app=app_securevault').set(ada.auth).expect(200);
    expect(before.body).toMatchObject({ plan: 'trial', status: 'trialing', source: 'default', access: 'full' });

    await t.db.admin.query(SEED_000_PROVISIONING_SQL.replace('USER_UUID_FROM_CORE', ada.id));

    const after = await t.http.get('/v1/me/entitlements?app=app_securevault').set(ada.auth).expect(200);
    expect(after.body).toMatchObject({ app: 'app_securevault', plan: 'pro', status: 'active', source: 'subscription', access: 'full', subject: { type: 'user', userId: ada.id } });
    expect(feature(after.body, 'storage')).toMatchObject({ limit: 200, unit: 'GB' });
    expect(feature(after.body, 'processing_units')).toMatchObject({ limit: 1350 });

    // getUserSubscription: a service-role key asks about the person
    const svc = await t.http.get(`/v1/billing/users/${ada.id}/entitlements?app=app_securevault`).set(serviceAuth).expect(200);
    expect(svc.body).toMatchObject({ plan: 'pro', status: 'active', subject: { type: 'user', userId: ada.id } });
    // a person who does not exist: 404 naming the user (the lookup and the read are one transaction)
    const missing = await t.http.get('/v1/billing/users/00000000-0000-4000-8000-00000000dead/entitlements?app=app_securevault').set(serviceAuth).expect(404);
    expect(missing.body.error).toMatchObject({ code: 'user.not_found' });

    // the Hub's writer may be service_role rather than the owner: the same SQL works under it
    const hub = await t.db.admin.connect();
    try {
      await hub.query('BEGIN; SET LOCAL ROLE service_role');
      await hub.query(SEED_000_PROVISIONING_SQL.replace('USER_UUID_FROM_CORE', bob.id));
      await hub.query('COMMIT');
    } finally {
      hub.release();
    }
    const bobs = await t.http.get('/v1/me/entitlements?app=app_securevault').set(bob.auth).expect(200);
    expect(bobs.body).toMatchObject({ plan: 'pro', status: 'active' });

    // running it again (ON CONFLICT path) keeps one row
    await t.db.admin.query(SEED_000_PROVISIONING_SQL.replace('USER_UUID_FROM_CORE', ada.id));
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM hub."Subscription" WHERE "userId" = $1`, [ada.id]);
    expect(rows[0].n).toBe(1);
  });

  it('reflects a catalog edit (no deploy, no cache) and a Hub status change on the next request', async () => {
    await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = 250 WHERE app_id = 'app_securevault' AND plan_code = 'pro' AND feature = 'storage'`);
    try {
      const res = await t.http.get('/v1/me/entitlements?app=app_securevault').set(ada.auth).expect(200);
      expect(feature(res.body, 'storage').limit).toBe(250);
    } finally {
      await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = 200 WHERE app_id = 'app_securevault' AND plan_code = 'pro' AND feature = 'storage'`);
    }
    await t.db.admin.query(`UPDATE hub."Subscription" SET status = 'canceled' WHERE "userId" = $1 AND "appId" = 'app_securevault'`, [ada.id]);
    const res = await t.http.get('/v1/me/entitlements?app=app_securevault').set(ada.auth).expect(200);
    expect(res.body).toMatchObject({ status: 'canceled', access: 'read_only', readOnlyReason: 'the subscription is canceled' });
  });

  it('gives an organization without a subscription the default plan as a trial, with usage', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Defaults');
    const res = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(users.viewer.auth).expect(200);
    expect(res.body).toMatchObject({ plan: 'starter', planName: 'Starter', status: 'trialing', source: 'default', access: 'full', subject: { type: 'organization', organizationId: orgId } });
    expect(new Date(res.body.trialEndsAt).getTime()).toBeGreaterThan(Date.now() + 13 * 86_400_000);
    expect(feature(res.body, 'users')).toMatchObject({ kind: 'limit', limit: 5, usage: 5 });
    expect(feature(res.body, 'workspaces')).toMatchObject({ limit: 1, usage: 0 });
    expect(feature(res.body, 'ai_agents')).toMatchObject({ limit: 2, usage: 0 }); // the agents module counts its agents
    expect(feature(res.body, 'simple_accounting')).toMatchObject({ kind: 'boolean', enabled: true, limit: null });
    // a service acting for the organization reads the same
    const svc = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(serviceAuth).expect(200);
    expect(svc.body.plan).toBe('starter');
  });

  it('names bad input: unknown app 404, malformed app 400', async () => {
    const orgId = await createOrg(t, ada, 'Inputs');
    const unknown = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=nope`).set(ada.auth).expect(404);
    expect(unknown.body.error.code).toBe('app.not_found');
    const bad = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=Bad-App`).set(ada.auth).expect(400);
    expect(bad.body.error.message).toMatch(/app must be an app id/);
    await t.http.get(`/v1/orgs/${orgId}/entitlements`).set(ada.auth).expect(400);
  });

  it('keeps organizations apart: no reading another\'s subscription, entitlements or billing events', async () => {
    const orgA = await createOrg(t, ada, 'Tenant A');
    const orgB = await createOrg(t, bob, 'Tenant B');
    await t.db.admin.query(
      `INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId") VALUES ('sub-a', NULL, 'omnizen', 'professional', 'active', $1),
                                                                                            ('sub-b', NULL, 'omnizen', 'enterprise', 'active', $2)`, [orgA, orgB]);
    await t.db.admin.query(
      `INSERT INTO hub."BillingEvent" ("stripeEventId", type, "orgId", "stripeCreatedAt", payload, status) VALUES ('evt_a', 'invoice.paid', $1, now(), '{}', 'processed')`, [orgA]);

    // HTTP: a non-member gets 404 for every billing read of the other organization
    await t.http.get(`/v1/orgs/${orgA}/entitlements?app=omnizen`).set(bob.auth).expect(404);
    await t.http.get(`/v1/orgs/${orgA}/billing/events`).set(bob.auth).expect(404);
    await t.http.post(`/v1/orgs/${orgA}/billing/portal`).set(bob.auth).send({}).expect(404);
    const mine = await t.http.get(`/v1/orgs/${orgB}/entitlements?app=omnizen`).set(bob.auth).expect(200);
    expect(mine.body.plan).toBe('enterprise');
    const events = await t.http.get(`/v1/orgs/${orgA}/billing/events`).set(ada.auth).expect(200);
    expect(events.body.items.map((e: any) => e.stripeEventId)).toEqual(['evt_a']);
    expect((await t.http.get(`/v1/orgs/${orgB}/billing/events`).set(bob.auth).expect(200)).body).toEqual({ items: [] });
    // a person's service route is for services only
    await t.http.get(`/v1/billing/users/${ada.id}/entitlements?app=omnizen`).set(bob.auth).expect(403);

    // SQL: bob's claims, even naming org A, see only org B's rows and his own personal ones
    const asBob = (org: string, sql: string) => t.db.as({ sub: bob.id, role: 'authenticated', org_id: org }, 'authenticated', sql);
    const notBobs = `SELECT id FROM hub."Subscription" WHERE "userId" IS DISTINCT FROM '${bob.id}'`;
    expect(await asBob(orgA, notBobs)).toEqual([]);
    expect((await asBob(orgB, notBobs)).map((r) => r.id)).toEqual(['sub-b']);
    expect((await asBob(orgA, `SELECT "userId", "organizationId" FROM hub."Subscription"`))).toEqual([{ userId: bob.id, organizationId: null }]);
    expect(await asBob(orgA, `SELECT id FROM hub."BillingEvent"`)).toEqual([]);
    expect(await asBob(orgB, `SELECT id FROM hub."BillingEvent"`)).toEqual([]);
    expect(await asBob(orgB, `SELECT 1 FROM hub."Subscription" WHERE "userId" = '${ada.id}'`)).toEqual([]);
    await expect(asBob(orgB, `UPDATE hub."Subscription" SET plan = 'custom' WHERE id = 'sub-b'`)).rejects.toMatchObject({ code: '42501' });
    await expect(asBob(orgB, `INSERT INTO hub.plan_features (app_id, plan_code, feature, limit_value) VALUES ('omnizen', 'starter', 'users', 9)`)).rejects.toMatchObject({ code: '42501' });
    await expect(asBob(orgB, `SELECT hub.personal_org_id('${ada.id}')`)).rejects.toMatchObject({ code: '42501' });

    // billing events: a member who is not an admin does not see them either
    const carol = await registerUser(t, 'carol');
    await addMember(t, orgA, carol, 'member');
    await t.http.get(`/v1/orgs/${orgA}/billing/events`).set(carol.auth).expect(403);
    expect(await t.db.as({ sub: carol.id, role: 'authenticated', org_id: orgA }, 'authenticated', `SELECT id FROM hub."BillingEvent"`)).toEqual([]);
    expect((await t.db.as({ sub: carol.id, role: 'authenticated', org_id: orgA }, 'authenticated', `SELECT id FROM hub."Subscription"`)).map((r) => r.id)).toEqual(['sub-a']);
  });

  it('answers 401 to anonymous callers', async () => {
    for (const path of [`/v1/orgs/${ada.personalOrgId}/entitlements?app=omnizen`, '/v1/me/entitlements?app=omnizen', `/v1/billing/users/${ada.id}/entitlements?app=omnizen`, '/v1/billing/apps']) {
      const res = await t.http.get(path).expect(401);
      expect(res.body).toEqual({ error: { code: 'auth.unauthorized', message: 'a valid access token is required' }, requestId: expect.any(String) });
    }
  });
});
