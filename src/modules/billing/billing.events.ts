import type { DomainEventType } from '../../platform/events/events.js';

const SUBSCRIPTION = {
  type: 'object', additionalProperties: false, required: ['subscriptionId', 'app', 'plan', 'status'],
  properties: {
    subscriptionId: { type: 'string', description: 'the Hub subscription id' },
    app: { type: 'string', description: 'the app code, e.g. omnizen' },
    plan: { type: 'string', description: 'the plan code' },
    status: { type: ['string', 'null'], description: 'trialing, active, past_due, canceled, ...' },
    previousStatus: { type: ['string', 'null'], description: 'the status before this change (absent when created)' },
    trialEndsAt: { type: ['string', 'null'], format: 'date-time' },
    currentPeriodEnd: { type: ['string', 'null'], format: 'date-time' },
    cancelAtPeriodEnd: { type: 'boolean' },
  },
};
const EXAMPLE = {
  subscriptionId: 'b0d6a9c4-1f3e-4d2a-9c8b-7a6f5e4d3c2b', app: 'omnizen', plan: 'professional', status: 'active', previousStatus: 'trialing',
  trialEndsAt: null, currentPeriodEnd: '2027-01-02T00:00:00.000Z', cancelAtPeriodEnd: false,
};

/** Subscription events, emitted where the Stripe event job and the expiry job change a subscription. */
export const BILLING_EVENT_TYPES: DomainEventType[] = [
  { type: 'subscription.created', version: 1, category: 'billing', description: 'A subscription was created (from Stripe).', payloadSchema: SUBSCRIPTION, example: { ...EXAMPLE, previousStatus: null } },
  { type: 'subscription.updated', version: 1, category: 'billing', description: 'A subscription changed plan, status or period.', payloadSchema: SUBSCRIPTION, example: EXAMPLE },
  {
    type: 'subscription.canceled', version: 1, category: 'billing', description: 'A subscription ended (Stripe deleted it, or its trial / canceled period ran out).',
    payloadSchema: SUBSCRIPTION, example: { ...EXAMPLE, status: 'canceled', previousStatus: 'active' },
  },
  {
    type: 'subscription.trial_ending', version: 1, category: 'billing',
    description: "The trial ends within three days: Stripe's customer.subscription.trial_will_end, or the billing job's check for trials without Stripe "
      + '(once per trial; subscriptionId is null for the default trial of an organization without a subscription). status is the contract row\'s: '
      + 'trialing, or paused while it is on a Stripe price that is not a plan of its app for the account (read-only, docs/plans.md).',
    payloadSchema: {
      ...SUBSCRIPTION,
      properties: { ...SUBSCRIPTION.properties, subscriptionId: { type: ['string', 'null'], description: 'the Hub subscription id; null for a default trial (no subscription)' } },
    },
    example: { ...EXAMPLE, status: 'trialing', previousStatus: 'trialing', trialEndsAt: '2026-12-05T00:00:00.000Z' },
  },
  {
    type: 'payment.failed', version: 1, category: 'billing', description: "A subscription's invoice payment failed; the subscription is past due (status past_due; paused while it is on a Stripe price that is "
      + 'not a plan of its app for the account: read-only, docs/plans.md).',
    payloadSchema: SUBSCRIPTION, example: { ...EXAMPLE, status: 'past_due', previousStatus: 'active' },
  },
];
