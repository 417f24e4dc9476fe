-- A checkout overtaken while Stripe created its session (another checkout drew a new key meanwhile) lost its key and
-- the key's Stripe parameters at once: when its own request then failed to record the session (the database down, the
-- process stopped, Stripe's answer lost), nothing was left from which to find that session, open and payable, and expire
-- it. checkout_overtaken_keys: such keys, each with the sha256 and the parameters (JSON text, as sent) of its request and
-- when it was drawn ([{"key", "request", "params", "drawnAt"}]), kept until the session created under the key is saved to
-- be expired (checkout_sessions_to_expire), Stripe says it created none, or Stripe's idempotency window (24 hours from
-- the key) has passed (BillingExpiryJob). The parameters may hold the requesting admin's e-mail address: declared in
-- the personal-data catalog (retained those 24 hours), never exported.
-- The row's grants (table-level, 20261201000100) and policies (20260201000100, 20270205000900) cover the new column.
ALTER TABLE hub.limit_locks ADD COLUMN checkout_overtaken_keys jsonb NOT NULL DEFAULT '[]';
