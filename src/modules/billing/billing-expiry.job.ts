import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { subscriptionPayload } from './stripe-webhook.service.js';
import { billingRepository as repo, datedNotBefore, type EndingTrial } from './billing.repository.js';
import { DAY_MS, stripeStillBills } from './subscription-status.js';
import { CHECKOUT_DOUBT_MS } from './checkout.service.js';
import { StripeClient } from './stripe.client.js';

/** How long before a trial's end its `subscription.trial_ending` goes out (as Stripe's trial_will_end: three days). */
export const TRIAL_ENDING_NOTICE_MS = 3 * DAY_MS;
/** Apps whose default trial (no subscription row) is announced: this API's own app. */
const DEFAULT_TRIAL_APPS = ['omnizen'];

/**
 * Announces trials that end soon when Stripe will not: `subscription.trial_ending` for local trials (see
 * billingRepository.endingTrials), once per organization, app and trial end (hub.trial_notices). And
 * ends what is over: local trials (no Stripe subscription) whose end has passed, and subscriptions canceled
 * at period end whose period has ended, become 'canceled' (read-only, docs/plans.md). Stripe normally
 * says so too (customer.subscription.deleted); this job makes the Hub right even when that event is late
 * or the subscription was provisioned without Stripe. It calls no Stripe API to end one: its end is recorded as local
 * (hub.subscription_billing.ended_locally_at), not final, and a newer Stripe event (a renewal) overrides it. A Stripe
 * trial is left to Stripe, which may convert it to paid: its end makes it read-only meanwhile (accessFor), not
 * canceled. And records when the grace period of a past_due subscription the Hub provisioned by SQL started
 * (recordPastDueStarts), as Stripe's events record theirs. And
 * drops the checkout keys left in doubt past Stripe's idempotency window, with their parameters (dropStaleCheckoutKeys). And
 * expires the Checkout sessions of overtaken checkouts that Stripe failed to expire then (expireLeftCheckoutSessions).
 */
@Injectable()
export class BillingExpiryJob {
  private readonly logger = new Logger(BillingExpiryJob.name);

  constructor(
    private readonly privileged: PrivilegedDatabase,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly stripe: StripeClient,
  ) {}

  @Cron(CronExpression.EVERY_10_MINUTES, { name: 'billing-expiry' })
  async onSchedule(): Promise<void> {
    await this.recordPastDueStarts().catch((err) => this.logger.error(`recording past-due starts failed: ${(err as Error).message}`));
    await this.noticeEndingTrials().catch((err) => this.logger.error(`trial-ending notices failed: ${(err as Error).message}`));
    await this.expire().catch((err) => this.logger.error(`billing expiry failed: ${(err as Error).message}`));
    await this.dropStaleCheckoutKeys().catch((err) => this.logger.error(`dropping stale checkout keys failed: ${(err as Error).message}`));
    await this.expireLeftCheckoutSessions().catch((err) => this.logger.error(`expiring left checkout sessions failed: ${(err as Error).message}`));
  }

