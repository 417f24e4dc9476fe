import { type RawBuilder, sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { type Compilable, exactInstant, prepare, qb } from '../../platform/database/query-builder.js';
import { LIVE_STATUSES, MISFIT_STATUS } from './subscription-status.js';
import { subscriptionBillsOrganization } from './plan-of-org.repository.js';

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
  /** the ordering mark: the time of the last subscription event (customer.subscription.*) applied */
  lastEventAt: Date | null;
  /** the time of the last invoice event (invoice.paid, invoice.payment_failed) applied (not read by the gate's billingContext: absent there) */
  lastInvoiceEventAt?: Date | null;
  /**
   * When BillingExpiryJob ended it (canceled at period end, the period passed) without Stripe saying so; null when its
   * status is Stripe's word (or the Hub's own). Not read by the gate's billingContext (absent there).
   */
  endedLocallyAt?: Date | null;
  /**
   * The Stripe price its own Stripe subscription is on when that is not a plan of its app for its holder's audience
   * (another app's, another audience's, not mapped to a plan of the catalog): it entitles nothing, read-only
   * (EntitlementsService) until a Stripe event puts it on a fitting price again; null otherwise.
   */
  priceMisfit: string | null;
  /**
   * The latest time a domain event of the row was dated (hub.subscription_billing.events_dated_until): the next one is
   * dated no earlier (datedNotBefore). Not read by the gate's billingContext (absent there).
   */
  eventsDatedUntil?: Date | null;
}

/**
 * The time to date a domain event of a row at: `at`, or the row's floor when that is later: eventsDatedUntil, and a
 * local end (endedLocallyAt, dated when the expiry job ran), which an instance still on the code before the floor (a
 * rolling deploy) set without raising eventsDatedUntil. The endedLocallyAt fold is for that deploy only: it can go
 * once no instance runs code older than migration 20270211003600 and a later migration has raised
 * events_dated_until to ended_locally_at where that is later (or NULL), the rows such an instance wrote meanwhile.
 */
export const datedNotBefore = (row: Pick<SubscriptionRow, 'eventsDatedUntil' | 'endedLocallyAt'> | undefined, at: Date): Date =>
  [row?.eventsDatedUntil, row?.endedLocallyAt].reduce<Date>((floor, d) => (d && d > floor ? d : floor), at);

export interface OrgRow {
  id: string;
  accountType: 'personal' | 'business';
  ownerUserId: string;
  createdAt: Date;
}

/** An organization's checkout of an app, as hub.limit_locks holds it (BillingRepository.lockLimits). */
export interface OpenCheckout {
  key: string | null;
  drawnAt: Date | null;
  /** the sha256 of the Stripe parameters the key was drawn for */
  request: string | null;
  /**
   * those parameters (JSON, as sent) while no session is recorded under the key: its create may have succeeded in Stripe
   * unanswered (or its recording failed), and a replay with them and the key's Idempotency-Key tells which session it was
   */
  params: string | null;
  /** the session created under the key once recorded; until then (params set) the one before it, still to be expired */
  sessionId: string | null;
}

/** Who holds a subscription: an organization, or a person (personal plan, "organizationId" NULL). */
export type Subject = { kind: 'organization'; orgId: string } | { kind: 'user'; userId: string };

/**
 * Who an organization's subscriptions, Stripe customer and checkouts are for: a personal organization is billed
 * through its owner's personal subscription ("organizationId" NULL), a business organization through its own.
 */
export function subjectOf(org: Pick<OrgRow, 'id' | 'accountType' | 'ownerUserId'>): Subject {
  return org.accountType === 'personal' ? { kind: 'user', userId: org.ownerUserId } : { kind: 'organization', orgId: org.id };
}

/** The plan audience a subject buys from (besides plans for 'any'). */
export const audienceOf = (subject: Subject): 'personal' | 'business' => (subject.kind === 'user' ? 'personal' : 'business');

/**
 * Why `subject` cannot hold the plan (a personal plan for an organization, a business plan for a person), or undefined:
 * checkout refuses such a plan, and a Stripe event naming one does not put it on a subscription.
 */
export function audienceMismatch(app: string, plan: Pick<PlanRow, 'code' | 'audience'>, subject: Subject): string | undefined {
  const audience = audienceOf(subject);
  return plan.audience === 'any' || plan.audience === audience ? undefined : `the ${app} plan ${plan.code} is a ${plan.audience} plan; this is a ${audience} account`;
}

/** hub."Subscription" with its Stripe bookkeeping, as SubscriptionRow. */
const subscriptions = () => qb.selectFrom('hub.Subscription as s')
  .leftJoin('hub.subscription_billing as b', 'b.subscription_id', 's.id')
  .select([
    's.id', 's.userId', 's.organizationId', 's.appId', 's.plan', 's.status', 's.stripeSubscriptionId', 's.createdAt', 's.updatedAt',
    'b.stripe_customer_id as stripeCustomerId', 'b.stripe_price_id as stripePriceId', 'b.trial_ends_at as trialEndsAt',
    'b.current_period_end as currentPeriodEnd', (eb) => eb.fn.coalesce('b.cancel_at_period_end', sql<boolean>`false`).as('cancelAtPeriodEnd'),
    'b.past_due_since as pastDueSince', 'b.last_event_at as lastEventAt', 'b.last_invoice_event_at as lastInvoiceEventAt',
    'b.ended_locally_at as endedLocallyAt', 'b.price_misfit as priceMisfit', 'b.events_dated_until as eventsDatedUntil',
  ]);

const subscriptionById = async (db: Db, id: string): Promise<SubscriptionRow | undefined> => (await db.run(subscriptions().where('s.id', '=', id)))[0];

/**
 * The app, the organization and the subscription that bills it, in one statement: a personal
 * organization is billed through its owner's personal subscription ("organizationId" NULL), a business
 * organization through its own. Run by the entitlement gate on every gated write (bench/ledger.bench.ts's batch
 * floor sends it too, as the batch route does).
 */
