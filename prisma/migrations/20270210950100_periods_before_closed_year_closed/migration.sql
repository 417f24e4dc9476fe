-- 20270210570100 and 20270210580100 stop new states in which an open fiscal year lies before a closed one, but an
-- organization upgraded from an earlier release can already be in one (FY2026 closed, then FY2025 created and left
-- open): postings into FY2025, dated before FY2026's end, still change FY2026's closed figures (its closing balance
-- sheet, and its retained earnings once FY2025 closes).
--
-- 1. A fiscal period cannot be open in a closed fiscal year (HINT ledger.period_in_closed_year) nor while a later
--    fiscal year is closed (HINT ledger.later_year_closed): SQLSTATE 23514, a 422; LedgerService.setPeriodStatus answers
--    both first. Checked when a period is inserted open or becomes open (its status, year or end date changes), by any
--    writer (service_role has INSERT and UPDATE on fiscal_periods): reopen the later years first (newest first), as for
--    a year's reopening (JournalService.reopenYear), then the year, then its periods. A year's reopening marks the year
--    open before its periods (ledger.repository reopenYear); a new year's periods are inserted into it open, with no
--    closed year after it (finance.check_no_overlap, 20270210570100). The period's own year is read FOR SHARE: its close
--    in flight (it holds the year FOR UPDATE, then locks and closes its periods) is waited for and its status read as
--    committed; a close starting after this check waits for this period and closes it too. The later years are read
--    without a lock: one of them closing meanwhile would need this period's year closed first (check_close_order reads
--    it FOR SHARE), which it is not. Not on the posting path: a trigger of a period's insert or reopening only.
--
-- 2. Every open period of an open fiscal year that has a later closed year is closed now: postings into it are refused
--    by the posting functions' own period check (finance.check_entry, ledger.period_closed: a single posting, a batch,
--    a reversal, a revaluation and its automatic reversal, the receivables' and payables' documents), at no cost to any
--    posting. The accountant reopens the later closed years (newest first), then the earlier year's periods, posts,
--    and closes the years in order. Each organization touched gets one audit row (action
--    ledger.earlier_year_periods_closed, entity its organization, principal 'system', actor the migration) naming the
--    years, the first later closed year of each, the periods closed and entriesPostedAfterLaterYearClosed: the entries
--    dated in the year and written after that later year closed (journal_entries.created_at > fiscal_years.closed_at),
--    which changed its closed figures: when there are any, that year has to be reopened and closed again. A NOTICE in
--    the migration's log names them for the operator. Idempotent (a closed period is not matched again).
--    Needs no superuser: applied as the owner of the tables (Supabase's postgres, BYPASSRLS); nothing to do on an empty
--    database. The period updates take each organization's posting lock (fiscal_periods_postings_drained): postings in
--    flight finish first.
CREATE FUNCTION finance.check_period_reopen_order() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  y record;
BEGIN
  SELECT o.name, o.start_date, o.end_date, o.status INTO y FROM finance.fiscal_years o
  WHERE o.org_id = NEW.org_id AND o.id = NEW.fiscal_year_id FOR SHARE;
  IF FOUND AND y.status = 'closed' THEN
    RAISE EXCEPTION 'fiscal period % to % cannot be open in the closed fiscal year % (% to %): reopen that year first',
      NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
      USING ERRCODE = '23514', HINT = 'ledger.period_in_closed_year';
  END IF;
  -- the latest: the one to reopen first
  SELECT o.name, o.start_date, o.end_date INTO y FROM finance.fiscal_years o
  WHERE o.org_id = NEW.org_id AND o.start_date > NEW.end_date AND o.status = 'closed' ORDER BY o.start_date DESC LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'fiscal period % to % cannot be open while the later fiscal year % (% to %) is closed: its entries would change that year''s closed figures; reopen that year first',
      NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
      USING ERRCODE = '23514', HINT = 'ledger.later_year_closed';
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.check_period_reopen_order() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER fiscal_periods_reopen_order BEFORE UPDATE OF status, fiscal_year_id, end_date ON finance.fiscal_periods
  FOR EACH ROW WHEN (NEW.status = 'open' AND (OLD.status, OLD.fiscal_year_id, OLD.end_date) IS DISTINCT FROM (NEW.status, NEW.fiscal_year_id, NEW.end_date))
  EXECUTE FUNCTION finance.check_period_reopen_order();
CREATE TRIGGER fiscal_periods_open_order BEFORE INSERT ON finance.fiscal_periods
  FOR EACH ROW WHEN (NEW.status = 'open') EXECUTE FUNCTION finance.check_period_reopen_order();

WITH affected AS (
  SELECT y.org_id, y.id, y.name, y.start_date, y.end_date, z.id AS later_id, z.name AS later_name, z.start_date AS later_start, z.end_date AS later_end,
    -- the harm already done: entries into this year written after the later year closed (a closed year without a
    -- closed_at, if any, counts them all)
    (SELECT count(*)::int FROM finance.journal_entries e WHERE e.org_id = y.org_id AND e.entry_date BETWEEN y.start_date AND y.end_date
       AND e.created_at > coalesce(z.closed_at, '-infinity')) AS late_entries
  FROM finance.fiscal_years y
  CROSS JOIN LATERAL (SELECT l.id, l.name, l.start_date, l.end_date, l.closed_at FROM finance.fiscal_years l
                      WHERE l.org_id = y.org_id AND l.start_date > y.start_date AND l.status = 'closed' ORDER BY l.start_date LIMIT 1) z
  WHERE y.status <> 'closed'),
closed AS (
  UPDATE finance.fiscal_periods p SET status = 'closed', closed_at = coalesce(p.closed_at, now()), updated_at = now()
  FROM affected a WHERE p.org_id = a.org_id AND p.fiscal_year_id = a.id AND p.status <> 'closed'
  RETURNING p.org_id, p.fiscal_year_id, p.id, p.start_date),
per_year AS (
  SELECT a.org_id, a.start_date, jsonb_build_object('id', a.id, 'name', a.name, 'startDate', a.start_date, 'endDate', a.end_date,
    'laterClosedYear', jsonb_build_object('id', a.later_id, 'name', a.later_name, 'startDate', a.later_start, 'endDate', a.later_end),
    'periodsClosed', jsonb_agg(c.id ORDER BY c.start_date), 'entriesPostedAfterLaterYearClosed', a.late_entries) AS year
  FROM closed c JOIN affected a ON a.org_id = c.org_id AND a.id = c.fiscal_year_id
  GROUP BY a.org_id, a.id, a.name, a.start_date, a.end_date, a.later_id, a.later_name, a.later_start, a.later_end, a.late_entries)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT py.org_id, 'migration:20270210950100', 'system', 'ledger.earlier_year_periods_closed', 'organization', py.org_id::text, NULL,
  jsonb_build_object('reason', 'later_year_closed', 'fiscalYears', jsonb_agg(py.year ORDER BY py.start_date))
FROM per_year py GROUP BY py.org_id ORDER BY py.org_id;

-- the operator's log: which organizations now have to reopen a later year before posting into an earlier one
DO $$
DECLARE
  a record;
  y jsonb;
BEGIN
  FOR a IN SELECT l.org_id, l.after FROM core.audit_logs l
           WHERE l.actor_id = 'migration:20270210950100' AND l.action = 'ledger.earlier_year_periods_closed' ORDER BY l.org_id LOOP
    FOR y IN SELECT * FROM jsonb_array_elements(a.after -> 'fiscalYears') LOOP
      RAISE NOTICE 'organization %: fiscal year % (% to %) is open before the closed fiscal year % (% to %): its % open period(s) were closed (no postings into it); % entry(ies) were posted into it after that year closed (when any, its closed figures changed: reopen it and close it again); to post into it, reopen the later closed years first, then its periods, and close the years in order',
        a.org_id, y ->> 'name', y ->> 'startDate', y ->> 'endDate', y -> 'laterClosedYear' ->> 'name', y -> 'laterClosedYear' ->> 'startDate',
        y -> 'laterClosedYear' ->> 'endDate', jsonb_array_length(y -> 'periodsClosed'), y ->> 'entriesPostedAfterLaterYearClosed';
    END LOOP;
  END LOOP;
END
$$;
