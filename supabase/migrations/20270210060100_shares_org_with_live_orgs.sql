-- Generated from prisma/migrations/20270210060100_shares_org_with_live_orgs/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.shares_org_with backs the read policy of core."User" (user_select: yourself, or someone you share an
-- organization with). Unlike core.is_member it counted memberships of soft-deleted organizations, so over Supabase's
-- REST path the members of a deleted organization still read each other's names and e-mail addresses, while the API
-- answers 404 for that organization. Only organizations not deleted count now, as in is_member.
--
-- No API read depends on the old answer: the API reads other users' rows as `authenticated` only through a live
-- organization's membership (members list, invitations; begin_request refuses a deleted one), and erasure, data
-- exports, notifications, invitation e-mails and agent triggers read core."User" as service_role (user_service).
-- CREATE OR REPLACE keeps the owner and the grants (EXECUTE to authenticated only).
CREATE OR REPLACE FUNCTION core.shares_org_with(p_user text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM core.memberships mine
      JOIN core.organizations o ON o.id = mine.org_id AND o.deleted_at IS NULL
      JOIN core.memberships theirs ON theirs.org_id = mine.org_id
    WHERE mine.user_id = auth.uid()::text AND theirs.user_id = p_user);
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210060100_shares_org_with_live_orgs', 'f8bce8686075d7a5c2269fbb285c3aba9c4fc7e821448461659be22e11e6e428', 0)
  ON CONFLICT (name) DO NOTHING;
