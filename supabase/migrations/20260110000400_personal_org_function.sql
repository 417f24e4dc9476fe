-- Generated from prisma/migrations/20260110000400_personal_org_function/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A person's personal organization: one definition for the privileged paths of every module
-- (session purge, Stripe events, subscription expiry, secret rotation) instead of each joining
-- core.organizations itself. Runs with the caller's rights: under RLS a user sees only their own.
CREATE FUNCTION core.personal_org_id(p_user text) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT o.id FROM core.organizations o WHERE o.owner_user_id = p_user AND o.account_type = 'personal'
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260110000400_personal_org_function', '93cfe29d5f076f92e77f5ce0bdb939405fc5e76f3f90a9e31448c6bb370f8fa5', 0)
  ON CONFLICT (name) DO NOTHING;
