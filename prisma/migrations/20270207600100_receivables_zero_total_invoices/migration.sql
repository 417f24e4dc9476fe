-- Receivables, from an accountant's review: an invoice of 0.00 (every line discounted 100 %, or priced 0.00) is issued
-- without a journal entry. A journal entry needs two lines with an amount, and such an invoice moves nothing: it is
-- numbered, marked paid at once (nothing is open) and audited, and its events say entryId null. Voided, it has no entry
-- to reverse either: voided_on is set and void_entry_id stays null. (A credit note of 0.00 is refused by the API:
-- receivables.nothing_to_credit.)
-- Before: an issued document always had an entry (invoices_check2) and a void one always had the reversal
-- (invoices_check3); now so has every document with an amount, and only one of 0.00 may go without.

ALTER TABLE finance.invoices DROP CONSTRAINT invoices_check2;
ALTER TABLE finance.invoices ADD CONSTRAINT invoices_entry_check
  CHECK (CASE WHEN status = 'draft' THEN entry_id IS NULL ELSE entry_id IS NOT NULL OR total = 0 END);

ALTER TABLE finance.invoices DROP CONSTRAINT invoices_check3;
ALTER TABLE finance.invoices ADD CONSTRAINT invoices_void_entry_check
  CHECK (CASE WHEN status = 'void' THEN void_entry_id IS NOT NULL OR entry_id IS NULL ELSE void_entry_id IS NULL END);
