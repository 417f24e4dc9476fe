-- semantic.v_cash_flow counted the realized exchange result of an entry with a disposal in the disposal's gain whenever
-- it was not the investing and financing debit lines' settlement, also when the entry settled an operating line: a
-- foreign-currency bill paid (or a receivable collected) together with a disposal. The exchange result is that
-- settlement's (IAS 7: operating, where net income holds it), not part of the proceeds: counted there, it raised what
-- the disposal claims of the cash received, taking cash from a loan drawn in the same entry (Dr 1100 1,500, Dr 2100 110 /
-- Cr 1100 100, Cr 1500 1,000, Cr 2300 500, Cr 4300 10: investing 1,003.31 and financing 496.69, now 1,000 and 500), or
-- from operating (Dr 1100 1,110 / Cr 1500 1,000, Cr 1200 100, Cr 4300 10: investing 1,010, now 1,000, operating 110).
-- The exchange result now goes with a disposal only when the entry settles no operating line (as the cash-flow report,
-- ReportsService.splitEntryCash: fxOnDisposals). Otherwise the view of 20270210540100, unchanged (same columns, comment,
-- owner and grants: CREATE OR REPLACE; still security_invoker).

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
split_entries AS (
  -- the entries to split: those with a line on an investing or financing account (a semi-join on those lines, not a
  -- window over every line of the organization)
  SELECT DISTINCT f.entry_id FROM finance.journal_lines f
  WHERE f.org_id = (SELECT public.auth_org_id())
    AND f.account_id = ANY (ARRAY(SELECT x.id FROM accounts x WHERE x.kind IN ('investing', 'financing')))),
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
    max(l.account_id::text COLLATE "C") FILTER (WHERE l.kind IN ('investing', 'financing') AND l.d > 0) OVER e AS last_debit
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
      WHERE l.org_id = (SELECT public.auth_org_id()) AND l.entry_id = ANY (ARRAY(SELECT s.entry_id FROM split_entries s))) l
    GROUP BY l.org_id, l.entry_id, l.entry_date, l.account_id, l.kind) l
  WINDOW e AS (PARTITION BY l.entry_id, l.entry_date)),
totals AS (
  SELECT l.org_id, l.entry_id, l.entry_date, l.account_id, l.kind, l.mu, l.c, l.d, l.debit_total, l.entry_base_only,
    l.has_operating, l.has_investing, l.has_financing,
    l.in_cash, l.out_cash, l.gain, l.gain_line, l.fx_result, l.credit_line, l.debit_line,
    l.gain_line AND l.account_id::text COLLATE "C" = CASE WHEN l.book > 0 THEN l.last_investing_credit ELSE l.last_financing_credit END AS last_gain,
    l.credit_line AND l.account_id::text COLLATE "C" = greatest(l.last_investing_credit, l.last_financing_credit) AS last_credit,
    l.debit_line AND l.account_id::text COLLATE "C" = l.last_debit AS last_debit,
    CASE WHEN l.gain_line THEN round(l.gain * l.c / CASE WHEN l.book > 0 THEN l.book ELSE l.credit_total END, l.mu) ELSE 0 END AS gain_part,
    CASE WHEN l.debit_line THEN round(l.fx_result * l.d / l.debit_total, l.mu) ELSE 0 END AS fx_part,
    least(l.in_cash, l.credit_total + l.gain) AS cash_in_total, least(l.out_cash, l.debit_total - l.fx_result) AS cash_out_total
  FROM (
    SELECT l.*,
      -- cash received and paid less the least transfer between cash accounts the entry allows (at most R, P, and what
      -- the cash accounts other than each one moved)
      l.r - l.transfer AS in_cash, l.p - l.transfer AS out_cash,
      -- the lines whose proceeds carry the entry's gain or loss: the disposals (their gain: the revenue and expense
      -- lines, the fx ones unless they are the debit lines' settlement or the entry settles an operating line), or,
      -- without investing or financing debit lines
      -- nor disposals, the financing credit lines when they are all the entry settles on its credit side (the fx lines:
      -- a repayment reversed; review r1); a loss at most their total
      CASE WHEN l.book > 0 THEN l.kind = 'investing' AND l.c > 0 ELSE l.fx_on_credits AND l.kind = 'financing' AND l.c > 0 END AS gain_line,
      CASE WHEN l.book > 0 THEN greatest(-l.book, l.income + CASE WHEN l.fx_on_debits OR l.operating_debit OR l.operating_credit THEN 0 ELSE l.fx END)
        WHEN l.fx_on_credits THEN greatest(-l.credit_total, l.fx) ELSE 0 END AS gain,
      -- a settlement's realized exchange gain (a loss negative; a gain at most the debit lines' total)
      CASE WHEN l.fx_on_debits THEN least(l.debit_total, l.fx) ELSE 0 END AS fx_result,
      l.kind IN ('investing', 'financing') AND l.c > 0 AS credit_line,
      l.kind IN ('investing', 'financing') AND l.d > 0 AS debit_line
    FROM (
      SELECT l.*, least(greatest(0, l.r - l.other_c, l.p - l.other_d), l.r, l.p, l.r + l.p - l.biggest) AS transfer,
        -- the realized exchange result is the investing and financing debit lines' settlement when they are all the
        -- entry settles on its debit side (no operating debit line: a foreign-currency bill paid with them keeps it;
        -- review r1)
        l.debit_total > 0 AND NOT l.operating_debit AS fx_on_debits,
        l.debit_total = 0 AND l.book = 0 AND l.credit_total > 0 AND NOT l.operating_credit AS fx_on_credits
      FROM lines l
      -- from here on, only the investing and financing lines (each entry here has one), the entry's totals on each
      WHERE l.moved_cash AND l.kind IN ('investing', 'financing')) l) l),
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
  -- what the cash paid of each line, pro rata to what the lines of its side ask (the last line, of the greatest account
  -- id, taking the rest: in entries below)
  SELECT l.*,
    CASE WHEN l.credit_line THEN coalesce(round(l.cash_in_total * greatest(0, l.ask_in) / nullif(l.asked_in, 0), l.mu), 0) ELSE 0 END AS in_part,
    CASE WHEN l.debit_line THEN coalesce(round(l.cash_out_total * greatest(0, l.ask_out) / nullif(l.asked_out, 0), l.mu), 0) ELSE 0 END AS out_part
  FROM asks l),
