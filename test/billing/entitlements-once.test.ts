import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { billingRepository } from '../../src/modules/billing/billing.repository.js';
import { EntitlementsService } from '../../src/modules/billing/entitlements.service.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import type { Principal } from '../../src/platform/auth/principal.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { rUrl, setupReceivables } from '../receivables/receivables-support.js';

/**
 * The billing context (hub."Subscription", the organization, the app: BillingRepository.billingContext) is read once
 * per tenant transaction. A request made with an API key is checked for the plan's api_access and for the route's own
 * feature, and a handler may check one more (a document in another currency: full_accounting): one read serves them
 * all. It is counted with a spy on our own repository, which still runs the real query. Nothing carries over to the
 * next transaction or request: each reads the plan again, and a downgrade between two requests is seen by the second.
 */
describe('billing: the billing context is resolved once per tenant transaction', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let customer: string;
  let key: { Authorization: string };
  const spyOnReads = () => jest.spyOn(billingRepository, 'billingContext');
  let spy: ReturnType<typeof spyOnReads> | undefined;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'resolve-once');
    orgId = await createOrg(t, owner, 'Resolved Once Ltd');
    await onEnterprisePlan(t, orgId);
    ({ acc, customer } = await setupReceivables(t, orgId, owner, 'USD'));
    const created = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth)
      .send({ name: 'resolve once', scopes: ['receivables:read', 'receivables:write'] }).expect(201);
    key = { Authorization: `Bearer ${created.body.secret}` };
  });
  afterEach(() => spy?.mockRestore());
  afterAll(() => t.close());

  /** Counts the billing-context reads of this test's organization from now on (the real query still runs). */
  const countReads = () => {
    const reads = spy = spyOnReads();
    return () => reads.mock.calls.filter(([, org]) => org === orgId).map(([, org, app]) => [org, app]);
  };
  const customersNamed = async (name: string) =>
    (await t.db.admin.query('SELECT count(*)::int AS n FROM finance.customers WHERE org_id = $1 AND name = $2', [orgId, name])).rows[0].n;

  it('a keyed write to a route that requires a feature: the key\'s api_access and the route\'s basic_invoicing share one read', async () => {
    const reads = countReads();
    const res = await t.http.post(rUrl(orgId, 'customers')).set(key).send({ name: 'Keyed Once Ltd', email: 'ap@once.example' }).expect(201);
    expect(res.body).toMatchObject({ id: expect.any(String), name: 'Keyed Once Ltd' });
    expect(reads()).toEqual([[orgId, 'omnizen']]);
    expect(await customersNamed('Keyed Once Ltd')).toBe(1);
  });

  it('a handler\'s own check later in the same transaction (a draft in another currency needs full_accounting) reads it no more', async () => {
    const reads = countReads();
    const res = await t.http.post(rUrl(orgId, 'invoices')).set(key).send({
      customerId: customer, invoiceDate: '2026-03-01', currency: 'EUR',
      lines: [{ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }],
    }).expect(201);
    expect(res.body).toMatchObject({ status: 'draft', currency: 'EUR' });
    expect(reads()).toEqual([[orgId, 'omnizen']]);
    const { rows } = await t.db.admin.query('SELECT status, currency FROM finance.invoices WHERE org_id = $1 AND id = $2', [orgId, res.body.id]);
    expect(rows).toEqual([{ status: 'draft', currency: 'EUR' }]);
  });

  it('nothing carries over to the next request: each reads the plan again, and a downgrade between two requests is seen', async () => {
    const reads = countReads();
    await t.http.post(rUrl(orgId, 'customers')).set(key).send({ name: 'Before Downgrade Ltd' }).expect(201);
    await onPlan(t, orgId, 'starter');
    const refused = await t.http.post(rUrl(orgId, 'customers')).set(key).send({ name: 'After Downgrade Ltd' }).expect(402);
    expect(refused.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'api_access', plan: 'starter' } });
    await onEnterprisePlan(t, orgId);
    await t.http.post(rUrl(orgId, 'customers')).set(key).send({ name: 'After Upgrade Ltd' }).expect(201);
    expect(reads()).toEqual([[orgId, 'omnizen'], [orgId, 'omnizen'], [orgId, 'omnizen']]);
    expect([await customersNamed('Before Downgrade Ltd'), await customersNamed('After Downgrade Ltd'), await customersNamed('After Upgrade Ltd')]).toEqual([1, 0, 1]);
  });

  it('two transactions of one caller each read it (the gate called directly, as a job does)', async () => {
    const principal: Principal = { kind: 'user', userId: owner.id, email: owner.email, personalOrgId: owner.personalOrgId };
    const gate = t.app.get(EntitlementsService);
    const enforceTwice = () => t.app.get(DatabaseService).tenant(principal, orgId, { requestId: 'resolve-once' }, async (tx) => {
      await gate.enforce(tx, { app: 'omnizen', feature: 'full_accounting' });
      await gate.enforce(tx, { app: 'omnizen', feature: 'api_access' });
    });
    const reads = countReads();
    await enforceTwice();
    expect(reads()).toHaveLength(1);
    // a downgrade committed between two transactions: the second reads it and refuses
    await onPlan(t, orgId, 'starter');
    await expect(enforceTwice()).rejects.toMatchObject({ status: 402, code: 'billing.feature_not_in_plan', details: { plan: 'starter', feature: 'full_accounting' } });
    expect(reads()).toHaveLength(2);
    await onEnterprisePlan(t, orgId);
  });
});
