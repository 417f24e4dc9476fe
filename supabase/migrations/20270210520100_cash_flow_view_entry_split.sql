-- Generated from prisma/migrations/20270210520100_cash_flow_view_entry_split/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- semantic.v_cash_flow applies the cash-flow report's split of an entry that mixes cash with a non-cash part
-- (ReportsService.cashFlow, splitEntryCash; reviews r3, r8, r12): it counted every line of an entry that moved cash in
-- full for its activity (equipment paid 2,000 in cash and 8,000 by a loan: investing -10,000, financing +8,000), the
-- report only what the cash paid. Per entry that moved cash, and per account its base debits and credits (lines with an
-- amount), as the report:
--  * cash received R (the cash lines' debits) and cash paid P (their credits) apart, less the least transfer between
--    cash accounts the entry allows (R beyond the other lines' credits, or P beyond their debits; at most R, P, and what
--    the cash accounts other than each one moved), which is no cash flow;
--  * R pays the investing and financing credit lines first: a financing line at face value, an investing one (a
--    disposal) at its proceeds, its book value plus its share of the entry's gain (revenue and expense lines; a loss at
--    most the book value), pro rata when R is less (cash_in of the activity);
--  * P pays the investing and financing debit lines first, at face value less the entry's realized exchange gain (plus
--    its loss: the lines on the settings' fx_gain_account_id and fx_loss_account_id, review r12), pro rata when P is less
--    (cash_out of the activity); without such debit lines those fx lines are part of a disposal's gain or loss;
--  * the rest of R and P is operating, with what the entry's lines without an amount in their currency moved.
-- Each pro-rata part is rounded to the base currency's minor units, the line of the greatest account id taking the
-- rest, as in the report. Operating, investing and financing of an entry add up to what the view counted before (the
-- change of cash), and their sums over whole months are the report's operating.total, investing.total and
-- financing.total. An activity has a row for a month when an entry of the month that moved cash has a line of it or
-- moved cash for it (as before, plus operating for the part of R or P no line of it explains, e.g. a loan repaid with
-- its exchange loss). exchange_rate_effect is unchanged.
-- Cost: the organization's lines are read once (joined to the accounts by hash, not probed per entry and account), and
-- only entries with an investing or financing line go through the split's windows (per entry, no join of the entry's
-- totals back to its lines); the others are counted per line as before. EXPLAIN ANALYZE, one organization, a synthetic
-- mix where a quarter of the entries touch investing or financing accounts (mixed purchases, disposals, loans repaid
-- with exchange results, transfers), median of 5: 5,000 entries (11,750 lines) 106 ms before, 157 ms now; 20,000
-- entries (47,000 lines) 415 ms before, 531 ms now. A first draft that joined per-entry totals back to the lines took
-- 6.2-6.9 s on the 5,000 (nested loops from the CTEs' row estimates).
-- Same columns (CREATE OR REPLACE keeps the owner, grants and column comments); still security_invoker, so the
-- querying role's policies on finance.* apply as before.

CREATE OR REPLACE VIEW semantic.v_cash_flow WITH (security_invoker = true) AS
WITH RECURSIVE chain AS (
  -- each account and its ancestors, one level at a time, until one carries a class (the chart is at most 32 deep)
  SELECT a.org_id, a.id, a.parent_id AS up, a.cash_flow_class AS class, 1 AS depth
  FROM finance.accounts a WHERE a.org_id = public.auth_org_id()
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
  WHERE a.org_id = public.auth_org_id()),
journal AS (
  -- the organization's lines with their account's kind, and per entry: whether it moved cash (a cash line with an
  -- amount in its own currency) and whether it has investing or financing lines (only those need the split)
  SELECT l.*, bool_or(l.kind = 'cash' AND l.amount) OVER e AS moved_cash, bool_or(l.kind IN ('investing', 'financing')) OVER e AS split
  FROM (
    SELECT l.org_id, l.entry_id, l.entry_date, l.account_id, x.kind, x.mu, l.base_debit, l.base_credit, l.debit <> 0 OR l.credit <> 0 AS amount
    FROM finance.journal_lines l
    JOIN accounts x ON x.org_id = l.org_id AND x.id = l.account_id
    WHERE l.org_id = public.auth_org_id()) l
  WINDOW e AS (PARTITION BY l.entry_id)),
lines AS (
  -- per entry to split and account: base debits and credits of the lines with an amount (d, c), and what the lines
  -- without one moved on non-cash accounts (base_only, credit-positive); then the entry's totals on each (window over
  -- the entry, so that no join of the entry's totals back to its lines is needed)
  SELECT l.*,
    coalesce(sum(l.d) FILTER (WHERE l.kind = 'cash') OVER e, 0) AS r, coalesce(sum(l.c) FILTER (WHERE l.kind = 'cash') OVER e, 0) AS p,
    coalesce(sum(l.c) FILTER (WHERE l.kind <> 'cash') OVER e, 0) AS other_c, coalesce(sum(l.d) FILTER (WHERE l.kind <> 'cash') OVER e, 0) AS other_d,
    coalesce(max(l.d + l.c) FILTER (WHERE l.kind = 'cash') OVER e, 0) AS biggest,
    coalesce(sum(l.c) FILTER (WHERE l.kind = 'investing' AND l.c > 0) OVER e, 0) AS book,
    coalesce(sum(l.c) FILTER (WHERE l.kind IN ('investing', 'financing') AND l.c > 0) OVER e, 0) AS credit_total,
    coalesce(sum(l.d) FILTER (WHERE l.kind IN ('investing', 'financing') AND l.d > 0) OVER e, 0) AS debit_total,
    coalesce(sum(l.c - l.d) FILTER (WHERE l.kind = 'income') OVER e, 0) AS income,
    coalesce(sum(l.c - l.d) FILTER (WHERE l.kind = 'fx') OVER e, 0) AS fx,
    sum(l.base_only) OVER e AS entry_base_only
  FROM (
    SELECT l.org_id, l.entry_id, min(l.entry_date) AS entry_date, l.account_id, l.kind, l.mu,
      coalesce(sum(l.base_debit) FILTER (WHERE l.amount), 0) AS d,
      coalesce(sum(l.base_credit) FILTER (WHERE l.amount), 0) AS c,
      coalesce(sum(l.base_credit - l.base_debit) FILTER (WHERE NOT l.amount AND l.kind <> 'cash'), 0) AS base_only
    FROM journal l
    WHERE l.moved_cash AND l.split
    GROUP BY l.org_id, l.entry_id, l.account_id, l.kind, l.mu) l
  WINDOW e AS (PARTITION BY l.entry_id)),
totals AS (
  SELECT l.*,
    -- cash received and paid less the least transfer between cash accounts the entry allows (at most R, P, and what the
    -- cash accounts other than each one moved)
    l.r - l.transfer AS in_cash, l.p - l.transfer AS out_cash,
    -- a disposal's gain (a loss at most its book value): the revenue and expense lines, the fx ones too without debit lines
    CASE WHEN l.book > 0 THEN greatest(-l.book, l.income + CASE WHEN l.debit_total > 0 THEN 0 ELSE l.fx END) ELSE 0 END AS gain,
    -- a settlement's realized exchange gain (a loss negative; a gain at most the debit lines' total)
    least(l.debit_total, l.fx) AS fx_result,
    l.kind = 'investing' AND l.c > 0 AS disposal,
    l.kind IN ('investing', 'financing') AND l.c > 0 AS credit_line,
    l.kind IN ('investing', 'financing') AND l.d > 0 AS debit_line
  FROM (SELECT l.*, least(greatest(0, l.r - l.other_c, l.p - l.other_d), l.r, l.p, l.r + l.p - l.biggest) AS transfer FROM lines l) l),
