import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AuditService } from '../audit/audit.service.js';

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
      const due = await db.$queryRaw<{ id: string; status: string; plan: string; org_id: string | null; reason: string }[]>`
        SELECT s.id, s.status, s.plan,
               coalesce(o.id, core.personal_org_id(s."userId"))::text AS org_id,
               CASE WHEN s.status = 'trialing' AND b.trial_ends_at <= ${now} THEN 'trial_ended' ELSE 'canceled_at_period_end' END AS reason
        FROM hub."Subscription" s
        JOIN hub.subscription_billing b ON b.subscription_id = s.id
        LEFT JOIN core.organizations o ON o.id::text = s."organizationId"
        WHERE (s.status = 'trialing' AND b.trial_ends_at <= ${now})
           OR (b.cancel_at_period_end AND b.current_period_end <= ${now} AND s.status IN ('active', 'trialing', 'past_due'))
        FOR UPDATE OF s SKIP LOCKED`;
      for (const s of due) {
        await db.$executeRaw`UPDATE hub."Subscription" SET status = 'canceled', "updatedAt" = (now() AT TIME ZONE 'utc') WHERE id = ${s.id}`;
        if (s.org_id) {
          await this.audit.recordPrivileged(db, s.org_id, 'system', {
            action: 'billing.subscription_expired', entityType: 'subscription', entityId: s.id,
            before: { status: s.status, plan: s.plan }, after: { status: 'canceled', plan: s.plan, reason: s.reason },
          });
        }
      }
      if (due.length) this.logger.log(`ended ${due.length} subscription(s)`);
      return due.map((s) => s.id);
    });
  }
}
