import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import type Stripe from 'stripe';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { AuditService } from '../audit/audit.service.js';
import { audienceMismatch, audienceOf, billingRepository as repo, type Subject, subjectOf, type SubscriptionRow } from './billing.repository.js';
import type { CheckoutDto, CheckoutSessionDto, PortalDto, PortalSessionDto } from './billing.dto.js';
import { StripeCallError, StripeClient } from './stripe.client.js';
import { BillingErrors } from './billing.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import type { OpenTenant } from '../../platform/http/tenant.js';
import { DAY_MS, endedLocally, LIVE_STATUSES, MISFIT_STATUS, STRIPE_ENDED, statusOf, stripeStillBills } from './subscription-status.js';

/**
 * How long one checkout key is kept: less than Stripe's 24 hours, both the default life of a Checkout session and the
 * least time Stripe keeps the answer to an Idempotency-Key.
 */
const CHECKOUT_KEY_MS = 23 * 3_600_000;

/**
 * How long a checkout key whose create had no answer stays in doubt: Stripe's idempotency window (24 hours from the
 * key). A replay of the create after it would create a new session rather than tell the one created then, so the key
 * is no longer in doubt: a checkout draws a new one, and BillingExpiryJob drops it with its parameters (which may hold
 * the requesting admin's e-mail address) even if no checkout comes.
 */
export const CHECKOUT_DOUBT_MS = DAY_MS;

/**
 * Stripe Checkout and the customer portal, for an organization or (in a personal organization) a person. Stripe answers
 * in up to 20 s per try (one retry): no transaction, nor pool connection, may wait on it. So each call reads what it
 * needs in one short transaction, calls Stripe with none open, and records the answer in a second one.
 *
 * One open checkout of an app at a time: the first transaction locks the organization's row of the app (hub.limit_locks)
 * while it reads the subscription and the open checkout: its key, the request the key was drawn for, and the Stripe
 * session created under it. The same request again (a double-click, a retry, the back button) keeps the key, and the
 * session is created with an Idempotency-Key made of it: Stripe answers with the session it created first. Any other
 * checkout (another plan, another admin's e-mail) draws a new key and expires the recorded session in Stripe before
 * creating its own, so only one can be paid; the second transaction records the new session under its key.
 *
 * A session Stripe created but the Hub did not record (Stripe's answer lost, or the recording failed) must be expired
 * too: a key whose create had no answer is kept, with the request's parameters, and the next different checkout first
 * replays that create under the key's Idempotency-Key, so Stripe tells it the session (settle). Only within Stripe's
 * idempotency window (CHECKOUT_DOUBT_MS): after it the key is not in doubt, and BillingExpiryJob drops it with its
 * parameters if no checkout has.
 *
 * A checkout overtaken while Stripe created its session (another drew a new key meanwhile) answers 409 without that
 * session's URL: no client has it, so no one can pay it, and left alone Stripe would expire it after 24 hours. It is
 * closed sooner all the same: saved to be expired (hub.limit_locks.checkout_sessions_to_expire) in the transaction that
 * finds it overtaken, then Stripe is asked to expire it, and it is forgotten once expired. One Stripe fails to expire
 * stays saved: the organization's next checkout or portal call tries it first, and BillingExpiryJob every 10 minutes.
 * Should Stripe say one was completed nonetheless (a guard: its URL was never answered), it stays saved until the Hub
 * records the subscription it started (or Stripe says it has ended), making a checkout of its app the 409 of a
 * subscription that exists.
 *
 * A subscription BillingExpiryJob ended on its own at its period end (ended_locally_at: Stripe was not asked) may still
 * bill in Stripe: a checkout of its app asks Stripe first (confirmEnded), and answers 409 while Stripe has not ended it.
 */
@Injectable()
export class CheckoutService {
  private readonly logger = new Logger(CheckoutService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly stripe: StripeClient,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly privileged: PrivilegedDatabase,
  ) {}

  private async subject(tx: TenantTx): Promise<Subject> {
    const org = await repo.org(tx.db, tx.orgId);
    if (!org) throw PlatformErrors.notFound('organization', tx.orgId);
    return subjectOf(org);
  }

