-- Every FX revaluation row written from now on names its unrealized FX account (follow-up of 20270210250100).
--
-- Since 20270210250100 every writer stores the account its row's pair of lines moved against (JournalService.revalue
-- and its reversal, changeCarried, recordTakenOff); NULL is left only on rows written before it whose entry did not
-- tell the account without doubt, which carriedPerFxAccount still reads from their entries. The check holds the
-- writers to that: NOT VALID, so those older rows stay as they are (the rows are immutable,
-- fx_revaluation_items_immutable: no update ever re-checks them) and no existing row is scanned under this statement's
-- lock. It is not validated later: the older NULL rows are legitimate and would fail it.
--
-- The foreign key (org_id, fx_account_id) -> finance.accounts had no index: deleting an account (or changing its key)
-- scanned every revaluation row of every organization to check it. Not CONCURRENTLY: refused inside the migration's
-- transaction; the table belongs to the migration role (no superuser). RLS, policies and grants are unchanged.
ALTER TABLE finance.fx_revaluation_items ADD CONSTRAINT fx_revaluation_items_fx_account_required
  CHECK (fx_account_id IS NOT NULL) NOT VALID;
CREATE INDEX fx_revaluation_items_fx_account_idx ON finance.fx_revaluation_items (org_id, fx_account_id);
COMMENT ON COLUMN finance.fx_revaluation_items.fx_account_id IS
  'the unrealized FX account the row''s pair of lines moved against; NULL only on a row written before 20270210250100 whose entry does not tell it without doubt (fx_revaluation_items_fx_account_required, NOT VALID, holds every later row to it)';
