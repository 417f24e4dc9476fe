import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type Stripe from 'stripe';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { enqueue, JobRegistry } from '../../platform/queue/jobs.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { audienceMismatch, billingRepository as repo, type Subject, subjectOf, type SubscriptionRow } from './billing.repository.js';
import { StripeClient } from './stripe.client.js';
import { LIVE_STATUSES, MISFIT_STATUS, STRIPE_ENDED, statusOf } from './subscription-status.js';
import { BillingErrors } from './billing.errors.js';
import { UUID } from '../../platform/http/uuid.js';

export const STRIPE_EVENT_JOB = 'billing.stripe_event';
/** The start of the reason of an event set aside because another Stripe subscription of the app is live (found again on a take-over). */
const SUPERSEDED = 'another Stripe subscription is live:';
const STRIPE_ACTOR = { kind: 'service', name: 'stripe' } as const;

type Outcome = { status: 'processed' | 'ignored'; reason?: string; subscriptionId?: string };

/** What one Stripe event says about a subscription. Undefined fields are left as they are. */
interface Change {
  app?: string;
  plan?: string;
  status: string;
  stripeSubscriptionId?: string;
  customer?: string;
  price?: string;
  trialEndsAt?: Date | null;
  currentPeriodEnd?: Date | null;
  cancelAtPeriodEnd?: boolean;
  /** checkout completion: the subscription events know the real status (e.g. trialing); keep theirs, and their ordering mark */
  keepKnownStatus?: boolean;
  /** what of the event is not applied (the rest is): recorded as the reason of the processed event */
  notApplied?: string;
  /** null: the status written is Stripe's, no longer BillingExpiryJob's local end (undefined: kept) */
  endedLocallyAt?: null;
  /**
   * The Stripe price the row's own Stripe subscription is on when it is not a plan of the row's app for its audience
   * (hub.subscription_billing.price_misfit: read-only meanwhile); null: the event's price fits; undefined: kept (the
   * event names no price: an invoice, a checkout completion)
   */
  priceMisfit?: string | null;
}

/** What an event putting the row's own Stripe subscription on a price that is not a plan of its app does not apply. */
const misfitNote = (plan: string) => `the plan stays ${plan}, read-only while the subscription is on that price`;

const idOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : (v as { id?: string } | null)?.id ?? undefined);
const time = (s: number | null | undefined): Date | null => (s ? new Date(s * 1000) : null);

/**
 * Stripe webhooks: verify, store once (unique event id), enqueue in the same transaction; the job
 * applies the event to hub."Subscription". Out of order: an event older than the last subscription event applied
 * to that subscription is recorded and ignored (the newest state wins; a checkout completion is not one). What a
 * subscription's status allows is checked on the row as locked (`refusal`): an ended Stripe subscription stays ended.
 */
@Injectable()
export class StripeWebhookService implements OnModuleInit {
  private readonly logger = new Logger(StripeWebhookService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly stripe: StripeClient,
    private readonly privileged: PrivilegedDatabase,
    private readonly jobs: JobRegistry,
    private readonly audit: AuditService,
  ) {}

  onModuleInit(): void {
    this.jobs.register(STRIPE_EVENT_JOB, (job) => this.process(String(job.payload.billingEventId)));
  }

