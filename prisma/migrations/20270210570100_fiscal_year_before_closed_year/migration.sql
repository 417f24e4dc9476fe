-- A fiscal year created before a closed year reopened that year's figures: its entries, dated before the closed year's
-- end, changed the closed year's closing balance sheet (cash, current earnings) and, once closed, its retained
-- earnings, though nothing of the closed year itself was touched. A fiscal year now cannot start before a closed one
-- (SQLSTATE 23514, HINT ledger.fiscal_year_before_closed_year, a 422): reopen the later years first. An earlier year
-- that is open stays open for postings while no later year is closed (books started late, history entered first).
--
-- The later years are read FOR SHARE: a close of one of them in flight (it holds the year FOR UPDATE) is waited for, and
-- its status read as committed; a close starting after this check waits for this transaction instead. Rows read
-- FOR SHARE are not filtered by status in the query (READ COMMITTED re-checks a waited-for row's new version only
-- against the WHERE clause of rows it had found), the status is read from each locked row.
--
-- finance.check_no_overlap as in 20270206001700_fiscal_year_overlap_lock plus that rule. CREATE OR REPLACE keeps owner,
-- grants and triggers. Not a posting function.

CREATE OR REPLACE FUNCTION finance.check_no_overlap() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  y record;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('finance.fiscal_years:' || NEW.org_id::text));
  IF TG_TABLE_NAME = 'fiscal_years' THEN
    SELECT o.name, o.start_date, o.end_date INTO y FROM finance.fiscal_years o WHERE o.org_id = NEW.org_id AND o.id <> NEW.id
      AND o.start_date <= NEW.end_date AND o.end_date >= NEW.start_date ORDER BY o.start_date LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'fiscal year % to % overlaps fiscal year % (% to %)', NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
        USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
    FOR y IN SELECT o.name, o.start_date, o.end_date, o.status FROM finance.fiscal_years o
             WHERE o.org_id = NEW.org_id AND o.id <> NEW.id AND o.start_date > NEW.start_date ORDER BY o.start_date FOR SHARE LOOP
      IF y.status = 'closed' THEN
        RAISE EXCEPTION 'fiscal year % to % would start before fiscal year % (% to %), which is closed: its entries would change the closed year''s figures; reopen that year (and any later closed one) first',
          NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
          USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_before_closed_year';
      END IF;
    END LOOP;
  ELSE
    IF EXISTS (SELECT 1 FROM finance.fiscal_periods p WHERE p.org_id = NEW.org_id AND p.id <> NEW.id
               AND p.start_date <= NEW.end_date AND p.end_date >= NEW.start_date) THEN
      RAISE EXCEPTION 'fiscal period % to % overlaps another period', NEW.start_date, NEW.end_date USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