export const billingContext = prepare((p: { orgId: string; appId: string }) => qb.selectFrom('hub.App as a')
  .innerJoin('core.organizations as o', (j) => j.on('o.id', '=', p.orgId))
  .leftJoin('hub.Subscription as s', (j) => j.on(subscriptionBillsOrganization(p.orgId)))
  .leftJoin('hub.subscription_billing as b', 'b.subscription_id', 's.id')
  .select([
    'a.id as appId', 'a.name as appName', 'a.defaultPlan', 'a.trialDays',
    'o.id as orgId', 'o.account_type as accountType', 'o.owner_user_id as ownerUserId', 'o.created_at as orgCreatedAt',
    's.id', 's.userId', 's.organizationId', 's.plan', 's.status', 's.stripeSubscriptionId', 's.createdAt', 's.updatedAt',
    'b.stripe_customer_id as stripeCustomerId', 'b.stripe_price_id as stripePriceId', 'b.trial_ends_at as trialEndsAt',
    'b.current_period_end as currentPeriodEnd', (eb) => eb.fn.coalesce('b.cancel_at_period_end', sql<boolean>`false`).as('cancelAtPeriodEnd'),
    'b.past_due_since as pastDueSince', 'b.last_event_at as lastEventAt', 'b.price_misfit as priceMisfit',
  ])
  .where('a.id', '=', p.appId)
  .$narrowType<{ accountType: OrgRow['accountType'] }>());

const limitOf = (v: bigint | null): number | null => (v === null ? null : Number(v));

/** A feature joined with a plan's row (`planCode` null: the plan has no row for it, so it is off, a limit of 0). */
type FeatureJoin = { feature: string; kind: PlanFeatureRow['kind']; unit: string | null; description: string; planCode: string | null; enabled: boolean | null; limit: bigint | null };
const planValue = (r: FeatureJoin, planCode: string): PlanFeatureRow => ({
  planCode, feature: r.feature, kind: r.kind, unit: r.unit, description: r.description,
  ...(r.planCode === null ? { enabled: false, limit: r.kind === 'limit' ? 0 : null } : { enabled: r.enabled ?? false, limit: limitOf(r.limit) }),
});

/** One feature of an app's catalog with its value in every plan that lists it (the gate's question, compiled once). */
const featureInPlans = prepare((p: { appId: string; feature: string }) => qb.selectFrom('hub.features as f')
  .leftJoin('hub.plan_features as pf', (j) => j.onRef('pf.app_id', '=', 'f.app_id').onRef('pf.feature', '=', 'f.code'))
  .select(['f.code as feature', 'f.kind', 'f.unit', 'f.description', 'pf.plan_code as planCode', 'pf.enabled', 'pf.limit_value as limit'])
  .where('f.app_id', '=', p.appId).where('f.code', '=', p.feature)
  .$narrowType<{ kind: PlanFeatureRow['kind'] }>());

/** What a Stripe event changes on a subscription's bookkeeping; undefined fields keep their value. */
export interface BillingChange {
  customer?: string;
  price?: string;
  status: string;
  trialEndsAt?: Date | null;
  currentPeriodEnd?: Date | null;
  cancelAtPeriodEnd?: boolean;
  /** null: the status written is Stripe's word (clears BillingExpiryJob's local end); undefined: kept (a status kept as known) */
  endedLocallyAt?: null;
  /** the Stripe price, when it is not a plan of the row's app for its audience; null: it fits; undefined: kept */
  priceMisfit?: string | null;
}

/** A Stripe event that orders the next ones (its id and time). */
export interface EventMark {
  id: string;
  at: Date;
}

/** The ordering marks an event writes (null clears one, undefined leaves it as it is): BillingRepository.upsertBilling. */
export interface EventMarks {
  subscription?: EventMark | null;
  invoice?: EventMark | null;
}

/**
 * "trialDays" days of 24 hours, as EntitlementsService counts them (trialDays * DAY_MS): days => n would keep the wall
 * clock of the session's TimeZone, an hour more or less across its daylight-saving change.
 */
const trialLength = sql<string>`make_interval(hours => 24 * a."trialDays")`;

/**
 * When a local trial (no Stripe subscription) ends: the recorded end, else "trialDays" after the row's creation, else
 * after its organization's (a row the Hub provisioned by SQL; EntitlementsService reads it so too). Needs the aliases s
 * (hub."Subscription"), and left-joined a (its hub."App"), b (its hub.subscription_billing), o (the organization of
 * s."organizationId"); a personal subscription's organization is looked up only when needed. The one definition the
 * expiry (dueToExpire) and the notices (endingTrials) share.
 */
const localTrialEnd = sql<Date>`coalesce(b.trial_ends_at, coalesce(s."createdAt" AT TIME ZONE 'utc', o.created_at,
    (SELECT p.created_at FROM core.organizations p WHERE p.id = core.personal_org_id(s."userId"))) + ${trialLength})`;

/** A trial without Stripe: the rows localTrialEnd applies to (alias s). */
const isLocalTrial = sql<boolean>`(s.status = 'trialing' AND s."stripeSubscriptionId" IS NULL)`;

/** A local trial over at `now`. */
const localTrialEnded = (now: Date) => sql<boolean>`(${isLocalTrial} AND ${localTrialEnd} <= ${now}::timestamptz)`;

/** A business organization's default trial of an app (no subscription row): "trialDays" after its creation (aliases a, o). */
const defaultTrialEnd = sql<Date>`(o.created_at + ${trialLength})`;

/**
 * The stored subscription events (customer.subscription.*) of one Stripe subscription for an organization, as the
 * partial expression index billing_event_stripe_subscription_idx (migration 20270211003500) reads them: its predicate
 * (the type pattern a literal, not a parameter: a generic plan could not prove it) and its key expression, written
 * exactly as the index has them.
 */
const subscriptionEventsOf = (orgId: string, stripeSubscriptionId: string) => qb.selectFrom('hub.BillingEvent')
  .where('orgId', '=', orgId).where(sql<boolean>`"type" LIKE 'customer.subscription.%'`)
  .where(sql<boolean>`(payload->'data'->'object'->>'id') = ${stripeSubscriptionId}`);

/** A stored Stripe event of hub."BillingEvent" (storedSubscriptionEvents). */
export interface StoredEvent {
  id: string;
  status: string;
  payload: unknown;
}

/** A statement written with Kysely's `sql` (to embed the fragments above), run as a typed query. */
const statement = <O>(raw: RawBuilder<O>): Compilable<O> => ({ compile: () => raw.compile(qb) });

