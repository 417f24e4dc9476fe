-- Generated from prisma/migrations/20270208130100_checkout_sessions_to_expire/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A checkout overtaken while Stripe created its session (another checkout drew a new key meanwhile) expires that session
-- itself (CheckoutService). When Stripe failed to, the session stayed open and payable, and no key, nor anything else,
-- remembered it: two sessions could be paid. checkout_sessions_to_expire: such sessions (Stripe Checkout session ids, no
-- personal data), kept until BillingExpiryJob has expired them in Stripe (or Stripe says they are no longer open).
-- The row's grants (table-level, 20261201000100) and policies (20260201000100, 20270205000900) cover the new column;
-- each expiry is audited (billing.checkout_expired) by the job.
ALTER TABLE hub.limit_locks ADD COLUMN checkout_sessions_to_expire text[] NOT NULL DEFAULT '{}';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208130100_checkout_sessions_to_expire', '8611a7b7aa0281feb98a2784c3675a4fef0b4d865257061e761383f2f19c9bb4', 0)
  ON CONFLICT (name) DO NOTHING;
