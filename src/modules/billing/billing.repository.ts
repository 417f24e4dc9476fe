import type { Db } from '../../platform/database/database.service.js';

export interface AppRow {
  id: string;
  name: string;
  defaultPlan: string;
  trialDays: number;
}

export interface PlanRow {
  appId: string;
  code: string;
  name: string;
  audience: 'personal' | 'business' | 'any';
  rank: number;
}

export interface PlanFeatureRow {
  planCode: string;
  feature: string;
  kind: 'boolean' | 'limit';
  unit: string | null;
  description: string;
  enabled: boolean;
  limit: number | null;
}

/** A hub."Subscription" row with its Stripe bookkeeping (absent for rows the Hub provisioned by SQL). */
export interface SubscriptionRow {
  id: string;
  userId: string | null;
  organizationId: string | null;
  appId: string;
  plan: string;
  status: string | null;
  stripeSubscriptionId: string | null;
  createdAt: Date | null;
  updatedAt: Date | null;
  stripeCustomerId: string | null;
  stripePriceId: string | null;
  trialEndsAt: Date | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
  pastDueSince: Date | null;
  lastEventAt: Date | null;
}

export interface OrgRow {
  id: string;
  accountType: 'personal' | 'business';
  ownerUserId: string;
  createdAt: Date;
}

/** Who holds a subscription: an organization, or a person (personal plan, "organizationId" NULL). */
export type Subject = { kind: 'organization'; orgId: string } | { kind: 'user'; userId: string };

const SUBSCRIPTION_COLUMNS = `s.id, s."userId", s."organizationId", s."appId", s.plan, s.status, s."stripeSubscriptionId",
  s."createdAt", s."updatedAt", b.stripe_customer_id AS "stripeCustomerId", b.stripe_price_id AS "stripePriceId",
  b.trial_ends_at AS "trialEndsAt", b.current_period_end AS "currentPeriodEnd",
  coalesce(b.cancel_at_period_end, false) AS "cancelAtPeriodEnd", b.past_due_since AS "pastDueSince", b.last_event_at AS "lastEventAt"`;