  async checkout(open: OpenTenant, dto: CheckoutDto): Promise<CheckoutSessionDto> {
    // a server without Stripe answers 503 before any work: no lock row, no key drawn
    this.stripe.requireConfigured();
    const now = new Date(this.clock.now());
    /** a checkout key in doubt whose create is still running in Stripe: its own request records or expires its session */
    let running: string | undefined;
    /** the organization's saved sessions (kept to be expired) have been tried: once per request, failures stay saved */
    let savedTried = false;
    /** how many keys in doubt this request has settled: other checkouts keep starting past a few */
    let settled = 0;
    /** the Stripe subscription ended here at its period end that Stripe has said is ended too (asked once per request) */
    let endConfirmed: string | undefined;
    for (;;) {
      const found = await open(async (tx) => {
        if (!(await repo.app(tx.db, dto.app))) throw BillingErrors.notFound('app', dto.app);
        const plan = (await repo.plans(tx.db, dto.app)).find((p) => p.code === dto.plan);
        if (!plan) throw BillingErrors.error('billing.plan_unknown', `${dto.app} has no plan ${dto.plan}`);
        const subject = await this.subject(tx);
        const mismatch = audienceMismatch(dto.app, plan, subject);
        if (mismatch) throw BillingErrors.error('billing.plan_audience', mismatch);
        // locked until this transaction ends: a concurrent checkout of the app reads the subscription and the key after it
        const pending = await repo.lockLimits(tx.db, tx.orgId, dto.app);
        // one Stripe subscription per app until it has ended: a plan change goes through the portal, which updates that subscription
        const current = await repo.subscription(tx.db, subject, dto.app);
        if (current?.stripeSubscriptionId && !STRIPE_ENDED.has(statusOf(current))) throw this.subscriptionExists(tx.orgId, subject, dto.app, current);
        const price = Object.entries(this.config.billing.stripePrices).find(([, v]) => v.app === dto.app && v.plan === dto.plan)?.[0];
        if (!price) throw BillingErrors.error('billing.plan_not_for_sale', `no Stripe price is configured for ${dto.app}:${dto.plan} (STRIPE_PRICES); contact sales`);
        // ended only here (BillingExpiryJob, at its period end), not by Stripe: Stripe may still bill it (its end not
        // processed yet, or renewed, the event late), and a second subscription would be billed besides it. Stripe is
        // asked first (no transaction open)
        if (current && endedLocally(current) && current.stripeSubscriptionId !== endConfirmed) {
          return { kind: 'ended_locally' as const, subscription: { id: current.id, stripeSubscriptionId: current.stripeSubscriptionId!, plan: current.plan }, orgId: tx.orgId, subject, principal: tx.principal, meta: tx.meta };
        }
        // sessions of overtaken checkouts Stripe failed to expire (their URLs never reached a client): tried first (no
        // transaction open, no key drawn yet) rather than left to BillingExpiryJob, once per request; one of this app
        // Stripe says was completed all the same is the 409 of a subscription that exists
        if (!savedTried) {
          const saved = await repo.sessionsToExpireOf(tx.db, tx.orgId);
          if (saved.length) return { kind: 'saved' as const, saved, orgId: tx.orgId, subject };
        }
        const customer = await repo.stripeCustomer(tx.db, subject);
        const email = tx.principal.kind === 'user' ? tx.principal.email : undefined;
        // the webhook finds the organization (or person) and the plan again from this metadata
        const metadata = { org_id: tx.orgId, app: dto.app, plan: dto.plan, ...(subject.kind === 'user' ? { user_id: subject.userId } : {}) };
        const base = this.config.billing.appUrl;
        const params: Stripe.Checkout.SessionCreateParams = {
          mode: 'subscription',
          line_items: [{ price, quantity: 1 }],
          client_reference_id: tx.orgId,
          ...(customer ? { customer } : email ? { customer_email: email } : {}),
          metadata,
          subscription_data: { metadata },
          success_url: `${base}/billing/success?session_id={CHECKOUT_SESSION_ID}`,
          cancel_url: `${base}/billing/canceled`,
        };
        const json = JSON.stringify(params);
        const request = createHash('sha256').update(json).digest('hex');
        // the open checkout's key for the same request within its window, unless Stripe has said something about the
        // subscription since it was drawn (a checkout of the window may have completed: its session is spent)
        const reuse = pending.key && pending.request === request && pending.drawnAt && now.getTime() - pending.drawnAt.getTime() < CHECKOUT_KEY_MS
          && ![current?.lastEventAt, current?.lastInvoiceEventAt].some((at) => at && at >= pending.drawnAt!);
        // within Stripe's idempotency window: past it a replay would create a new session, so there is nothing to learn
        const withinWindow = !!pending.drawnAt && now.getTime() - pending.drawnAt.getTime() < CHECKOUT_DOUBT_MS;
        if (!reuse && pending.key && pending.request && pending.params && withinWindow && pending.key !== running) {
          // the key's session is not recorded: Stripe may have created it (its answer lost, or its recording failed).
          // Learned first (below), so that it is expired like a recorded one.
          return {
            kind: 'doubt' as const,
            doubt: { key: pending.key, request: pending.request, params: pending.params, previous: pending.sessionId ?? undefined, orgId: tx.orgId, subject },
          };
        }
        const key = reuse ? pending.key! : randomUUID();
        if (!reuse) await repo.setCheckoutKey(tx.db, tx.orgId, dto.app, key, request, json, now);
        // the session of the checkout before this one, perhaps still open: expired before this one's is created. The
        // same request again while the key's own session is not recorded (params kept) expires it too: the first request
        // may still be expiring it (or have failed to), and this one's session replaces it in the record
        const previous = reuse && pending.params === null ? undefined : pending.sessionId ?? undefined;
        // only the request that drew the key may drop it: a reused key belongs to a first request perhaps still running
        return { kind: 'create' as const, params, key, request, previous, ownsKey: !reuse, orgId: tx.orgId, subject };
      });
      if (found.kind === 'ended_locally') {
        await this.confirmEnded(found, dto.app);
        endConfirmed = found.subscription.stripeSubscriptionId;
        continue;
      }
      if (found.kind === 'saved') {
        savedTried = true;
        await this.expireSaved(open, found.saved, { orgId: found.orgId, subject: found.subject, app: dto.app });
        continue;
      }
      if (found.kind === 'doubt') {
        if (settled++ >= 3) throw BillingErrors.error('billing.stripe_failed', `Stripe could not settle the previous checkouts of ${dto.app}: other checkouts keep starting; try again`, { stripeType: null, stripeStatus: null });
        if ((await this.settle(open, dto.app, found.doubt)) === 'running') running = found.doubt.key;
        continue;
      }
      return this.create(open, dto, found);
    }
  }

