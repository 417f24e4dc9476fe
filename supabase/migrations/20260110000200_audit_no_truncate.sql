-- Generated from prisma/migrations/20260110000200_audit_no_truncate/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- TRUNCATE fires no row triggers, so audit_logs_append_only does not stop it; TRUNCATE is revoked from
-- the API's roles, and this statement trigger stops the owner connection too.
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON core.audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION core.reject_change();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260110000200_audit_no_truncate', 'bb84850db15c1cf9b02398a7857f1e028ebfd994e095553128c3ad92f4903a91', 0)
  ON CONFLICT (name) DO NOTHING;
