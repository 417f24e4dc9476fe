-- Generated from prisma/migrations/20260110000100_membership_owner_guard/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Only an owner may grant the role 'owner', take it away, or remove an owner.
-- The membership_update policy already stops an admin from granting 'owner' (WITH CHECK), but an
-- admin passes its USING clause on an owner's row, so demoting or removing an owner needs this guard.
-- Leaving (deleting your own membership) stays allowed; memberships_keep_owner still keeps one owner.
-- Applies to API requests (role authenticated) only: the privileged paths and the owner connection
-- manage memberships themselves.
CREATE FUNCTION core.guard_owner_membership() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF current_user = 'authenticated' AND NOT public.auth_has_role('owner', 'service') THEN
    IF TG_OP = 'UPDATE' AND (OLD.role = 'owner' OR NEW.role = 'owner') AND OLD.role IS DISTINCT FROM NEW.role THEN
      RAISE EXCEPTION 'only an owner can grant or take away the owner role' USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'DELETE' AND OLD.role = 'owner' AND OLD.user_id IS DISTINCT FROM public.auth_user_id() THEN
      RAISE EXCEPTION 'only an owner can remove an owner' USING ERRCODE = '42501';
    END IF;
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER memberships_guard_owner BEFORE UPDATE OR DELETE ON core.memberships
  FOR EACH ROW EXECUTE FUNCTION core.guard_owner_membership();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260110000100_membership_owner_guard', 'e6cd020f3ec863c9eab43a582f6eb0f08be2a02aa4213d0b8d6588eb08c39b68', 0)
  ON CONFLICT (name) DO NOTHING;
