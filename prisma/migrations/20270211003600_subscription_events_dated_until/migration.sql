-- The floor of a subscription's domain events (subscription.*, payment.failed; stripe-webhook.service.ts `applyTo`).
-- Subscribers order a row's domain events by time, so none may be dated before one already emitted for the row. The
-- webhook computed that floor from the newest Stripe event processed for the row and the row's local end
-- (ended_locally_at), which forgot the expiry job's end once a later Stripe event cleared ended_locally_at (the next
-- applied event, older than that end, sorted before its subscription.canceled), and never saw the
-- subscription.canceled of an organization's deletion (dated when it ran). events_dated_until is the latest time a
-- domain event of the row was dated (the webhook, BillingExpiryJob, DeletedOrgSubscriptions raise it, never lower it);
-- the next one is dated no earlier. Written by the service only; the table's grants and policies (authenticated may
-- read, the service writes; no column-level grants) cover the new column.
ALTER TABLE hub.subscription_billing ADD COLUMN events_dated_until timestamptz;

COMMENT ON COLUMN hub.subscription_billing.events_dated_until IS
  'The latest time a domain event of the subscription (subscription.*, payment.failed) was dated: the next one is dated no earlier.';

-- Existing rows: the floor the webhook computed until now (its domain events were dated no later than it), the newest
-- Stripe event processed for the row or its local end, whichever is later (NULL when neither: no floor).
UPDATE hub.subscription_billing b
   SET events_dated_until = greatest(b.ended_locally_at,
         (SELECT max(e."stripeCreatedAt") FROM hub."BillingEvent" e WHERE e."subscriptionId" = b.subscription_id AND e.status = 'processed'))
 WHERE b.ended_locally_at IS NOT NULL
    OR EXISTS (SELECT 1 FROM hub."BillingEvent" e WHERE e."subscriptionId" = b.subscription_id AND e.status = 'processed');
