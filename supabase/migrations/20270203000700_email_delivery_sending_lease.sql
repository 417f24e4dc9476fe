-- Generated from prisma/migrations/20270203000700_email_delivery_sending_lease/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- When the attempt of a delivery in 'sending' began: its lease. A job relayed again (its outbox claim ran out while the
-- first run was still talking to a slow SMTP server) resumes a 'sending' row only once this is older than the lease
-- (EmailDeliveryService), so a live attempt is not sent a second time; an attempt cut off by a crash still is, later.
-- Rows 'sending' before this column existed have none and count as expired (resumed, as before).
-- A column of an existing table: its table-level grants (service_role only) and policies apply as they are.
ALTER TABLE core.email_deliveries ADD COLUMN sending_since timestamptz;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270203000700_email_delivery_sending_lease', '41c7e18314786d1a8107b529429be959032493a91d7c76d69022d80a0b2f68e7', 0)
  ON CONFLICT (name) DO NOTHING;
