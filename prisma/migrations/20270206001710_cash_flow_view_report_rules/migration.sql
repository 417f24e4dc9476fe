-- semantic.v_cash_flow follows the cash-flow report's rules (ReportsService.cashFlow, GET /ledger/reports/cash-flow):
--  * an account's cash-flow class is its own, else its nearest classified ancestor's (a bank account under the group
--    classed cash is cash); the view read each account's own class only, so such an account counted as operating;
--  * revenue and expense accounts are operating whatever their class (the report's net income);
--  * FX revaluations and their reversals moved no cash. Their lines on cash accounts carry no amount in the account's
--    currency, only a base amount: they are the new activity exchange_rate_effect (the report's
--    effectOfExchangeRatesOnCash), and an entry whose only cash lines are such lines is no cash entry, so the
--    unrealized gains and losses it books (and the revaluation of loans and receivables in the same entry) are no cash
--    flow of any activity (the report adds them back as unrealizedExchangeDifferences).
-- Same columns (CREATE OR REPLACE keeps the grants and comments); the view stays security_invoker.

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
  SELECT a.org_id, a.id,
    a.type NOT IN ('revenue', 'expense') AND k.class IS NOT DISTINCT FROM 'cash' AS is_cash,
    CASE WHEN a.type IN ('revenue', 'expense') THEN 'operating'
      WHEN k.class IN ('operating', 'investing', 'financing') THEN k.class
      WHEN a.type = 'equity' THEN 'financing' ELSE 'operating' END AS activity
  FROM finance.accounts a
  LEFT JOIN chain k ON k.org_id = a.org_id AND k.id = a.id AND k.class IS NOT NULL
  WHERE a.org_id = public.auth_org_id()),
cash_entries AS (
  -- entries that moved cash: a cash line with an amount in its own currency
  SELECT DISTINCT l.org_id, l.entry_id FROM finance.journal_lines l
  JOIN accounts x ON x.org_id = l.org_id AND x.id = l.account_id
  WHERE l.org_id = public.auth_org_id() AND x.is_cash AND (l.debit <> 0 OR l.credit <> 0)),
flows AS (
  -- each non-cash line of an entry that moved cash explains that much of the cash change (the entry balances)
  SELECT l.org_id, date_trunc('month', l.entry_date)::date AS month, x.activity, l.base_credit - l.base_debit AS amount
  FROM cash_entries ce
  JOIN finance.journal_lines l ON l.org_id = ce.org_id AND l.entry_id = ce.entry_id
  JOIN accounts x ON x.org_id = l.org_id AND x.id = l.account_id
  WHERE NOT x.is_cash
  UNION ALL
  -- the change of cash accounts' base value without any amount in their currency: revaluations and their reversals
  SELECT l.org_id, date_trunc('month', l.entry_date)::date, 'exchange_rate_effect', l.base_debit - l.base_credit
  FROM finance.journal_lines l
  JOIN accounts x ON x.org_id = l.org_id AND x.id = l.account_id
  WHERE l.org_id = public.auth_org_id() AND x.is_cash AND l.debit = 0 AND l.credit = 0)
SELECT f.org_id, f.month, f.activity, s.base_currency,
  sum(greatest(f.amount, 0)) AS cash_in, sum(greatest(-f.amount, 0)) AS cash_out, sum(f.amount) AS net_cash
FROM flows f JOIN finance.settings s ON s.org_id = f.org_id
GROUP BY f.org_id, f.month, f.activity, s.base_currency;

COMMENT ON VIEW semantic.v_cash_flow IS 'Cash in and out per month by activity (direct method), from the journal entries that moved cash: '
  'an account is cash when its cash_flow_class, or else that of its nearest ancestor group that has one, is cash; the activity is the other '
  'accounts'' class found the same way (revenue and expense: operating; unclassified: equity financing, else operating), and '
  'exchange_rate_effect is the revaluation of foreign-currency cash (FX revaluations and their reversals), which moved no cash. '
  'Summed over whole months, net_cash per activity is the cash-flow report''s operating.total, investing.total, financing.total and '
  'effectOfExchangeRatesOnCash for those months, and over all activities the change of cash; the report (indirect method) differs only '
  'for entries that moved no cash but touch accounts of two activities (equipment bought on credit: investing and operating there, nothing here)';
COMMENT ON COLUMN semantic.v_cash_flow.activity IS 'operating, investing, financing, or exchange_rate_effect (the effect of exchange-rate changes on cash held in foreign currencies: no cash flow)';
COMMENT ON COLUMN semantic.v_cash_flow.cash_in IS 'Cash received in the month for this activity, base currency (exchange_rate_effect: the increases of the cash accounts'' base value)';
COMMENT ON COLUMN semantic.v_cash_flow.cash_out IS 'Cash paid in the month for this activity, base currency (exchange_rate_effect: the decreases)';
