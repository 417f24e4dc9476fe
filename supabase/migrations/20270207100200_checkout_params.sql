-- Generated from prisma/migrations/20270207100200_checkout_params/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A Stripe Checkout session created but never recorded stayed payable (CheckoutService): when Stripe's answer to the
-- create was lost (timeout, network error) or the transaction recording it failed, the checkout key was dropped (or
-- forgotten), and a later different checkout never learned of that session, so never expired it: two payable sessions.
-- checkout_params: the Stripe parameters (JSON, exactly as sent) of the checkout key's request while the session created
-- under the key is not recorded. A key whose create had no answer is kept with them: the next different checkout replays
-- the create with the key's Idempotency-Key and these parameters (Stripe answers the session it created, or creates it
-- now), records it and expires it before creating its own. Cleared once the session is recorded, or the key dropped
-- (they may hold the e-mail address of the admin who asked, for at most that long).
-- The row's grants (table-level, 20261201000100) and policies (20260201000100, 20270205000900) cover the new column.
ALTER TABLE hub.limit_locks ADD COLUMN checkout_params text;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270207100200_checkout_params', '937100caf5cbc823ccbea9e0312f91ac322ee68b0b2eec3ca148996fe371d82b', 0)
  ON CONFLICT (name) DO NOTHING;
