-- A checkout overtaken while Stripe created its session (another checkout drew a new key meanwhile) expires that session
-- itself (CheckoutService). When Stripe failed to, the session stayed open and payable, and no key, nor anything else,
-- remembered it: two sessions could be paid. checkout_sessions_to_expire: such sessions (Stripe Checkout session ids, no
-- personal data), kept until BillingExpiryJob has expired them in Stripe (or Stripe says they are no longer open).
-- The row's grants (table-level, 20261201000100) and policies (20260201000100, 20270205000900) cover the new column;
-- each expiry is audited (billing.checkout_expired) by the job.
ALTER TABLE hub.limit_locks ADD COLUMN checkout_sessions_to_expire text[] NOT NULL DEFAULT '{}';
