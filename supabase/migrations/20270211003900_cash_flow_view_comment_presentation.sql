-- Generated from prisma/migrations/20270211003900_cash_flow_view_comment_presentation/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- semantic.v_cash_flow's description after the cash-flow report's presentation change (15f8b57, review ledgrev): the
-- report now adds depreciation, amortisation and impairments booked against an account classed investing or financing
-- back in operating (a non-cash expense, on that account's row), no longer disclosing them in
-- nonCashInvestingAndFinancing (IAS 7.43 is for non-cash investing and financing transactions); and it adds the
-- unrealized exchange difference of foreign-currency cash back in unrealizedExchangeDifferences with the others, where
-- it was an operating row on the cash account. The view's comment still listed depreciation among the disclosed
-- transactions. Its totals did not change: the view's rows (cash per activity, exchange_rate_effect) are as before. The
-- view's definition, columns' comments (still right), owner and grants are unchanged: only its COMMENT is replaced.

COMMENT ON VIEW semantic.v_cash_flow IS 'Cash in and out per month by activity (direct method), from the journal entries that moved cash: '
  'an account is cash when its cash_flow_class, or else that of its nearest ancestor group that has one, is cash; the activity is the other '
  'accounts'' class found the same way (revenue and expense: operating; unclassified: equity financing, else operating), and '
  'exchange_rate_effect is the change of foreign-currency cash accounts'' base value by FX revaluations and their reversals, which moved no '
  'cash: the report''s effectOfExchangeRatesOnCash (their unrealized gain or loss, in net income, the report adds back in '
  'unrealizedExchangeDifferences with those of the other accounts, a cash account having no row of its own). '
  'An entry that mixes cash with a non-cash part is split as in the cash-flow report: its cash received and its cash paid (less what went '
  'between its cash accounts) pay its investing and financing lines first, a disposal at its proceeds (book value with its gain or loss), a '
  'line settled with a realized exchange gain or loss at the cash paid, pro rata in the base currency''s minor units; the rest is operating. '
  'Summed over whole months, net_cash per activity is the cash-flow report''s operating.total, investing.total, financing.total and '
  'effectOfExchangeRatesOnCash for those months, and over all activities the change of cash. What of an entry no cash paid is no cash flow '
  'of any activity, as in the report: equipment bought on credit or with a loan, or a share issue for a contribution in kind (non-cash '
  'investing and financing transactions, IAS 7.43, which the report discloses apart in nonCashInvestingAndFinancing), and depreciation, '
  'amortisation or an impairment booked against an account classed investing or financing (a non-cash expense, which the report adds back '
  'in operating on that account''s row, not disclosed). Opening-balance entries (source opening_balance: the balances brought from former '
  'books, and their reversals) are left out: they moved no cash, and the report counts their cash as opening cash (openingCash)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211003900_cash_flow_view_comment_presentation', '29bd7d4a02182a65984c9e281ee511d92c1bd9b8495093a071ed825e32966ca6', 0)
  ON CONFLICT (name) DO NOTHING;
