-- Generated from prisma/migrations/20270210090100_audit_log_person_indexes/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A person's data export reads their audit entries across every organization (personal-data.catalog, core.audit_logs):
-- those they acted in (actor_id), those about them (entity_type user or membership, entity_id their user id) and those
-- about invitations to their proven addresses (entity_type invitation, sealed with the key of the address's hash). The
-- table's indexes all lead on org_id: each export read the whole audit log (a parallel sequential scan; 180 ms for a
-- million entries, growing with the log). One index per lookup lets the export's one statement read them by a BitmapOr
-- (test/privacy/data-export.test.ts checks the plan). The actor's covers every entry someone acted in; the two others
-- are partial, a small part of the log.
-- Not CONCURRENTLY: refused inside the migration's transaction. The table belongs to the migration role: no superuser.
CREATE INDEX audit_logs_actor_idx ON core.audit_logs (actor_id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_logs_about_person_idx ON core.audit_logs (entity_id) WHERE entity_type IN ('user', 'membership');
-- the expression the catalog's `sealed-for-email` locator compares (erasure.repository.ts): the key id of the sealed
-- snapshot, the after one or else the before one (an invitation's entries seal both with the invitee's key)
CREATE INDEX audit_logs_invitation_key_idx ON core.audit_logs ((coalesce(after->'$sealed'->>'k', before->'$sealed'->>'k')))
  WHERE entity_type = 'invitation';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210090100_audit_log_person_indexes', '03b751ee4b5000faee440106f4297c93c5abedf0a051d5d6985c52ca278ee933', 0)
  ON CONFLICT (name) DO NOTHING;
