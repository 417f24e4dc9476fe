-- Generated from prisma/migrations/20270210580100_close_after_earlier_years/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- 20270210570100 refused creating a fiscal year before a closed one, but the same damage came another way: FY2025
-- created (open) before FY2026 closed, FY2026 closed, then postings into FY2025 (dated before FY2026's end) changed
-- FY2026's closed figures (its closing balance sheet, and once FY2025 closed, its retained earnings). A fiscal year now
-- cannot close while an earlier fiscal year is open (SQLSTATE 23514, HINT ledger.earlier_year_open, a 422): close the
-- earlier years first, in order. Reopening already refuses a year with a later closed year (ledger.later_year_closed).
--
-- The earlier years are read FOR SHARE: a reopening of one of them in flight (it holds the year FOR UPDATE) is waited
-- for and its status read as committed; a reopening starting after this check waits for this close, and then finds this
-- year closed (ledger.later_year_closed). A year created before this one meanwhile waits too (its insert reads the later
-- years FOR SHARE, finance.check_no_overlap). Rows read FOR SHARE are not filtered by status in the query (READ
-- COMMITTED re-checks a waited-for row's new version only against the WHERE clause of rows it had found): the status
-- is read from each locked row. The service takes the same locks before it drains postings (closeYear), so that a
-- reopening, which locks its year and then posts, and a close take them in the same order; this trigger is the rule for
-- any writer.
CREATE FUNCTION finance.check_close_order() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  y record;
BEGIN
  FOR y IN SELECT o.name, o.start_date, o.end_date, o.status FROM finance.fiscal_years o
           WHERE o.org_id = NEW.org_id AND o.id <> NEW.id AND o.start_date < NEW.start_date ORDER BY o.start_date FOR SHARE LOOP
    IF y.status <> 'closed' THEN
      RAISE EXCEPTION 'fiscal year % to % cannot close while the earlier fiscal year % (% to %) is open: its entries would change this year''s closed figures; close that year first',
        NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
        USING ERRCODE = '23514', HINT = 'ledger.earlier_year_open';
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.check_close_order() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER fiscal_years_close_order BEFORE UPDATE OF status ON finance.fiscal_years
  FOR EACH ROW WHEN (NEW.status = 'closed' AND OLD.status IS DISTINCT FROM 'closed') EXECUTE FUNCTION finance.check_close_order();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210580100_close_after_earlier_years', '76fc739b4a7127cf1932dd9519b8fb46a883eba3b779e536cceb1aaa5c6d0ad2', 0)
  ON CONFLICT (name) DO NOTHING;
