/**
 * What a subscription's status means, in one place (docs/plans.md, "Status rules"). The words are Stripe's: incomplete,
 * incomplete_expired, trialing, active, past_due, canceled, unpaid, paused. A row the Hub provisions without Stripe uses
 * the same words (seed 000 writes 'active'; a NULL status reads as 'active').
 */

export const DAY_MS = 86_400_000;

/**
 * The statuses that give full access: active; trialing until the trial's end; past_due for the grace period
 * (accessFor), on a price that is a plan of the subscription's app. Every other status is read-only: incomplete (the first payment is pending or failed), incomplete_expired,
 * unpaid, paused, canceled, and any word Stripe may add.
 */
export const LIVE_STATUSES: ReadonlySet<string> = new Set(['active', 'trialing', 'past_due']);

/**
 * The status written to the contract row (hub."Subscription".status, which the apps read themselves) while its own Stripe
 * subscription is live on a price that is not a plan of its app for its holder (price_misfit): a Stripe status that is
 * not live and not ended, so no app serves the plan the row names for a price that does not buy it. The next event on a
 * fitting price writes Stripe's own status again.
 */
export const MISFIT_STATUS = 'paused';

/**
 * The statuses after which Stripe charges nothing more. Any other Stripe subscription can still bill the customer
 * (unpaid, paused and incomplete included): it holds the organization's row of its app, blocks a second checkout, and
 * is canceled in Stripe when the organization is deleted.
 */
export const STRIPE_ENDED: ReadonlySet<string> = new Set(['canceled', 'incomplete_expired']);

/** A subscription row's status (NULL: seed 000's default, 'active'). */
export const statusOf = (row: { status: string | null }): string => row.status ?? 'active';

/** Whether a Stripe subscription, as Stripe answered its status ('missing': Stripe does not know it), may still bill. */
export const stripeStillBills = (status: string): boolean => status !== 'missing' && !STRIPE_ENDED.has(status);

/**
 * Whether a row's Stripe subscription was ended by BillingExpiryJob on its own (ended_locally_at), not by Stripe's word:
 * Stripe may still bill it (its end not processed yet, or renewed).
 */
export const endedLocally = (row: { status: string | null; stripeSubscriptionId?: string | null; endedLocallyAt?: Date | null }): boolean =>
  Boolean(row.stripeSubscriptionId && row.endedLocallyAt && STRIPE_ENDED.has(statusOf(row)));

export interface Access {
  access: 'full' | 'read_only';
  /** why the subscription is read-only */
  reason?: string;
  graceEndsAt?: Date;
}

/** What a subscription's price is not (hub.subscription_billing.price_misfit), for accessFor. */
export interface PriceMisfit {
  /** the Stripe price the subscription is on */
  price: string;
  app: string;
  holder: 'organization' | 'account';
}

/**
 * The access a subscription gives at `now` (the injected clock's). `pastDueSince`: when the grace period started; never
 * `now` (a grace counted from each call's now would never end), so a past_due without it has no grace left.
 * `misfit`: its Stripe subscription is on a price that is not a plan of its app for its holder (the customer portal
 * switched it): a live status (written MISFIT_STATUS on the row) entitles nothing then, read-only with that reason until
 * it is on a plan of the app again.
 */
export function accessFor(status: string, trialEndsAt: Date | null, pastDueSince: Date | null, graceDays: number, now: Date,
  misfit?: PriceMisfit): Access {
  // a misfit row's live status is written MISFIT_STATUS: its price, not the pause, is the reason
  if (misfit && (LIVE_STATUSES.has(status) || status === MISFIT_STATUS)) {
    return { access: 'read_only', reason: `the subscription is on price ${misfit.price}, which is not a plan of ${misfit.app} for this ${misfit.holder}: change it in the billing portal` };
  }
  if (!LIVE_STATUSES.has(status)) return { access: 'read_only', reason: `the subscription is ${status}` };
  if (status === 'trialing' && trialEndsAt && trialEndsAt <= now) {
    return { access: 'read_only', reason: `the trial ended on ${trialEndsAt.toISOString().slice(0, 10)}` };
  }
  if (status === 'past_due') {
    if (!pastDueSince) return { access: 'read_only', reason: 'the payment is past due' };
    const graceEndsAt = new Date(pastDueSince.getTime() + graceDays * DAY_MS);
    return graceEndsAt > now
      ? { access: 'full', graceEndsAt }
      : { access: 'read_only', reason: `the payment is past due since ${pastDueSince.toISOString().slice(0, 10)}`, graceEndsAt };
  }
  return { access: 'full' };
}
