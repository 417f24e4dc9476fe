-- The cash-flow report (ReportsService.cashFlow) now leaves non-cash investing and financing transactions (IAS 7.43:
-- equipment bought on credit or with a loan, depreciation against an account classed investing) out of its investing
-- and financing sections and discloses them in nonCashInvestingAndFinancing, counting their total in operating as a
-- non-cash adjustment, so such an entry moves nothing in any section. semantic.v_cash_flow already followed that rule
-- (it reads only the entries that moved cash), so its definition stays; its comment, which said the report differs for
-- such entries, now says they agree.

COMMENT ON VIEW semantic.v_cash_flow IS 'Cash in and out per month by activity (direct method), from the journal entries that moved cash: '
  'an account is cash when its cash_flow_class, or else that of its nearest ancestor group that has one, is cash; the activity is the other '
  'accounts'' class found the same way (revenue and expense: operating; unclassified: equity financing, else operating), and '
  'exchange_rate_effect is the revaluation of foreign-currency cash (FX revaluations and their reversals), which moved no cash. '
  'Summed over whole months, net_cash per activity is the cash-flow report''s operating.total, investing.total, financing.total and '
  'effectOfExchangeRatesOnCash for those months, and over all activities the change of cash. Entries without a cash line are not here: '
  'non-cash investing and financing transactions (IAS 7.43: equipment bought on credit or with a loan, depreciation) are no cash flow of '
  'any activity, as in the report, which discloses them apart (nonCashInvestingAndFinancing)';
