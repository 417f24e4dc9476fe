import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import type { EntitlementGate, EntitlementRequirement } from '../../platform/http/tenant.js';
import { audienceOf, billingRepository as repo, type PlanFeatureRow, type PlanRow, type Subject, subjectOf, type SubscriptionRow } from './billing.repository.js';
import type { EntitlementsDto, FeatureEntitlementDto } from './billing.dto.js';
import { UsageCounters } from './usage-counters.js';
import { BillingErrors } from './billing.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { Clock } from '../../platform/clock/clock.js';
import { type Access, accessFor, DAY_MS, statusOf } from './subscription-status.js';

interface Resolved {
  subject: Subject;
  appId: string;
  plan: string;
  status: string;
  source: 'subscription' | 'default';
  subscription?: SubscriptionRow;
  trialEndsAt: Date | null;
  access: Access;
}

/** A tenant transaction's billing contexts by app (see EntitlementsService.resolvedIn). */
type Memo = Map<string, Promise<Resolved>>;

const quantity = (n: number, unit: string | null) => `${n} ${unit ? (n === 1 ? unit.replace(/s$/, '') : unit) : ''}`.trim();

/** A limit a change exceeds, for the wording of its 402 billing.limit_reached (enforceWithin's `explain`). */
export interface LimitExceeded {
  plan: string;
  /** the plan's limit with its unit, e.g. "5 users" */
  allows: string;
  /** the usage before the change (details.usage) */
  usage: number;
  /** the next plan up that allows the usage with the change, if any (details.upgradeTo) */
  upgradeTo: string | null;
}

/** enforce()'s wording of a limit reached. */
const limitWording = (l: LimitExceeded) =>
  `the ${l.plan} plan allows ${l.allows}; ${l.upgradeTo ? `upgrade to ${l.upgradeTo}` : 'no plan allows more; contact sales'}`;

/**
 * What an organization (or, in a personal organization, its owner) may use in an app. Reads the
 * hub tables in every request (once per tenant transaction): the Hub's provisioning SQL is visible to the very next one.
 */