  /**
   * Expires in Stripe the Checkout sessions kept to be expired (hub.limit_locks.checkout_sessions_to_expire: a checkout
   * overtaken while Stripe created its session saved it, and Stripe failed to expire it; the organization's next checkout
   * or portal call tries them first too), so they can no longer be paid; each is forgotten
   * once Stripe has expired it (audited, billing.checkout_expired, reason superseded) or says it is not open (expired
   * already, or unknown). One the customer paid is forgotten once the Hub has recorded the subscription it started (the
   * webhook), or Stripe says that subscription has ended: until then it is what tells a checkout of the app that a
   * subscription exists (409). Stripe is called with no transaction open; a failure leaves the session for the next
   * run. Returns the sessions forgotten.
   */
  async expireLeftCheckoutSessions(): Promise<string[]> {
    const left = await this.privileged.run('billing.expiry', (db) => repo.sessionsToExpire(db));
    const done: string[] = [];
    for (const s of left) {
      let result: Awaited<ReturnType<StripeClient['expireCheckoutSession']>>;
      try {
        result = await this.stripe.expireCheckoutSession(s.sessionId);
      } catch (err) {
        this.logger.warn(`could not expire the left checkout session ${s.sessionId} of ${s.appId}: ${(err as Error).message}; tried again next run`);
        continue;
      }
      if (result.status === 'complete') this.logger.warn(`the left checkout session ${s.sessionId} of ${s.appId} was paid before it could be expired`);
      if (result.status === 'complete' && result.subscription && !(await this.subscriptionSettled(result.subscription, s.sessionId))) continue;
      await this.privileged.run('billing.expiry', async (db) => {
        await repo.forgetSessionToExpire(db, s.orgId, s.appId, s.sessionId);
        if (result.expiredNow) await this.audit.recordPrivileged(db, s.orgId, 'system', {
          action: 'billing.checkout_expired', entityType: 'checkout_session', entityId: s.sessionId, after: { app: s.appId, reason: 'superseded' },
        });
      });
      done.push(s.sessionId);
    }
    if (done.length) this.logger.log(`expired ${done.length} left checkout session(s)`);
    return done;
  }

  /**
   * Whether a paid left session's subscription no longer needs it kept: recorded by the Hub, or ended (or unknown) in
   * Stripe. False when Stripe does not answer (tried again next run).
   */
  private async subscriptionSettled(stripeSubscriptionId: string, sessionId: string): Promise<boolean> {
    if (await this.privileged.run('billing.expiry', (db) => repo.subscriptionByStripeId(db, stripeSubscriptionId))) return true;
    const status = await this.stripe.subscriptionStatus(stripeSubscriptionId).catch((err: Error) => {
      this.logger.warn(`could not read the subscription ${stripeSubscriptionId} of the paid left checkout session ${sessionId}: ${err.message}; tried again next run`);
      return undefined;
    });
    if (status === undefined) return false;
    if (!stripeStillBills(status)) return true;
    this.logger.warn(`the paid left checkout session ${sessionId} started the subscription ${stripeSubscriptionId}, not recorded yet: kept until it is`);
    return false;
  }

  /**
   * Drops the checkout keys still in doubt (hub.limit_locks.checkout_params: a create Stripe never answered) drawn
   * Stripe's idempotency window (CHECKOUT_DOUBT_MS) or more before `now` (the injected clock's): a replay would create a
   * new session, so nothing is left to learn, and the parameters, which may hold the requesting admin's e-mail address,
   * are kept no longer (the personal-data catalog's retention of the column). Not audited: the module audits checkout
   * sessions, not its keys (nor does a checkout that draws or drops one). Returns the keys dropped.
   */
  async dropStaleCheckoutKeys(now = new Date(this.clock.now())): Promise<{ orgId: string; appId: string; key: string }[]> {
    return this.privileged.run('billing.expiry', async (db) => {
      const dropped = await repo.dropStaleCheckoutKeys(db, new Date(now.getTime() - CHECKOUT_DOUBT_MS));
      if (dropped.length) this.logger.log(`dropped ${dropped.length} checkout key(s) in doubt past Stripe's idempotency window`);
      return dropped.map(({ orgId, appId, key }) => ({ orgId, appId, key }));
    });
  }

