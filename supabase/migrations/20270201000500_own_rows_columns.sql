-- Generated from prisma/migrations/20270201000500_own_rows_columns/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A user's own rows as the Supabase REST API (PostgREST) reaches them: there no begin_request runs, only the grants
-- and policies hold. The API itself writes these columns on its privileged paths (service_role) only.
--
-- Sessions: a user ends their own live session (revoked_at, revoked_reason), and nothing more. With UPDATE on every
-- column, the holder of a still-valid access token could clear revoked_at and move expires_at to 2099 after a logout,
-- a password reset or a detected refresh-token reuse, and refresh again.
REVOKE UPDATE ON core.sessions FROM authenticated;
GRANT UPDATE (revoked_at, revoked_reason) ON core.sessions TO authenticated;
DROP POLICY session_revoke ON core.sessions;
CREATE POLICY session_revoke ON core.sessions FOR UPDATE TO authenticated
  USING (user_id = public.auth_user_id() AND revoked_at IS NULL)
  WITH CHECK (user_id = public.auth_user_id() AND revoked_at IS NOT NULL);

-- Users: the e-mail changes only through the confirmed e-mail change (a link to the new address, a notice to the old,
-- auth.users kept in step); rows are made and erased by the auth and privacy paths. A user edits their name and image.
REVOKE INSERT, UPDATE, DELETE ON core."User" FROM authenticated;
GRANT UPDATE (name, image, "updatedAt") ON core."User" TO authenticated;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270201000500_own_rows_columns', 'b2a8a86ad4dfc6c8f34c265d5953d6e043628b7522c8007338b74ed2d72387aa', 0)
  ON CONFLICT (name) DO NOTHING;
