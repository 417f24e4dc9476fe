import { type RawBuilder, sql } from 'kysely';
import { qb } from '../../platform/database/query-builder.js';

/**
 * The join condition of the subscription (`s`, hub."Subscription") of app `a` that bills organization `o`: a personal
 * organization through its owner's personal subscription ("organizationId" NULL), a business one through its own.
 * billingContext (one organization: `orgId`, o.id's value) and plansOfOrganizations (every one) join with it.
 * Given `orgId`, the business branch compares "organizationId" with that parameter as text, not with `o.id::text`: the
 * uuid-to-text cast is not leakproof, so under the subscription's row-level security it could not be an index
 * condition and every gated write filtered all subscriptions (8.6 ms at 2,000 organizations, 0.1 ms by the index).
 */
export function subscriptionBillsOrganization(orgId?: string): RawBuilder<boolean> {
  const orgIdText = orgId === undefined ? sql`o.id::text` : sql`${orgId}::uuid::text`;
  return sql<boolean>`s."appId" = a.id AND (
  (o.account_type = 'personal' AND s."userId" = o.owner_user_id AND s."organizationId" IS NULL)
  OR (o.account_type <> 'personal' AND s."organizationId" = ${orgIdText}))`;
}

/** The hub."App" whose plans are OmniZen's own (the app this API's entitlement gates check: `@RequiresFeature('omnizen', ...)`). */
export const OMNIZEN_APP = 'omnizen';

/**
 * Every organization not deleted with its current plan of `appId` (columns org_id, plan): the plan of the subscription
 * that bills it, whatever its status, else the app's default plan (no subscription yet: the default plan's trial), as
 * EntitlementsService resolves one organization's (the subscription subscriptionBillsOrganization names). A query to
 * read from (a WITH or a join) for reports across organizations: it reads every organization, so privileged callers only.
 */
export function plansOfOrganizations(appId: string) {
  return qb.selectFrom('core.organizations as o')
    .innerJoin('hub.App as a', (j) => j.on('a.id', '=', appId))
    .leftJoin('hub.Subscription as s', (j) => j.on(subscriptionBillsOrganization()))
    .select((eb) => ['o.id as org_id', eb.fn.coalesce('s.plan', 'a.defaultPlan').as('plan')])
    .where('o.deleted_at', 'is', null);
}
