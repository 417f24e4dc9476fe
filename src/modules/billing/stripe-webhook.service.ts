import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type Stripe from 'stripe';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { enqueue, JobRegistry } from '../../platform/queue/jobs.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { audienceMismatch, billingRepository as repo, datedNotBefore, type EventMarks, type PlanRow, type Subject, subjectOf, type SubscriptionRow } from './billing.repository.js';
import { StripeClient } from './stripe.client.js';
import { endedLocally, LIVE_STATUSES, MISFIT_STATUS, STRIPE_ENDED, statusOf } from './subscription-status.js';
import { BillingErrors } from './billing.errors.js';
import { UUID } from '../../platform/http/uuid.js';

export const STRIPE_EVENT_JOB = 'billing.stripe_event';
/** The start of the reason of an event set aside because another Stripe subscription of the app is live (applied again on a take-over). */
const SUPERSEDED = 'another Stripe subscription is live:';
const STRIPE_ACTOR = { kind: 'service', name: 'stripe' } as const;

/** `applied`: what a re-applied stored event wrote (applyNewestStored), recorded in its linker's one audit row and domain event. */
type Outcome = { status: 'processed' | 'ignored'; reason?: string; subscriptionId?: string; applied?: Applied };

/** What an event applied again after its linker (applyNewestStored) wrote on the row. */
interface Applied {
  event: Stripe.Event;
  at: Date;
  notApplied?: string;
}
type Org = NonNullable<Awaited<ReturnType<typeof repo.org>>>;

/** The Stripe event types the job applies (any other is recorded as ignored). */
const HANDLED = new Set(['checkout.session.completed', 'customer.subscription.created', 'customer.subscription.updated',
  'customer.subscription.deleted', 'customer.subscription.trial_will_end', 'invoice.paid', 'invoice.payment_failed']);

/** The plans of the catalog as one event reads them (StripeWebhookService.catalog). */
interface Catalog {
  plan(app: string, code: string): Promise<PlanRow | undefined>;
}

/** A subscription's plan item (StripeWebhookService.planItem): its price, the plan STRIPE_PRICES maps it to, that plan in the catalog. */
interface PlanItem {
  item?: any;
  price?: string;
  mapped?: { app: string; plan: string };
  plan?: PlanRow;
}

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
  /** checkout completion: the subscription events know the real status (e.g. trialing); keep theirs, and their ordering marks */
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
const latest = (a: Date | null, b: Date | null): Date | null => (!a ? b : !b || a > b ? a : b);
/** Whether a subscription event says its Stripe subscription has ended (deleted, or an ended status). */
const endsSubscription = (event: Stripe.Event): boolean =>
  event.type === 'customer.subscription.deleted' || STRIPE_ENDED.has(String((event.data?.object as any)?.status));

