-- The Stripe webhook job reads the stored subscription events of one Stripe subscription (StripeWebhookService:
-- takeOverRefusal, applyNewestStored; billingRepository.newestSubscriptionEvent and .endingSubscriptionEvent) by the
-- subscription id inside the payload. billing_event_org_idx only narrows them to the organization: each read filtered
-- all of its events row by row (164 ms for an organization with 200k events, in the job's transaction, with the
-- subscription row locked). This index leads on the organization and the payload's subscription id, ordered by Stripe's
-- time then arrival, as both reads order (the newest: read backwards). Partial: only customer.subscription.* events (an
-- invoice's or a checkout's payload names other objects). The reads write the key expression and the predicate exactly
-- as here (billing.repository.ts, subscriptionEventsOf: the type pattern a literal), or the planner cannot use it.
-- (billing_event_subscription_idx is the index on "subscriptionId", 20270211000300.)
-- Not CONCURRENTLY: refused inside the migration's transaction. The table belongs to the migration role; RLS and grants
-- are unchanged (an index only).
CREATE INDEX billing_event_stripe_subscription_idx ON hub."BillingEvent"
  ("orgId", (payload->'data'->'object'->>'id'), "stripeCreatedAt", "receivedAt")
  WHERE type LIKE 'customer.subscription.%';