  /**
   * Learns the session a checkout key's create left unrecorded: the create again, with the key's Idempotency-Key and
   * parameters. Stripe answers the session it created (or, if the first request never reached it, creates it now): it is
   * recorded under the key (and audited then, if the first request could not), so the checkout goes on by expiring it.
   * Stripe's answer kept under the key is a refusal (a 4xx other than 401, 403, 409, 429 and idempotency_error), or a 5xx
   * Stripe replays (Idempotent-Replayed: true: it executed the first create, which failed): no session, the key is
   * dropped. Kept, such a 5xx would answer every replay until the window ends, and every checkout of the app 502 for
   * 24 hours. 'running': Stripe is still executing the first request (409), whose own request records or expires its
   * session. No answer (network, timeout), or one that says nothing about the first create (429, 401, 403, 400
   * idempotency_error, a 5xx not replayed): thrown (502), the key stays in doubt for the next checkout.
   */
  private async settle(
    open: OpenTenant, app: string,
    doubt: { key: string; request: string; params: string; previous?: string; orgId: string; subject: Subject },
  ): Promise<'settled' | 'running'> {
    const params = JSON.parse(doubt.params) as Stripe.Checkout.SessionCreateParams;
    // the session recorded before the key, which its checkout expires before its create: that checkout may have ended
    // before it did (the process stopped), and recording the key's session below replaces it in the record. Expired
    // again first (one Stripe already expired is passed over); a failure leaves the key in doubt and that one recorded.
    if (doubt.previous) await this.expireReplaced(open, { orgId: doubt.orgId, subject: doubt.subject, app, sessionId: doubt.previous });
    const idempotencyKey = `omnizen-checkout-${doubt.key}-${doubt.request}`;
    let session: Stripe.Checkout.Session;
    try {
      // no retry: a 409 (the first request still running) is an answer here
      session = await this.stripe.call('create a checkout session', (api) => api.checkout.sessions.create(params, { idempotencyKey, maxNetworkRetries: 0 }));
    } catch (err) {
      const status = stripeStatus(err);
      if (status === 409) return 'running';
      // an answer that says nothing about the first create (Stripe's idempotency docs): rate-limited (429) or not
      // authorized (401, 403) before executing it, a key Stripe holds for other parameters (400 idempotency_error), a
      // 5xx not replayed (Stripe's own failure now, the first create's outcome unknown). As no answer (or no Stripe):
      // the key stays in doubt for the next checkout
      if (status === null || !answersTheCreate(status, stripeErrorType(err), err instanceof StripeCallError && err.replayed)) {
        if (stripeErrorType(err) === 'StripeIdempotencyError') {
          this.logger.error(`the unanswered checkout ${doubt.key} of ${app}: Stripe holds its Idempotency-Key for other parameters (${(err as Error).message}); the key stays in doubt`);
        }
        throw err;
      }
      const kept = status >= 500 ? `the ${status} it kept (replayed): the create failed in Stripe` : status;
      this.logger.warn(`the unanswered checkout ${doubt.key} of ${app}: Stripe answers ${kept} (${(err as Error).message}); no session, the key is dropped`);
      await open((tx) => repo.dropCheckoutKey(tx.db, tx.orgId, app, doubt.key));
      return 'settled';
    }
    await open(async (tx) => {
      if ((await repo.recordCheckoutSession(tx.db, tx.orgId, app, doubt.key, session.id)) === 'recorded') await this.auditStarted(tx, app, session.id, params);
    });
    return 'settled';
  }

