-- finance.cash_flow_split (20270210630200) found the entries to split (split_entries: those with an investing or
-- financing line) over the whole organization: a filter on entry_date reaches the lines' windows (partitioned by entry and
-- entry_date) but not that step, a range on a join key not being carried to the other side. The report's split of one
-- month read every such entry of the organization and then their lines (by entry, the date filtered after): 277 -> 534 ms
-- on its author's measure. The split is now finance.cash_flow_split_between(p_from, p_to), the same query with the range
-- on both steps (split_entries reads the investing and financing accounts' index over the range; the lines, those of the
-- range); GET /ledger/reports/cash-flow reads it over its range, and finance.cash_flow_split is it over open bounds
-- (-infinity, infinity), so the rule stays defined once and semantic.v_cash_flow reads it as before. The function is SQL,
-- STABLE, security invoker and without SET clauses so that the planner inlines it (into the view as into the report's
-- query): a filter on the view (the month of semantic.v_cash_flow) still reaches the lines before their windows, and
-- row-level security of the caller's organization applies as on the tables. Same rules and rounding, same answers: an
-- entry is split whole or not at all (its lines share its entry_date, and every window is partitioned by entry).
-- Measured on 211,375 generated lines of one organization (89,000 entries over a year, 3 in 8 with investing or
-- financing lines), old (20270210630200) and new alternated, medians of 10 (wall time, 2 cores at load ~13: +-40%):
-- the report's split of one month 1,369 -> 486 ms (buffers 142,404 -> 12,591: 3,782 investing and financing lines and
-- 8,508 lines of March read instead of 44,500 and 100,125); the year and semantic.v_cash_flow (month and whole) keep
-- their plans and buffers (the year: 1,814 -> 2,262 ms, and 2,716 -> 2,659 with the order reversed, noise).

