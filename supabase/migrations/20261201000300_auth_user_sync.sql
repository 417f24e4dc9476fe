-- Generated from prisma/migrations/20261201000300_auth_user_sync/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Registration and token exchange (the privileged path auth.credentials, running as service_role) keep auth.users
-- in step with core."User": seed 004's tables reference auth.users(id). On Supabase auth.users is Supabase Auth's
-- table (schema auth belongs to supabase_auth_admin): the migration login may write it (Supabase grants postgres
-- its tables) but service_role holds nothing there, so registering answered "permission denied for table users".
-- This function writes the row as its owner, the migration login; only service_role may call it.
CREATE FUNCTION core.sync_auth_user(p_id uuid, p_email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
  INSERT INTO auth.users (id, email) VALUES (p_id, p_email) ON CONFLICT DO NOTHING
$$;
REVOKE ALL ON FUNCTION core.sync_auth_user(uuid, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.sync_auth_user(uuid, text) TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261201000300_auth_user_sync', '8bf4bbb81515e7e9ab0f4e5ae7c514f7541dc790758ed6f364d5179e55ccf44d', 0)
  ON CONFLICT (name) DO NOTHING;
