-- Generated from prisma/migrations/20270118000100_analytics_events_org_check/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Issue 14 (cheaper postings), the analytics events' foreign key to core.organizations dropped, as migration
-- 20270112000100 dropped the audit log's and the outbox's.
--
-- Every posting through the API records an analytics event in its transaction (ledger.entry_posted), and an app's
-- ingestion batch writes up to 500 rows. Each row's key was checked by a referential-integrity query that key-share
-- locks the organization's row: postings of one organization at 32 connections locked that row together (a MultiXact
-- each time), and a 100-event batch ran 100 of those queries. What the key guaranteed stays:
--  * a row names an existing organization: the tenant writers go through analytics_events_insert
--    (`org_id = auth_org_id()`: the organization verified for the transaction); only service_role and the owner (the
--    login's own event, written on the privileged path for an organization read from the database) write without it;
--  * organizations are soft-deleted (deleted_at) and only service_role may DELETE a row, which nothing does; if it
--    does, the trigger deletes the organization's events as ON DELETE CASCADE did (core.analytics_daily keeps its key:
--    it is written by the roll-up job, not per request).

ALTER TABLE core.analytics_events DROP CONSTRAINT analytics_events_org_id_fkey;

CREATE OR REPLACE FUNCTION core.organization_delete_cascade() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM core.audit_logs a WHERE a.org_id = OLD.id) THEN
    RAISE EXCEPTION 'core.audit_logs is append-only: organization % has audit rows and cannot be deleted', OLD.id USING ERRCODE = '42501';
  END IF;
  DELETE FROM core.outbox o WHERE o.org_id = OLD.id;
  DELETE FROM core.analytics_events e WHERE e.org_id = OLD.id;
  RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION core.organization_delete_cascade() FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270118000100_analytics_events_org_check', '77c5be9b3ea7dcd70e02280c3fbb910f24af30847020c2edb9c5baf888fff577', 0)
  ON CONFLICT (name) DO NOTHING;
