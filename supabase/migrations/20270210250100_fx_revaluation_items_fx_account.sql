-- Generated from prisma/migrations/20270210250100_fx_revaluation_items_fx_account/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Each FX revaluation row knows the unrealized FX account its pair of lines moved (review r5, h15).
--
-- What an FX-revalued receivable or payable carries per unrealized FX account was read from its rows' entries: the
-- pair of lines of the item's control account and currency in the row's entry. An entry changing items one by one (a
-- settlement's compensation, what a void took off) holds a pair per item, and the pair was guessed by amount: one
-- window payment covering several invoices of a customer posts one compensation holding every invoice's pairs, and a
-- later read of one invoice matched its row to another invoice's equal-amount pair on another account (a credit note
-- then took 30.00 off 4310 that 4320 held, for good). The writer knows the account: it is stored on the row from now
-- on (JournalService.revalue and its reversal, changeCarried: compensations and voids' take-offs; recordTakenOff: what
-- a credit note takes off each account, newly written as rows of its own entry) and read back.
--
-- Existing rows are backfilled only where their entry says so without doubt: of the entry's pairs (a control line in
-- the item's currency followed by its FX line in the base currency, balancing it: the shape JournalService.revalue,
-- reverse and changeCarried post) those of the item's control account (the one its own posting carries it on, the
-- line of its counterparty in its currency), its currency and counterparty (or none: a revaluation's pair) name one
-- FX account, or those of them whose control amount is the row's change do (an entry changing items one by one posts
-- a pair per row, so a row's pair is among those of its amount), or, among those of its amount, its own by position:
-- changeCarried writes an entry's rows in the order of its pairs, a pair per row, so in an entry with as many rows as
-- pairs the k-th row (by seq) is the k-th pair (by line number), taken only when it is one of the row's own amount (one
-- compensation holding several invoices' pairs of equal amounts on different accounts). Other rows keep NULL, and the old reading by amount is kept for them alone. The column is bookkeeping metadata of rows the ledger wrote (no amount, date or account of
-- the books changes): the backfill is not audited. The rows are immutable (fx_revaluation_items_immutable): the trigger
-- is off for this one statement. RLS, policies and grants are unchanged (table-wide SELECT, INSERT cover the column).
ALTER TABLE finance.fx_revaluation_items ADD COLUMN fx_account_id uuid;
ALTER TABLE finance.fx_revaluation_items ADD CONSTRAINT fx_revaluation_items_fx_account_fkey
  FOREIGN KEY (org_id, fx_account_id) REFERENCES finance.accounts(org_id, id);
COMMENT ON COLUMN finance.fx_revaluation_items.fx_account_id IS
  'the unrealized FX account the row''s pair of lines moved against; NULL: a row written before 20270210250100 whose entry does not tell it without doubt';

ALTER TABLE finance.fx_revaluation_items DISABLE TRIGGER fx_revaluation_items_immutable;
WITH docs AS (
  SELECT i.org_id, i.id AS document_id, 'receivables'::text AS subledger, i.currency, i.entry_id AS posting_id, i.customer_id::text AS counterparty_id
  FROM finance.invoices i WHERE i.entry_id IS NOT NULL
  UNION ALL
  SELECT p.org_id, p.id, 'receivables', p.currency, p.entry_id, p.customer_id::text FROM finance.customer_payments p
  UNION ALL
  SELECT b.org_id, b.id, 'payables', b.currency, b.journal_entry_id, coalesce(b.vendor_id::text, b.claimant_id)
  FROM finance.bills b WHERE b.journal_entry_id IS NOT NULL
  UNION ALL
  SELECT p.org_id, p.id, 'payables', p.currency, p.journal_entry_id, coalesce(p.vendor_id::text, p.claimant_id) FROM finance.bill_payments p),
pairs AS (
  SELECT c.org_id, c.entry_id, c.account_id, c.currency, f.account_id AS fx_account_id, c.base_debit - c.base_credit AS control, c.counterparty_id,
    row_number() OVER (PARTITION BY c.org_id, c.entry_id ORDER BY c.line_no) AS k, count(*) OVER (PARTITION BY c.org_id, c.entry_id) AS n
  FROM finance.journal_lines c
  JOIN finance.journal_entries e ON e.org_id = c.org_id AND e.id = c.entry_id
  JOIN finance.journal_lines f ON f.org_id = c.org_id AND f.entry_id = c.entry_id AND f.line_no = c.line_no + 1
  WHERE c.line_no % 2 = 1 AND c.currency <> e.base_currency AND f.currency = e.base_currency AND NOT c.is_rounding AND NOT f.is_rounding
    AND c.base_debit - c.base_credit = f.base_credit - f.base_debit
    AND EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = c.org_id AND x.entry_id = c.entry_id)),
items AS (
  SELECT x.org_id, x.id, x.entry_id, x.document_id, x.subledger, x.base_delta,
    row_number() OVER (PARTITION BY x.org_id, x.entry_id ORDER BY x.seq) AS k, count(*) OVER (PARTITION BY x.org_id, x.entry_id) AS n
  FROM finance.fx_revaluation_items x),
candidates AS (
  SELECT x.org_id, x.id, p.fx_account_id, p.control = x.base_delta * CASE x.subledger WHEN 'receivables' THEN 1 ELSE -1 END AS same_amount,
    x.n = p.n AND x.k = p.k AS same_position
  FROM items x
  JOIN docs d ON d.org_id = x.org_id AND d.document_id = x.document_id AND d.subledger = x.subledger
  JOIN pairs p ON p.org_id = x.org_id AND p.entry_id = x.entry_id AND p.currency = d.currency
    AND (p.counterparty_id IS NULL OR p.counterparty_id = d.counterparty_id)
    AND p.account_id IN (SELECT l.account_id FROM finance.journal_lines l
                         WHERE l.org_id = d.org_id AND l.entry_id = d.posting_id AND l.currency = d.currency AND l.counterparty_id = d.counterparty_id)),
found AS (
  SELECT org_id, id, CASE
      WHEN count(DISTINCT fx_account_id) = 1 THEN min(fx_account_id::text)
      WHEN count(DISTINCT fx_account_id) FILTER (WHERE same_amount) = 1 THEN min(fx_account_id::text) FILTER (WHERE same_amount)
      WHEN count(*) FILTER (WHERE same_amount AND same_position) = 1 THEN min(fx_account_id::text) FILTER (WHERE same_amount AND same_position)
    END::uuid AS fx_account_id
  FROM candidates GROUP BY org_id, id)
UPDATE finance.fx_revaluation_items x SET fx_account_id = f.fx_account_id
FROM found f WHERE f.org_id = x.org_id AND f.id = x.id AND f.fx_account_id IS NOT NULL;
ALTER TABLE finance.fx_revaluation_items ENABLE TRIGGER fx_revaluation_items_immutable;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210250100_fx_revaluation_items_fx_account', '1c30cd9c80ac8cecc4ccfd099f7882ecd033b955d82090ded5f50041f43a9e0c', 0)
  ON CONFLICT (name) DO NOTHING;
