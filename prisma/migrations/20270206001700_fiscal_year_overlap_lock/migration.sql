-- Two fiscal years created at the same moment both passed the overlap check: each looked for an overlapping year
-- before the other had committed (only the same start date was refused, by the unique key). The check now first takes
-- a transaction-scoped advisory lock per organization, so creations (and date changes) of one organization's years
-- and periods run one at a time: the second waits for the first to commit, and its check then sees the first's year.
-- Under READ COMMITTED each statement of this (volatile) function takes a new snapshot, so the check after the lock
-- sees what committed while it waited. The lock is re-entrant: the year's twelve periods, inserted next in the same
-- transaction, take it again without waiting.
--
-- finance.check_no_overlap as in 20270206001200_ledger_chart_error_codes plus the lock. CREATE OR REPLACE keeps owner,
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
  ELSE
    IF EXISTS (SELECT 1 FROM finance.fiscal_periods p WHERE p.org_id = NEW.org_id AND p.id <> NEW.id
               AND p.start_date <= NEW.end_date AND p.end_date >= NEW.start_date) THEN
      RAISE EXCEPTION 'fiscal period % to % overlaps another period', NEW.start_date, NEW.end_date USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