  /** Creates (or, for the same request under the same key, gets again) the checkout's Stripe session and records it. */
  private async create(
    open: OpenTenant, dto: CheckoutDto,
    c: { params: Stripe.Checkout.SessionCreateParams; key: string; request: string; previous?: string; ownsKey: boolean; orgId: string; subject: Subject },
  ): Promise<CheckoutSessionDto> {
    const { params, key, request } = c;
    if (c.previous) await this.expirePrevious(open, { orgId: c.orgId, subject: c.subject, app: dto.app, key, ownsKey: c.ownsKey, sessionId: c.previous });
    // the same request under the same key: Stripe answers with the session it created first
    const idempotencyKey = `omnizen-checkout-${key}-${request}`;
    const session = await this.stripe.call('create a checkout session', (api) => api.checkout.sessions.create(params, { idempotencyKey }))
      .catch(async (err: unknown) => {
        // Stripe's answer (kept under the key, a 5xx too): no session; the next checkout draws a new key instead of getting
        // it again. No answer (timeout, network): Stripe may have created the session, so the key stays, with its
        // parameters, for the next checkout to learn it (settle). 409: the same request is still running in Stripe; its
        // session stays the key's.
        const status = stripeStatus(err);
        const unanswered = err instanceof AppError && err.code === 'billing.stripe_failed' && (status === null || status === 409);
        if (!unanswered) await this.dropKey(open, dto.app, key);
        throw err;
      });
    if (!session.url) {
      // Stripe keeps it open though no one can be sent to pay it: expired at once, never recorded as the open checkout
      // (nor audited as started). Once expired its key is dropped (a replay would answer the same session); if the
      // expire fails the key stays in doubt, so the next different checkout learns the session and expires it first.
      const expired = await this.expire(open, dto.app, session.id, 'no_url').then(() => true, (err: Error) => {
        this.logger.warn(`could not expire the checkout session ${session.id} of ${dto.app} Stripe answered without a URL: ${err.message}; its key stays in doubt`);
        return false;
      });
      if (expired) await this.dropKey(open, dto.app, key);
      throw BillingErrors.error('billing.stripe_no_url', 'Stripe returned a checkout session without a URL');
    }
    // audited when first recorded (a repeated request is answered with the same session; a first request whose recording
    // failed is audited by the next one that records it); superseded meanwhile, it is audited (then expired) unless Stripe
    // answered it before (replayed)
    const replayed = session.lastResponse?.headers?.['idempotent-replayed'] === 'true';
    const recorded = await open(async (tx) => {
      const outcome = await repo.recordCheckoutSession(tx.db, tx.orgId, dto.app, key, session.id);
      if (outcome === 'recorded' || (outcome === 'superseded' && !replayed)) await this.auditStarted(tx, dto.app, session.id, params);
      // another checkout drew a new key while Stripe created this session: no key holds it any longer. Saved to be
      // expired in the transaction that finds it overtaken, before Stripe is asked to expire it, so no failure after
      // this (Stripe's, the database's, the process stopping) leaves it open and unknown: it stays saved until expired
      if (outcome === 'superseded') await repo.addCheckoutSessionToExpire(tx.db, tx.orgId, dto.app, session.id);
      return outcome !== 'superseded';
    });
    if (!recorded) {
      // the other checkout is the open one now; this session is expired (and forgotten), else stays saved for the next
      // checkout or portal call of the organization, or BillingExpiryJob
      const expired = await this.stripe.expireCheckoutSession(session.id).then(async (result) => {
        await this.forgetSaved(open, dto.app, session.id, result);
        return true;
      }, (err: Error) => {
        this.logger.warn(`could not expire the overtaken checkout session ${session.id} of ${dto.app}: ${err.message}; it stays saved to be expired`);
        return false;
      });
      const outcome = expired ? `this session (${session.id}) was expired` : `this session (${session.id}) is expired shortly (Stripe could not expire it now)`;
      throw BillingErrors.error('billing.checkout_superseded', `another checkout of ${dto.app} started while this one's session was being created (another plan, or another admin); that one is the open checkout, and ${outcome}`, { app: dto.app, plan: dto.plan });
    }
    return { id: session.id, url: session.url };
  }