/** Catalog and subscription reads; every call reads the tables (no cache: provisioning SQL shows at once). */
export const billingRepository = {
  async app(db: Db, appId: string): Promise<AppRow | undefined> {
    const [row] = await db.$queryRaw<AppRow[]>`SELECT id, name, "defaultPlan", "trialDays" FROM hub."App" WHERE id = ${appId}`;
    return row;
  },

  async apps(db: Db): Promise<AppRow[]> {
    return db.$queryRaw<AppRow[]>`SELECT id, name, "defaultPlan", "trialDays" FROM hub."App" ORDER BY id`;
  },

  async plans(db: Db, appId: string): Promise<PlanRow[]> {
    return db.$queryRaw<PlanRow[]>`SELECT app_id AS "appId", code, name, audience, rank FROM hub.plans WHERE app_id = ${appId} ORDER BY rank, code`;
  },

  /** Every feature of the app with the plan's value (a feature the plan has no row for is off / zero). */
  async planFeatures(db: Db, appId: string, planCode: string): Promise<PlanFeatureRow[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT ${planCode} AS "planCode", f.code AS feature, f.kind, f.unit, f.description,
             coalesce(pf.enabled, false) AS enabled,
             CASE WHEN pf.feature IS NULL AND f.kind = 'limit' THEN 0 ELSE pf.limit_value END AS "limit"
      FROM hub.features f
      LEFT JOIN hub.plan_features pf ON pf.app_id = f.app_id AND pf.feature = f.code AND pf.plan_code = ${planCode}
      WHERE f.app_id = ${appId}
      ORDER BY f.kind DESC, f.code`;
    return rows.map((r) => ({ ...r, limit: r.limit === null ? null : Number(r.limit) }));
  },

  /** One feature across the app's plans, in upgrade order: to name the plan that lifts a limit. */
  async featureAcrossPlans(db: Db, appId: string, feature: string): Promise<(PlanRow & { enabled: boolean; limit: number | null })[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT p.app_id AS "appId", p.code, p.name, p.audience, p.rank, coalesce(pf.enabled, false) AS enabled, pf.limit_value AS "limit",
             pf.feature IS NULL AS missing
      FROM hub.plans p LEFT JOIN hub.plan_features pf ON pf.app_id = p.app_id AND pf.plan_code = p.code AND pf.feature = ${feature}
      WHERE p.app_id = ${appId} ORDER BY p.rank, p.code`;
    return rows.map((r) => ({ ...r, limit: r.missing ? 0 : r.limit === null ? null : Number(r.limit) }));
  },

  async org(db: Db, orgId: string): Promise<OrgRow | undefined> {
    const [row] = await db.$queryRaw<OrgRow[]>`
      SELECT id, account_type AS "accountType", owner_user_id AS "ownerUserId", created_at AS "createdAt"
      FROM core.organizations WHERE id = ${orgId}::uuid`;
    return row;
  },

  async subscription(db: Db, subject: Subject, appId: string): Promise<SubscriptionRow | undefined> {
    const [row] = subject.kind === 'organization'
      ? await db.$queryRawUnsafe<SubscriptionRow[]>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM hub."Subscription" s
          LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id
          WHERE s."organizationId" = $1 AND s."appId" = $2`, subject.orgId, appId)
      : await db.$queryRawUnsafe<SubscriptionRow[]>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM hub."Subscription" s
          LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id
          WHERE s."userId" = $1 AND s."organizationId" IS NULL AND s."appId" = $2`, subject.userId, appId);
    return row;
  },

  /** Locks the subscription, then reads it with its bookkeeping in a new statement (so a waiter sees the winner's commit). */
  async lockSubscription(db: Db, id: string): Promise<SubscriptionRow | undefined> {
    await db.$queryRaw`SELECT id FROM hub."Subscription" WHERE id = ${id} FOR UPDATE`;
    const [row] = await db.$queryRawUnsafe<SubscriptionRow[]>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM hub."Subscription" s
      LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s.id = $1`, id);
    return row;
  },

  async subscriptionByStripeId(db: Db, stripeSubscriptionId: string): Promise<SubscriptionRow | undefined> {
    const [row] = await db.$queryRawUnsafe<SubscriptionRow[]>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM hub."Subscription" s
      LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id WHERE s."stripeSubscriptionId" = $1`, stripeSubscriptionId);
    return row;
  },

  /** The Stripe customer of an organization or person (any of its subscriptions), for the portal and new checkouts. */
  async stripeCustomer(db: Db, subject: Subject): Promise<string | undefined> {
    const [row] = subject.kind === 'organization'
      ? await db.$queryRaw<{ id: string }[]>`SELECT stripe_customer_id AS id FROM hub.subscription_billing
          WHERE organization_id = ${subject.orgId} AND stripe_customer_id IS NOT NULL ORDER BY updated_at DESC LIMIT 1`
      : await db.$queryRaw<{ id: string }[]>`SELECT stripe_customer_id AS id FROM hub.subscription_billing
          WHERE user_id = ${subject.userId} AND organization_id IS NULL AND stripe_customer_id IS NOT NULL ORDER BY updated_at DESC LIMIT 1`;
    return row?.id;
  },

  /**
   * The per-(organization, app) lock of counted limits: created on first use, then locked until
   * the request transaction ends, so concurrent writers of one organization count one at a time.
   */
  async lockLimits(db: Db, orgId: string, appId: string): Promise<void> {
    await db.$executeRaw`INSERT INTO hub.limit_locks (org_id, app_id) VALUES (${orgId}::uuid, ${appId}) ON CONFLICT DO NOTHING`;
    await db.$queryRaw`SELECT 1 FROM hub.limit_locks WHERE org_id = ${orgId}::uuid AND app_id = ${appId} FOR UPDATE`;
  },

  async billingEvents(db: Db, orgId: string, limit: number): Promise<any[]> {
    return db.$queryRaw<any[]>`
      SELECT id, "stripeEventId", type, "subscriptionId", status, reason, "stripeCreatedAt", "receivedAt", "processedAt"
      FROM hub."BillingEvent" WHERE "orgId" = ${orgId}::uuid ORDER BY "receivedAt" DESC, id LIMIT ${limit}`;
  },
};