entries AS (
  SELECT e.*,
    e.inv_in_parts + CASE WHEN e.last_credit_investing THEN e.in_rest ELSE 0 END AS inv_in,
    e.fin_in_parts + CASE WHEN e.last_credit_investing THEN 0 ELSE e.in_rest END AS fin_in,
    e.inv_out_parts + CASE WHEN e.last_debit_investing THEN e.out_rest ELSE 0 END AS inv_out,
    e.fin_out_parts + CASE WHEN e.last_debit_investing THEN 0 ELSE e.out_rest END AS fin_out
  FROM (
    SELECT l.org_id, l.entry_id, l.entry_date, min(l.in_cash) AS in_cash, min(l.out_cash) AS out_cash,
      min(l.entry_base_only) AS base_only,
      coalesce(sum(l.in_part) FILTER (WHERE l.kind = 'investing'), 0) AS inv_in_parts,
      coalesce(sum(l.in_part) FILTER (WHERE l.kind = 'financing'), 0) AS fin_in_parts,
      coalesce(sum(l.out_part) FILTER (WHERE l.kind = 'investing'), 0) AS inv_out_parts,
      coalesce(sum(l.out_part) FILTER (WHERE l.kind = 'financing'), 0) AS fin_out_parts,
      -- what the lines' parts leave of the cash, for the last line of each side
      CASE WHEN bool_or(l.credit_line) THEN min(l.cash_in_total) - sum(l.in_part) ELSE 0 END AS in_rest,
      CASE WHEN bool_or(l.debit_line) THEN min(l.cash_out_total) - sum(l.out_part) ELSE 0 END AS out_rest,
      coalesce(bool_or(l.last_credit AND l.kind = 'investing'), false) AS last_credit_investing,
      coalesce(bool_or(l.last_debit AND l.kind = 'investing'), false) AS last_debit_investing,
      bool_or(l.has_operating) AS has_operating, bool_or(l.has_investing) AS has_investing, bool_or(l.has_financing) AS has_financing
    FROM paid l
    GROUP BY l.org_id, l.entry_id, l.entry_date) e),
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
      SELECT s.entry_id FROM split_entries s)
  UNION ALL
  -- the change of cash accounts' base value without any amount in their currency: revaluations and their reversals
  SELECT l.org_id, date_trunc('month', l.entry_date)::date, 'exchange_rate_effect', greatest(l.base_debit - l.base_credit, 0), greatest(l.base_credit - l.base_debit, 0)
  FROM finance.journal_lines l
  JOIN accounts x ON x.id = l.account_id
  WHERE l.org_id = (SELECT public.auth_org_id()) AND x.kind = 'cash' AND l.debit = 0 AND l.credit = 0)
SELECT f.org_id, f.month, f.activity, s.base_currency,
  sum(f.cash_in) AS cash_in, sum(f.cash_out) AS cash_out, sum(f.cash_in - f.cash_out) AS net_cash
FROM flows f JOIN finance.settings s ON s.org_id = f.org_id
GROUP BY f.org_id, f.month, f.activity, s.base_currency;