@Injectable()
export class EntitlementsService implements EntitlementGate {
  /**
   * The billing context each tenant transaction resolved, by app: the plan gate's checks of one request (an API key's
   * api_access and the route's own requirement, which run together) and a handler's enforce() later in the same
   * transaction read hub."Subscription" once, not once each. Keyed by the transaction's TenantTx (DatabaseService makes
   * a new one per transaction), weakly: nothing carries over to another transaction or request, and the entry goes with
   * its transaction. A concurrent check shares the pending read. No tenant transaction writes a subscription
   * (authenticated may only read hub."Subscription"; the Stripe webhook, the expiry job and the deleted-organization
   * cleanup write it in transactions of their own), so none can be served a context its own write changed; one that
   * ever does must drop its entry (`this.resolvedBy.delete(tx)`). entitlements() (the GET) reads afresh.
   */
  private readonly resolvedBy = new WeakMap<TenantTx, Memo>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly usage: UsageCounters,
    private readonly clock: Clock,
  ) {}

  private async resolve(db: Db, orgId: string, appId: string): Promise<Resolved> {
    const found = await repo.billingContext(db, orgId, appId);
    if (!found) throw (await repo.app(db, appId)) ? PlatformErrors.notFound('organization', orgId) : BillingErrors.notFound('app', appId);
    const { app, org, subscription } = found;
    const subject = subjectOf(org);
    // trials and grace periods end on the injected clock (tests move it instead of waiting)
    const now = new Date(this.clock.now());
    if (subscription) {
      const status = statusOf(subscription);
      // a row the Hub provisioned by SQL (seed 000) has no bookkeeping: its trial ends "trialDays" after the row's
      // creation (the organization's when NULL), as BillingExpiryJob ends it
      const trialEndsAt = subscription.trialEndsAt ?? (status === 'trialing'
        ? new Date((subscription.createdAt ?? org.createdAt).getTime() + app.trialDays * DAY_MS) : null);
      // the grace counts from past_due_since (Stripe's first failed payment, or recorded by BillingExpiryJob); until it
      // is recorded, from the row's last change, else its creation, else the organization's: never from now
      const pastDueSince = subscription.pastDueSince ?? subscription.updatedAt ?? subscription.createdAt ?? org.createdAt;
      return {
        subject, appId, plan: subscription.plan, status, source: 'subscription', subscription, trialEndsAt,
        access: accessFor(status, trialEndsAt, pastDueSince, this.config.billing.pastDueGraceDays, now, subscription.priceMisfit
          ? { price: subscription.priceMisfit, app: appId, holder: subject.kind === 'user' ? 'account' : 'organization' } : undefined),
      };
    }
    // no subscription yet: the app's default plan as a trial counted from the organization's creation
    const trialEndsAt = new Date(org.createdAt.getTime() + app.trialDays * DAY_MS);
    return {
      subject, appId, plan: app.defaultPlan, status: 'trialing', source: 'default', trialEndsAt,
      access: accessFor('trialing', trialEndsAt, null, this.config.billing.pastDueGraceDays, now),
    };
  }

  /** `resolve` once per tenant transaction and app (see resolvedBy). */
  private resolvedIn(tx: TenantTx, appId: string): Promise<Resolved> {
    let memo = this.resolvedBy.get(tx);
    if (!memo) this.resolvedBy.set(tx, memo = new Map());
    let resolved = memo.get(appId);
    if (!resolved) memo.set(appId, resolved = this.resolve(tx.db, tx.orgId, appId));
    return resolved;
  }

  /** Plan, status, access, and every feature with its limit and current usage. */
  async entitlements(tx: { db: Db; orgId: string }, appId: string): Promise<EntitlementsDto> {
    const r = await this.resolve(tx.db, tx.orgId, appId);
    const plans = await repo.plans(tx.db, appId);
    const features: FeatureEntitlementDto[] = [];
    for (const f of await repo.planFeatures(tx.db, appId, r.plan)) {
      const counter = f.kind === 'limit' ? this.usage.get(appId, f.feature) : undefined;
      features.push({
        feature: f.feature, kind: f.kind, description: f.description, unit: f.unit,
        enabled: f.kind === 'limit' ? f.limit !== 0 : f.enabled,
        limit: f.kind === 'limit' ? f.limit : null,
        usage: counter ? await counter(tx) : null,
      });
    }
    const s = r.subscription;
    return {
      app: appId,
      subject: r.subject.kind === 'organization'
        ? { type: 'organization', organizationId: r.subject.orgId, userId: null }
        : { type: 'user', organizationId: null, userId: r.subject.userId },
      plan: r.plan,
      planName: plans.find((p) => p.code === r.plan)?.name ?? null,
      status: r.status,
      source: r.source,
      access: r.access.access,
      readOnlyReason: r.access.reason ?? null,
      trialEndsAt: r.trialEndsAt,
      graceEndsAt: r.access.graceEndsAt ?? null,
      currentPeriodEnd: s?.currentPeriodEnd ?? null,
      cancelAtPeriodEnd: s?.cancelAtPeriodEnd ?? false,
      subscriptionId: s?.id ?? null,
      features,
    };
  }

  /** A person's personal organization as the service principal sees it (hub.personal_org_id), or null. */
  async personalOrgOf(tx: TenantTx, userId: string): Promise<string | null> {
    return repo.personalOrgIdForService(tx.db, userId);
  }

  /** The gate behind @ConsumesLimit / @RequiresFeature / @RequiresActiveSubscription (run in the request transaction). */
  async enforce(tx: TenantTx, req: EntitlementRequirement): Promise<void> {
    // lock first: the count is then read by one writer at a time. The billing context may have been read before the
    // lock, by the API key's check of the same request: no writer of a subscription takes this lock, so a read after it
    // would be no more serialized
    if (req.consumes) await repo.lockLimits(tx.db, tx.orgId, req.app);
    // the feature's row in every plan is read together with the billing context (one round trip, not two)
    const [r, featureOf] = await Promise.all([
      this.resolvedIn(tx, req.app), req.feature ? repo.featureOfPlan(tx.db, req.app, req.feature) : undefined,
    ]);
    if (r.access.access === 'read_only' && !req.readOnlyPasses) {
      throw BillingErrors.error('billing.subscription_inactive',
        `the ${req.app} subscription of this ${r.subject.kind === 'user' ? 'account' : 'organization'} is read-only: ${r.access.reason}; renew or upgrade it to make changes`,
        { app: req.app, plan: r.plan, status: r.status });
    }
    if (!req.feature) return;
    const feature = featureOf?.(r.plan);
    if (!feature) throw new Error(`feature ${req.app}/${req.feature} is not in the catalog (hub.features)`);
    if (feature.kind === 'boolean') {
      if (!feature.enabled) {
        const upgrade = await this.upgradeFor(tx.db, r, req.feature, 0);
        throw BillingErrors.error('billing.feature_not_in_plan',
          `the ${r.plan} plan does not include ${feature.description.toLowerCase()}; ${upgrade ? `upgrade to ${upgrade.code}` : 'no plan includes it'}`,
          { app: req.app, feature: req.feature, plan: r.plan, upgradeTo: upgrade?.code ?? null });
      }
      return;
    }
    if (!req.consumes || feature.limit === null) return;
    const counter = this.usage.get(req.app, req.feature);
    if (!counter) throw new Error(`no usage counter is registered for ${req.app}/${req.feature}`);
    const used = await counter(tx);
    if (used + 1 > feature.limit) throw await this.limitReached(tx.db, r, feature, feature.limit, used, used + 1, limitWording);
  }

  /**
   * The limit check of a change its caller has already made in this transaction, counted after it and under the
   * counted limits' lock (hub.limit_locks) taken before it: refuses, 402 billing.limit_reached, unless `used` (the usage
   * of `feature` with the change) is within the plan's limit; a refusal's details are enforce()'s, usage being the usage
   * before the change (`used - added`). The caller counts, since what it must count can differ from the feature's usage
   * counter (accepting an invitation counts the members, not members plus pending invitations, which creating one
   * consumes). The plan is the billing context of this transaction (resolvedIn, shared with enforce()). `explain` words
   * the refusal for the caller's operation (default: enforce()'s wording). A feature the app's catalog does not have as a
   * limit (hub.features) limits nothing: no check.
   */
  async enforceWithin(tx: TenantTx, app: string, feature: string, used: number,
    { added = 1, explain = limitWording }: { added?: number; explain?: (exceeded: LimitExceeded) => string } = {}): Promise<void> {
    const [r, featureOf] = await Promise.all([this.resolvedIn(tx, app), repo.featureOfPlan(tx.db, app, feature)]);
    const row = featureOf?.(r.plan);
    // not a limit of the app in the Hub's catalog (hub.features): nothing limits it, as for a limit without a value
    if (row?.kind !== 'limit') return;
    if (row.limit !== null && used > row.limit) throw await this.limitReached(tx.db, r, row, row.limit, used - added, used, explain);
  }

  /** The 402 billing.limit_reached of `feature` at `limit`: `usage` before the change, `needed` with it. */
  private async limitReached(db: Db, r: Resolved, feature: PlanFeatureRow, limit: number, usage: number, needed: number,
    explain: (exceeded: LimitExceeded) => string) {
    const upgradeTo = (await this.upgradeFor(db, r, feature.feature, needed))?.code ?? null;
    return BillingErrors.error('billing.limit_reached',
      explain({ plan: r.plan, allows: quantity(limit, feature.unit ?? feature.feature), usage, upgradeTo }),
      { app: r.appId, feature: feature.feature, plan: r.plan, limit, usage, upgradeTo });
  }

  /** The next plan up (same audience) that allows `needed` units (or has the feature on). */
  private async upgradeFor(db: Db, r: Resolved, feature: string, needed: number): Promise<PlanRow | undefined> {
    const plans = await repo.featureAcrossPlans(db, r.appId, feature);
    const current = plans.find((p) => p.code === r.plan);
    const audiences = [audienceOf(r.subject), 'any'];
    return plans.find((p) => p.rank > (current?.rank ?? -Infinity) && audiences.includes(p.audience)
      && (needed === 0 ? p.enabled : p.limit === null || p.limit >= needed));
  }
}