asks AS (
  -- what each investing and financing line asks of the cash: a credit line its face value plus its share of the gain
  -- (disposals only), a debit line its face value less its share of the exchange gain; shares pro rata, rounded, the
  -- line of the greatest account id taking the rest
  SELECT l.*,
    CASE WHEN l.credit_line THEN l.c + CASE WHEN NOT l.disposal THEN 0 WHEN l.gain_rank = 1 THEN l.gain - l.gain_parts + l.gain_part ELSE l.gain_part END END AS ask_in,
    CASE WHEN l.debit_line THEN l.d - CASE WHEN l.fx_rank = 1 THEN l.fx_result - l.fx_parts + l.fx_part ELSE l.fx_part END END AS ask_out,
    least(l.in_cash, l.credit_total + l.gain) AS cash_in_total, least(l.out_cash, l.debit_total - l.fx_result) AS cash_out_total
  FROM (
    SELECT l.*,
      sum(l.gain_part) OVER (PARTITION BY l.entry_id, l.disposal) AS gain_parts,
      row_number() OVER (PARTITION BY l.entry_id, l.disposal ORDER BY l.account_id DESC) AS gain_rank,
      sum(l.fx_part) OVER (PARTITION BY l.entry_id, l.debit_line) AS fx_parts,
      row_number() OVER (PARTITION BY l.entry_id, l.debit_line ORDER BY l.account_id DESC) AS fx_rank
    FROM (
      SELECT l.*,
        CASE WHEN l.disposal THEN round(l.gain * l.c / l.book, l.mu) ELSE 0 END AS gain_part,
        CASE WHEN l.debit_line THEN round(l.fx_result * l.d / l.debit_total, l.mu) ELSE 0 END AS fx_part
      FROM totals l) l) l),
