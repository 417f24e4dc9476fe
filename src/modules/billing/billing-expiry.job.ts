import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { subscriptionPayload } from './stripe-webhook.service.js';
import { billingRepository as repo } from './billing.repository.js';

/**
 * Ends what is over: trials whose end has passed, and subscriptions canceled at period end whose
 * period has ended, become 'canceled' (read-only, docs/plans.md). Stripe normally says so too
 * (customer.subscription.deleted); this job makes the Hub right even when that event is late or
 * the subscription was provisioned without Stripe.
 */
@Injectable()
export class BillingExpiryJob {
  private readonly logger = new Logger(BillingExpiryJob.name);

  constructor(
    private readonly privileged: PrivilegedDatabase,
    private readonly audit: AuditService,
  ) {}

  @Cron(CronExpression.EVERY_10_MINUTES, { name: 'billing-expiry' })
  async onSchedule(): Promise<void> {
    await this.expire().catch((err) => this.logger.error(`billing expiry failed: ${(err as Error).message}`));
  }

  /** Returns the ids of the subscriptions it ended. */
  async expire(now = new Date()): Promise<string[]> {
    return this.privileged.run('billing.expiry', async (db) => {
      const due = await repo.dueToExpire(db, now);
      for (const s of due) {
        await repo.cancel(db, s.id);
        if (s.orgId) {
          await this.audit.recordPrivileged(db, s.orgId, 'system', {
            action: 'billing.subscription_expired', entityType: 'subscription', entityId: s.id,
            before: { status: s.status, plan: s.plan }, after: { status: 'canceled', plan: s.plan, reason: s.reason },
          });
          const after = await repo.lockSubscription(db, s.id);
          if (after) await emitEvent({ db, orgId: s.orgId }, 'subscription.canceled', subscriptionPayload(after, s.status));
        }
      }
      if (due.length) this.logger.log(`ended ${due.length} subscription(s)`);
      return due.map((s) => s.id);
    });
  }
}
