import { defineErrorCodes, deriveErrorCodes } from '../../platform/errors/catalog.js';
import type { EntitlementRequirement } from '../../platform/http/tenant.js';

/** The codes the billing module answers with (the 402s of the plan gate among them). */
export const BillingErrors = defineErrorCodes({
  'app.not_found': { status: 404, description: 'no app of that code' },
  'user.not_found': { status: 404, description: 'no user of that id (or no personal organization)' },
  'billing.plan_unknown': { status: 422, description: 'the app has no plan of that code' },
  'billing.plan_audience': { status: 422, description: 'the plan is for the other kind of account (personal or business)' },
  'billing.plan_not_for_sale': { status: 422, description: 'no Stripe price is configured for the plan' },
  'billing.no_customer': { status: 409, description: 'there is no Stripe customer for the account yet' },
  'billing.subscription_exists': { status: 409, description: 'the account has a Stripe subscription for the app that has not ended (live, unpaid, paused, or its first payment pending: details.status): its plan changes in the billing portal, not with a second checkout' },
  'billing.subscription_end_pending': { status: 409, description: 'the account\'s Stripe subscription for the app was ended by the billing job at its period end, but Stripe, asked, has not ended it (details.status, the subscription\'s status in Stripe: its end not processed yet, or it was renewed): a second checkout would be billed besides it; try again once Stripe has ended it, or manage it in the billing portal' },
  'billing.checkout_superseded': { status: 409, description: 'another checkout of the app (another plan, or another admin) started while Stripe created this one\'s session: that one is the open checkout, and this session was expired (or, when Stripe could not expire it, is saved to be expired)' },
  'billing.stripe_no_url': { status: 502, description: 'Stripe answered without a URL' },
  'billing.stripe_failed': { status: 502, description: 'Stripe refused or did not answer' },
  'billing.stripe_not_configured': { status: 503, description: 'Stripe is not configured on this server' },
  'billing.webhook_signature': { status: 400, description: 'the Stripe-Signature header does not verify against the body' },
  'billing.webhook_payload': { status: 400, description: 'the payload is not a Stripe event' },
  'billing.subscription_inactive': { status: 402, description: 'the subscription is read-only (canceled, expired, past due too long): reads only' },
  'billing.feature_not_in_plan': { status: 402, description: 'the plan does not include the feature; details name the cheapest plan that does' },
  'billing.limit_reached': { status: 402, description: 'the plan\'s limit is reached; details name the limit and a plan with more' },
});

/** What the plan gate (@RequiresFeature, @ConsumesLimit, @WritesRequireSubscription) can answer. */
export const PLAN_GATE_ERRORS = ['billing.subscription_inactive', 'billing.feature_not_in_plan', 'billing.limit_reached'] as const;

// A plan requirement on a route (x-omnizen-billing, written by @RequiresFeature / @ConsumesLimit / @RequiresActiveSubscription):
// the codes EntitlementsService.enforce answers it with, so no route has to list them itself.
deriveErrorCodes((op) => {
  const requirement = op['x-omnizen-billing'] as EntitlementRequirement | undefined;
  if (!requirement) return [];
  return ['billing.subscription_inactive', ...(requirement.consumes ? ['billing.limit_reached'] : requirement.feature ? ['billing.feature_not_in_plan'] : [])];
});
