-- Generated from prisma/migrations/20270201000100_payables_void/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Payables: a draft or rejected bill (or expense claim) that will never be posted is voided, not deleted. It keeps its
-- lines and decisions (the approval history stays whole), leaves the lists of work to do, and never changes again:
-- like a posted one, a voided document is immutable. Nothing of it ever reached the ledger.
ALTER TABLE finance.bills DROP CONSTRAINT bills_status_check;
ALTER TABLE finance.bills ADD CONSTRAINT bills_status_check CHECK (status IN ('draft', 'submitted', 'rejected', 'posted', 'voided'));

CREATE OR REPLACE FUNCTION finance.guard_bill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status IN ('posted', 'submitted', 'voided') AND TG_OP = 'DELETE' OR OLD.status IN ('posted', 'voided') THEN
    RAISE EXCEPTION 'bill % is %: it cannot be changed or deleted', OLD.id, OLD.status USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270201000100_payables_void', '4e287d69fb2b5c49aae5fd4f65a3768ddd5c2ef73c70289e99766e1d2b13689f', 0)
  ON CONFLICT (name) DO NOTHING;