  /** The webhook endpoint's work: answers fast; processing happens in the job. */
  async receive(rawBody: Buffer | undefined, signature: string | undefined, requestId: string): Promise<{ received: true; duplicate: boolean }> {
    // a server without the webhook secret answers 503 before anything else (an empty body too), as checkout and portal do
    this.stripe.requireWebhookConfigured();
    let event: Stripe.Event;
    try {
      if (!rawBody) throw new Error('no raw body (the app must be created with rawBody: true)');
      event = this.stripe.verify(rawBody, signature);
    } catch (err) {
      if (err instanceof AppError) throw err;
      this.logger.warn(`stripe webhook rejected (request ${requestId}): ${(err as Error).message}`);
      throw BillingErrors.error('billing.webhook_signature', 'the Stripe-Signature header does not verify against the request body');
    }
    if (typeof event.id !== 'string' || typeof event.type !== 'string' || !Number.isInteger(event.created)) {
      this.logger.warn(`stripe webhook rejected (request ${requestId}): signed, but not an event (id, type, created)`);
      throw BillingErrors.error('billing.webhook_payload', 'the payload is not a Stripe event: it needs id, type and created');
    }
    return this.privileged.run('billing.webhook', async (db) => {
      const orgId = await this.locate(db, event);
      const eventId = await repo.insertEvent(db, event, orgId);
      if (!eventId) {
        this.logger.log(`stripe event ${event.id} (${event.type}) already received; not processed again`);
        return { received: true as const, duplicate: true };
      }
      if (orgId) {
        await this.audit.recordPrivileged(db, orgId, STRIPE_ACTOR, {
          action: 'billing.event_received', entityType: 'billing_event', entityId: eventId, after: { stripeEventId: event.id, type: event.type },
        }, { requestId });
        await enqueue({ db, orgId }, STRIPE_EVENT_JOB, { billingEventId: eventId });
      } else {
        // no organization to file an audit row under: the stored event (status 'ignored', with its reason) is the record
        this.logger.warn(`stripe event ${event.id} (${event.type}) ignored: no organization or person found for it`);
      }
      return { received: true as const, duplicate: false };
    });
  }

  /** The organization an event concerns (a person's personal organization for personal plans). */
  private async locate(db: Db, event: Stripe.Event): Promise<string | undefined> {
    const obj = (event.data?.object ?? {}) as any; // signed by Stripe, yet never trusted to be complete
    // each source in turn: Stripe sends an invoice's own metadata as {} (present, empty), the subscription's under parent
    const claims = [obj.metadata, obj.parent?.subscription_details?.metadata, obj.subscription_details?.metadata].map((m) => m?.org_id);
    for (const claimed of new Set([...claims, obj.client_reference_id])) {
      if (typeof claimed === 'string' && UUID.test(claimed) && (await repo.org(db, claimed))) return claimed;
    }
    const stripeSub = this.stripeSubscriptionId(event);
    const sub = stripeSub ? await repo.subscriptionByStripeId(db, stripeSub) : undefined;
    if (sub) return this.orgOf(db, sub);
    return undefined;
  }

  private stripeSubscriptionId(event: Stripe.Event): string | undefined {
    const obj = (event.data?.object ?? {}) as any;
    if (event.type.startsWith('customer.subscription.')) return obj.id;
    if (event.type.startsWith('checkout.session.')) return idOf(obj.subscription);
    if (event.type.startsWith('invoice.')) return idOf(obj.parent?.subscription_details?.subscription ?? obj.subscription);
    return undefined;
  }

  private async orgOf(db: Db, sub: SubscriptionRow): Promise<string | undefined> {
    if (sub.organizationId) return sub.organizationId;
    return (sub.userId && (await repo.personalOrgId(db, sub.userId))) || undefined;
  }

  /**
   * The job: applies one stored event exactly once (status 'received' → processed / ignored). When the event would
   * leave a live Stripe subscription on a deleted organization (a checkout paid after the deletion), `apply` asks for
   * it to be canceled in Stripe first: that call runs with no transaction open, then the event is applied again.
   */
  async process(billingEventId: string): Promise<void> {
    const canceledInStripe = new Set<string>();
    for (;;) {
      const cancel = await this.processOnce(billingEventId, canceledInStripe);
      if (!cancel) return;
      await this.stripe.cancelSubscription(cancel, `omnizen-org-deleted-${cancel}`);
      canceledInStripe.add(cancel);
    }
  }

