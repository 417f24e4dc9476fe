import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { subscriptionPayload } from './stripe-webhook.service.js';
import { billingRepository as repo, type EndingTrial } from './billing.repository.js';
import { DAY_MS } from './subscription-status.js';
import { CHECKOUT_DOUBT_MS, checkoutIdempotencyKey } from './checkout.service.js';
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
 * or the subscription was provisioned without Stripe. A Stripe trial is left to Stripe, which may convert
 * it to paid: its end makes it read-only meanwhile (accessFor), not canceled. And records when the grace period of a
 * past_due subscription the Hub provisioned by SQL started (recordPastDueStarts), as Stripe's events record theirs. And
 * drops the checkout keys left in doubt past Stripe's idempotency window, with their parameters (dropStaleCheckoutKeys). And
 * expires the Checkout sessions of overtaken checkouts that Stripe failed to expire then (expireLeftCheckoutSessions), after
 * learning those their own requests never saved (learnOvertakenCheckouts).
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
    await this.learnOvertakenCheckouts().catch((err) => this.logger.error(`learning overtaken checkouts failed: ${(err as Error).message}`));
    await this.expireLeftCheckoutSessions().catch((err) => this.logger.error(`expiring left checkout sessions failed: ${(err as Error).message}`));
  }

  /**
   * Learns the sessions of overtaken checkouts whose own request never saved them to be expired (the database failed, the
   * process stopped, Stripe's answer was lost): for each key kept as overtaken (hub.limit_locks.checkout_overtaken_keys)
   * within Stripe's idempotency window of `now` (the injected clock's), the create again under its Idempotency-Key with
   * its parameters; the session Stripe answers is saved to be expired (expireLeftCheckoutSessions expires it next) and the
   * key forgotten with its parameters, in one transaction. A key whose create Stripe refused is forgotten; one still
   * running in Stripe (its own request records it), or without an answer, is tried again next run. Stripe is called with
   * no transaction open. Returns the sessions saved.
   */
  async learnOvertakenCheckouts(now = new Date(this.clock.now())): Promise<string[]> {
    const keys = await this.privileged.run('billing.expiry', (db) => repo.overtakenKeys(db, new Date(now.getTime() - CHECKOUT_DOUBT_MS)));
    const saved: string[] = [];
    for (const k of keys) {
      let replayed: Awaited<ReturnType<StripeClient['replayCheckoutCreate']>>;
      try {
        replayed = await this.stripe.replayCheckoutCreate(k.params, checkoutIdempotencyKey(k.key, k.request));
      } catch (err) {
        this.logger.warn(`could not learn the session of the overtaken checkout ${k.key} of ${k.appId}: ${(err as Error).message}; tried again next run`);
        continue;
      }
      if (replayed === 'running') continue;
      await this.privileged.run('billing.expiry', async (db) => {
        if (replayed !== 'none') await repo.addCheckoutSessionToExpire(db, k.orgId, k.appId, replayed.session.id);
        await repo.forgetOvertakenKey(db, k.orgId, k.appId, k.key);
      });
      if (replayed !== 'none') saved.push(replayed.session.id);
    }
    if (saved.length) this.logger.log(`saved ${saved.length} overtaken checkout session(s) to be expired`);
    return saved;
  }

  /**
   * Expires in Stripe the Checkout sessions kept to be expired (hub.limit_locks.checkout_sessions_to_expire: a checkout
   * overtaken while Stripe created its session saved it, and Stripe failed to expire it; the organization's next checkout
   * or portal call tries them first too), so they can no longer be paid; each is forgotten
   * once Stripe has expired it (audited, billing.checkout_expired, reason superseded) or says it is not open (expired
   * already, paid, or unknown). Stripe is called with no transaction open; a failure leaves the session for the next
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
   * Drops the checkout keys still in doubt (hub.limit_locks.checkout_params: a create Stripe never answered; and
   * checkout_overtaken_keys: overtaken ones whose session was never saved) drawn
   * Stripe's idempotency window (CHECKOUT_DOUBT_MS) or more before `now` (the injected clock's): a replay would create a
   * new session, so nothing is left to learn, and the parameters, which may hold the requesting admin's e-mail address,
   * are kept no longer (the personal-data catalog's retention of the column). Not audited: the module audits checkout
   * sessions, not its keys (nor does a checkout that draws or drops one). Returns the keys dropped.
   */
  async dropStaleCheckoutKeys(now = new Date(this.clock.now())): Promise<{ orgId: string; appId: string; key: string }[]> {
    return this.privileged.run('billing.expiry', async (db) => {
      const cutoff = new Date(now.getTime() - CHECKOUT_DOUBT_MS);
      const dropped = [...(await repo.dropStaleCheckoutKeys(db, cutoff)).map(({ orgId, appId, key }) => ({ orgId, appId, key })), ...await repo.dropStaleOvertakenKeys(db, cutoff)];
      if (dropped.length) this.logger.log(`dropped ${dropped.length} checkout key(s) in doubt past Stripe's idempotency window`);
      return dropped;
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
        await emitEvent({ db, orgId: trial.orgId }, 'subscription.trial_ending', payload, 1, now);
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
