import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { DomainEvents, emitEvent, type DomainEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { billingRepository as repo, datedNotBefore, subjectOf } from './billing.repository.js';
import { StripeClient } from './stripe.client.js';
import { endedLocally, STRIPE_ENDED, statusOf } from './subscription-status.js';
import { subscriptionPayload } from './stripe-webhook.service.js';

const BILLING_ACTOR = { kind: 'service', name: 'billing' } as const;

/**
 * A deleted organization stops paying: on `organization.deleted` (an owner's DELETE, or the erasure of its only
 * member), every subscription that bills it ends at once. That is the business organization's own subscriptions, or,
 * for a personal organization (deleted only by an erasure), its person's personal plans. Stripe subscriptions are
 * canceled in Stripe first: after deletion nobody can reach the organization's billing portal any more. Then the Hub
 * row turns 'canceled', audited, with `subscription.canceled`. A Stripe subscription BillingExpiryJob ended on its own
 * (canceled at period end, the period passed: ended_locally_at) is canceled in Stripe too, as Stripe may not have ended
 * it (its end late, or renewed) and would go on billing the deleted organization: its end is then final (audited; its
 * `subscription.canceled` went out when the job ended it).
 *
 * Domain-event subscribers run at least once per event. A Stripe call repeated for the same event carries the same
 * idempotency key, and a subscription already canceled is skipped. A failed Stripe call fails the event's job, and
 * the outbox tries it again later.
 */
@Injectable()
export class DeletedOrgSubscriptions implements OnModuleInit {
  private readonly logger = new Logger(DeletedOrgSubscriptions.name);

  constructor(
    private readonly events: DomainEvents,
    private readonly privileged: PrivilegedDatabase,
    private readonly stripe: StripeClient,
    private readonly audit: AuditService,
  ) {}

  onModuleInit(): void {
    this.events.subscribe('billing', async (event) => {
      if (event.type === 'organization.deleted') await this.cancelAll(event);
    });
  }

  /** Cancels what still bills the organization; returns the Hub ids of the subscriptions it ended. */
  async cancelAll(event: DomainEvent): Promise<string[]> {
    const live = await this.privileged.run('billing.org_deleted', async (db) => {
      const org = await repo.org(db, event.orgId);
      // the organization's row decides, not the event: one for an organization that is not deleted (a forged outbox
      // row) cancels nothing
      if (!org?.deletedAt) {
        if (org) this.logger.warn(`organization.deleted ${event.id} for organization ${event.orgId}, which is not deleted: nothing canceled`);
        return [];
      }
      return (await repo.subscriptionsOf(db, subjectOf(org))).filter((s) => !STRIPE_ENDED.has(statusOf(s)) || endedLocally(s)); // NULL: 'active'
    });
    const ended: string[] = [];
    for (const s of live) {
      // outside any transaction: no connection is held while Stripe answers
      if (s.stripeSubscriptionId) await this.stripe.cancelSubscription(s.stripeSubscriptionId, `omnizen-org-deleted-${event.id}:${s.id}`);
      const done = await this.privileged.run('billing.org_deleted', async (db) => {
        const before = await repo.lockSubscription(db, s.id);
        if (!before) return false;
        if (STRIPE_ENDED.has(statusOf(before))) {
          // ended here only, now canceled in Stripe as well (the same Stripe subscription): final
          if (!endedLocally(before) || before.stripeSubscriptionId !== s.stripeSubscriptionId) return false;
          await repo.recordEndFinal(db, s.id);
          await this.audit.recordPrivileged(db, event.orgId, BILLING_ACTOR, {
            action: 'billing.subscription_canceled', entityType: 'subscription', entityId: s.id,
            before: { status: before.status, plan: before.plan, endedLocallyAt: before.endedLocallyAt!.toISOString() },
            after: { status: before.status, plan: before.plan, reason: 'organization_deleted', stripeCanceled: true },
          }, { requestId: event.id });
          return true;
        }
        await repo.cancel(db, s.id);
        const after = await repo.lockSubscription(db, s.id);
        await this.audit.recordPrivileged(db, event.orgId, BILLING_ACTOR, {
          action: 'billing.subscription_canceled', entityType: 'subscription', entityId: s.id,
          before: { status: before.status, plan: before.plan }, after: { status: 'canceled', plan: before.plan, reason: 'organization_deleted', stripeCanceled: Boolean(s.stripeSubscriptionId) },
        }, { requestId: event.id });
        // dated no earlier than the row's last domain event, and the row's floor raised to it (a Stripe event applied
        // later, e.g. its deletion, is dated no earlier than this end)
        const at = datedNotBefore(before, new Date());
        await emitEvent({ db, orgId: event.orgId }, 'subscription.canceled', subscriptionPayload(after!, before.status), 1, at);
        await repo.recordEventsDated(db, s.id, at);
        return true;
      });
      if (done) ended.push(s.id);
    }
    if (ended.length) this.logger.log(`organization ${event.orgId} deleted: ${ended.length} subscription(s) canceled`);
    return ended;
  }
}
