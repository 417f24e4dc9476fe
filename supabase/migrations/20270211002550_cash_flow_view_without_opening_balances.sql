-- Generated from prisma/migrations/20270211002550_cash_flow_view_without_opening_balances/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- semantic.v_cash_flow leaves opening-balance entries out (accountant's review, issue 1): an entry with source
-- opening_balance (20270211002500: the balances brought from former books, dated the first day of the first fiscal
-- year) moved no cash, and GET /ledger/reports/cash-flow shows no flows of it (its cash is the report's openingCash).
-- The view counted its cash lines as cash received (a financing inflow on equity, operating flows on receivables and
-- payables); now it leaves the entries out of each of its three parts, as the report leaves them out of its movements
-- and split. The view as in 20270210630200_cash_flow_split_one_definition otherwise; its columns, comment, owner and
-- grants are kept by CREATE OR REPLACE.

CREATE OR REPLACE VIEW semantic.v_cash_flow WITH (security_invoker = true) AS
WITH RECURSIVE chain AS (
  -- each account and its ancestors, one level at a time, until one carries a class (the chart is at most 32 deep)
  SELECT a.org_id, a.id, a.parent_id AS up, a.cash_flow_class AS class, 1 AS depth
  FROM finance.accounts a WHERE a.org_id = (SELECT public.auth_org_id())
  UNION ALL
  SELECT c.org_id, c.id, p.parent_id, p.cash_flow_class, c.depth + 1
  FROM chain c JOIN finance.accounts p ON p.org_id = c.org_id AND p.id = c.up
  WHERE c.class IS NULL AND c.depth <= 32),
accounts AS (
  -- kind: cash, investing, financing, operating, income (revenue and expense) or fx (the realized exchange result
  -- accounts); mu: the base currency's minor units
  SELECT a.org_id, a.id, cur.minor_units AS mu,
    CASE WHEN a.type IN ('revenue', 'expense') THEN CASE WHEN a.id IN (s.fx_gain_account_id, s.fx_loss_account_id) THEN 'fx' ELSE 'income' END
      WHEN k.class = 'cash' THEN 'cash'
      WHEN k.class IN ('operating', 'investing', 'financing') THEN k.class
      WHEN a.type = 'equity' THEN 'financing' ELSE 'operating' END AS kind
  FROM finance.accounts a
  LEFT JOIN chain k ON k.org_id = a.org_id AND k.id = a.id AND k.class IS NOT NULL
  LEFT JOIN finance.settings s ON s.org_id = a.org_id
  LEFT JOIN finance.currencies cur ON cur.code = s.base_currency
  WHERE a.org_id = (SELECT public.auth_org_id())),
opening AS (
  -- the opening-balance entries (source opening_balance, and their reversals): balances brought from former books, no
  -- cash flow (the report counts their cash as opening cash); few, read by journal_entries_opening_balance_idx
  SELECT e.id FROM finance.journal_entries e
  WHERE e.org_id = (SELECT public.auth_org_id()) AND e.source = 'opening_balance'),
split_entries AS (
  -- the entries to split: those with a line on an investing or financing account (a semi-join on those lines, not a
  -- window over every line of the organization)
  SELECT DISTINCT f.entry_id FROM finance.journal_lines f
  WHERE f.org_id = (SELECT public.auth_org_id())
    AND f.account_id = ANY (ARRAY(SELECT x.id FROM accounts x WHERE x.kind IN ('investing', 'financing')))),
entries AS (
  -- the entries split (finance.cash_flow_split) that moved cash: what their cash paid of their investing and financing lines
  SELECT s.org_id, s.entry_id, s.entry_date, min(s.in_cash) AS in_cash, min(s.out_cash) AS out_cash, min(s.base_only) AS base_only,
    coalesce(sum(s.cash_in) FILTER (WHERE s.kind = 'investing'), 0) AS inv_in, coalesce(sum(s.cash_in) FILTER (WHERE s.kind = 'financing'), 0) AS fin_in,
    coalesce(sum(s.cash_out) FILTER (WHERE s.kind = 'investing'), 0) AS inv_out, coalesce(sum(s.cash_out) FILTER (WHERE s.kind = 'financing'), 0) AS fin_out,
    bool_or(s.has_operating) AS has_operating, bool_or(s.has_investing) AS has_investing, bool_or(s.has_financing) AS has_financing
  FROM finance.cash_flow_split s
  WHERE s.moved_cash AND s.entry_id NOT IN (SELECT o.id FROM opening o)
  GROUP BY s.org_id, s.entry_id, s.entry_date),
flows AS (
  -- investing and financing: what the cash paid of their lines; operating: the rest of the entry's cash
  -- (in the lines' scale, as the other amounts: the pro-rata parts are rounded to the minor units)
  SELECT e.org_id, date_trunc('month', e.entry_date)::date AS month, a.activity, a.cash_in::numeric(20, 4), a.cash_out::numeric(20, 4)
  FROM entries e
  CROSS JOIN LATERAL (VALUES
    ('operating', e.in_cash - e.inv_in - e.fin_in + greatest(e.base_only, 0), e.out_cash - e.inv_out - e.fin_out + greatest(-e.base_only, 0), e.has_operating),
    ('investing', e.inv_in, e.inv_out, e.has_investing),
    ('financing', e.fin_in, e.fin_out, e.has_financing)) a(activity, cash_in, cash_out, has_lines)
  WHERE a.has_lines OR a.cash_in <> 0 OR a.cash_out <> 0
  UNION ALL
  -- an entry that moved cash (a cash line with an amount in its own currency) without investing or financing lines:
  -- each non-cash line (operating) explains that much of the cash change (the entry balances); per line, so that a
  -- filter on month reaches the lines (the entries: one hashed set, those that moved cash less those to split)
  SELECT l.org_id, date_trunc('month', l.entry_date)::date, 'operating', greatest(l.base_credit - l.base_debit, 0), greatest(l.base_debit - l.base_credit, 0)
  FROM finance.journal_lines l
  JOIN accounts x ON x.id = l.account_id
  WHERE l.org_id = (SELECT public.auth_org_id()) AND x.kind <> 'cash'
    AND l.entry_id IN (
      SELECT c.entry_id FROM finance.journal_lines c
      WHERE c.org_id = (SELECT public.auth_org_id()) AND c.account_id = ANY (ARRAY(SELECT x.id FROM accounts x WHERE x.kind = 'cash')) AND (c.debit <> 0 OR c.credit <> 0)
      EXCEPT
      SELECT s.entry_id FROM split_entries s
      EXCEPT
      SELECT o.id FROM opening o)
  UNION ALL
  -- the change of cash accounts' base value without any amount in their currency: revaluations and their reversals
  SELECT l.org_id, date_trunc('month', l.entry_date)::date, 'exchange_rate_effect', greatest(l.base_debit - l.base_credit, 0), greatest(l.base_credit - l.base_debit, 0)
  FROM finance.journal_lines l
  JOIN accounts x ON x.id = l.account_id
  WHERE l.org_id = (SELECT public.auth_org_id()) AND x.kind = 'cash' AND l.debit = 0 AND l.credit = 0
    AND l.entry_id NOT IN (SELECT o.id FROM opening o))
SELECT f.org_id, f.month, f.activity, s.base_currency,
  sum(f.cash_in) AS cash_in, sum(f.cash_out) AS cash_out, sum(f.cash_in - f.cash_out) AS net_cash
FROM flows f JOIN finance.settings s ON s.org_id = f.org_id
GROUP BY f.org_id, f.month, f.activity, s.base_currency;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211002550_cash_flow_view_without_opening_balances', '1ba9ccace8205b0ee2124a4d867f6199df80a4092084fd929b5284f3c41ee596', 0)
  ON CONFLICT (name) DO NOTHING;