  /** The audit of a checkout's session, from the Stripe parameters it was created with. */
  private async auditStarted(tx: TenantTx, app: string, sessionId: string, params: Stripe.Checkout.SessionCreateParams): Promise<void> {
    await this.audit.record(tx, {
      action: 'billing.checkout_started', entityType: 'checkout_session', entityId: sessionId,
      after: { app, plan: params.metadata?.plan ?? null, price: params.line_items?.[0]?.price ?? null, customer: params.customer ?? null },
    });
  }

  /**
   * Expires the session of the app's previous checkout before a different one is created, so only one can be paid. One
   * expired already (or unknown to Stripe) is passed over. One completed meanwhile was paid: its subscription may not be
   * recorded here yet, so unless Stripe says it has ended, this is the 409 of a subscription that has not ended. On any
   * failure the new key is dropped (by the request that drew it: `ownsKey`): the next checkout draws another and tries
   * the previous session again. A request reusing the key leaves it: the key's first request may still be creating its
   * session (or its answer was lost: the key in doubt), which only the key tells the next checkout.
   */
  private async expirePrevious(
    open: OpenTenant, c: { orgId: string; subject: Subject; app: string; key: string; ownsKey: boolean; sessionId: string },
  ): Promise<void> {
    try {
      await this.expireReplaced(open, c);
    } catch (err) {
      if (c.ownsKey) await this.dropKey(open, c.app, c.key);
      throw err;
    }
  }

  /** Expires a session a checkout replaces; one completed meanwhile whose subscription has not ended is the 409. */
  private async expireReplaced(open: OpenTenant, c: { orgId: string; subject: Subject; app: string; sessionId: string }): Promise<void> {
    const previous = await this.expire(open, c.app, c.sessionId, 'replaced');
    if (previous.status === 'complete' && previous.subscription) {
      const status = await this.stripe.subscriptionStatus(previous.subscription);
      if (stripeStillBills(status)) throw this.subscriptionExists(c.orgId, c.subject, c.app, { plan: previous.plan ?? 'unknown', status });
    }
  }

