-- Generated from prisma/migrations/20270206000200_checkout_key/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- One checkout of an app at a time per organization (CheckoutService). Two concurrent checkouts (a double-click) both
-- read "no live subscription" and both created a Stripe Checkout session, so the customer could pay two
-- subscriptions. A checkout now locks its organization's per-app row of hub.limit_locks (FOR UPDATE, as counted limits
-- do) while it reads the subscription and this key, and creates its Stripe session with an Idempotency-Key made of
-- the key and the request: the same request within the key's window gets the same still-open session from Stripe.
-- checkout_key: drawn by the first checkout of the window (a random uuid, no personal data); checkout_key_at: when,
-- on the API's clock. The row's grants and policies (members of the organization; writes only in a verified
-- transaction, 20270205000900) cover the new columns.
ALTER TABLE hub.limit_locks ADD COLUMN checkout_key uuid, ADD COLUMN checkout_key_at timestamptz;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270206000200_checkout_key', '1d31dd3c5000018aab0779c631d1496e4678d0cb33867dca68b70d52425c7bdd', 0)
  ON CONFLICT (name) DO NOTHING;