paid AS (
  -- what the cash paid of each line, pro rata to what the lines of its side ask, the last line taking the rest
  SELECT l.*,
    CASE WHEN l.in_rank = 1 THEN l.cash_in_total - sum(l.in_part) OVER (PARTITION BY l.entry_id, l.credit_line) + l.in_part ELSE l.in_part END AS paid_in,
    CASE WHEN l.out_rank = 1 THEN l.cash_out_total - sum(l.out_part) OVER (PARTITION BY l.entry_id, l.debit_line) + l.out_part ELSE l.out_part END AS paid_out
  FROM (
    SELECT l.*,
      CASE WHEN l.credit_line THEN coalesce(round(l.cash_in_total * greatest(0, l.ask_in)
        / nullif(sum(greatest(0, l.ask_in)) OVER (PARTITION BY l.entry_id, l.credit_line), 0), l.mu), 0) END AS in_part,
      CASE WHEN l.credit_line THEN row_number() OVER (PARTITION BY l.entry_id, l.credit_line ORDER BY l.account_id DESC) END AS in_rank,
      CASE WHEN l.debit_line THEN coalesce(round(l.cash_out_total * greatest(0, l.ask_out)
        / nullif(sum(greatest(0, l.ask_out)) OVER (PARTITION BY l.entry_id, l.debit_line), 0), l.mu), 0) END AS out_part,
      CASE WHEN l.debit_line THEN row_number() OVER (PARTITION BY l.entry_id, l.debit_line ORDER BY l.account_id DESC) END AS out_rank
    FROM asks l) l),
entries AS (
  SELECT l.org_id, l.entry_id, min(l.entry_date) AS entry_date, min(l.in_cash) AS in_cash, min(l.out_cash) AS out_cash,
    min(l.entry_base_only) AS base_only,
    coalesce(sum(l.paid_in) FILTER (WHERE l.credit_line AND l.kind = 'investing'), 0) AS inv_in,
    coalesce(sum(l.paid_out) FILTER (WHERE l.debit_line AND l.kind = 'investing'), 0) AS inv_out,
    coalesce(sum(l.paid_in) FILTER (WHERE l.credit_line AND l.kind = 'financing'), 0) AS fin_in,
    coalesce(sum(l.paid_out) FILTER (WHERE l.debit_line AND l.kind = 'financing'), 0) AS fin_out,
    bool_or(l.kind IN ('operating', 'income', 'fx')) AS has_operating,
    bool_or(l.kind = 'investing') AS has_investing, bool_or(l.kind = 'financing') AS has_financing
  FROM paid l
  GROUP BY l.org_id, l.entry_id),
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
  -- an entry that moved cash without investing or financing lines: each non-cash line (operating) explains that much of
  -- the cash change (the entry balances)
  SELECT l.org_id, date_trunc('month', l.entry_date)::date, 'operating', greatest(l.base_credit - l.base_debit, 0), greatest(l.base_debit - l.base_credit, 0)
  FROM journal l
  WHERE l.moved_cash AND NOT l.split AND l.kind <> 'cash'
  UNION ALL
  -- the change of cash accounts' base value without any amount in their currency: revaluations and their reversals
  SELECT l.org_id, date_trunc('month', l.entry_date)::date, 'exchange_rate_effect', greatest(l.base_debit - l.base_credit, 0), greatest(l.base_credit - l.base_debit, 0)
  FROM finance.journal_lines l
  JOIN accounts x ON x.org_id = l.org_id AND x.id = l.account_id
  WHERE l.org_id = public.auth_org_id() AND x.kind = 'cash' AND l.debit = 0 AND l.credit = 0)
SELECT f.org_id, f.month, f.activity, s.base_currency,
  sum(f.cash_in) AS cash_in, sum(f.cash_out) AS cash_out, sum(f.cash_in - f.cash_out) AS net_cash
FROM flows f JOIN finance.settings s ON s.org_id = f.org_id
GROUP BY f.org_id, f.month, f.activity, s.base_currency;

COMMENT ON VIEW semantic.v_cash_flow IS 'Cash in and out per month by activity (direct method), from the journal entries that moved cash: '
  'an account is cash when its cash_flow_class, or else that of its nearest ancestor group that has one, is cash; the activity is the other '
  'accounts'' class found the same way (revenue and expense: operating; unclassified: equity financing, else operating), and '
  'exchange_rate_effect is the revaluation of foreign-currency cash (FX revaluations and their reversals), which moved no cash. '
  'An entry that mixes cash with a non-cash part is split as in the cash-flow report: its cash received and its cash paid (less what went '
  'between its cash accounts) pay its investing and financing lines first, a disposal at its proceeds (book value with its gain or loss), a '
  'line settled with a realized exchange gain or loss at the cash paid, pro rata in the base currency''s minor units; the rest is operating. '
  'Summed over whole months, net_cash per activity is the cash-flow report''s operating.total, investing.total, financing.total and '
  'effectOfExchangeRatesOnCash for those months, and over all activities the change of cash. What of an entry no cash paid (equipment '
  'bought on credit or with a loan, depreciation: IAS 7.43) is no cash flow of any activity, as in the report, which discloses it apart '
  '(nonCashInvestingAndFinancing)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210520100_cash_flow_view_entry_split', 'a020de4e57eb8f9d93b3337dd80df0fd0ab37f87d2ca6ac599b51c809d4d1e7c', 0)
  ON CONFLICT (name) DO NOTHING;
