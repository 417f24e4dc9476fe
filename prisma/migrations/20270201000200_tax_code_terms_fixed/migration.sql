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