/**
 * Stripe webhooks: verify, store once (unique event id), enqueue in the same transaction; the job
 * applies the event to hub."Subscription". Out of order: a subscription event older than the last subscription event
 * applied to that subscription is recorded and ignored (the newest state wins; a checkout completion is not one, an
 * invoice event does not count); an invoice event older than the last invoice or subscription event too. What a
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
   * leave a live Stripe subscription on a deleted organization (a checkout paid after the deletion, or an event ignored
   * for whatever reason that names one), `apply` asks for it to be canceled in Stripe first: that call runs with no
   * transaction open, then the event is applied again.
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
      await this.finish(db, ev.orgId, ev.id, payload, outcome);
      return undefined;
    });
  }

  /** Records what became of a stored event (an ignored one logged and audited). `appliedAfter`: the event that re-applied it. */
  private async finish(db: Db, orgId: string, billingEventId: string, payload: Stripe.Event, outcome: Outcome, appliedAfter?: Stripe.Event): Promise<void> {
    if (outcome.status === 'ignored') {
      this.logger.warn(`stripe event ${payload.id} (${payload.type}) ignored: ${outcome.reason}`);
      await this.audit.recordPrivileged(db, orgId, STRIPE_ACTOR, {
        action: 'billing.event_ignored', entityType: 'billing_event', entityId: billingEventId,
        after: { stripeEventId: payload.id, type: payload.type, reason: outcome.reason, ...(appliedAfter ? { appliedAfter: appliedAfter.id } : {}) },
      });
    }
    await repo.finishEvent(db, billingEventId, outcome);
  }

  /**
   * `canceledInStripe`: the Stripe subscriptions this job has canceled in Stripe already (each at most once, so the job
   * ends). A deleted organization keeps nothing live: its subscription is canceled in Stripe (`cancelInStripe`: the
   * caller does it and applies again) and stored as canceled; a live Stripe subscription that an event ignored for any
   * reason names (a new one on a price that is no plan of the organization, one set aside, an event out of order) is
   * canceled in Stripe all the same, unless Stripe has ended it already.
   */
  private async apply(db: Db, orgId: string, event: Stripe.Event, canceledInStripe: ReadonlySet<string>): Promise<Outcome | { cancelInStripe: string }> {
    // locked until commit: a deletion of the organization waits for what this writes, so its own cancellation
    // (DeletedOrgSubscriptions) finds it; a deletion committed first is seen here
    const org = await repo.org(db, orgId, true);
    if (!org) return { status: 'ignored', reason: `organization ${orgId} no longer exists` };
    const outcome = await this.applyTo(db, org, event, canceledInStripe, this.catalog(db));
    if ('cancelInStripe' in outcome || outcome.status !== 'ignored' || !org.deletedAt) return outcome;
    const live = this.liveSubscriptionNamed(event);
    if (!live) return outcome;
    const row = await repo.subscriptionByStripeId(db, live);
    // ended by Stripe's word (or canceled in Stripe for this deletion): nothing bills
    if (row && STRIPE_ENDED.has(statusOf(row)) && !row.endedLocallyAt) return outcome;
    if (!canceledInStripe.has(live)) return { cancelInStripe: live }; // nothing written yet
    return { ...outcome, reason: `${outcome.reason}; the organization is deleted: Stripe subscription ${live} was canceled in Stripe` };
  }

  /**
   * Applies one event to the organization's subscription row. `appliedAfter`: the event after which this one (stored
   * earlier, ignored while its Stripe subscription was not the row's) is applied again (`applyNewestStored`).
   */
  private async applyTo(db: Db, org: Org, event: Stripe.Event, canceledInStripe: ReadonlySet<string>, catalog: Catalog,
    appliedAfter?: Stripe.Event): Promise<Outcome | { cancelInStripe: string }> {
    if (!HANDLED.has(event.type)) return { status: 'ignored', reason: `event type ${event.type} is not handled` };
    const subject = subjectOf(org);
    // the row, read and locked before the event is read against it: the one that holds the event's Stripe subscription,
    // else (a subscription not known yet) the subject's row of the app the event is for
    const stripeId = this.stripeSubscriptionId(event);
    const holder = stripeId ? await repo.subscriptionByStripeId(db, stripeId) : undefined;
    const app = holder ? undefined : await this.appOf(event, subject, catalog);
    const found = holder ?? (app ? await repo.subscription(db, subject, app) : undefined);
    const existing = found ? await repo.lockSubscription(db, found.id) : undefined;
    const change = await this.changeFrom(event, existing, subject, catalog);
    if ('ignored' in change) return { status: 'ignored', reason: change.ignored };
    const at = new Date(event.created * 1000);
    const invoice = event.type.startsWith('invoice.');
    // the row (one per app) holds another Stripe subscription than this event's: found through the app, not the id
    const other = existing?.stripeSubscriptionId && change.stripeSubscriptionId && existing.stripeSubscriptionId !== change.stripeSubscriptionId
      ? existing.stripeSubscriptionId : undefined;
    // an end of the row's own subscription applied below the subscription events' mark (finalEnd): the mark is kept as it is
    let endPastMark = false;
    if (other && !STRIPE_ENDED.has(statusOf(existing!))) {
      // that one has not ended (it can still bill, even unpaid, paused or incomplete; a NULL status reads as active): a
      // second subscription's events must not overwrite it (nor its deletion end it). Only the completion of a checkout
      // this organization started moves the row to the new subscription (the customer paid for it).
      if (!this.checkoutOf(event, org.id)) {
        return { status: 'ignored', reason: `${SUPERSEDED} ${other} (${statusOf(existing!)}) holds this organization's ${existing!.appId} subscription; ${change.stripeSubscriptionId} does not change it`, subscriptionId: existing!.id };
      }
    } else if (other && endsSubscription(event) && !this.checkoutOf(event, org.id)) {
      // the row's own has ended (here too, its end maybe only local): another subscription's end (a late deletion of an
      // older one) must not take the row over: it would write that one's end over the row's and clear its local end
      // (an organization's deletion would then no longer cancel the row's own in Stripe, which may still bill)
      return { status: 'ignored', reason: `Stripe subscription ${change.stripeSubscriptionId} is ${change.status}: an ended subscription does not take over the row of ${other} (${statusOf(existing!)})`, subscriptionId: existing!.id };
    } else if (!other && existing) {
      // (event times order the events of one Stripe subscription; another subscription's are no measure of this one's).
      // A subscription event (or a checkout completion) is compared with the last subscription event applied only: an
      // invoice's date is no measure of them (a plan switch's proration invoice is dated after the switch, and may come
      // first). An invoice event is compared with both (the subscription events carry the whole state)
      const mark = invoice ? latest(existing.lastEventAt, existing.lastInvoiceEventAt ?? null) : existing.lastEventAt;
      // an end of the row's own Stripe subscription (or one applied again after its linker, applyNewestStored) ends the
      // live row, whatever its time: Stripe never revives an ended subscription (a deletion delivered after a later-dated
      // update left the row live on it, and checkout refused for good). A row the expiry job ended on its own
      // (endedLocally) is not ended by Stripe's word: Stripe's end confirms it, final (ended_locally_at cleared), whatever
      // its time too (left local, a later-dated event of the deleted subscription revived the row, and checkout and an
      // organization's deletion still asked Stripe about it)
      const finalEnd = endsSubscription(event) && (!STRIPE_ENDED.has(statusOf(existing)) || endedLocally(existing))
        && (appliedAfter || existing.stripeSubscriptionId === change.stripeSubscriptionId);
      if (mark && at < mark && !finalEnd) {
        return { status: 'ignored', reason: `out of order: an event from ${mark.toISOString()} was already applied`, subscriptionId: existing.id };
      }
      if (mark && at < mark && finalEnd && !invoice) endPastMark = true;
    }
    if (!existing && !change.app) return { status: 'ignored', reason: 'no subscription is known for this event' };
    // the ordering marks (newest wins): a subscription event (customer.subscription.*) sets the subscription events' mark,
    // an invoice event the invoice events'. A checkout completion leaves them: it links the Stripe subscription with a
    // provisional status, and that subscription's own events, dated earlier (Stripe does not keep the order), must still
    // apply. An event that moves the row to another Stripe subscription clears the old one's marks (another subscription's clock).
    const mark = { id: event.id, at };
    const marks: EventMarks = change.keepKnownStatus ? (other ? { subscription: null, invoice: null } : {})
      : invoice ? { invoice: mark } : endPastMark ? {} : { subscription: mark, ...(other ? { invoice: null } : {}) };
    if (existing && change.keepKnownStatus && existing.stripeSubscriptionId === change.stripeSubscriptionId && existing.status) {
      change.status = existing.status; // and whether the expiry job ended it locally
    } else {
      change.endedLocallyAt = null; // the status written is Stripe's word
    }
    const refused = existing ? this.refusal(event, change, existing, other) : undefined;
    if (refused) return { status: 'ignored', reason: refused, subscriptionId: existing!.id };
    const olderInvoice = invoice && existing && !other ? await this.olderInvoice(db, event, existing) : undefined;
    if (olderInvoice) return { status: 'ignored', reason: olderInvoice, subscriptionId: existing!.id };
    if (other) {
      // the row moves to another Stripe subscription (a checkout completion; or an event of it while the row's own has
      // ended): not when that one's own stored events say this is stale (takeOverRefusal)
      const stale = await this.takeOverRefusal(db, org.id, event, change.stripeSubscriptionId!, other, existing!);
      if (stale) return { status: 'ignored', reason: stale, subscriptionId: existing!.id };
    }
    const invoiceLater = !other && existing && !invoice && !change.keepKnownStatus ? existing.lastInvoiceEventAt ?? null : null;
    if (invoiceLater && at < invoiceLater && !STRIPE_ENDED.has(change.status)) {
      // an invoice event applied since (a failed renewal, its payment) is newer word on whether the subscription is paid
      // than this subscription event, delivered late: its period, plan and items apply, and its status as far as Stripe's
      // order would have left it. A failure (past_due) is kept over a live status only: applied after an unpaid, paused or
      // incomplete one, the failed payment would have left it so (refusal), read-only. A payment (active) is kept over the
      // statuses a payment ends (past_due, incomplete, paused: in Stripe's order, paid after them, refusal lets it make the
      // row active); not over unpaid (refusal ignores a payment then: Stripe's own update says when it is active again),
      // nor a trial's (its invoice does not end it)
      const paid = this.invoiceStatus(existing!);
      const keeps = paid === 'past_due' ? change.status === 'active' || change.status === 'trialing'
        : paid === 'active' && ['past_due', 'incomplete', 'paused'].includes(change.status);
      if (paid && keeps) {
        const kept = `the status stays ${paid} (an invoice event from ${invoiceLater.toISOString()} is newer than this ${change.status})`;
        Object.assign(change, { status: paid, notApplied: change.notApplied ? `${change.notApplied}; ${kept}` : kept });
      }
    }
    // a checkout moving the row to another Stripe subscription: that one is on what the checkout sold (a plan of the app,
    // checked below), until its own events say otherwise (applied after this one)
    if (other && change.priceMisfit === undefined) change.priceMisfit = null;
    // the plan must fit the row: the customer portal (without an app's own configuration, STRIPE_PORTAL_CONFIGURATIONS,
    // it lists every app's products) lets a customer switch the subscription to another app's price, or to a plan of
    // another audience, which checkout would sell neither. Such a price (often a cheaper one) must entitle nothing: the
    // row's own Stripe subscription on it keeps its plan and is read-only (price_misfit, EntitlementsService) until it is
    // on a plan of the app again, as on a price not mapped to a plan (changeFrom), its contract row paused meanwhile
    // (below); the rest applies (it still renews, fails and ends). Any other Stripe subscription on such a plan (a new
    // one, or one the row does not hold) is not recorded (a deleted organization's is canceled in Stripe: `apply`)
    const misfit = await this.planMisfit(change, subject, existing, catalog);
    const own = Boolean(existing && change.stripeSubscriptionId && existing.stripeSubscriptionId === change.stripeSubscriptionId);
    if (misfit && !own) return { status: 'ignored', reason: misfit };
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
    await repo.upsertBilling(db, id, subject, change, at, marks);
    const outcome: Outcome = { status: 'processed', subscriptionId: id, ...(change.notApplied ? { reason: change.notApplied } : {}) };
    // applied again after its linker: the linker's job records the one change (its audit row, its domain event)
    if (appliedAfter) return { ...outcome, applied: { event, at, ...(change.notApplied ? { notApplied: change.notApplied } : {}) } };
    // the Stripe subscription has just become this row's (a checkout completion linked it, or its own event took the
    // row): what its own events said while it was not (stored ignored: not known yet, set aside, another app's or an
    // unmapped price) is applied now, the newest of them
    const linked = !org.deletedAt && change.stripeSubscriptionId && existing?.stripeSubscriptionId !== change.stripeSubscriptionId;
    // a new row: as this event wrote it, before the re-applied event (its subscription.created, should that one end it);
    // its insert holds it, no lock to take
    const created = linked && !existing ? await repo.subscriptionHeld(db, id) : undefined;
    const reapplied = linked ? await this.applyNewestStored(db, org, change.stripeSubscriptionId!, event, canceledInStripe, catalog) : undefined;
    // one audit row and one domain event for the job: from the row before it to the row after it (the re-applied
    // event's write included, recorded under `reapplied`), at the later of the two events' times; held since it was
    // locked (`existing`) or inserted above
    const after = await repo.subscriptionHeld(db, id);
    await this.audit.recordPrivileged(db, org.id, STRIPE_ACTOR, {
      action: existing ? 'billing.subscription_updated' : 'billing.subscription_created', entityType: 'subscription', entityId: id,
      before: existing ?? undefined,
      after: {
        ...after, stripeEvent: event.id, stripeEventType: event.type,
        ...(endedForDeletedOrg ? { reason: 'organization_deleted', ...endedForDeletedOrg } : {}), ...(change.notApplied ? { notApplied: change.notApplied } : {}),
        ...(reapplied ? { reapplied: {
          stripeEvent: reapplied.event.id, stripeEventType: reapplied.event.type, appliedAfter: event.id,
          ...(reapplied.notApplied ? { notApplied: reapplied.notApplied } : {}),
        } } : {}),
      },
    }, { requestId: event.id });
    // a deleted organization's subscription ended here, whatever the Stripe event said (no trial_ending, no payment.failed)
    const events = this.domainEvents(endedForDeletedOrg ? 'customer.subscription.deleted' : event.type, existing, created, after!,
      reapplied?.event.type);
    // subscribers order a row's domain events by time: none is dated before a domain event already emitted for the row,
    // else an end or a status applied from an older event (an end older than a final invoice's failure, an unpaid older
    // than a failed payment, a renewal after a local end, a subscription's own older event after the checkout completion
    // that linked it) sorts before the event it follows and they keep the stale state. The row keeps that floor
    // (events_dated_until: whatever emitted them, this job, the expiry job's local end, an organization's deletion; a
    // later event clearing the local end or moving the row to another Stripe subscription does not lower it), raised to
    // this event's time even when it emits nothing (no later one is dated before an event already applied)
    const notBefore = (d: Date) => datedNotBefore(existing, d);
    const latestAt = notBefore(reapplied && reapplied.at > at ? reapplied.at : at);
    for (const e of events) await emitEvent({ db, orgId: org.id }, e.type, subscriptionPayload(e.row, e.previousStatus), 1, e.at === 'linker' ? notBefore(at) : latestAt);
    await repo.recordEventsDated(db, id, latestAt);
    return outcome;
  }

  /**
   * Why `event` must not move the row from `other` (its Stripe subscription) to `stripeSubscriptionId`, read from that
   * subscription's other stored events, or undefined. Not when any of them ended it (customer.subscription.deleted, or
   * an ended status), whatever its time or status: Stripe never revives an ended subscription (a checkout completion:
   * the row's still bills; any other event, the row's own having ended: a retry of an old event, or a first delivery of
   * one from the second of the deletion, would revive it). Any other event neither when the newest of them that is
   * settled is newer than this one and was processed (a Stripe retry of an old event of a subscription whose later state
   * is known, e.g. one that held the row before and was followed by another: it would revive stale state). A newer one
   * that was ignored (not known yet, set aside, an unplaced price) is applied again right after the take-over
   * (applyNewestStored), so the newest state wins; one still 'received' (queued) does not count: its own job checks its order.
   */
  private async takeOverRefusal(db: Db, orgId: string, event: Stripe.Event, stripeSubscriptionId: string, other: string,
    existing: SubscriptionRow): Promise<string | undefined> {
    const checkout = event.type === 'checkout.session.completed';
    const { ending, newest } = await repo.storedSubscriptionEvents(db, orgId, stripeSubscriptionId, { except: event.id, ended: [...STRIPE_ENDED], settledOther: event.id });
    if (ending) {
      const stored = ending.payload as Stripe.Event;
      return checkout
        ? `${SUPERSEDED} ${other} (${statusOf(existing)}) stays: this checkout's subscription ${stripeSubscriptionId} has ended already`
        : `Stripe subscription ${stripeSubscriptionId} has ended already (${stored.type} ${stored.id}): it does not take over the row of ${other} (${statusOf(existing)})`;
    }
    if (checkout) return undefined;
    const stored = newest?.payload as Stripe.Event | undefined;
    if (newest && stored && newest.status === 'processed' && stored.created > event.created) {
      return `out of order: Stripe subscription ${stripeSubscriptionId} has a newer event (${stored.id} from ${new Date(stored.created * 1000).toISOString()}): this one does not take over the row of ${other} (${statusOf(existing)})`;
    }
    return undefined;
  }

  /**
   * Why an invoice event (paid, or failed) does not change the row, or undefined: its invoice is older than the invoice
   * of the row's last invoice event applied (its invoice mark; the same invoice's events apply). Stripe's subscription
   * follows its latest finalized invoice: a smart retry of an older open invoice, failing or paid, after a newer one
   * failed or was paid, leaves it as the newer one did (applied, a paid older invoice made the row active, full access,
   * a failed one past_due, and it moved the mark to the older invoice, so the next of its events applied too). Older:
   * by the invoices' finalization time when both have one (a renewal invoice is created as a draft about an hour before
   * it is finalized); when only one has it, by each one's later time of the two (its creation, its finalization); else by
   * their creation time; an invoice without either is let through.
   */
  private async olderInvoice(db: Db, event: Stripe.Event, existing: SubscriptionRow): Promise<string | undefined> {
    // no invoice mark (its time and event id are written together): nothing to read
    if (!existing.lastInvoiceEventAt) return undefined;
    const mark = await repo.invoiceMarkEvent(db, existing.id);
    if (mark?.type !== 'invoice.paid' && mark?.type !== 'invoice.payment_failed') return undefined;
    const invoice = (event.data?.object ?? {}) as any;
    const marked = ((mark.payload as Stripe.Event).data?.object ?? {}) as any;
    if (invoice.id === marked.id) return undefined;
    const finalized = (i: any): number | undefined => (Number.isInteger(i.status_transitions?.finalized_at) ? i.status_transitions.finalized_at : undefined);
    const created = (i: any): number | undefined => (Number.isInteger(i.created) ? i.created : undefined);
    // only one side finalized: each side's later time (a draft created before the other invoice may be finalized after it;
    // by creation alone such a renewal read as older)
    const later = (i: any): number | undefined => Math.max(finalized(i) ?? -Infinity, created(i) ?? -Infinity);
    const both = (f: (i: any) => number | undefined) => f(invoice) !== undefined && f(marked) !== undefined;
    const when = both(finalized) ? finalized : finalized(invoice) === undefined && finalized(marked) === undefined ? created : later;
    const [mine, theirs] = [when(invoice), when(marked)];
    if (mine === undefined || theirs === undefined || !Number.isFinite(mine) || !Number.isFinite(theirs) || mine >= theirs) return undefined;
    const at = (i: any) => {
      const t = when(i)!;
      return `${t === finalized(i) ? 'finalized' : 'from'} ${new Date(t * 1000).toISOString()}`;
    };
    const paid = event.type === 'invoice.paid';
    const since = mark.type === 'invoice.paid' ? 'which was paid' : 'whose payment failed';
    const outcome = paid && mark.type !== 'invoice.paid' ? 'paying it does not settle that one'
      : `${paid ? 'paying it' : 'its failed payment'} does not change the status that one left`;
    return `invoice ${invoice.id} (${at(invoice)}) is older than invoice ${marked.id} (${at(marked)}), ${since}: ${outcome}`;
  }

  /**
   * The status the row's last invoice event left (active: paid; past_due: failed), read on the row: a row paused for its
   * misfit price (price_misfit) keeps Stripe's own in past_due_since. Undefined when the row says neither.
   */
  private invoiceStatus(existing: SubscriptionRow): 'active' | 'past_due' | undefined {
    const status = statusOf(existing);
    if (status === 'active' || status === 'past_due') return status;
    if (status === MISFIT_STATUS && existing.priceMisfit) return existing.pastDueSince ? 'past_due' : 'active';
    return undefined;
  }

  /**
   * Applies again the newest stored subscription event of `stripeSubscriptionId`, which `linker` (a checkout completion,
   * or an event of that subscription) has just made the row's, when it was ignored (whatever the reason: the subscription
   * was not known yet, another one held the row, its price could not be placed without a row) and is newer than `linker`
   * (a checkout completion's status is provisional: any). What happens is recorded on it (status, reason, audit with
   * `appliedAfter`). One that is still to be processed (received) is left to its own job. An ended subscription is final:
   * when a stored event of it ends it (customer.subscription.deleted, or an ended status), that one (the newest such) is
   * the one applied again, whatever the time and order of the others (an update of the same second as the deletion,
   * delivered after it, sorts as newer) and of the linker's (applyTo lets it end the row whatever its ordering mark).
   */
  private async applyNewestStored(db: Db, org: Org, stripeSubscriptionId: string, linker: Stripe.Event, canceledInStripe: ReadonlySet<string>,
    catalog: Catalog): Promise<Applied | undefined> {
    const read = await repo.storedSubscriptionEvents(db, org.id, stripeSubscriptionId, { except: linker.id, ended: [...STRIPE_ENDED], newestEnding: true });
    const { ending } = read;
    const newest = ending ?? read.newest;
    if (newest?.status !== 'ignored') return undefined;
    const payload = newest.payload as Stripe.Event;
    // a linker that ends the subscription itself: an older end of it adds nothing
    const older = payload.created <= linker.created && (!ending || endsSubscription(linker));
    if (linker.type !== 'checkout.session.completed' && older) return undefined;
    const stored = await repo.lockEvent(db, newest.id);
    if (stored?.status !== 'ignored') return undefined; // re-applied by another job meanwhile
    const outcome = await this.applyTo(db, org, payload, canceledInStripe, catalog, linker);
    // a deleted organization's events are not applied again, so nothing is to be canceled in Stripe here
    if ('cancelInStripe' in outcome) throw new Error(`stripe event ${payload.id} applied again asks to cancel ${outcome.cancelInStripe} in Stripe`);
    this.logger.log(`stripe event ${payload.id} (${payload.type}) applied again after ${linker.id} (${linker.type}): ${outcome.status}`);
    await this.finish(db, org.id, newest.id, payload, outcome, linker);
    return outcome.applied;
  }

  /** The Stripe subscription an event says is live (a subscription event not ending it, a completed subscription checkout), or undefined. */
  private liveSubscriptionNamed(event: Stripe.Event): string | undefined {
    const obj = (event.data?.object ?? {}) as any;
    if (event.type.startsWith('customer.subscription.')) return endsSubscription(event) || typeof obj.id !== 'string' ? undefined : obj.id;
    if (event.type === 'checkout.session.completed' && obj.mode === 'subscription') return idOf(obj.subscription);
    return undefined;
  }

  /**
   * Why the event must not change the subscription as it is now, read under its lock (a concurrent job may have
   * changed it before: a deletion applied meanwhile), or undefined. `canceled` and
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
      // unpaid (retries exhausted): only paying the latest invoice makes Stripe's subscription active again, and Stripe then
      // says so itself (customer.subscription.updated). An invoice event cannot tell it is the latest: a failure of a newer
      // invoice is refused below, so the invoice mark may still be on an older one, and paying only that one made the row
      // active, full access, while Stripe kept it unpaid
      if (event.type === 'invoice.paid' && status === 'unpaid') return `the subscription is unpaid: Stripe's subscription event, sent once its latest invoice is paid, makes it active again`;
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
   * subject (audienceMismatch, as checkout checks), or it is not in the catalog (changeFrom placed it there: fails closed).
   */
  private async planMisfit(change: Change, subject: Subject, existing: SubscriptionRow | undefined, catalog: Catalog): Promise<string | undefined> {
    if (!change.app || !change.plan) return undefined;
    const named = `${change.price ? `price ${change.price}` : 'the checkout'} is for ${change.app}:${change.plan}`;
    if (existing && existing.appId !== change.app) {
      const holder = subject.kind === 'user' ? 'account' : 'organization';
      return `${named}, not ${existing.appId}: Stripe subscription ${change.stripeSubscriptionId} is this ${holder}'s ${existing.appId} subscription`;
    }
    const plan = await catalog.plan(change.app, change.plan);
    if (!plan) return `${named}, which is not in the catalog`;
    const mismatch = audienceMismatch(change.app, plan, subject);
    return mismatch ? `${named}: ${mismatch}` : undefined;
  }

  /** A completed Checkout session (for a subscription) that this organization started: our checkout named it in the metadata. */
  private checkoutOf(event: Stripe.Event, orgId: string): boolean {
    if (event.type !== 'checkout.session.completed') return false;
    const obj = (event.data?.object ?? {}) as any;
    return obj.mode === 'subscription' && (obj.metadata?.org_id === orgId || obj.client_reference_id === orgId);
  }

  /**
   * The domain events a processed Stripe event means for the organization (billing.events.ts), in order, each with the
   * row and previous status of its payload and its time (`linker`: the event's own; else the later of it and the
   * re-applied event's). `reappliedType`: the type of the stored event applied again in the same job (applyNewestStored),
   * `created`: the new row as the event itself wrote it, before that. The one change (from `before` to `after`) is
   * created, canceled or updated (a new row that the re-applied event ended: created, then canceled); a
   * trial_will_end (either event) is its own subscription.trial_ending besides, unless the row has ended after the job.
   * A trial_will_end alone on the row of its own Stripe subscription is only that; one that creates the row or moves it
   * to its Stripe subscription (taking over an ended row) is a change as any other: created or updated, then trial_ending.
   */
  private domainEvents(stripeType: string, before: SubscriptionRow | undefined, created: SubscriptionRow | undefined, after: SubscriptionRow,
    reappliedType?: string): Array<{ type: string; row: SubscriptionRow; previousStatus: string | null; at: 'linker' | 'latest' }> {
    const previousStatus = before?.status ?? null;
    if (stripeType === 'invoice.payment_failed') return [{ type: 'payment.failed', row: after, previousStatus, at: 'latest' }];
    const TRIAL = 'customer.subscription.trial_will_end';
    const types = [stripeType, ...(reappliedType ? [reappliedType] : [])];
    const events: Array<{ type: string; row: SubscriptionRow; previousStatus: string | null; at: 'linker' | 'latest' }> = [];
    const moved = !before || before.stripeSubscriptionId !== after.stripeSubscriptionId;
    if (moved || types.some((t) => t !== TRIAL)) {
      if (!before && reappliedType && created && after.status === 'canceled' && created.status !== 'canceled') {
        events.push({ type: 'subscription.created', row: created, previousStatus: null, at: 'linker' },
          { type: 'subscription.canceled', row: after, previousStatus: created.status, at: 'latest' });
      } else if (!before) events.push({ type: 'subscription.created', row: after, previousStatus, at: 'latest' });
      else if (after.status === 'canceled' && before.status !== 'canceled') events.push({ type: 'subscription.canceled', row: after, previousStatus, at: 'latest' });
      else events.push({ type: 'subscription.updated', row: after, previousStatus, at: 'latest' });
    }
    if (types.includes(TRIAL) && !STRIPE_ENDED.has(statusOf(after))) events.push({ type: 'subscription.trial_ending', row: after, previousStatus, at: 'latest' });
    return events;
  }

  /** The plans of the catalog for one event: each app's read once, however often its items and its fit are looked at. */
  private catalog(db: Db): Catalog {
    const read = new Map<string, Promise<PlanRow[]>>();
    return {
      plan: async (app, code) => {
        if (!read.has(app)) read.set(app, repo.plans(db, app));
        return (await read.get(app)!).find((p) => p.code === code);
      },
    };
  }

  /**
   * The plan's item of a subscription object: the first whose price STRIPE_PRICES maps to a plan of the catalog that the
   * row can hold, of its app (`app`; any app for a subscription not known yet) and of the subject's audience
   * (audienceMismatch), not merely the first (an add-on or metered item an operator added, or another audience's price
   * beside the plan's, may come first). Without one, the item that comes closest names the misfit: a price mapped to a
   * plan of the app, then one mapped to the app, then any mapped one, then the first.
   */
  private async planItem(obj: any, app: string | undefined, subject: Subject, catalog: Catalog): Promise<PlanItem> {
    const items: any[] = Array.isArray(obj.items?.data) ? obj.items.data : [];
    let best: PlanItem & { score: number } = { score: -1 };
    for (const item of items) {
      const price = idOf(item?.price);
      const mapped = price ? this.config.billing.stripePrices[price] : undefined;
      const plan = mapped ? await catalog.plan(mapped.app, mapped.plan) : undefined;
      const ofApp = Boolean(mapped && (!app || mapped.app === app));
      if (plan && ofApp && !audienceMismatch(mapped!.app, plan, subject)) return { item, price, mapped, plan };
      const score = (mapped ? 4 : 0) + (ofApp ? 2 : 0) + (plan ? 1 : 0);
      if (score > best.score) best = { item, price, mapped, plan, score };
    }
    const { score: _, ...closest } = best;
    return closest;
  }

  /** The app the subscription row of an event not known by its Stripe subscription is found by: the checkout's, or its plan item's. */
  private async appOf(event: Stripe.Event, subject: Subject, catalog: Catalog): Promise<string | undefined> {
    const obj = (event.data?.object ?? {}) as any;
    if (event.type === 'checkout.session.completed') return obj.mode === 'subscription' && typeof obj.metadata?.app === 'string' ? obj.metadata.app : undefined;
    if (!event.type.startsWith('customer.subscription.')) return undefined;
    const { mapped, plan } = await this.planItem(obj, undefined, subject, catalog);
    return plan ? mapped!.app : undefined;
  }

  /**
   * Reads the event into a Change, or says why it changes nothing. `existing`: the subscription row, as locked
   * (`applyTo`): the one holding the event's Stripe subscription, else the subject's row of the event's app, if any.
   */
  private async changeFrom(event: Stripe.Event, existing: SubscriptionRow | undefined, subject: Subject, catalog: Catalog): Promise<Change | { ignored: string }> {
    const obj = (event.data?.object ?? {}) as any;
    switch (event.type) {
      case 'checkout.session.completed': {
        if (obj.mode !== 'subscription') return { ignored: `checkout mode ${obj.mode} is not a subscription` };
        const { app, plan } = obj.metadata ?? {};
        if (typeof app !== 'string' || typeof plan !== 'string' || !(await catalog.plan(app, plan))) return { ignored: `checkout metadata names no known plan (${app}:${plan})` };
        // payment_status 'unpaid': the first payment is still pending (a delayed method such as a bank debit), and Stripe's
        // subscription is incomplete until invoice.paid: not active, which would give full access meanwhile
        const status = obj.payment_status === 'unpaid' ? 'incomplete' : 'active';
        return { app, plan, status, keepKnownStatus: true, stripeSubscriptionId: idOf(obj.subscription), customer: idOf(obj.customer) };
      }
      case 'customer.subscription.created':
      case 'customer.subscription.updated':
      case 'customer.subscription.deleted':
      case 'customer.subscription.trial_will_end': {
        // the Stripe subscription as the row holds it (undefined: not known yet, or the row found through the app holds another)
        const known = existing && typeof obj.id === 'string' && existing.stripeSubscriptionId === obj.id ? existing : undefined;
        const { item, price, mapped, plan } = await this.planItem(obj, known?.appId, subject, catalog);
        const change: Change = {
          price, status: event.type === 'customer.subscription.deleted' ? 'canceled' : String(obj.status),
          stripeSubscriptionId: obj.id, customer: idOf(obj.customer),
          trialEndsAt: time(obj.trial_end), currentPeriodEnd: time(item?.current_period_end ?? obj.current_period_end),
          cancelAtPeriodEnd: Boolean(obj.cancel_at_period_end),
        };
        const unplaced = !mapped ? `price ${price ?? '(none)'} is not mapped to an app plan (STRIPE_PRICES)`
          : !plan ? `STRIPE_PRICES maps ${price} to ${mapped.app}:${mapped.plan}, which is not in the catalog`
            : undefined;
        if (!unplaced) return { ...change, app: mapped!.app, plan: mapped!.plan, priceMisfit: null };
        // a subscription already known (e.g. on a retired price) keeps its plan and is read-only: its contract row's
        // status is written paused while Stripe's is live (applyTo), its period, renewal and end still apply. A new one
        // cannot be placed (no app, no plan): ignored, and applied again should a checkout completion link it (applyNewestStored)
        if (!known) return { ignored: unplaced };
        return { ...change, priceMisfit: price ?? '(none)', notApplied: `${unplaced}: ${misfitNote(known.plan)}` };
      }
      case 'invoice.paid':
      case 'invoice.payment_failed': {
        const stripeSubscriptionId = this.stripeSubscriptionId(event);
        if (!stripeSubscriptionId) return { ignored: 'the invoice belongs to no subscription' };
        if (existing?.stripeSubscriptionId !== stripeSubscriptionId) return { ignored: `no subscription is known for Stripe subscription ${stripeSubscriptionId}` };
        // what the subscription's status allows is decided under its lock (refusal)
        return { status: event.type === 'invoice.paid' ? 'active' : 'past_due', stripeSubscriptionId, customer: idOf(obj.customer) };
      }
      default:
        return { ignored: `event type ${event.type} is not handled` };
    }
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
