-- BillingExpiryJob ends a Stripe subscription canceled at period end once the period has passed, without asking Stripe
-- (it calls no Stripe API): Stripe normally says so too (customer.subscription.deleted), but the customer may have
-- turned the cancellation off and Stripe renewed it, its event arriving late. `canceled` is final for a Stripe
-- subscription only when Stripe said so (stripe-webhook.service.ts `refusal`): ended_locally_at tells the job's local
-- end apart, so that a newer Stripe event (the renewal, its invoice.paid) still applies. The next Stripe event applied
-- to the row clears it (its status is Stripe's again). The table's grants and policies cover the new column.
ALTER TABLE hub.subscription_billing ADD COLUMN ended_locally_at timestamptz;

COMMENT ON COLUMN hub.subscription_billing.ended_locally_at IS
  'When BillingExpiryJob ended the subscription without Stripe saying so (canceled at period end, period passed); NULL when its status is Stripe''s (or the Hub''s own). A newer Stripe event overrides such an end.';
