-- Generated from prisma/migrations/20270201000200_tax_code_terms_fixed/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A tax code's code, rate and inclusive flag never change once it exists: the lines posted with it, and the VAT report
-- of their periods, read its rate. A new rate is a new tax code; the old one is archived. What may change (the name,
-- the accounts its tax posts to from now on, archiving) is what PATCH /ledger/tax-codes/{id} and .../archive change.
CREATE FUNCTION finance.guard_tax_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM OLD.org_id OR NEW.code IS DISTINCT FROM OLD.code OR NEW.rate IS DISTINCT FROM OLD.rate
     OR NEW.inclusive IS DISTINCT FROM OLD.inclusive THEN
    RAISE EXCEPTION 'tax code %: its code, rate and inclusive flag never change (create a new tax code)', OLD.code USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER tax_codes_terms_fixed BEFORE UPDATE ON finance.tax_codes FOR EACH ROW EXECUTE FUNCTION finance.guard_tax_code();
REVOKE ALL ON FUNCTION finance.guard_tax_code() FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270201000200_tax_code_terms_fixed', '5eff1f58dafd562677162888c653b5e62aa50c0834fa1defa038582347b094cb', 0)
  ON CONFLICT (name) DO NOTHING;
