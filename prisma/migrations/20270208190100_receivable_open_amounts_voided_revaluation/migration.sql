-- Receivables: a revaluation row of a voided invoice leaves its stored open amount at 0.
--
-- finance.receivable_open_amounts_revaluation (20270208010100) added every fx_revaluation_items row's base_delta to
-- the document's open_base, while the source view (finance.receivable_open_amounts_source) counts nothing open of a
-- voided invoice. An invoice revalued and then voided was right (the void sets 0), but a row written after the void
-- (an autoReverse reversal dated the next period's first day, or the compensation rows of a void inside the reversal
-- window) left the invoice open by its delta: the stored table, and so the aging from that date on, apart from the
-- source and from the AR control account. Now a row of a voided invoice only moves settled_through (as the source's
-- greatest(..., last revaluation date) does); its open_base stays 0. The aging as of a date before the void still
-- works the amount out from the rows dated by then (finance.ar_aging_index, unchanged). Rows already wrong are
-- recomputed from the source below. Same owner, SECURITY DEFINER, search_path and grants as before: no grant or
-- policy changes, no new table. Derived data only (the triggers' own table): nothing to audit.

CREATE OR REPLACE FUNCTION finance.receivable_open_amounts_revaluation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a receivable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  -- a voided invoice keeps nothing open (finance.receivable_open_amounts_invoice set 0 at its void, and the invoice's
  -- void is final: finance.invoice_guard), whatever rows come after it
  UPDATE finance.receivable_open_amounts o
  SET open_base = CASE WHEN o.voided_on IS NULL THEN o.open_base + NEW.base_delta ELSE 0 END,
    settled_through = greatest(o.settled_through, NEW.revaluation_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.document_id;
  IF NOT FOUND THEN
    PERFORM finance.receivable_open_amounts_refresh(NEW.org_id, NEW.document_id);
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.receivable_open_amounts_revaluation() FROM PUBLIC, anon, authenticated, service_role;

-- the rows the old trigger left open: voided invoices with revaluation rows, recomputed from the source
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT DISTINCT o.org_id, o.document_id FROM finance.receivable_open_amounts o
    WHERE o.voided_on IS NOT NULL AND o.open_base <> 0
  LOOP
    PERFORM finance.receivable_open_amounts_refresh(r.org_id, r.document_id);
  END LOOP;
END
$$;