  /**
   * Expires in Stripe the organization's saved sessions (hub.limit_locks.checkout_sessions_to_expire: overtaken
   * checkouts' sessions, saved before Stripe was asked to expire them), before a checkout or portal session is created
   * rather than waiting for BillingExpiryJob. One Stripe fails to expire stays saved (for the next try or the job) and
   * the caller goes on. One Stripe says was completed (a guard: their URLs never reached a client) whose subscription has
   * not ended in Stripe stays saved until the Hub has recorded that subscription (the webhook may not have yet: until
   * then this session is what tells a checkout that it exists; BillingExpiryJob forgets it once recorded, or ended). For
   * a checkout (`checkout`), one of its app is the 409 of a subscription that exists, as for the session a checkout
   * replaces (when Stripe does not answer the subscription's status, 502; for another app, or the portal, the session
   * stays saved and the caller goes on).
   */
  private async expireSaved(open: OpenTenant, saved: { appId: string; sessionId: string }[], checkout?: { orgId: string; subject: Subject; app: string }): Promise<void> {
    for (const s of saved) {
      let result: ExpiredSession;
      try {
        result = await this.stripe.expireCheckoutSession(s.sessionId);
      } catch (err) {
        this.logger.warn(`could not expire the saved checkout session ${s.sessionId} of ${s.appId}: ${(err as Error).message}; it stays saved to be expired`);
        continue;
      }
      const ofCheckout = !!checkout && s.appId === checkout.app;
      if (result.status === 'complete' && result.subscription) {
        this.logger.warn(`the saved checkout session ${s.sessionId} of ${s.appId} was paid before it could be expired`);
        let status: string;
        try {
          status = await this.stripe.subscriptionStatus(result.subscription);
        } catch (err) {
          if (ofCheckout) throw err;
          this.logger.warn(`could not read the subscription ${result.subscription} of the paid saved checkout session ${s.sessionId} of ${s.appId}: ${(err as Error).message}; it stays saved`);
          continue;
        }
        if (stripeStillBills(status)) {
          const subscription = result.subscription;
          const recorded = await open(async (tx) => !!(await repo.subscriptionByStripeId(tx.db, subscription)));
          if (!recorded) this.logger.warn(`the saved checkout session ${s.sessionId} of ${s.appId} started the subscription ${subscription}, not recorded yet: it stays saved until it is`);
          else await this.forgetSaved(open, s.appId, s.sessionId, result);
          if (checkout && ofCheckout) throw this.subscriptionExists(checkout.orgId, checkout.subject, checkout.app, { plan: result.plan ?? 'unknown', status });
          continue;
        }
      }
      await this.forgetSaved(open, s.appId, s.sessionId, result);
    }
  }

  /**
   * Forgets a saved session Stripe has expired (or says is no longer open), audited when the call before expired it, in
   * one transaction. When that fails, the session, no longer open, stays saved: the next try finds it so in Stripe and
   * forgets it (the failure is logged, not answered: the session cannot be paid).
   */
  private async forgetSaved(open: OpenTenant, app: string, sessionId: string, result: ExpiredSession): Promise<void> {
    await open(async (tx) => {
      await repo.forgetSessionToExpire(tx.db, tx.orgId, app, sessionId);
      if (result.expiredNow) await this.audit.record(tx, { action: 'billing.checkout_expired', entityType: 'checkout_session', entityId: sessionId, after: { app, reason: 'superseded' } });
    }).catch((err: Error) => this.logger.warn(`expired the saved checkout session ${sessionId} of ${app} in Stripe, but could not forget it: ${err.message}; the next try forgets it`));
  }

  /** Expires a checkout session in Stripe, and audits it when this call is what expired it. */
  private async expire(open: OpenTenant, app: string, sessionId: string, reason: 'replaced' | 'no_url') {
    const result = await this.stripe.expireCheckoutSession(sessionId);
    if (result.expiredNow) {
      await open((tx) => this.audit.record(tx, { action: 'billing.checkout_expired', entityType: 'checkout_session', entityId: sessionId, after: { app, reason } }));
    }
    return result;
  }

