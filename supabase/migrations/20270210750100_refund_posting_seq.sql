-- Generated from prisma/migrations/20270210750100_refund_posting_seq/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A refund of a payment's credit (finance.customer_refunds, finance.bill_payment_refunds) now draws posting_seq as an
-- allocation does (20270210700100): a value of the sequence finance.fx_revaluation_items.seq draws from, when written.
-- An allocation's reversal values what each revaluation since the allocation changed of the payment's share at what was
-- open of the payment when that revaluation was posted (JournalService.shareChangesSince, the subledger's open items as
-- of the row's date and seq): a refund dated on a revaluation's day but posted after it was counted as settled before
-- it, though the revaluation valued the credit with it (a refund, like an allocation, may be dated on the day of the
-- last revaluation: assertAfterRevaluations refuses only an earlier day). The row's part of the share was then valued
-- at the wrong open amount, and a cent of rounding landed on the wrong unrealized FX account (the payment's rows on the
-- loss and gain accounts each off by it). A refund of a foreign-currency payment holds the posting lock shared before it
-- is written (assertAfterRevaluations), as an allocation does, so its value's order against a revaluation's rows is the
-- order they were posted in. Refunds written before this migration have none (NULL): each counts as settled before
-- every row of its day, as it did. Added without a default first (the existing rows stay NULL), then defaulted; the roles
-- that write refunds have USAGE on the sequence (20270210700100).

ALTER TABLE finance.customer_refunds ADD COLUMN posting_seq bigint;
ALTER TABLE finance.customer_refunds ALTER COLUMN posting_seq SET DEFAULT nextval('finance.fx_revaluation_items_seq_seq'::regclass);
ALTER TABLE finance.bill_payment_refunds ADD COLUMN posting_seq bigint;
ALTER TABLE finance.bill_payment_refunds ALTER COLUMN posting_seq SET DEFAULT nextval('finance.fx_revaluation_items_seq_seq'::regclass);

COMMENT ON COLUMN finance.customer_refunds.posting_seq IS
  'Drawn from finance.fx_revaluation_items'' seq sequence when written: the revaluation rows of a lower seq were posted before it (NULL: written before 20270210750100)';
COMMENT ON COLUMN finance.bill_payment_refunds.posting_seq IS
  'Drawn from finance.fx_revaluation_items'' seq sequence when written: the revaluation rows of a lower seq were posted before it (NULL: written before 20270210750100)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210750100_refund_posting_seq', 'ca3cd4ed4d3c5bf7913e1c304786e18e2d683a2873ebf165f1faec4d20ac898d', 0)
  ON CONFLICT (name) DO NOTHING;