  /** One try of `process`: the Stripe subscription to cancel before the event can be applied, or undefined when done. */
  private async processOnce(billingEventId: string, canceledInStripe: ReadonlySet<string>): Promise<string | undefined> {
    return this.privileged.run('billing.webhook', async (db) => {
      const ev = await repo.lockEvent(db, billingEventId);
      if (!ev || ev.status !== 'received' || !ev.orgId) return undefined;
      const payload = ev.payload as Stripe.Event;
      const outcome = await this.apply(db, ev.orgId, payload, canceledInStripe);
      if ('cancelInStripe' in outcome) return outcome.cancelInStripe; // nothing written yet
      if (outcome.status === 'ignored') {
        this.logger.warn(`stripe event ${payload.id} (${payload.type}) ignored: ${outcome.reason}`);
        await this.audit.recordPrivileged(db, ev.orgId, STRIPE_ACTOR, {
          action: 'billing.event_ignored', entityType: 'billing_event', entityId: ev.id, after: { stripeEventId: payload.id, type: payload.type, reason: outcome.reason },
        });
      }
      await repo.finishEvent(db, ev.id, outcome);
      return undefined;
    });
  }

  /**
   * `canceledInStripe`: the Stripe subscriptions this job has canceled in Stripe already (each at most once, so the job
   * ends). A deleted organization keeps nothing live: its subscription is canceled in Stripe (`cancelInStripe`: the
   * caller does it and applies again) and stored as canceled.
   */
  private async apply(db: Db, orgId: string, event: Stripe.Event, canceledInStripe: ReadonlySet<string>): Promise<Outcome | { cancelInStripe: string }> {
    const change = await this.changeFrom(db, event);
    if ('ignored' in change) return { status: 'ignored', reason: change.ignored };
    // locked until commit: a deletion of the organization waits for what this writes, so its own cancellation
    // (DeletedOrgSubscriptions) finds it; a deletion committed first is seen here
    const org = await repo.org(db, orgId, true);
    if (!org) return { status: 'ignored', reason: `organization ${orgId} no longer exists` };
    const subject = subjectOf(org);
    const found = (change.stripeSubscriptionId && (await repo.subscriptionByStripeId(db, change.stripeSubscriptionId)))
      || (change.app ? await repo.subscription(db, subject, change.app) : undefined);
    const existing = found ? await repo.lockSubscription(db, found.id) : undefined;
    const at = new Date(event.created * 1000);
    // the row (one per app) holds another Stripe subscription than this event's: found through the app, not the id
    const other = existing?.stripeSubscriptionId && change.stripeSubscriptionId && existing.stripeSubscriptionId !== change.stripeSubscriptionId
      ? existing.stripeSubscriptionId : undefined;
    if (other && !STRIPE_ENDED.has(statusOf(existing!))) {
      // that one has not ended (it can still bill, even unpaid, paused or incomplete; a NULL status reads as active): a
      // second subscription's events must not overwrite it (nor its deletion end it). Only the completion of a checkout
      // this organization started moves the row to the new subscription (the customer paid for it).
      if (!this.checkoutOf(event, orgId)) {
        return { status: 'ignored', reason: `${SUPERSEDED} ${other} (${statusOf(existing!)}) holds this organization's ${existing!.appId} subscription; ${change.stripeSubscriptionId} does not change it`, subscriptionId: existing!.id };
      }
    } else if (!other && existing?.lastEventAt && at < existing.lastEventAt) {
      // (event times order the events of one Stripe subscription; another subscription's are no measure of this one's)
      return { status: 'ignored', reason: `out of order: an event from ${existing.lastEventAt.toISOString()} was already applied`, subscriptionId: existing.id };
    }
    if (!existing && !change.app) return { status: 'ignored', reason: 'no subscription is known for this event' };
    // the ordering mark (newest wins) is the last subscription event applied (customer.subscription.*, invoice.*). A
    // checkout completion leaves it: it links the Stripe subscription with a provisional status, and that subscription's
    // own events, dated earlier (Stripe does not keep the order), must still apply. A completion that moves the row to
    // another Stripe subscription clears the old one's mark (another subscription's clock), or takes its set-aside event's.
    let ordered: { id: string; at: Date } | null | undefined = !change.keepKnownStatus ? { id: event.id, at } : other ? null : undefined;
    if (existing && change.keepKnownStatus && existing.stripeSubscriptionId === change.stripeSubscriptionId && existing.status) {
      change.status = existing.status; // and whether the expiry job ended it locally
    } else {
      change.endedLocallyAt = null; // the status written is Stripe's word
    }
    const refused = existing ? this.refusal(event, change, existing, other) : undefined;
    if (refused) return { status: 'ignored', reason: refused, subscriptionId: existing!.id };
    if (other && change.keepKnownStatus) {
      // the row moves to a new Stripe subscription: what its own events said while the row held the other one (set aside
      // above) is its real state (e.g. trialing), newer knowledge than the checkout's metadata
      const aside = await repo.setAsideSubscriptionEvent(db, orgId, change.stripeSubscriptionId!, SUPERSEDED);
      const known = aside ? await this.changeFrom(db, aside as Stripe.Event) : undefined;
      if (known && !('ignored' in known) && known.app === change.app) {
        if (STRIPE_ENDED.has(known.status) && !STRIPE_ENDED.has(statusOf(existing!))) {
          return { status: 'ignored', reason: `${SUPERSEDED} ${other} (${statusOf(existing!)}) stays: this checkout's subscription ${change.stripeSubscriptionId} has ended already`, subscriptionId: existing!.id };
        }
        Object.assign(change, { ...known, customer: known.customer ?? change.customer });
        ordered = { id: (aside as Stripe.Event).id, at: new Date((aside as Stripe.Event).created * 1000) };
      }
    }
    // a checkout moving the row to another Stripe subscription: that one is on what the checkout sold (a plan of the app,
    // checked below), unless its own events said otherwise (above)
    if (other && change.priceMisfit === undefined) change.priceMisfit = null;
    // the plan must fit the row: the customer portal (without an app's own configuration, STRIPE_PORTAL_CONFIGURATIONS,
    // it lists every app's products) lets a customer switch the subscription to another app's price, or to a plan of
    // another audience, which checkout would sell neither. Such a price (often a cheaper one) must entitle nothing: the
    // row's own Stripe subscription on it keeps its plan and is read-only (price_misfit, EntitlementsService) until it is
    // on a plan of the app again, as on a price not mapped to a plan (changeFrom), its contract row paused meanwhile
    // (below); the rest applies (it still renews, fails and ends). Any other Stripe subscription on such a plan (a new
    // one, or one the row does not hold) is not recorded
    const misfit = await this.planMisfit(db, change, subject, existing);
    const own = Boolean(existing && change.stripeSubscriptionId && existing.stripeSubscriptionId === change.stripeSubscriptionId);
    if (misfit && !own) {
      // a deleted organization keeps nothing live in Stripe, recorded or not
      const stripeId = change.stripeSubscriptionId;
      if (org.deletedAt && stripeId && !STRIPE_ENDED.has(change.status)) {
        if (!canceledInStripe.has(stripeId)) return { cancelInStripe: stripeId };
        return { status: 'ignored', reason: `${misfit}; the organization is deleted: Stripe subscription ${stripeId} was canceled in Stripe` };
      }
      return { status: 'ignored', reason: misfit };
    }
    if (misfit) {
      // a checkout completion names no price: what the subscription is on stays as its own events said
      Object.assign(change, { plan: undefined, notApplied: `${misfit}: ${misfitNote(existing!.plan)}`, ...(change.price ? { priceMisfit: change.price } : {}) });
    }
    let endedForDeletedOrg: { stripeCanceled: boolean } | undefined;
    if (org.deletedAt && !STRIPE_ENDED.has(change.status)) {
      const stripeId = change.stripeSubscriptionId ?? existing?.stripeSubscriptionId ?? undefined;
      if (stripeId && !canceledInStripe.has(stripeId)) return { cancelInStripe: stripeId };
      change.status = 'canceled';
      endedForDeletedOrg = { stripeCanceled: Boolean(stripeId) };
    }
    // the contract row (hub."Subscription", which the apps read themselves) must not say live while the subscription is
    // on a misfit price (price_misfit: this event's, or kept from an earlier one): its status is written paused, a
    // Stripe status no app treats as live, until an event on a fitting price writes its own status again. The
    // bookkeeping (past_due_since) follows Stripe's status (change.status)
    const misfitAfter = change.priceMisfit !== undefined ? change.priceMisfit : existing?.priceMisfit ?? null;
    const written = misfitAfter && LIVE_STATUSES.has(change.status) ? MISFIT_STATUS : change.status;
    const id = existing?.id ?? (await repo.insertSubscription(db, subject, { app: change.app!, plan: change.plan!, status: written, stripeSubscriptionId: change.stripeSubscriptionId }));
    if (existing) {
      await repo.updateSubscription(db, id, { plan: change.plan ?? existing.plan, status: written, stripeSubscriptionId: change.stripeSubscriptionId });
    }
    await repo.upsertBilling(db, id, subject, change, ordered?.at ?? at, ordered);
    const after = await repo.lockSubscription(db, id);
    await this.audit.recordPrivileged(db, orgId, STRIPE_ACTOR, {
      action: existing ? 'billing.subscription_updated' : 'billing.subscription_created', entityType: 'subscription', entityId: id,
      before: existing ?? undefined,
      after: {
        ...after, stripeEvent: event.id, stripeEventType: event.type,
        ...(endedForDeletedOrg ? { reason: 'organization_deleted', ...endedForDeletedOrg } : {}), ...(change.notApplied ? { notApplied: change.notApplied } : {}),
      },
    }, { requestId: event.id });
    // a deleted organization's subscription ended here, whatever the Stripe event said (no trial_ending, no payment.failed)
    const type = this.domainEventType(endedForDeletedOrg ? 'customer.subscription.deleted' : event.type, existing, after);
    await emitEvent({ db, orgId }, type, subscriptionPayload(after!, existing?.status ?? null), 1, at);
    return { status: 'processed', subscriptionId: id, ...(change.notApplied ? { reason: change.notApplied } : {}) };
  }

