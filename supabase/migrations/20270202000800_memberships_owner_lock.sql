-- Generated from prisma/migrations/20270202000800_memberships_owner_lock/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Two owners of an organization with exactly two could leave it with none: A demoting B while B demotes A (or both
-- leaving) at once, each memberships_keep_owner check read its own snapshot (READ COMMITTED), still counted the
-- other as owner, and both committed. A change that takes 'owner' away from a membership now first takes a
-- transaction-scoped lock per organization, so such changes run one after the other and the later one counts the
-- earlier one's committed result (each statement of this VOLATILE function reads a new snapshot).
-- An advisory lock rather than the organization's row: FOR UPDATE on it would wait for every insert in the
-- organization in flight (their foreign keys hold it FOR KEY SHARE), and an organization's deletion locks that row
-- before cascading to the memberships, which hold this trigger's row locks: a deadlock. A membership change that
-- takes 'owner' from no one takes no lock.
CREATE OR REPLACE FUNCTION core.ensure_an_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF OLD.role = 'owner' AND (TG_OP = 'DELETE' OR NEW.role IS DISTINCT FROM 'owner') THEN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.memberships.owners:' || OLD.org_id::text));
  END IF;
  IF EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = OLD.org_id)
     AND NOT EXISTS (SELECT 1 FROM core.memberships m WHERE m.org_id = OLD.org_id AND m.role = 'owner') THEN
    RAISE EXCEPTION 'an organization must keep at least one owner' USING ERRCODE = '23514', CONSTRAINT = 'memberships_owner_required';
  END IF;
  RETURN NULL;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270202000800_memberships_owner_lock', 'afe0e59333a84b0078b08ff35e82d9eeace789857f17e08f3918c64e0c0fd96b', 0)
  ON CONFLICT (name) DO NOTHING;
