-- Generated from prisma/migrations/20260301000300_ledger_totals_definer/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- finance.account_totals runs as its owner with the organization fixed by auth_org_id() (NULL for a
-- caller who may not act in the claimed organization: no rows). As SECURITY INVOKER the tenant policy
-- (org_id = auth_org_id(), a plpgsql function) was evaluated per journal line of a partial period,
-- which made an as-of-date trial balance at 1M lines take seconds. Every query below filters on org.
-- The lines of a period cut by the range are read by date range per cut period (at most two).
CREATE OR REPLACE FUNCTION finance.account_totals(p_from date, p_to date, p_account uuid DEFAULT NULL)
RETURNS TABLE (account_id uuid, currency text, debit numeric, credit numeric, base_debit numeric, base_credit numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
#variable_conflict use_column
DECLARE
  org uuid := public.auth_org_id();
  lo date := coalesce(p_from, '-infinity'::date);
  hi date := coalesce(p_to, 'infinity'::date);
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  WITH periods AS MATERIALIZED (
    SELECT p.id, p.start_date, p.end_date, (p.start_date >= lo AND p.end_date <= hi) AS whole
    FROM finance.fiscal_periods p
    WHERE p.org_id = org AND p.end_date >= lo AND p.start_date <= hi
  ), parts AS (
    SELECT b.account_id AS acc, b.currency AS cur, b.debit AS dr, b.credit AS cr, b.base_debit AS bdr, b.base_credit AS bcr
    FROM periods x JOIN finance.period_balances b ON b.org_id = org AND b.period_id = x.id
    WHERE x.whole AND (p_account IS NULL OR b.account_id = p_account)
    UNION ALL
    SELECT l.account_id, l.currency, l.debit, l.credit, l.base_debit, l.base_credit
    FROM periods x JOIN finance.journal_lines l
      ON l.org_id = org AND l.entry_date BETWEEN greatest(lo, x.start_date) AND least(hi, x.end_date)
    WHERE NOT x.whole AND (p_account IS NULL OR l.account_id = p_account)
  )
  SELECT t.acc, t.cur, sum(t.dr), sum(t.cr), sum(t.bdr), sum(t.bcr)
  FROM parts t GROUP BY t.acc, t.cur;
END
$$;
REVOKE ALL ON FUNCTION finance.account_totals(date, date, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finance.account_totals(date, date, uuid) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260301000300_ledger_totals_definer', '352bbbcdc4a1980e0e3b0dcc5ed8abf22cdf744d3a2a47f4dbf73b50d1277281', 0)
  ON CONFLICT (name) DO NOTHING;