  /**
   * Why the event must not change the subscription as it is now, read under its lock (a concurrent job may have
   * changed it since `changeFrom` read it: a deletion applied meanwhile), or undefined. `canceled` and
   * `incomplete_expired` are final for a Stripe subscription when Stripe said so (Stripe never revives one): only
   * another ended status may follow, so no event, of the same second as the deletion or later, undoes it.
   * BillingExpiryJob's own end of a subscription canceled at period end (`endedLocallyAt`) is not Stripe's word: Stripe
   * was not asked and may have renewed it (the customer turned the cancellation off), so a Stripe subscription event
   * newer than the last one applied (the ordering mark, which that end leaves) still applies; an invoice event does not
   * (it carries neither the period nor the cancellation flag). Another Stripe subscription id
   * (`other`: a checkout moving the row) is a new life.
   */
  private refusal(event: Stripe.Event, change: Change, existing: SubscriptionRow, other: string | undefined): string | undefined {
    const status = statusOf(existing);
    const endedLocally = STRIPE_ENDED.has(status) && Boolean(existing.endedLocallyAt);
    if (event.type === 'invoice.paid' || event.type === 'invoice.payment_failed') {
      // a canceled subscription stays canceled (in Stripe too): a last open invoice paid afterwards, or a failed payment
      // sent in the same second as the deletion, does not bring it back; a trial's own (zero) invoice does not end it.
      // Ended only here (the expiry job) neither: an invoice carries no period nor cancellation flag (applied, it left the
      // row active with its period past, ended again by the next run, while its later date put Stripe's own earlier
      // subscription events, the renewal's, out of order), and an old invoice paid late is no renewal. Stripe's
      // subscription events, which carry the whole state, bring a locally ended subscription back (review r12)
      if (endedLocally) return `the subscription was ended here at its period end: Stripe's subscription events, not an invoice, bring it back`;
      if (STRIPE_ENDED.has(status)) return `the subscription is ${status}: an invoice does not change that`;
      if (event.type === 'invoice.paid' && status === 'trialing') return 'an invoice paid during the trial does not end it (the subscription events do)';
      // past_due is a live subscription's failed renewal (full access for the grace period). A failed payment leaves an
      // incomplete (first payment), unpaid or paused one as it is, read-only: Stripe's subscription events say when that changes
      // (a row paused here for its misfit price, price_misfit, is Stripe's live subscription: its failure is recorded)
      if (event.type === 'invoice.payment_failed' && !LIVE_STATUSES.has(status) && !(status === MISFIT_STATUS && existing.priceMisfit)) return `the subscription is ${status}: a failed payment leaves it so`;
      return undefined;
    }
    if (!other && existing.stripeSubscriptionId && existing.stripeSubscriptionId === change.stripeSubscriptionId
      && STRIPE_ENDED.has(status) && !endedLocally && !STRIPE_ENDED.has(change.status)) {
      return `Stripe subscription ${existing.stripeSubscriptionId} is ${status}, which is final: it does not become ${change.status}`;
    }
    return undefined;
  }

