-- Generated from prisma/migrations/20270210260100_api_keys_end_with_deleted_creator/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A key outlived its creator's user row (review of 20270210160100): core.api_keys.created_by references core."User"
-- ON DELETE SET NULL and the creator's memberships cascade from the same delete, so by the time the membership trigger
-- (memberships_revoke_api_keys) ran, created_by was already NULL and it found nothing to revoke: deleting a user row
-- (other apps of the database write core."User") left their keys live, unaudited. A BEFORE DELETE trigger on
-- core."User" now revokes the keys the user created and nobody has revoked yet, in every organization, while
-- created_by still names them, each audited as api_key.revoked with reason creator_deleted (the actor as
-- core.revoke_api_keys_of_creator names it; principal 'system' for an operator's SQL). The membership trigger then
-- finds them revoked: one audit row per key. Keys whose created_by is already NULL (creators deleted before this
-- migration) are left as they are: nothing names their creator any more. A trigger function: SECURITY DEFINER,
-- search_path '', executable by no API role.

CREATE FUNCTION core.users_revoke_api_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM core.revoke_api_keys_of_creator(OLD.id, NULL, 'creator_deleted');
  RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION core.users_revoke_api_keys() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER users_revoke_api_keys BEFORE DELETE ON core."User"
  FOR EACH ROW EXECUTE FUNCTION core.users_revoke_api_keys();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210260100_api_keys_end_with_deleted_creator', 'ee49da72d446a3fabe5a757dea41e31cd8e3ed62596c5b7d3def0914b8ffbd78', 0)
  ON CONFLICT (name) DO NOTHING;
