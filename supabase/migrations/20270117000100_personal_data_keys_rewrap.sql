-- Generated from prisma/migrations/20270117000100_personal_data_keys_rewrap/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Personal data keys follow a change of SECRETS_ACTIVE_KEY (npm run secrets:rotate): the command re-wraps every
-- per-person key that is not wrapped under the active key (or, set up without SECRETS_KEYS, not wrapped at all),
-- on the privileged path secrets.rotate (service_role). Before, it re-sealed integration, provider and webhook
-- secrets only: removing the old key afterwards, as the command tells, left every person's key unopenable and
-- every sealed audit snapshot unreadable. Only the wrapping changes, never the key, so sealed snapshots still open.
GRANT UPDATE (wrapped) ON core.personal_data_keys TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270117000100_personal_data_keys_rewrap', '0c0ad03a08989b816dfc344f8478e00ffc68f11576f29f86bad75f5e9d1eb1ec', 0)
  ON CONFLICT (name) DO NOTHING;
