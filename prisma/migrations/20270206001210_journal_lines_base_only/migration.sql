-- The cash-flow statement reports the effect of exchange-rate changes on cash (IAS 7) from the lines that change a
-- cash account's base value without any amount in its own currency (FX revaluations and their reversals). This
-- partial index holds only such lines (a handful per revaluation), so the report reads them per account and range
-- without scanning the bank accounts' lines. A posting's ordinary lines (an amount in their currency) do not enter it.
CREATE INDEX journal_lines_base_only_idx ON finance.journal_lines (org_id, account_id, entry_date)
  WHERE debit = 0 AND credit = 0;