  /**
   * Why the event's plan cannot be put on the subscription row (`existing`, or a new one for `subject`), or undefined:
   * it is another app's plan than the row's (the row stays the app it was bought for), or its audience does not fit the
   * subject (audienceMismatch, as checkout checks).
   */
  private async planMisfit(db: Db, change: Change, subject: Subject, existing: SubscriptionRow | undefined): Promise<string | undefined> {
    if (!change.app || !change.plan) return undefined;
    const named = `${change.price ? `price ${change.price}` : 'the checkout'} is for ${change.app}:${change.plan}`;
    if (existing && existing.appId !== change.app) {
      const holder = subject.kind === 'user' ? 'account' : 'organization';
      return `${named}, not ${existing.appId}: Stripe subscription ${change.stripeSubscriptionId} is this ${holder}'s ${existing.appId} subscription`;
    }
    const plan = (await repo.plans(db, change.app)).find((p) => p.code === change.plan);
    const mismatch = plan ? audienceMismatch(change.app, plan, subject) : undefined;
    return mismatch ? `${named}: ${mismatch}` : undefined;
  }

  /** A completed Checkout session (for a subscription) that this organization started: our checkout named it in the metadata. */
  private checkoutOf(event: Stripe.Event, orgId: string): boolean {
    if (event.type !== 'checkout.session.completed') return false;
    const obj = (event.data?.object ?? {}) as any;
    return obj.mode === 'subscription' && (obj.metadata?.org_id === orgId || obj.client_reference_id === orgId);
  }