CREATE FUNCTION finance.cash_flow_split_between(p_from date, p_to date)
RETURNS TABLE (org_id uuid, entry_id uuid, entry_date date, account_id uuid, kind text, moved_cash boolean, in_cash numeric, out_cash numeric,
  base_only numeric, has_operating boolean, has_investing boolean, has_financing boolean, cash_in numeric, cash_out numeric, non_cash numeric,
  disclosed numeric, adjustment numeric)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
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
split_entries AS (
  -- the entries to split in [p_from, p_to]: those with a line on an investing or financing account (a semi-join on those
  -- lines, not a window over every line of the organization; the account index's range on entry_date)
  SELECT DISTINCT f.entry_id FROM finance.journal_lines f
  WHERE f.org_id = (SELECT public.auth_org_id())
    AND f.account_id = ANY (ARRAY(SELECT x.id FROM accounts x WHERE x.kind IN ('investing', 'financing')))
    AND f.entry_date BETWEEN p_from AND p_to),
lines AS (
  -- per entry to split and account: base debits and credits of the lines with an amount (d, c), and what the lines
  -- without one moved on non-cash accounts (base_only, credit-positive); then the entry's totals on each (one window
  -- over the entry). Every window and grouping from here keeps entry_date (the entry's), so that a filter on month
  -- reaches the lines before them; all windows are the same (one sort).
  SELECT l.*,
    bool_or(l.cash_amount) OVER e AS moved_cash,
    coalesce(sum(l.d) FILTER (WHERE l.kind = 'cash') OVER e, 0) AS r, coalesce(sum(l.c) FILTER (WHERE l.kind = 'cash') OVER e, 0) AS p,
    coalesce(sum(l.c) FILTER (WHERE l.kind <> 'cash') OVER e, 0) AS other_c, coalesce(sum(l.d) FILTER (WHERE l.kind <> 'cash') OVER e, 0) AS other_d,
    coalesce(max(l.d + l.c) FILTER (WHERE l.kind = 'cash') OVER e, 0) AS biggest,
    coalesce(sum(l.c) FILTER (WHERE l.kind = 'investing' AND l.c > 0) OVER e, 0) AS book,
    coalesce(sum(l.c) FILTER (WHERE l.kind IN ('investing', 'financing') AND l.c > 0) OVER e, 0) AS credit_total,
    coalesce(sum(l.d) FILTER (WHERE l.kind IN ('investing', 'financing') AND l.d > 0) OVER e, 0) AS debit_total,
    coalesce(bool_or(l.kind = 'operating' AND l.c > 0) OVER e, false) AS operating_credit,
    coalesce(bool_or(l.kind = 'operating' AND l.d > 0) OVER e, false) AS operating_debit,
    coalesce(sum(l.c - l.d) FILTER (WHERE l.kind = 'income') OVER e, 0) AS income,
    coalesce(sum(l.c - l.d) FILTER (WHERE l.kind = 'fx') OVER e, 0) AS fx,
    sum(l.base_only) OVER e AS entry_base_only,
    bool_or(l.kind IN ('operating', 'income', 'fx')) OVER e AS has_operating,
    bool_or(l.kind = 'investing') OVER e AS has_investing, bool_or(l.kind = 'financing') OVER e AS has_financing,
    -- the greatest account id (as text in the C collation: the order of uuids) of each kind of line, the one that takes
    -- the rest of a pro-rata share (as the report's prorate)
    max(l.account_id::text COLLATE "C") FILTER (WHERE l.kind = 'investing' AND l.c > 0) OVER e AS last_investing_credit,
    max(l.account_id::text COLLATE "C") FILTER (WHERE l.kind = 'financing' AND l.c > 0) OVER e AS last_financing_credit,
    max(l.account_id::text COLLATE "C") FILTER (WHERE l.kind IN ('investing', 'financing') AND l.d > 0) OVER e AS last_debit,
    max(l.account_id::text COLLATE "C") FILTER (WHERE l.kind = 'income' AND l.c <> l.d) OVER e AS last_income,
    max(l.account_id::text COLLATE "C") FILTER (WHERE l.kind = 'fx' AND l.c <> l.d) OVER e AS last_fx
  FROM (
    SELECT l.org_id, l.entry_id, l.entry_date, l.account_id, l.kind, (SELECT min(x.mu) FROM accounts x) AS mu,
      coalesce(sum(l.base_debit) FILTER (WHERE l.debit <> 0 OR l.credit <> 0), 0) AS d,
      coalesce(sum(l.base_credit) FILTER (WHERE l.debit <> 0 OR l.credit <> 0), 0) AS c,
      coalesce(sum(l.base_credit - l.base_debit) FILTER (WHERE l.debit = 0 AND l.credit = 0 AND l.kind <> 'cash'), 0) AS base_only,
      bool_or(l.kind = 'cash' AND (l.debit <> 0 OR l.credit <> 0)) AS cash_amount
    FROM (
      -- the account's kind looked up per line rather than joined: with nested loops allowed (a session's defaults), the
      -- planner, which takes the entries' array for a few, joined each account to a scan of all of them (6 s at 450,000)
      SELECT l.*, (SELECT x.kind FROM accounts x WHERE x.id = l.account_id) AS kind
      FROM finance.journal_lines l
      WHERE l.org_id = (SELECT public.auth_org_id()) AND l.entry_id = ANY (ARRAY(SELECT s.entry_id FROM split_entries s))
        AND l.entry_date BETWEEN p_from AND p_to) l
    GROUP BY l.org_id, l.entry_id, l.entry_date, l.account_id, l.kind) l
  WINDOW e AS (PARTITION BY l.entry_id, l.entry_date)),
totals AS (
  SELECT l.org_id, l.entry_id, l.entry_date, l.account_id, l.kind, l.mu, l.c, l.d, l.debit_total, l.credit_total, l.entry_base_only,
    l.moved_cash, l.has_operating, l.has_investing, l.has_financing,
    l.in_cash, l.out_cash, l.gain, l.gain_line, l.fx_result, l.credit_line, l.debit_line, l.fx, l.income_line, l.fx_line,
    l.gain_line AND l.account_id::text COLLATE "C" = CASE WHEN l.book > 0 THEN l.last_investing_credit ELSE l.last_financing_credit END AS last_gain,
    l.credit_line AND l.account_id::text COLLATE "C" = greatest(l.last_investing_credit, l.last_financing_credit) AS last_credit,
    l.debit_line AND l.account_id::text COLLATE "C" = l.last_debit AS last_debit,
    -- the income line of the greatest account id takes the rest of the realized gain's adjustment, the fx line that of the
    -- realized exchange result's
    l.income_line AND l.account_id::text COLLATE "C" = CASE WHEN l.book > 0 AND l.fx_on_disposals THEN greatest(l.last_income, l.last_fx)
      WHEN l.book > 0 THEN l.last_income ELSE l.last_fx END AS last_income_line,
    l.fx_line AND l.account_id::text COLLATE "C" = l.last_fx AS last_fx_line,
    CASE WHEN l.gain_line THEN round(l.gain * l.c / l.gain_base, l.mu) ELSE 0 END AS gain_part,
    CASE WHEN l.debit_line THEN round(l.fx_result * l.d / l.debit_total, l.mu) ELSE 0 END AS fx_part,
    least(l.in_cash, l.credit_total + l.gain) AS cash_in_total, least(l.out_cash, l.debit_total - l.fx_result) AS cash_out_total,
    l.realized, l.realized_fx,
    -- first shares of the realized gain or loss (over the gain lines, by their credit; over the income lines, negated, by
    -- their net credit) and of the realized exchange result (over the debit lines, by their debit; over the fx lines,
    -- negated); the last line of each takes the rest below
    CASE WHEN l.gain_line THEN round(l.realized * l.c / l.gain_base, l.mu) ELSE 0 END AS realized_part,
    CASE WHEN l.debit_line THEN round(l.realized_fx * l.d / l.debit_total, l.mu) ELSE 0 END AS realized_fx_part,
    CASE WHEN l.income_line THEN coalesce(round(-l.realized * (l.c - l.d) / nullif(l.income_total, 0), l.mu), 0) ELSE 0 END AS income_adjustment,
    CASE WHEN l.fx_line THEN coalesce(round(-l.realized_fx * (l.c - l.d) / nullif(l.fx, 0), l.mu), 0) ELSE 0 END AS fx_adjustment
  FROM (
    SELECT l.*,
      -- the part of the gain or loss realized in cash: as much of it as of the proceeds (what the cash paid of what the
      -- credit lines ask); the same of a settlement's exchange result (of what the debit lines ask)
      CASE WHEN least(l.in_cash, l.credit_total + l.gain) = 0 THEN 0 WHEN least(l.in_cash, l.credit_total + l.gain) = l.credit_total + l.gain THEN l.gain
        ELSE round(l.gain * least(l.in_cash, l.credit_total + l.gain) / (l.credit_total + l.gain), l.mu) END AS realized,
      CASE WHEN least(l.out_cash, l.debit_total - l.fx_result) = 0 THEN 0 WHEN least(l.out_cash, l.debit_total - l.fx_result) = l.debit_total - l.fx_result THEN l.fx_result
        ELSE round(l.fx_result * least(l.out_cash, l.debit_total - l.fx_result) / (l.debit_total - l.fx_result), l.mu) END AS realized_fx
    FROM (
      SELECT l.*,
        -- cash received and paid less the least transfer between cash accounts the entry allows (at most R, P, and what
        -- the cash accounts other than each one moved)
        l.r - l.transfer AS in_cash, l.p - l.transfer AS out_cash,
        -- the lines whose proceeds carry the entry's gain or loss: the disposals (their gain: the revenue and expense
        -- lines, the fx ones when the entry settles nothing else: fx_on_disposals), or, without investing or financing
        -- debit lines nor disposals, the financing credit lines when they are all the entry settles on its credit side
        -- (the fx lines: a repayment reversed; review r1); a loss at most their total
        CASE WHEN l.book > 0 THEN l.kind = 'investing' AND l.c > 0 ELSE l.fx_on_credits AND l.kind = 'financing' AND l.c > 0 END AS gain_line,
        CASE WHEN l.book > 0 THEN l.book ELSE l.credit_total END AS gain_base,
        CASE WHEN l.book > 0 THEN greatest(-l.book, l.income + CASE WHEN l.fx_on_disposals THEN l.fx ELSE 0 END)
          WHEN l.fx_on_credits THEN greatest(-l.credit_total, l.fx) ELSE 0 END AS gain,
        -- the lines the gain or loss comes from (its operating adjustment), and their net credit
        CASE WHEN l.book > 0 THEN (l.kind = 'income' OR (l.kind = 'fx' AND l.fx_on_disposals)) AND l.c <> l.d
          ELSE l.fx_on_credits AND l.kind = 'fx' AND l.c <> l.d END AS income_line,
        CASE WHEN l.book > 0 THEN l.income + CASE WHEN l.fx_on_disposals THEN l.fx ELSE 0 END WHEN l.fx_on_credits THEN l.fx ELSE 0 END AS income_total,
        -- a settlement's realized exchange gain (a loss negative; a gain at most the debit lines' total), and its lines
        CASE WHEN l.fx_on_debits THEN least(l.debit_total, l.fx) ELSE 0 END AS fx_result,
        l.fx_on_debits AND l.kind = 'fx' AND l.c <> l.d AS fx_line,
        l.kind IN ('investing', 'financing') AND l.c > 0 AS credit_line,
        l.kind IN ('investing', 'financing') AND l.d > 0 AS debit_line
      FROM (
        SELECT l.*, least(greatest(0, l.r - l.other_c, l.p - l.other_d), l.r, l.p, l.r + l.p - l.biggest) AS transfer,
          -- the realized exchange result is the investing and financing debit lines' settlement when they are all the
          -- entry settles on its debit side (no operating debit line: a foreign-currency bill paid with them keeps it;
          -- review r1)
          l.debit_total > 0 AND NOT l.operating_debit AS fx_on_debits,
          l.debit_total = 0 AND l.book = 0 AND l.credit_total > 0 AND NOT l.operating_credit AS fx_on_credits,
          -- a disposal's gain takes the exchange result only when the entry settles no operating line either (a
          -- foreign-currency bill paid or receivable collected with it: the exchange result is that settlement's)
          NOT (l.debit_total > 0 AND NOT l.operating_debit) AND NOT l.operating_debit AND NOT l.operating_credit AS fx_on_disposals
        FROM lines l
        -- from here on, the investing and financing lines (each entry here has one) and the revenue and expense lines
        -- (their adjustments), with the entry's totals on each
        WHERE l.kind IN ('investing', 'financing', 'income', 'fx')) l) l) l),