  /** Forgets a failed checkout's key (best effort: the failure itself is what the caller answers). */
  private async dropKey(open: OpenTenant, app: string, key: string): Promise<void> {
    await open((tx) => repo.dropCheckoutKey(tx.db, tx.orgId, app, key))
      .catch((e: Error) => this.logger.warn(`could not drop the checkout key of ${app} after a failed checkout: ${e.message}`));
  }

  /**
   * A checkout of an app whose Stripe subscription BillingExpiryJob ended on its own (canceled at period end, the period
   * passed; Stripe not asked): Stripe is asked whether it has ended it too. Not ended (its end not processed yet, or the
   * customer turned the cancellation off and it renewed, the event late): 409 billing.subscription_end_pending, as a new
   * checkout would start a second subscription billed besides it. Ended (or unknown to Stripe): the local end is made
   * final (Stripe never revives an ended subscription), so a late event of it, dated before its end, no longer revives
   * the row, and the checkout goes on.
   */
  private async confirmEnded(
    { orgId, subject, subscription: sub, principal, meta }: { orgId: string; subject: Subject; subscription: { id: string; stripeSubscriptionId: string; plan: string }; principal: TenantTx['principal']; meta: TenantTx['meta'] },
    app: string,
  ): Promise<void> {
    const status = await this.stripe.subscriptionStatus(sub.stripeSubscriptionId);
    if (stripeStillBills(status)) {
      const holder = subject.kind === 'user' ? 'account' : 'organization';
      const portal = subject.kind === 'user' ? '/v1/me/billing/portal' : `/v1/orgs/${orgId}/billing/portal`;
      throw BillingErrors.error('billing.subscription_end_pending',
        `this ${holder}'s ${app} subscription (${sub.plan}) was ended at its period end, but Stripe has not ended it yet (${status}: its end is not processed yet, or it was renewed); `
        + `try again once Stripe has ended it, or manage it in the billing portal (POST ${portal}), instead of starting a second subscription`,
        { app, plan: sub.plan, status });
    }
    // Stripe's word, recorded with the row locked (a concurrent event waits, then is refused), audited
    await this.privileged.run('billing.checkout', async (db) => {
      const row = await repo.lockSubscription(db, sub.id);
      if (!row || row.stripeSubscriptionId !== sub.stripeSubscriptionId || !endedLocally(row)) return;
      await repo.recordEndFinal(db, sub.id);
      await this.audit.recordPrivileged(db, orgId, principal, {
        action: 'billing.subscription_end_confirmed', entityType: 'subscription', entityId: sub.id,
        before: { status: row.status, plan: row.plan, endedLocallyAt: row.endedLocallyAt!.toISOString() },
        after: { status: row.status, plan: row.plan, stripeStatus: status },
      }, { requestId: meta.requestId, ip: meta.ip });
    });
  }

  /**
   * The 409 for a checkout while a Stripe subscription of the app has not ended: live (plans change in the portal),
   * incomplete (its first payment is pending: a second subscription could be paid too), unpaid or paused (settled or
   * canceled in the portal). After incomplete_expired or canceled, a new checkout is allowed.
   */
  private subscriptionExists(orgId: string, subject: Subject, app: string, current: Pick<SubscriptionRow, 'plan' | 'status'> & { priceMisfit?: string | null }): AppError {
    const status = statusOf(current);
    const holder = subject.kind === 'user' ? 'account' : 'organization';
    const portal = subject.kind === 'user' ? '/v1/me/billing/portal' : `/v1/orgs/${orgId}/billing/portal`;
    const message = LIVE_STATUSES.has(status)
      ? `this ${holder} already has a live ${app} subscription (${current.plan}, ${status}); to change plans, open the billing portal (POST ${portal}) instead of starting another checkout`
      : status === 'incomplete'
        ? `a payment for this ${holder}'s ${app} subscription (${current.plan}) is pending (incomplete): complete it, or wait until Stripe expires the subscription (23 hours after it began), before starting another checkout`
        : status === MISFIT_STATUS && current.priceMisfit
          // paused here, not in Stripe: its live Stripe subscription is on a price that is not a plan of the app (the webhook)
          ? `this ${holder}'s ${app} subscription (${current.plan}) is on price ${current.priceMisfit}, which is not a plan of ${app} for this ${holder}: change its plan in the billing portal (POST ${portal}) instead of starting another checkout`
          : `this ${holder}'s ${app} subscription (${current.plan}) is ${status}, not ended: ${status === 'paused' ? 'resume it with a payment method' : 'pay its open invoice'} or cancel it in the billing portal (POST ${portal}) instead of starting another checkout`;
    return BillingErrors.error('billing.subscription_exists', message, { app, plan: current.plan, status });
  }

