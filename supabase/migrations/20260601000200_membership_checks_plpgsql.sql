-- Generated from prisma/migrations/20260601000200_membership_checks_plpgsql/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The membership checks behind every policy, as PL/pgSQL instead of SQL functions. A SECURITY DEFINER SQL
-- function is never inlined, and PostgreSQL 15 parses and plans its body again for every statement that
-- calls it; PL/pgSQL keeps the plan for the session. core.is_member runs inside public.auth_org_id(), which
-- the policies call for nearly every statement (about 23 times per journal posting, 3 times in
-- begin_request): begin_request's CPU went from ~0.35 to ~0.21 ms (bench/README.md). Same bodies,
-- owners and grants.
CREATE OR REPLACE FUNCTION core.is_member(p_org uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id AND o.deleted_at IS NULL
    WHERE m.org_id = p_org AND m.user_id = auth.uid()::text);
END
$$;

CREATE OR REPLACE FUNCTION core.shares_org_with(p_user text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM core.memberships mine JOIN core.memberships theirs ON theirs.org_id = mine.org_id
    WHERE mine.user_id = auth.uid()::text AND theirs.user_id = p_user);
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260601000200_membership_checks_plpgsql', 'ece39b16fbd5fcd84c5f1fe11a2554fbb0c14407e5142fead47662655d622a82', 0)
  ON CONFLICT (name) DO NOTHING;