asks AS (
  -- what each investing and financing line asks of the cash: a credit line its face value plus its share of the gain
  -- (gain lines only), a debit line its face value less its share of the exchange gain; shares pro rata, rounded, the
  -- line of the greatest account id taking the rest
  SELECT l.*, sum(greatest(0, l.ask_in)) FILTER (WHERE l.credit_line) OVER e AS asked_in, sum(greatest(0, l.ask_out)) FILTER (WHERE l.debit_line) OVER e AS asked_out
  FROM (
    SELECT l.*,
      CASE WHEN l.credit_line THEN l.c + CASE WHEN l.last_gain THEN l.gain - l.gain_parts + l.gain_part ELSE l.gain_part END END AS ask_in,
      CASE WHEN l.debit_line THEN l.d - CASE WHEN l.last_debit THEN l.fx_result - l.fx_parts + l.fx_part ELSE l.fx_part END END AS ask_out
    FROM (
      SELECT l.*, sum(l.gain_part) OVER e AS gain_parts, sum(l.fx_part) OVER e AS fx_parts
      FROM totals l
      WINDOW e AS (PARTITION BY l.entry_id, l.entry_date)) l) l
  WINDOW e AS (PARTITION BY l.entry_id, l.entry_date)),
paid AS (
  -- what the cash paid of each line, pro rata to what the lines of its side ask, and the sums of the first shares, for
  -- the last line of each to take the rest
  SELECT l.*, sum(l.in_part) OVER e AS in_parts, sum(l.out_part) OVER e AS out_parts,
    sum(l.realized_part) OVER e AS realized_parts, sum(l.realized_fx_part) OVER e AS realized_fx_parts,
    sum(l.income_adjustment) OVER e AS income_adjustments, sum(l.fx_adjustment) OVER e AS fx_adjustments
  FROM (
    SELECT l.*,
      CASE WHEN l.credit_line THEN coalesce(round(l.cash_in_total * greatest(0, l.ask_in) / nullif(l.asked_in, 0), l.mu), 0) ELSE 0 END AS in_part,
      CASE WHEN l.debit_line THEN coalesce(round(l.cash_out_total * greatest(0, l.ask_out) / nullif(l.asked_out, 0), l.mu), 0) ELSE 0 END AS out_part
    FROM asks l) l
  WINDOW e AS (PARTITION BY l.entry_id, l.entry_date)),
