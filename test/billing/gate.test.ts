import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import type { Principal } from '../../src/platform/auth/principal.js';
import { ConsumesLimit, RequiresActiveSubscription, RequiresFeature } from '../../src/platform/http/tenant.js';
import { EntitlementsService } from '../../src/modules/billing/entitlements.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

describe('billing: the entitlement gate behind the route decorators', () => {
  let t: TestApp;
  let owner: TestUser;
  let principal: Principal;
  const enforce = (orgId: string, requirement: { app: string; feature?: string; consumes?: boolean }) =>
    t.app.get(DatabaseService).tenant(principal, orgId, { requestId: 'gate-test' }, (tx) => t.app.get(EntitlementsService).enforce(tx, requirement));

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    principal = { kind: 'user', userId: owner.id, email: owner.email, personalOrgId: owner.personalOrgId };
  });
  afterAll(() => t.close());

  it('stacks several billing decorators on one route, in reading order', () => {
    class Probe {
      @RequiresActiveSubscription('omnizen')
      @RequiresFeature('omnizen', 'api_access')
      @ConsumesLimit('omnizen', 'users')
      handler(): void {}
    }
    expect(Reflect.getMetadata('omnizen:entitlements', Probe.prototype.handler)).toEqual([
      { app: 'omnizen' },
      { app: 'omnizen', feature: 'api_access' },
      { app: 'omnizen', feature: 'users', consumes: true },
    ]);
  });

  it('RequiresFeature: 402 naming the feature and the plan that includes it; passes once the plan has it', async () => {
    const orgId = await createOrg(t, owner, 'Features');
    await expect(enforce(orgId, { app: 'omnizen', feature: 'api_access' })).rejects.toMatchObject({
      status: 402, code: 'billing.feature_not_in_plan', message: 'the starter plan does not include api access; upgrade to enterprise',
    });
    await expect(enforce(orgId, { app: 'omnizen', feature: 'inventory_management' })).rejects.toMatchObject({
      message: 'the starter plan does not include inventory management; upgrade to professional',
    });
    await expect(enforce(orgId, { app: 'omnizen', feature: 'basic_invoicing' })).resolves.toBeUndefined();
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'omnizen', 'enterprise', 'active', $1)`, [orgId]);
    await expect(enforce(orgId, { app: 'omnizen', feature: 'api_access' })).resolves.toBeUndefined();
  });

  it('says so when no plan lifts a limit, and refuses a counted feature nobody counts', async () => {
    const orgId = await createOrg(t, owner, 'Ceiling');
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId") VALUES (gen_random_uuid(), 'app_securevault', 'business_starter', 'active', $1)`, [orgId]);
    await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = 1 WHERE app_id = 'app_securevault' AND feature = 'users' AND plan_code IN ('business_starter', 'business_growth', 'business_pro', 'enterprise')`);
    try {
      await expect(enforce(orgId, { app: 'app_securevault', feature: 'users', consumes: true })).rejects.toMatchObject({
        status: 402, code: 'billing.limit_reached', message: 'the business_starter plan allows 1 user; no plan allows more; contact sales',
      });
    } finally {
      await t.db.admin.query(`UPDATE hub.plan_features pf SET limit_value = v.l FROM (VALUES ('business_starter', 10), ('business_growth', 25), ('business_pro', 100), ('enterprise', NULL::int)) v(p, l)
        WHERE pf.app_id = 'app_securevault' AND pf.feature = 'users' AND pf.plan_code = v.p`);
    }
    // storage is counted by SecureVault itself: nothing here registers a counter for it
    await expect(enforce(orgId, { app: 'app_securevault', feature: 'storage', consumes: true })).rejects.toThrow('no usage counter is registered for app_securevault/storage');
  });
});
