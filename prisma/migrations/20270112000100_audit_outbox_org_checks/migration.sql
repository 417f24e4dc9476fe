-- Issue 14, third pass: the audit log's and the outbox's foreign keys to core.organizations dropped.
--
-- Each was checked per inserted row by a referential-integrity query that key-share locks the organization's row:
-- a batch of 100 entries ran 100 of them for its audit rows and 100 more for its domain events, and postings of one
-- organization at 32 connections locked the same row together (a MultiXact each time, as the period row's lock did
-- before migration 20270101000100). What the keys guaranteed stays:
--  * a row names an existing organization: the writers that go through policies name the organization verified for
--    the transaction (audit_insert, outbox_insert: `org_id = auth_org_id()` or a membership; audit_insert_posting:
--    `finance.posting_org()`, set by the posting functions after verifying it); only service_role and the owner write
--    without those checks (system rows for organizations read from the database);
--  * organizations are soft-deleted (deleted_at) and only service_role may DELETE a row, which nothing does; if it
--    does, the trigger below does what the keys did: refuse while the organization has audit rows (the cascade hit the
--    audit log's append-only trigger) and delete its outbox rows (ON DELETE CASCADE).

ALTER TABLE core.audit_logs DROP CONSTRAINT audit_logs_org_id_fkey;
ALTER TABLE core.outbox DROP CONSTRAINT outbox_org_id_fkey;

CREATE FUNCTION core.organization_delete_cascade() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM core.audit_logs a WHERE a.org_id = OLD.id) THEN
    RAISE EXCEPTION 'core.audit_logs is append-only: organization % has audit rows and cannot be deleted', OLD.id USING ERRCODE = '42501';
  END IF;
  DELETE FROM core.outbox o WHERE o.org_id = OLD.id;
  RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION core.organization_delete_cascade() FROM PUBLIC;

CREATE TRIGGER organizations_delete_cascade BEFORE DELETE ON core.organizations
  FOR EACH ROW EXECUTE FUNCTION core.organization_delete_cascade();
