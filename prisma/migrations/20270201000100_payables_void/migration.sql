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