  /** The domain event a processed Stripe event means for the organization (billing.events.ts). */
  private domainEventType(stripeType: string, before: SubscriptionRow | undefined, after: SubscriptionRow | undefined): string {
    if (stripeType === 'invoice.payment_failed') return 'payment.failed';
    if (stripeType === 'customer.subscription.trial_will_end') return 'subscription.trial_ending';
    if (!before) return 'subscription.created';
    if (after?.status === 'canceled' && before.status !== 'canceled') return 'subscription.canceled';
    return 'subscription.updated';
  }

  /** Reads the event into a Change, or says why it changes nothing. */
  private async changeFrom(db: Db, event: Stripe.Event): Promise<Change | { ignored: string }> {
    const obj = (event.data?.object ?? {}) as any;
    switch (event.type) {
      case 'checkout.session.completed': {
        if (obj.mode !== 'subscription') return { ignored: `checkout mode ${obj.mode} is not a subscription` };
        const { app, plan } = obj.metadata ?? {};
        if (!(await this.planExists(db, app, plan))) return { ignored: `checkout metadata names no known plan (${app}:${plan})` };
        // payment_status 'unpaid': the first payment is still pending (a delayed method such as a bank debit), and Stripe's
        // subscription is incomplete until invoice.paid: not active, which would give full access meanwhile
        const status = obj.payment_status === 'unpaid' ? 'incomplete' : 'active';
        return { app, plan, status, keepKnownStatus: true, stripeSubscriptionId: idOf(obj.subscription), customer: idOf(obj.customer) };
      }
      case 'customer.subscription.created':
      case 'customer.subscription.updated':
      case 'customer.subscription.deleted':
      case 'customer.subscription.trial_will_end': {
        // the plan's item: the first whose price STRIPE_PRICES maps to a plan of the row's app (of any app for a
        // subscription not known yet), not merely the first (an add-on or metered item an operator added may come first)
        const items: any[] = Array.isArray(obj.items?.data) ? obj.items.data : [];
        const row = typeof obj.id === 'string' ? await repo.subscriptionByStripeId(db, obj.id) : undefined;
        const fits = (it: any) => {
          const p = idOf(it?.price);
          const m = p ? this.config.billing.stripePrices[p] : undefined;
          return Boolean(m && (!row || m.app === row.appId));
        };
        const item = items.find(fits) ?? items.find((it) => { const p = idOf(it?.price); return Boolean(p && this.config.billing.stripePrices[p]); }) ?? items[0];
        const price = idOf(item?.price);
        const change: Change = {
          price, status: event.type === 'customer.subscription.deleted' ? 'canceled' : String(obj.status),
          stripeSubscriptionId: obj.id, customer: idOf(obj.customer),
          trialEndsAt: time(obj.trial_end), currentPeriodEnd: time(item?.current_period_end ?? obj.current_period_end),
          cancelAtPeriodEnd: Boolean(obj.cancel_at_period_end),
        };
        const mapped = price ? this.config.billing.stripePrices[price] : undefined;
        const unplaced = !mapped ? `price ${price ?? '(none)'} is not mapped to an app plan (STRIPE_PRICES)`
          : !(await this.planExists(db, mapped.app, mapped.plan)) ? `STRIPE_PRICES maps ${price} to ${mapped.app}:${mapped.plan}, which is not in the catalog`
            : undefined;
        if (!unplaced) return { ...change, app: mapped!.app, plan: mapped!.plan, priceMisfit: null };
        // a subscription already known (e.g. on a retired price) keeps its plan and is read-only: its contract row's
        // status is written paused while Stripe's is live (apply), its period, renewal and end still apply. A new one
        // cannot be placed (no app, no plan)
        const known = row;
        if (!known) return { ignored: unplaced };
        return { ...change, priceMisfit: price ?? '(none)', notApplied: `${unplaced}: ${misfitNote(known.plan)}` };
      }
      case 'invoice.paid':
      case 'invoice.payment_failed': {
        const stripeSubscriptionId = this.stripeSubscriptionId(event);
        if (!stripeSubscriptionId) return { ignored: 'the invoice belongs to no subscription' };
        const known = await repo.subscriptionByStripeId(db, stripeSubscriptionId);
        if (!known) return { ignored: `no subscription is known for Stripe subscription ${stripeSubscriptionId}` };
        // what the subscription's status allows is decided under its lock (refusal)
        return { status: event.type === 'invoice.paid' ? 'active' : 'past_due', stripeSubscriptionId, customer: idOf(obj.customer) };
      }
      default:
        return { ignored: `event type ${event.type} is not handled` };
    }
  }

  private async planExists(db: Db, app: unknown, plan: unknown): Promise<boolean> {
    if (typeof app !== 'string' || typeof plan !== 'string') return false;
    return (await repo.plans(db, app)).some((p) => p.code === plan);
  }
}

/** The payload of the subscription events (billing.events.ts): no Stripe ids, no customer data. */
export function subscriptionPayload(s: SubscriptionRow, previousStatus: string | null): Record<string, unknown> {
  return {
    subscriptionId: s.id, app: s.appId, plan: s.plan, status: s.status, previousStatus,
    trialEndsAt: s.trialEndsAt ? s.trialEndsAt.toISOString() : null,
    currentPeriodEnd: s.currentPeriodEnd ? s.currentPeriodEnd.toISOString() : null,
    cancelAtPeriodEnd: s.cancelAtPeriodEnd,
  };
}
