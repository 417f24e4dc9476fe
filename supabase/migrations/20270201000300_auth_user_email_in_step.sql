-- Generated from prisma/migrations/20270201000300_auth_user_email_in_step/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- auth.users' copy of a user's e-mail follows an e-mail change (POST /v1/auth/email-change/confirm), which calls
-- core.sync_auth_user again. It used to insert only: the old address stayed in auth.users, so a later account with
-- that address got no auth.users row (ON CONFLICT DO NOTHING on its unique e-mail), and every write of seed 004's
-- tables that reference auth.users failed for it. An address that another auth.users row holds (Supabase Auth's own
-- user) is still left alone: that row is never changed from here.
CREATE OR REPLACE FUNCTION core.sync_auth_user(p_id uuid, p_email text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO auth.users (id, email) VALUES (p_id, p_email)
  ON CONFLICT (id) DO UPDATE SET email = excluded.email WHERE auth.users.email IS DISTINCT FROM excluded.email;
EXCEPTION WHEN unique_violation THEN
  NULL; -- the address is another auth.users row's: as before, nothing is written
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270201000300_auth_user_email_in_step', '509a4fc82e4cac86b02083a7b8b06529b5e6826c631d3da43e89230dfc84d2d9', 0)
  ON CONFLICT (name) DO NOTHING;