/** A past-due start recordPastDueStarts recorded or cleared (`pastDueSince`: the start recorded, or the one cleared). */
export interface PastDueChange {
  id: string;
  orgId: string | null;
  pastDueSince: Date;
}

/** A subscription whose time is over (trial ended, canceled at period end), with the organization to audit under. */
export interface DueSubscription {
  id: string;
  status: string | null;
  plan: string;
  orgId: string | null;
  reason: 'trial_ended' | 'canceled_at_period_end';
}

/** A trial without Stripe that ends soon and has had no `subscription.trial_ending` yet. */
export interface EndingTrial {
  orgId: string;
  appId: string;
  trialEndsAt: Date;
  /** the local subscription; null for an organization's default trial (no subscription row) */
  subscriptionId: string | null;
  plan: string;
}

/**
 * The billing tables (catalog, subscriptions and their Stripe bookkeeping, Stripe events, limit locks).
 * Every call reads the tables (no cache: provisioning SQL shows at once).
 */
export const billingRepository = {
  async app(db: Db, appId: string): Promise<AppRow | undefined> {
    const [row] = await db.run(qb.selectFrom('hub.App').select(['id', 'name', 'defaultPlan', 'trialDays']).where('id', '=', appId));
    return row;
  },

  async apps(db: Db): Promise<AppRow[]> {
    return db.run(qb.selectFrom('hub.App').select(['id', 'name', 'defaultPlan', 'trialDays']).orderBy('id'));
  },

  async plans(db: Db, appId: string): Promise<PlanRow[]> {
    return db.run(qb.selectFrom('hub.plans').select(['app_id as appId', 'code', 'name', 'audience', 'rank'])
      .where('app_id', '=', appId).orderBy('rank').orderBy('code').$narrowType<{ audience: PlanRow['audience'] }>());
  },

  /** Every feature of the app with the plan's value (a feature the plan has no row for is off / zero: `planValue`). */
  async planFeatures(db: Db, appId: string, planCode: string): Promise<PlanFeatureRow[]> {
    const rows = await db.run(qb.selectFrom('hub.features as f')
      .leftJoin('hub.plan_features as pf', (j) => j.onRef('pf.app_id', '=', 'f.app_id').onRef('pf.feature', '=', 'f.code').on('pf.plan_code', '=', planCode))
      .select(['f.code as feature', 'f.kind', 'f.unit', 'f.description', 'pf.plan_code as planCode', 'pf.enabled', 'pf.limit_value as limit'])
      .where('f.app_id', '=', appId).orderBy('f.kind', 'desc').orderBy('f.code')
      .$narrowType<{ kind: PlanFeatureRow['kind'] }>());
    return rows.map((r) => planValue(r, planCode));
  },

  /**
   * One feature as `planFeatures` answers it for `planCode` (a plan that does not list it: off, a limit of 0), read
   * without knowing the plan yet, so the gate sends it together with the billing context. Undefined when the
   * feature is not in the app's catalog.
   */
  async featureOfPlan(db: Db, appId: string, feature: string): Promise<((planCode: string) => PlanFeatureRow) | undefined> {
    const rows = await db.run(featureInPlans({ appId, feature }));
    if (!rows.length) return undefined;
    return (planCode) => planValue(rows.find((r) => r.planCode === planCode) ?? { ...rows[0], planCode: null }, planCode);
  },

  /** One feature across the app's plans, in upgrade order: to name the plan that lifts a limit. */
  async featureAcrossPlans(db: Db, appId: string, feature: string): Promise<(PlanRow & { enabled: boolean; limit: number | null })[]> {
    const rows = await db.run(qb.selectFrom('hub.plans as p')
      .leftJoin('hub.plan_features as pf', (j) => j.onRef('pf.app_id', '=', 'p.app_id').onRef('pf.plan_code', '=', 'p.code').on('pf.feature', '=', feature))
      .select((eb) => [
        'p.app_id as appId', 'p.code', 'p.name', 'p.audience', 'p.rank', eb.fn.coalesce('pf.enabled', sql<boolean>`false`).as('enabled'),
        'pf.limit_value as limit', eb('pf.feature', 'is', null).as('missing'),
      ])
      .where('p.app_id', '=', appId).orderBy('p.rank').orderBy('p.code')
      .$narrowType<{ audience: PlanRow['audience'] }>());
    return rows.map(({ missing, ...r }) => ({ ...r, limit: missing ? 0 : limitOf(r.limit) }));
  },

  /** The app, the organization and its billing subscription (absent: none yet) in one round trip; undefined when the app or organization does not exist. */
  async billingContext(db: Db, orgId: string, appId: string): Promise<{ app: AppRow; org: OrgRow; subscription?: SubscriptionRow } | undefined> {
    const [r] = await db.run(billingContext({ orgId, appId }));
    if (!r) return undefined;
    return {
      app: { id: r.appId, name: r.appName, defaultPlan: r.defaultPlan, trialDays: r.trialDays },
      org: { id: r.orgId, accountType: r.accountType, ownerUserId: r.ownerUserId, createdAt: r.orgCreatedAt },
      subscription: r.id === null ? undefined : {
        id: r.id, userId: r.userId, organizationId: r.organizationId, appId: r.appId, plan: r.plan!, status: r.status, stripeSubscriptionId: r.stripeSubscriptionId,
        createdAt: r.createdAt, updatedAt: r.updatedAt, stripeCustomerId: r.stripeCustomerId, stripePriceId: r.stripePriceId, trialEndsAt: r.trialEndsAt,
        currentPeriodEnd: r.currentPeriodEnd, cancelAtPeriodEnd: r.cancelAtPeriodEnd, pastDueSince: r.pastDueSince, lastEventAt: r.lastEventAt,
        priceMisfit: r.priceMisfit,
      },
    };
  },

  /**
   * deletedAt: set once the organization is deleted (soft delete). `forShare`: the row stays locked until the
   * transaction ends, so a deletion (an UPDATE of it) waits for a subscription written meanwhile, and is then seen.
   */
  async org(db: Db, orgId: string, forShare = false): Promise<(OrgRow & { deletedAt: Date | null }) | undefined> {
    const query = qb.selectFrom('core.organizations')
      .select(['id', 'account_type as accountType', 'owner_user_id as ownerUserId', 'created_at as createdAt', 'deleted_at as deletedAt'])
      .where('id', '=', orgId).$narrowType<{ accountType: OrgRow['accountType'] }>();
    const [row] = await db.run(forShare ? query.forShare() : query);
    return row;
  },

  async subscription(db: Db, subject: Subject, appId: string): Promise<SubscriptionRow | undefined> {
    const query = subscriptions().where('s.appId', '=', appId);
    const [row] = await db.run(subject.kind === 'organization'
      ? query.where('s.organizationId', '=', subject.orgId)
      : query.where('s.userId', '=', subject.userId).where('s.organizationId', 'is', null));
    return row;
  },

  /** Every subscription (of any app) that bills an organization or a person, oldest first. */
  async subscriptionsOf(db: Db, subject: Subject): Promise<SubscriptionRow[]> {
    const query = subscriptions().orderBy('s.createdAt').orderBy('s.id');
    return db.run(subject.kind === 'organization'
      ? query.where('s.organizationId', '=', subject.orgId)
      : query.where('s.userId', '=', subject.userId).where('s.organizationId', 'is', null));
  },

  /** Locks the subscription, then reads it with its bookkeeping in a new statement (so a waiter sees the winner's commit). */
  async lockSubscription(db: Db, id: string): Promise<SubscriptionRow | undefined> {
    await db.run(qb.selectFrom('hub.Subscription').select('id').where('id', '=', id).forUpdate());
    return subscriptionById(db, id);
  },

  /** The subscription with its bookkeeping, read without a lock: for a row the transaction holds already (locked, or inserted). */
  subscriptionHeld: (db: Db, id: string): Promise<SubscriptionRow | undefined> => subscriptionById(db, id),

  async subscriptionByStripeId(db: Db, stripeSubscriptionId: string): Promise<SubscriptionRow | undefined> {
    const [row] = await db.run(subscriptions().where('s.stripeSubscriptionId', '=', stripeSubscriptionId));
    return row;
  },

  /** The Stripe customer of an organization or person (any of its subscriptions), for the portal and new checkouts. */
  async stripeCustomer(db: Db, subject: Subject): Promise<string | undefined> {
    const query = qb.selectFrom('hub.subscription_billing').select('stripe_customer_id as id')
      .where('stripe_customer_id', 'is not', null).orderBy('updated_at', 'desc').limit(1);
    const [row] = await db.run(subject.kind === 'organization'
      ? query.where('organization_id', '=', subject.orgId)
      : query.where('user_id', '=', subject.userId).where('organization_id', 'is', null));
    return row?.id ?? undefined;
  },

  /**
   * The per-(organization, app) lock of counted limits and checkouts: created on first use, then locked until the
   * request transaction ends, so concurrent writers of one organization count (and checkouts read the subscription)
   * one at a time. Answers the open checkout: its key, when it was drawn and for which request (null: none yet), and the
   * Stripe session created under it (or, until that is known, the one before it, still to be expired).
   */
  async lockLimits(db: Db, orgId: string, appId: string): Promise<OpenCheckout> {
    await db.run(qb.insertInto('hub.limit_locks').values({ org_id: orgId, app_id: appId }).onConflict((c) => c.doNothing()));
    const [row] = await db.run(qb.selectFrom('hub.limit_locks')
      .select(['checkout_key as key', 'checkout_key_at as drawnAt', 'checkout_request as request', 'checkout_params as params', 'checkout_session_id as sessionId'])
      .where('org_id', '=', orgId).where('app_id', '=', appId).forUpdate());
    return row;
  },

  /**
   * Records the key of a new checkout (on the row lockLimits locked), the request it is for (its hash and parameters).
   * The session of the previous key stays recorded until this checkout's own replaces it, so a checkout that fails
   * before expiring it leaves it for the next one.
   */
  async setCheckoutKey(db: Db, orgId: string, appId: string, key: string, request: string, params: string, drawnAt: Date): Promise<void> {
    await db.run(qb.updateTable('hub.limit_locks').set({ checkout_key: key, checkout_key_at: drawnAt, checkout_request: request, checkout_params: params })
      .where('org_id', '=', orgId).where('app_id', '=', appId));
  },

  /**
   * Records the Stripe session created under `key` (its parameters are then forgotten): 'recorded' the first time,
   * 'again' when it was recorded before (a repeated request, answered by Stripe with the same session), 'superseded'
   * when another checkout has drawn a new key meanwhile (or the key was dropped): the caller's session is no longer the
   * open one.
   */
  async recordCheckoutSession(db: Db, orgId: string, appId: string, key: string, sessionId: string): Promise<'recorded' | 'again' | 'superseded'> {
    const [row] = await db.run(qb.selectFrom('hub.limit_locks').select(['checkout_params as params', 'checkout_session_id as sessionId'])
      .where('org_id', '=', orgId).where('app_id', '=', appId).where('checkout_key', '=', key).forUpdate());
    if (!row) return 'superseded';
    if (row.params === null && row.sessionId === sessionId) return 'again';
    await db.run(qb.updateTable('hub.limit_locks').set({ checkout_session_id: sessionId, checkout_params: null })
      .where('org_id', '=', orgId).where('app_id', '=', appId).where('checkout_key', '=', key));
    return 'recorded';
  },

  /** Forgets the checkout key `key` (a failed checkout's), unless another has replaced it meanwhile. */
  async dropCheckoutKey(db: Db, orgId: string, appId: string, key: string): Promise<void> {
    await db.run(qb.updateTable('hub.limit_locks').set({ checkout_key: null, checkout_key_at: null, checkout_request: null, checkout_params: null })
      .where('org_id', '=', orgId).where('app_id', '=', appId).where('checkout_key', '=', key));
  },

  /**
   * Keeps a Stripe session of the app that no checkout key holds (a checkout overtaken while Stripe created it), recorded
   * before Stripe is asked to expire it: until it is forgotten (forgetSessionToExpire), the next checkout or portal call
   * of the organization (sessionsToExpireOf), or else BillingExpiryJob (sessionsToExpire), expires it.
   */
  async addCheckoutSessionToExpire(db: Db, orgId: string, appId: string, sessionId: string): Promise<void> {
    await db.$executeRaw`
      UPDATE hub.limit_locks SET checkout_sessions_to_expire = array_append(checkout_sessions_to_expire, ${sessionId}::text)
      WHERE org_id = ${orgId}::uuid AND app_id = ${appId} AND NOT (${sessionId}::text = ANY (checkout_sessions_to_expire))`;
  },

  /** The Stripe sessions of one organization (every app) kept to be expired (addCheckoutSessionToExpire). */
  async sessionsToExpireOf(db: Db, orgId: string): Promise<{ appId: string; sessionId: string }[]> {
    return db.$queryRaw<{ appId: string; sessionId: string }[]>`
      SELECT app_id AS "appId", s.id AS "sessionId"
      FROM hub.limit_locks, unnest(checkout_sessions_to_expire) AS s(id)
      WHERE org_id = ${orgId}::uuid AND cardinality(checkout_sessions_to_expire) > 0 ORDER BY app_id`;
  },

  /** Every Stripe session kept to be expired (addCheckoutSessionToExpire), of every organization. */
  async sessionsToExpire(db: Db): Promise<{ orgId: string; appId: string; sessionId: string }[]> {
    return db.$queryRaw<{ orgId: string; appId: string; sessionId: string }[]>`
      SELECT org_id::text AS "orgId", app_id AS "appId", s.id AS "sessionId"
      FROM hub.limit_locks, unnest(checkout_sessions_to_expire) AS s(id)
      WHERE cardinality(checkout_sessions_to_expire) > 0 ORDER BY org_id, app_id`;
  },

  /** Forgets a session kept to be expired, once Stripe has expired it (or says it is no longer open). */
  async forgetSessionToExpire(db: Db, orgId: string, appId: string, sessionId: string): Promise<void> {
    await db.$executeRaw`
      UPDATE hub.limit_locks SET checkout_sessions_to_expire = array_remove(checkout_sessions_to_expire, ${sessionId}::text)
      WHERE org_id = ${orgId}::uuid AND app_id = ${appId} AND ${sessionId}::text = ANY (checkout_sessions_to_expire)`;
  },

  /**
   * Drops every checkout key still in doubt (parameters kept, no session recorded) drawn at or before `cutoff`: past
   * Stripe's idempotency window a replay of its create would create a new session, so there is nothing left to learn,
   * and its parameters (perhaps the e-mail address of the admin who asked) go with it. The session recorded before it
   * (still to be expired by the next checkout) stays. A settled key (its session recorded, its parameters gone) keeps its
   * request's hash for the key's reuse (CHECKOUT_KEY_MS, under 24 hours): past the cutoff the hash goes too (an unsalted
   * SHA-256 of the parameters, customer_email included). Rows a checkout holds locked are skipped (the next run gets them).
   * Returns the keys dropped (the ones in doubt).
   */
  async dropStaleCheckoutKeys(db: Db, cutoff: Date): Promise<{ orgId: string; appId: string; key: string; drawnAt: Date }[]> {
    return db.$queryRaw<{ orgId: string; appId: string; key: string; drawnAt: Date }[]>`
      WITH settled AS (
        UPDATE hub.limit_locks l SET checkout_request = NULL
        FROM (SELECT org_id, app_id FROM hub.limit_locks
              WHERE checkout_params IS NULL AND checkout_request IS NOT NULL AND (checkout_key_at IS NULL OR checkout_key_at <= ${cutoff}::timestamptz)
              FOR UPDATE SKIP LOCKED) old
        WHERE l.org_id = old.org_id AND l.app_id = old.app_id
        RETURNING 1)
      UPDATE hub.limit_locks l SET checkout_key = NULL, checkout_key_at = NULL, checkout_request = NULL, checkout_params = NULL
      FROM (SELECT org_id, app_id, checkout_key, checkout_key_at FROM hub.limit_locks
            WHERE checkout_params IS NOT NULL AND (checkout_key_at IS NULL OR checkout_key_at <= ${cutoff}::timestamptz)
            FOR UPDATE SKIP LOCKED) old
      WHERE l.org_id = old.org_id AND l.app_id = old.app_id
      RETURNING l.org_id::text AS "orgId", l.app_id AS "appId", old.checkout_key::text AS key, old.checkout_key_at AS "drawnAt"`;
  },

  /** Newest received first, `limit` rows; `key` is each event's keyset position (receivedAt to the microsecond, id). */
  async billingEvents(db: Db, orgId: string, f: { status?: string; type?: string; after?: { r: string; i: string }; limit: number }) {
    let q = qb.selectFrom('hub.BillingEvent')
      .select(['id', 'stripeEventId', 'type', 'subscriptionId', 'status', 'reason', 'stripeCreatedAt', 'receivedAt', 'processedAt', exactInstant('receivedAt').as('position')])
      .where('orgId', '=', orgId);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.type) q = q.where('type', '=', f.type);
    if (f.after) q = q.where(sql<boolean>`("receivedAt", id) < (${f.after.r}::timestamptz, ${f.after.i}::text)`);
    const rows = await db.run(q.orderBy('receivedAt', 'desc').orderBy('id', 'desc').limit(f.limit));
    return rows.map(({ position, ...event }) => ({ event, key: { r: position, i: event.id } }));
  },

  /** A person's personal organization (the organization their personal plan bills), or null. */
  async personalOrgId(db: Db, userId: string): Promise<string | null> {
    const [row] = await db.$queryRaw<{ id: string | null }[]>`SELECT core.personal_org_id(${userId})::text AS id`;
    return row?.id ?? null;
  },

  /** A person's personal organization for a service principal (hub.personal_org_id checks the caller is a service). */
  async personalOrgIdForService(db: Db, userId: string): Promise<string | null> {
    const [row] = await db.$queryRaw<{ id: string | null }[]>`SELECT hub.personal_org_id(${userId})::text AS id`;
    return row?.id ?? null;
  },

  /** Members plus pending invitations (hub.seat_usage() sees invitations even for non-admin readers). */
  async seatUsage(db: Db): Promise<number> {
    const [row] = await db.$queryRaw<{ n: bigint }[]>`SELECT hub.seat_usage() AS n`;
    return Number(row.n);
  },

  /** Stores a Stripe event once: its id, or undefined when that event id was stored before. */
  async insertEvent(db: Db, event: { id: string; type: string; created: number }, orgId: string | undefined): Promise<string | undefined> {
    const [row] = await db.run(qb.insertInto('hub.BillingEvent').values({
      stripeEventId: event.id, type: event.type, orgId: orgId ?? null, stripeCreatedAt: new Date(event.created * 1000),
      payload: JSON.stringify(event), status: orgId ? 'received' : 'ignored',
      reason: orgId ? null : 'cannot tell which organization or person this event concerns',
    }).onConflict((c) => c.column('stripeEventId').doNothing()).returning('id'));
    return row?.id;
  },

  /** A stored event, locked until the transaction ends (the job applies each event once). */
  async lockEvent(db: Db, id: string) {
    const [row] = await db.run(qb.selectFrom('hub.BillingEvent').select(['id', 'orgId', 'status', 'payload']).where('id', '=', id).forUpdate());
    return row;
  },

  /**
   * The stored invoice event that is the row's invoice mark (last_invoice_event_id: the last invoice event applied), its
   * type and payload, or undefined (found by its unique Stripe event id).
   */
  async invoiceMarkEvent(db: Db, subscriptionId: string): Promise<{ type: string; payload: unknown } | undefined> {
    const [row] = await db.run(qb.selectFrom('hub.subscription_billing as b')
      .innerJoin('hub.BillingEvent as e', 'e.stripeEventId', 'b.last_invoice_event_id')
      .select(['e.type', 'e.payload']).where('b.subscription_id', '=', subscriptionId));
    return row;
  },

  /**
   * Raises the floor of the row's domain events (hub.subscription_billing.events_dated_until) to `at`, never lowers it:
   * run wherever one is emitted (the webhook, BillingExpiryJob, DeletedOrgSubscriptions), with the row locked. A row the
   * Hub provisioned by SQL gets its bookkeeping row here (as recordPastDueStarts gives it one).
   */
  async recordEventsDated(db: Db, subscriptionId: string, at: Date): Promise<void> {
    await db.$executeRaw`
      INSERT INTO hub.subscription_billing (subscription_id, user_id, organization_id, events_dated_until)
      SELECT s.id, CASE WHEN s."organizationId" IS NULL THEN s."userId" END, s."organizationId", ${at}::timestamptz
        FROM hub."Subscription" s WHERE s.id = ${subscriptionId}
      ON CONFLICT (subscription_id) DO UPDATE
        SET events_dated_until = greatest(hub.subscription_billing.events_dated_until, excluded.events_dated_until), updated_at = now()
        WHERE hub.subscription_billing.events_dated_until IS DISTINCT FROM greatest(hub.subscription_billing.events_dated_until, excluded.events_dated_until)`;
  },

  /**
   * Two stored subscription events (customer.subscription.*) of `stripeSubscriptionId` for this organization, read in
   * one statement (a take-over reads both, with the row locked), each by billing_event_stripe_subscription_idx
   * (subscriptionEventsOf); neither is locked (a 'received' one may be locked by its own job).
   * `ending`: one other than the Stripe event `except` (whatever its time or status) that ends it:
   * customer.subscription.deleted, or an ended status (`ended`: STRIPE_ENDED). Stripe never revives an ended
   * subscription. The first of them by Stripe's time, or the newest (`newestEnding`).
   * `newest`: the newest by Stripe's time, whatever its status; with `settledOther`, only one already processed or
   * ignored (not 'received': its own job checks its order), other than that Stripe event.
   */
  async storedSubscriptionEvents(db: Db, orgId: string, stripeSubscriptionId: string,
    q: { except: string; ended: readonly string[]; newestEnding?: boolean; settledOther?: string }): Promise<{ ending?: StoredEvent; newest?: StoredEvent }> {
    const order = q.newestEnding ? 'desc' : 'asc';
    const ending = subscriptionEventsOf(orgId, stripeSubscriptionId).select(['id', 'status', 'payload'])
      .where('stripeEventId', '!=', q.except)
      .where((eb) => eb.or([eb('type', '=', 'customer.subscription.deleted'), eb(sql<string>`payload->'data'->'object'->>'status'`, 'in', [...q.ended])]))
      .orderBy('stripeCreatedAt', order).orderBy('receivedAt', order).limit(1);
    let newest = subscriptionEventsOf(orgId, stripeSubscriptionId).select(['id', 'status', 'payload']);
    if (q.settledOther !== undefined) newest = newest.where('status', '!=', 'received').where('stripeEventId', '!=', q.settledOther);
    const [row] = await db.run(qb.selectFrom(sql<{ one: number }>`(SELECT 1 AS one)`.as('one'))
      .leftJoinLateral(ending.as('e'), (j) => j.onTrue())
      .leftJoinLateral(newest.orderBy('stripeCreatedAt', 'desc').orderBy('receivedAt', 'desc').limit(1).as('n'), (j) => j.onTrue())
      .select(['e.id as endingId', 'e.status as endingStatus', 'e.payload as endingPayload', 'n.id as newestId', 'n.status as newestStatus', 'n.payload as newestPayload']));
    return {
      ending: row?.endingId == null ? undefined : { id: row.endingId, status: row.endingStatus!, payload: row.endingPayload },
      newest: row?.newestId == null ? undefined : { id: row.newestId, status: row.newestStatus!, payload: row.newestPayload },
    };
  },

  async finishEvent(db: Db, id: string, outcome: { status: string; reason?: string; subscriptionId?: string }): Promise<void> {
    await db.run(qb.updateTable('hub.BillingEvent').set({
      status: outcome.status, reason: outcome.reason ?? null, subscriptionId: outcome.subscriptionId ?? null, processedAt: sql`now()`,
    }).where('id', '=', id));
  },

  async insertSubscription(db: Db, subject: Subject, s: { app: string; plan: string; status: string; stripeSubscriptionId?: string }): Promise<string> {
    const [row] = await db.run(qb.insertInto('hub.Subscription').values({
      id: sql`gen_random_uuid()::text`, userId: subject.kind === 'user' ? subject.userId : null, appId: s.app, plan: s.plan, status: s.status,
      organizationId: subject.kind === 'organization' ? subject.orgId : null, stripeSubscriptionId: s.stripeSubscriptionId ?? null,
      createdAt: sql`now() AT TIME ZONE 'utc'`, updatedAt: sql`now() AT TIME ZONE 'utc'`,
    }).returning('id'));
    return row.id;
  },

  async updateSubscription(db: Db, id: string, s: { plan: string; status: string; stripeSubscriptionId?: string }): Promise<void> {
    await db.run(qb.updateTable('hub.Subscription').set((eb) => ({
      plan: s.plan, status: s.status,
      stripeSubscriptionId: eb.fn.coalesce(eb.val(s.stripeSubscriptionId ?? null), eb.ref('stripeSubscriptionId')),
      updatedAt: sql`now() AT TIME ZONE 'utc'`,
    })).where('id', '=', id));
  },

  /**
   * Writes what a Stripe event says into the subscription's bookkeeping row (created on first event). `at`: the event's
   * time (a past_due's grace starts then). `marks.subscription`: the subscription event that becomes the ordering mark
   * (last_event_at, last_event_id) the next subscription events are compared with; `marks.invoice`: the invoice event
   * that becomes the invoice events' (last_invoice_event_at, last_invoice_event_id). null clears one, undefined leaves it.
   */
  async upsertBilling(db: Db, subscriptionId: string, subject: Subject, change: BillingChange, at: Date, marks: EventMarks): Promise<void> {
    const ordered = marks.subscription;
    const invoice = marks.invoice;
    await db.run(qb.insertInto('hub.subscription_billing').values({
      subscription_id: subscriptionId, user_id: subject.kind === 'user' ? subject.userId : null,
      organization_id: subject.kind === 'organization' ? subject.orgId : null,
      stripe_customer_id: change.customer ?? null, stripe_price_id: change.price ?? null, trial_ends_at: change.trialEndsAt ?? null,
      current_period_end: change.currentPeriodEnd ?? null, cancel_at_period_end: change.cancelAtPeriodEnd ?? false,
      past_due_since: change.status === 'past_due' ? at : null, last_event_at: ordered?.at ?? null, last_event_id: ordered?.id ?? null,
      last_invoice_event_at: invoice?.at ?? null, last_invoice_event_id: invoice?.id ?? null, updated_at: sql`now()`,
      ended_locally_at: null, price_misfit: change.priceMisfit ?? null,
    }).onConflict((c) => c.column('subscription_id').doUpdateSet((eb) => ({
      stripe_customer_id: eb.fn.coalesce('excluded.stripe_customer_id', 'hub.subscription_billing.stripe_customer_id'),
      stripe_price_id: eb.fn.coalesce('excluded.stripe_price_id', 'hub.subscription_billing.stripe_price_id'),
      trial_ends_at: change.trialEndsAt === undefined ? eb.ref('hub.subscription_billing.trial_ends_at') : eb.ref('excluded.trial_ends_at'),
      current_period_end: change.currentPeriodEnd === undefined ? eb.ref('hub.subscription_billing.current_period_end') : eb.ref('excluded.current_period_end'),
      cancel_at_period_end: change.cancelAtPeriodEnd === undefined ? eb.ref('hub.subscription_billing.cancel_at_period_end') : eb.ref('excluded.cancel_at_period_end'),
      past_due_since: change.status === 'past_due' ? eb.fn.coalesce('hub.subscription_billing.past_due_since', 'excluded.past_due_since') : null,
      ...(ordered === undefined ? {} : { last_event_at: eb.ref('excluded.last_event_at'), last_event_id: eb.ref('excluded.last_event_id') }),
      ...(invoice === undefined ? {} : { last_invoice_event_at: eb.ref('excluded.last_invoice_event_at'), last_invoice_event_id: eb.ref('excluded.last_invoice_event_id') }),
      ...(change.endedLocallyAt === undefined ? {} : { ended_locally_at: null }),
      ...(change.priceMisfit === undefined ? {} : { price_misfit: eb.ref('excluded.price_misfit') }),
      updated_at: sql`now()`,
    }))));
  },

  /**
   * Subscriptions whose time is over at `now`, locked (others running the job skip them). A trial ends here only without
   * Stripe: Stripe converts its own trials to paid (or ends them) and says so in an event, however late; until then
   * the entitlements are read-only already (accessFor), and canceling here would tell the customer it ended. A trial the
   * Hub provisioned by SQL (no subscription_billing row) ends as the entitlements say (localTrialEnded).
   */
  async dueToExpire(db: Db, now: Date): Promise<DueSubscription[]> {
    return db.run(qb.selectFrom('hub.Subscription as s')
      .leftJoin('hub.App as a', 'a.id', 's.appId')
      .leftJoin('hub.subscription_billing as b', 'b.subscription_id', 's.id')
      .leftJoin('core.organizations as o', (j) => j.on(sql`o.id::text`, '=', sql.ref('s.organizationId')))
      .select((eb) => [
        's.id', 's.status', 's.plan',
        sql<string | null>`coalesce(${eb.ref('o.id')}, core.personal_org_id(${eb.ref('s.userId')}))::text`.as('orgId'),
        eb.case().when(localTrialEnded(now)).then(sql.lit('trial_ended'))
          .else(sql.lit('canceled_at_period_end')).end().$castTo<DueSubscription['reason']>().as('reason'),
      ])
      .where((eb) => eb.or([
        localTrialEnded(now),
        eb.and([eb('b.cancel_at_period_end', '=', true), eb('b.current_period_end', '<=', now), eb.or([
          eb(eb.fn.coalesce('s.status', sql.lit('active')), 'in', [...LIVE_STATUSES]), // NULL: 'active' (statusOf)
          // a live subscription on a misfit price, its row written MISFIT_STATUS (the webhook), ends as a live one would
          eb.and([eb('s.status', '=', MISFIT_STATUS), eb('b.price_misfit', 'is not', null)]),
        ])]),
      ]))
      .forUpdate('s').skipLocked());
  },

  /**
   * Records when the grace period of each past_due subscription without one started (hub.subscription_billing.past_due_since,
   * which Stripe's events set for theirs): the start the entitlements count from until then (the row's last change, else
   * its creation, else its organization's), kept from then on, so a later update of the row does not restart the grace.
   * And forgets it for subscriptions no longer past_due (a next failed payment starts a new grace). Returns the rows it
   * actually changed (a concurrent run that got there first changes, and returns, none), with the organization to audit them in.
   */
  async recordPastDueStarts(db: Db): Promise<{ recorded: PastDueChange[]; cleared: PastDueChange[] }> {
    const cleared = await db.$queryRaw<PastDueChange[]>`
      UPDATE hub.subscription_billing b SET past_due_since = NULL, updated_at = now()
      FROM hub.subscription_billing old, hub."Subscription" s
      LEFT JOIN core.organizations o ON o.id::text = s."organizationId"
      WHERE old.subscription_id = b.subscription_id AND s.id = b.subscription_id
        AND b.past_due_since IS NOT NULL AND s.status IS DISTINCT FROM 'past_due'
        AND b.price_misfit IS NULL -- a misfit row's status is written paused while Stripe's past_due grace runs (the webhook)
      RETURNING b.subscription_id AS id, coalesce(o.id, core.personal_org_id(s."userId"))::text AS "orgId", old.past_due_since AS "pastDueSince"`;
    const recorded = await db.$queryRaw<PastDueChange[]>`
      WITH recorded AS (
        INSERT INTO hub.subscription_billing (subscription_id, user_id, organization_id, past_due_since)
        SELECT * FROM (
          SELECT s.id, CASE WHEN s."organizationId" IS NULL THEN s."userId" END, s."organizationId",
            coalesce(s."updatedAt" AT TIME ZONE 'utc', s."createdAt" AT TIME ZONE 'utc', o.created_at,
              (SELECT p.created_at FROM core.organizations p WHERE p.id = core.personal_org_id(s."userId"))) AS since
          FROM hub."Subscription" s
          LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id
          LEFT JOIN core.organizations o ON o.id::text = s."organizationId"
          WHERE s.status = 'past_due' AND b.past_due_since IS NULL) t
        WHERE t.since IS NOT NULL
        ON CONFLICT (subscription_id) DO UPDATE SET past_due_since = excluded.past_due_since, updated_at = now()
          WHERE hub.subscription_billing.past_due_since IS NULL -- set meanwhile by another run: kept, not returned
        RETURNING subscription_id, past_due_since)
      SELECT r.subscription_id AS id, coalesce(o.id, core.personal_org_id(s."userId"))::text AS "orgId", r.past_due_since AS "pastDueSince"
      FROM recorded r JOIN hub."Subscription" s ON s.id = r.subscription_id
      LEFT JOIN core.organizations o ON o.id::text = s."organizationId"`;
    return { recorded, cleared };
  },

  /**
   * `endedLocallyAt`: BillingExpiryJob ends it on its own (Stripe has not said so, and is not asked): recorded, so that
   * a newer Stripe event still applies (the webhook's `refusal`). Without it (an organization's deletion, canceled in
   * Stripe first) the end is final.
   */
  async cancel(db: Db, id: string, endedLocallyAt?: Date): Promise<void> {
    await db.run(qb.updateTable('hub.Subscription').set({ status: 'canceled', updatedAt: sql`now() AT TIME ZONE 'utc'` }).where('id', '=', id));
    if (endedLocallyAt) {
      await db.run(qb.updateTable('hub.subscription_billing').set({ ended_locally_at: endedLocallyAt, updated_at: sql`now()` }).where('subscription_id', '=', id));
    }
  },

  /**
   * Makes BillingExpiryJob's local end of a Stripe subscription final (clears ended_locally_at): Stripe has ended it too
   * (it said so when asked, or the organization's deletion canceled it there), so no Stripe event of it revives the row
   * any more (the webhook's `refusal`). Run with the subscription locked (lockSubscription).
   */
  async recordEndFinal(db: Db, id: string): Promise<void> {
    await db.run(qb.updateTable('hub.subscription_billing').set({ ended_locally_at: null, updated_at: sql`now()` }).where('subscription_id', '=', id));
  },

  /**
   * Trials without Stripe ending in (now, until] that have had no notice yet: local subscriptions 'trialing' with a
   * trial end and no Stripe subscription (Stripe announces its own), and the default trials ("trialDays" from the
   * creation) of business organizations without a subscription of `defaultTrialApps`.
   */
  async endingTrials(db: Db, now: Date, until: Date, defaultTrialApps: string[]): Promise<EndingTrial[]> {
    return db.run(statement(sql<EndingTrial>`
      WITH ending AS (
        SELECT coalesce(o.id, core.personal_org_id(s."userId")) AS "orgId", s."appId", ${localTrialEnd} AS "trialEndsAt",
          s.id AS "subscriptionId", s.plan
        FROM hub."Subscription" s
        LEFT JOIN hub."App" a ON a.id = s."appId"
        LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id
        LEFT JOIN core.organizations o ON o.id::text = s."organizationId"
        WHERE ${isLocalTrial}
        UNION ALL
        SELECT o.id, a.id, ${defaultTrialEnd}, NULL, a."defaultPlan"
        FROM hub."App" a
        JOIN core.organizations o ON o.account_type = 'business'
        WHERE a.id = ANY(${defaultTrialApps}::text[])
          AND NOT EXISTS (SELECT 1 FROM hub."Subscription" s WHERE s."organizationId" = o.id::text AND s."appId" = a.id))
      SELECT e.* FROM ending e
      WHERE e."trialEndsAt" > ${now}::timestamptz AND e."trialEndsAt" <= ${until}::timestamptz
        AND e."orgId" IS NOT NULL
        -- an organization deleted during its trial has no plan left to choose
        AND NOT EXISTS (SELECT 1 FROM core.organizations d WHERE d.id = e."orgId" AND d.deleted_at IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM hub.trial_notices n WHERE n.org_id = e."orgId" AND n.app_id = e."appId" AND n.trial_ends_at = e."trialEndsAt")
      ORDER BY e."trialEndsAt", e."orgId"`));
  },

  /** Records the notice of one trial; false when it was recorded already (another check got there first: emit nothing). */
  async recordTrialNotice(db: Db, t: EndingTrial, at: Date): Promise<boolean> {
    const rows = await db.run(qb.insertInto('hub.trial_notices').values({
      org_id: t.orgId, app_id: t.appId, trial_ends_at: t.trialEndsAt, subscription_id: t.subscriptionId, emitted_at: at,
    }).onConflict((c) => c.columns(['org_id', 'app_id', 'trial_ends_at']).doNothing()).returning('org_id'));
    return rows.length === 1;
  },
};
