import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { billingContext } from '../../src/modules/billing/billing.repository.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { openTenantTransaction } from '../support/database.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';

/**
 * The entitlement gate's statement (billingContext, on every gated write) finds the organization's subscription by an
 * index, as a generic plan too (it is a named prepared statement): it compared "organizationId" with `o.id::text`, a cast
 * that is not leakproof, so under hub."Subscription"'s row-level security it could only filter every subscription of
 * every organization (8.6 ms a write at 2,000 organizations). Same answers: a business organization's own
 * subscription, a personal one's through its owner's personal subscription.
 */
describe('billing: the gate reads one subscription, by an index', () => {
  let t: TestApp;
  let ada: TestUser;
  let businessOrg: string;
  const clients: pg.Client[] = [];

  /** every node of an EXPLAIN (FORMAT JSON) plan */
  const nodes = (plan: any): any[] => [plan, ...((plan.Plans ?? []) as any[]).flatMap(nodes)];

  beforeAll(async () => {
    t = await createTestApp();
    ada = await registerUser(t, 'ada');
    businessOrg = await createOrg(t, ada, 'Context Plan Ltd');
    await onPlan(t, businessOrg, 'professional');
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, $1, 'omnizen', 'enterprise', 'active', now(), now())`, [ada.id]);
    // other organizations' subscriptions, which the statement has no business reading
    for (const name of ['bob', 'cy']) {
      const other = await registerUser(t, name);
      await onPlan(t, await createOrg(t, other, `${name} Ltd`), 'enterprise');
    }
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end()));
    await t.close();
  });

  it.each([['business', () => businessOrg, 'professional'], ['personal', () => ada.personalOrgId, 'enterprise']] as const)(
    'a %s organization: its subscription, read by an index (custom and generic plan)', async (kind, orgOf, plan) => {
      const orgId = orgOf();
      const { sql, parameters } = billingContext({ orgId, appId: 'omnizen' }).compile();
      const { c } = await openTenantTransaction(t.db.apiUrl, { sub: ada.id, org_id: orgId }, clients);
      try {
        const { rows } = await c.query(sql, [...parameters]);
        expect(rows.map((r) => ({ orgId: r.orgId, plan: r.plan, organizationId: r.organizationId, userId: r.userId }))).toEqual([
          kind === 'business' ? { orgId, plan, organizationId: orgId, userId: null } : { orgId, plan, organizationId: null, userId: ada.id },
        ]);
        // the stored subscriptions: three organizations' and Ada's own
        const { rows: [{ n }] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM hub."Subscription" WHERE "appId" = 'omnizen'`);
        expect(n).toBe(4);

        // a table this small is cheapest read whole: with sequential scans priced out, the plan shows what an index can
        // find. Before, its condition held the app only ("appId" = ...): it read every organization's subscriptions
        const subscriptionReads = async (explain: string, values: unknown[] = []) => {
          const { rows: [{ 'QUERY PLAN': [p] }] } = await c.query(explain, values);
          return nodes(p.Plan).filter((n) => n['Relation Name'] === 'Subscription').map((n) => `${n['Node Type']} by ${n['Index Cond'] ?? n['Recheck Cond']}`);
        };
        await c.query('SET LOCAL enable_seqscan = off');
        const custom = await subscriptionReads(`EXPLAIN (FORMAT JSON) ${sql}`, [...parameters]);
        await c.query(`PREPARE billing_context AS ${sql}`);
        await c.query('SET LOCAL plan_cache_mode = force_generic_plan');
        const generic = await subscriptionReads(`EXPLAIN (FORMAT JSON) EXECUTE billing_context (${parameters.map((v) => c.escapeLiteral(String(v))).join(', ')})`);
        // the owner's personal subscription or the organization's own: both branches of the join are index conditions
        const byOrganization = expect.stringMatching(/^(Bitmap Heap|Index) Scan by .*"userId" = o\.owner_user_id.*"organizationId" = /);
        expect({ custom, generic }).toEqual({ custom: [byOrganization], generic: [byOrganization] });
      } finally {
        await c.query('ROLLBACK');
      }
    });
});
