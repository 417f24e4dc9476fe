import type { TestApp } from '../support/app.js';

/**
 * Puts an organization on the omnizen enterprise plan (no user or workspace limits), so tests of
 * organizations are not about billing limits (the starter trial allows 5 users and 1 workspace;
 * test/billing covers the limits).
 */
export async function onEnterprisePlan(t: TestApp, orgId: string): Promise<void> {
  await t.db.admin.query(
    `INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
     VALUES (gen_random_uuid()::text, NULL, 'omnizen', 'enterprise', 'active', $1, now(), now())`, [orgId]);
}
