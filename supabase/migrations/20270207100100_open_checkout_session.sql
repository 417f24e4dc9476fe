-- Generated from prisma/migrations/20270207100100_open_checkout_session/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- One open Stripe Checkout session per organization and app (CheckoutService). The checkout key (20270206000200) made a
-- repeated request get the same session, but a checkout for another plan, or by another admin, created a second live
-- session next to the first: paying both gave two subscriptions. A checkout key now belongs to one request, and the
-- session it created is remembered, so a different checkout expires it in Stripe before creating its own.
-- checkout_request: the sha256 of the Stripe parameters the key was drawn for (no personal data in clear);
-- checkout_session_id: the Stripe Checkout session created under a key (kept until the next checkout has expired it).
-- The row's grants and policies (20261201000100, 20270205000900) cover the new columns.
ALTER TABLE hub.limit_locks ADD COLUMN checkout_request text, ADD COLUMN checkout_session_id text;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270207100100_open_checkout_session', 'bfe3380a136596b346f512d6b13a99f13e3560755bb3e3bde76f661461872609', 0)
  ON CONFLICT (name) DO NOTHING;
