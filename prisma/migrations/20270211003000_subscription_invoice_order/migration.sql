-- The order of Stripe's events (stripe-webhook.service.ts `apply`). last_event_at / last_event_id were the mark of the
-- last subscription or invoice event applied, and an event older than it was ignored. An invoice's date is no measure
-- of the subscription events: a portal plan switch with proration sends customer.subscription.updated and the proration
-- invoice's invoice.paid a second later, and the invoice delivered first put the switch out of order (the customer kept
-- the old plan, or stayed read-only after switching back). From now on last_event_at / last_event_id are the last
-- subscription event (customer.subscription.*) applied, the only mark a subscription event is compared with; invoice
-- events (invoice.paid, invoice.payment_failed) keep their own, last_invoice_event_at / last_invoice_event_id, and are
-- compared with both (an invoice older than the last subscription event, which carries the whole state, still changes
-- nothing). Written by the Stripe webhook only; the table's grants and policies (authenticated may read, the service
-- writes) cover the new columns.
ALTER TABLE hub.subscription_billing ADD COLUMN last_invoice_event_at timestamptz, ADD COLUMN last_invoice_event_id text;

COMMENT ON COLUMN hub.subscription_billing.last_event_at IS
  'The time of the last Stripe subscription event (customer.subscription.*) applied: an older one is ignored (newest wins).';
COMMENT ON COLUMN hub.subscription_billing.last_invoice_event_at IS
  'The time of the last Stripe invoice event (invoice.paid, invoice.payment_failed) applied: an invoice event older than it, or than last_event_at, is ignored.';

-- A row whose mark is an invoice event's: that mark becomes the invoice mark, and the subscription mark is the newest
-- subscription event of its Stripe subscription processed for it (none: NULL, as for a subscription not yet heard of),
-- or set aside for it: a checkout completion that moved the row to its Stripe subscription took that subscription's
-- newest event set aside meanwhile (stored 'ignored', its reason starting 'another Stripe subscription is live:', filed
-- under the row) as the row's state and mark, and that event stayed 'ignored'.
UPDATE hub.subscription_billing b
   SET last_invoice_event_at = b.last_event_at, last_invoice_event_id = b.last_event_id,
       (last_event_at, last_event_id) = (
         SELECT e."stripeCreatedAt", e."stripeEventId" FROM hub."BillingEvent" e JOIN hub."Subscription" s ON s.id = b.subscription_id
          WHERE e."subscriptionId" = b.subscription_id AND e.type LIKE 'customer.subscription.%'
            AND (e.status = 'processed' OR (e.status = 'ignored' AND e.reason LIKE 'another Stripe subscription is live:%'))
            AND e.payload->'data'->'object'->>'id' = s."stripeSubscriptionId"
          ORDER BY e."stripeCreatedAt" DESC, e."receivedAt" DESC LIMIT 1),
       updated_at = now()
 WHERE EXISTS (SELECT 1 FROM hub."BillingEvent" i WHERE i."stripeEventId" = b.last_event_id AND i.type LIKE 'invoice.%');
