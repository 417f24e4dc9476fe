-- Generated from prisma/migrations/20260601000400_begin_request_api_only/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- public.begin_request sets the request's claims and role; only the API's runtime login calls it (granted
-- in 20260101000100_core). Functions are executable by PUBLIC unless revoked, so anon, authenticated and
-- analyst logins could call it too: on Supabase, PostgREST exposes public functions as /rpc/..., where an
-- anonymous caller could name any user and organization in the claims and learn from the answer whether
-- that user is a member.
REVOKE ALL ON FUNCTION public.begin_request(text, text) FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260601000400_begin_request_api_only', 'f3c8e1cebab549bf1d13646db4f7523341ea614e0ec7db381ba3dd9658c9f6cc', 0)
  ON CONFLICT (name) DO NOTHING;
