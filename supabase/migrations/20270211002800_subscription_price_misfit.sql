-- Generated from prisma/migrations/20270211002800_subscription_price_misfit/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A subscription's price must be a plan of its app for its holder's audience (a business plan for an organization, a
-- personal one for a person), as checkout sells it. The customer portal can switch the row's own Stripe subscription to
-- another app's price, another audience's plan, or a price STRIPE_PRICES does not map to a plan of the catalog: such a
-- subscription entitles nothing (stripe-webhook.service.ts `apply`, EntitlementsService): its plan stays what it was and
-- its access is read-only until a Stripe event puts it on a fitting price again. price_misfit holds the Stripe price it
-- is on meanwhile (NULL: the price fits, or no Stripe event has said otherwise). Written by the Stripe webhook only; the
-- table's grants and policies (authenticated may read, the service writes) cover the new column.
ALTER TABLE hub.subscription_billing ADD COLUMN price_misfit text;

COMMENT ON COLUMN hub.subscription_billing.price_misfit IS
  'The Stripe price the subscription is on when it is not a plan of the row''s app for its audience (another app''s, another audience''s, unmapped): read-only until a Stripe event puts it on a fitting price (NULL again).';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211002800_subscription_price_misfit', '06860ffdb13e314255db2cf4fb0a6fb5069d0174799e6911e6072dc60d776c47', 0)
  ON CONFLICT (name) DO NOTHING;