parts AS (
  SELECT l.*,
    l.in_part + CASE WHEN l.last_credit THEN l.cash_in_total - l.in_parts ELSE 0 END AS cash_in,
    l.out_part + CASE WHEN l.last_debit THEN l.cash_out_total - l.out_parts ELSE 0 END AS cash_out,
    l.realized_part + CASE WHEN l.last_gain THEN l.realized - l.realized_parts ELSE 0 END AS realized_share,
    l.realized_fx_part + CASE WHEN l.last_debit THEN l.realized_fx - l.realized_fx_parts ELSE 0 END AS realized_fx_share
  FROM paid l)
SELECT l.org_id, l.entry_id, l.entry_date, l.account_id, l.kind, l.moved_cash, l.in_cash, l.out_cash, l.entry_base_only AS base_only,
  l.has_operating, l.has_investing, l.has_financing,
  l.cash_in::numeric(20, 4) AS cash_in, l.cash_out::numeric(20, 4) AS cash_out,
  (CASE WHEN l.credit_line THEN l.c - l.cash_in ELSE 0 END + CASE WHEN l.debit_line THEN l.cash_out - l.d ELSE 0 END)::numeric(20, 4) AS non_cash,
  (CASE WHEN l.credit_line THEN l.c - l.cash_in + l.realized_share ELSE 0 END
    + CASE WHEN l.debit_line THEN l.cash_out - l.d + l.realized_fx_share ELSE 0 END)::numeric(20, 4) AS disclosed,
  (l.income_adjustment + CASE WHEN l.last_income_line THEN -l.realized - l.income_adjustments ELSE 0 END
    + l.fx_adjustment + CASE WHEN l.last_fx_line THEN -l.realized_fx - l.fx_adjustments ELSE 0 END)::numeric(20, 4) AS adjustment