  /**
   * Records hub.subscription_billing.past_due_since for past_due subscriptions without it (provisioned by SQL, seed 000):
   * the start their grace period is counted from until then (the row's "updatedAt", else its "createdAt", else its
   * organization's creation; never now), kept from then on, so a later update of the row does not restart it. Forgets it
   * once the subscription is no longer past_due. Each start recorded or cleared is audited with it (it decides when the grace
   * ends). Returns the ids recorded.
   */
  async recordPastDueStarts(): Promise<string[]> {
    return this.privileged.run('billing.expiry', async (db) => {
      const { recorded, cleared } = await repo.recordPastDueStarts(db);
      for (const s of recorded) {
        if (s.orgId) await this.audit.recordPrivileged(db, s.orgId, 'system', {
          action: 'billing.past_due_recorded', entityType: 'subscription', entityId: s.id,
          before: { subscriptionId: s.id, pastDueSince: null }, after: { subscriptionId: s.id, pastDueSince: s.pastDueSince.toISOString() },
        });
      }
      for (const s of cleared) {
        if (s.orgId) await this.audit.recordPrivileged(db, s.orgId, 'system', {
          action: 'billing.past_due_cleared', entityType: 'subscription', entityId: s.id,
          before: { subscriptionId: s.id, pastDueSince: s.pastDueSince.toISOString() }, after: { subscriptionId: s.id, pastDueSince: null },
        });
      }
      if (recorded.length) this.logger.log(`recorded the past-due start of ${recorded.length} subscription(s)`);
      if (cleared.length) this.logger.log(`cleared the past-due start of ${cleared.length} subscription(s)`);
      return recorded.map((s) => s.id);
    });
  }

  /**
   * Emits `subscription.trial_ending` for every local trial ending within TRIAL_ENDING_NOTICE_MS of `now` (the
   * injected clock's) that has had none: at most once per trial, however many instances run the check.
   * Returns the trials it announced.
   */
  async noticeEndingTrials(now = new Date(this.clock.now())): Promise<EndingTrial[]> {
    return this.privileged.run('billing.expiry', async (db) => {
      const announced: EndingTrial[] = [];
      for (const trial of await repo.endingTrials(db, now, new Date(now.getTime() + TRIAL_ENDING_NOTICE_MS), DEFAULT_TRIAL_APPS)) {
        if (!(await repo.recordTrialNotice(db, trial, now))) continue;
        const subscription = trial.subscriptionId ? await repo.lockSubscription(db, trial.subscriptionId) : undefined;
        const payload = subscription ? subscriptionPayload(subscription, 'trialing') : {
          subscriptionId: null, app: trial.appId, plan: trial.plan, status: 'trialing', previousStatus: 'trialing',
          trialEndsAt: trial.trialEndsAt.toISOString(), currentPeriodEnd: null, cancelAtPeriodEnd: false,
        };
        // a row's domain events are dated no earlier than the last one (events_dated_until), which this one raises
        const at = datedNotBefore(subscription, now);
        await emitEvent({ db, orgId: trial.orgId }, 'subscription.trial_ending', payload, 1, at);
        if (subscription) await repo.recordEventsDated(db, subscription.id, at);
        announced.push(trial);
      }
      if (announced.length) this.logger.log(`announced ${announced.length} ending trial(s)`);
      return announced;
    });
  }

  /** Ends what is over at `now` (the injected clock's); returns the ids of the subscriptions it ended. */
  async expire(now = new Date(this.clock.now())): Promise<string[]> {
    return this.privileged.run('billing.expiry', async (db) => {
      const due = await repo.dueToExpire(db, now);
      for (const s of due) {
        // Stripe is not asked to cancel (nor told): its subscription may have been renewed meanwhile (the customer turned
        // the cancellation off, the event is late), so this end is recorded as local, and Stripe's next event overrides it
        await repo.cancel(db, s.id, s.reason === 'canceled_at_period_end' ? now : undefined);
        if (s.orgId) {
          await this.audit.recordPrivileged(db, s.orgId, 'system', {
            action: 'billing.subscription_expired', entityType: 'subscription', entityId: s.id,
            before: { status: s.status, plan: s.plan }, after: { status: 'canceled', plan: s.plan, reason: s.reason },
          });
          const after = await repo.lockSubscription(db, s.id);
          // dated no earlier than the row's last domain event; its floor raised, kept once a Stripe event clears this local end
          const at = datedNotBefore(after, now);
          if (after) {
            await emitEvent({ db, orgId: s.orgId }, 'subscription.canceled', subscriptionPayload(after, s.status), 1, at);
            await repo.recordEventsDated(db, s.id, at);
          }
        }
      }
      if (due.length) this.logger.log(`ended ${due.length} subscription(s)`);
      return due.map((s) => s.id);
    });
  }
}