  async portal(open: OpenTenant, dto: PortalDto): Promise<PortalSessionDto> {
    // a server without Stripe answers 503 before any work, as checkout does (before no_customer)
    this.stripe.requireConfigured();
    const { customer, saved, app, audience } = await open(async (tx) => {
      const subject = await this.subject(tx);
      if (dto.app && !(await repo.app(tx.db, dto.app))) throw BillingErrors.notFound('app', dto.app);
      return {
        customer: await repo.stripeCustomer(tx.db, subject),
        saved: await repo.sessionsToExpireOf(tx.db, tx.orgId),
        // the portal of one app: the one asked for, else the account's first subscription's
        app: dto.app ?? (await repo.subscriptionsOf(tx.db, subject))[0]?.appId,
        audience: audienceOf(subject),
      };
    });
    if (!customer) throw BillingErrors.error('billing.no_customer', 'there is no Stripe customer for this account yet; start a checkout first');
    // the organization's overtaken checkouts' sessions Stripe failed to expire: expired now rather than by the billing job
    await this.expireSaved(open, saved);
    const base = this.config.billing.appUrl;
    // the app's own portal configuration (its products, for this kind of account): Stripe's default one lists every app's
    // products, so a subscription could be switched to another app's price or another audience's plan
    const portals = this.config.billing.stripePortalConfigurations;
    const configuration = app ? portals[`${app}:${audience}`] ?? portals[app] : undefined;
    const session = await this.stripe.call('open a portal session', (api) => api.billingPortal.sessions.create({
      customer, return_url: `${base}${dto.returnPath ?? '/billing'}`, ...(configuration ? { configuration } : {}),
    }));
    await open((tx) => this.audit.record(tx, {
      action: 'billing.portal_opened', entityType: 'portal_session', entityId: session.id, after: { customer, ...(configuration ? { app, configuration } : {}) },
    }));
    return { id: session.id, url: session.url };
  }
}

/** What a Checkout session is after StripeClient.expireCheckoutSession. */
type ExpiredSession = Awaited<ReturnType<StripeClient['expireCheckoutSession']>>;

/** The HTTP status of Stripe's answer to a failed call, null when there was none (timeout, network error). */
function stripeStatus(err: unknown): number | null {
  return err instanceof AppError ? (err.details as { stripeStatus?: number | null } | undefined)?.stripeStatus ?? null : null;
}

/** stripe-node's error class of a failed call (StripeClient.call's `stripeType`: e.g. StripeIdempotencyError), null when none. */
function stripeErrorType(err: unknown): string | null {
  return err instanceof AppError ? (err.details as { stripeType?: string | null } | undefined)?.stripeType ?? null : null;
}

/**
 * Whether Stripe's answer to a replayed create tells its outcome: a refusal Stripe executed and kept under the key (a 4xx
 * other than 401/403, not authorized before executing; 409, still executing; 429, rate-limited before executing; and
 * 400 idempotency_error, the key held for other parameters), or a 5xx Stripe replays (`replayed`: it kept it, having
 * begun executing the create, which failed). A 5xx not replayed is Stripe's failure now: the first create's outcome unknown.
 */
function answersTheCreate(status: number, type: string | null, replayed: boolean): boolean {
  if (status >= 500) return replayed;
  return status >= 400 && ![401, 403, 409, 429].includes(status) && type !== 'StripeIdempotencyError';
}