FROM parts l
$$;

REVOKE EXECUTE ON FUNCTION finance.cash_flow_split_between(date, date) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.cash_flow_split_between(date, date) TO authenticated, omnizen_analyst, service_role;
COMMENT ON FUNCTION finance.cash_flow_split_between(date, date) IS 'The cash-flow statement''s split (finance.cash_flow_split) of the entries '
  'dated in [p_from, p_to]: read by GET /ledger/reports/cash-flow over its range; finance.cash_flow_split is it over open bounds. Inlined by the planner '
  '(SQL, STABLE, security invoker, no SET clause).';

-- the view: the function over open bounds (same columns and types; its owner and grants kept)
CREATE OR REPLACE VIEW finance.cash_flow_split WITH (security_invoker = true) AS
SELECT s.org_id, s.entry_id, s.entry_date, s.account_id, s.kind, s.moved_cash, s.in_cash, s.out_cash, s.base_only,
  s.has_operating, s.has_investing, s.has_financing,
  s.cash_in::numeric(20, 4) AS cash_in, s.cash_out::numeric(20, 4) AS cash_out, s.non_cash::numeric(20, 4) AS non_cash,
  s.disclosed::numeric(20, 4) AS disclosed, s.adjustment::numeric(20, 4) AS adjustment
FROM finance.cash_flow_split_between('-infinity'::date, 'infinity'::date) s;
COMMENT ON VIEW finance.cash_flow_split IS 'The cash-flow statement''s split of each entry with an investing or financing line, per account: '
  'what its cash received and paid of the line (cash_in, cash_out: its investing and financing lines first, a disposal at its proceeds, a line '
  'settled with a realized exchange result at the cash paid, pro rata in the base currency''s minor units), the part no cash paid (non_cash, '
  'credit-positive), the same with the realized gain or loss (disclosed: nonCashInvestingAndFinancing) and a revenue or expense line''s '
  'operating adjustment (adjustment: the realized gain negative, loss positive). finance.cash_flow_split_between over open bounds; read by '
  'semantic.v_cash_flow (GET /ledger/reports/cash-flow reads the function over its range).';
