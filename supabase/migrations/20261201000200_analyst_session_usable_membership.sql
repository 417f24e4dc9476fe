-- Generated from prisma/migrations/20261201000200_analyst_session_usable_membership/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.is_analyst_session() took any direct membership in omnizen_analyst for an analyst's login. On PostgreSQL 16+
-- a non-superuser that creates a role (Supabase's `postgres`, which runs the migrations) is recorded as a direct
-- member of it with ADMIN OPTION only (no INHERIT, no SET): on a Supabase project on PostgreSQL 16 or 17, the
-- migration login and the privileged paths would have been taken for an unmapped analyst, and auth_org_id()
-- answered NULL for every claim they set. An analyst's login is a member whose membership is usable (it inherits
-- omnizen_analyst's privileges); superusers, members of every role, are still not analysts (no direct membership).
CREATE OR REPLACE FUNCTION core.is_analyst_session() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles member ON member.oid = m.member
    JOIN pg_catalog.pg_roles grp ON grp.oid = m.roleid
    WHERE member.rolname = session_user AND grp.rolname = 'omnizen_analyst')
  AND pg_catalog.pg_has_role(session_user, 'omnizen_analyst', 'USAGE')
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261201000200_analyst_session_usable_membership', 'f2ba9dfa92606d31a5ad710bdcea9058503f3bb686ecf973ba78a3d00bd78f70', 0)
  ON CONFLICT (name) DO NOTHING;
