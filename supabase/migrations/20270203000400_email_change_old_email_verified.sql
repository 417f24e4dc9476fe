-- Generated from prisma/migrations/20270203000400_email_change_old_email_verified/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Whether the old address of an e-mail change was proven (an identity of the user had verified it) when the change
-- was confirmed. Confirming moves the password identity's proof to the new address, so afterwards nothing else says
-- the old address was ever the person's: erasure and export count it as proven only when this is true. Changes
-- confirmed before this column existed stay false (unknown counts as unproven).
-- A column of an existing table: its table-level grants (service_role only) and policies apply as they are.
ALTER TABLE core.email_change_requests
  ADD COLUMN old_email_verified boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT email_change_requests_old_email_verified_confirmed CHECK (NOT old_email_verified OR confirmed_at IS NOT NULL);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270203000400_email_change_old_email_verified', '9dbc31b88e46a6aa65a45323e1e3669df8d9d20af86bfbc7d4bae1c4e65f9319', 0)
  ON CONFLICT (name) DO NOTHING;
