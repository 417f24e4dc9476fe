-- Generated from prisma/migrations/20270210700100_allocation_posting_seq/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- An allocation's reversal gives its share back with what the revaluations since the allocation changed of it
-- (JournalService.shareChangesSince); a revaluation dated on the allocation's own day counted as before it, whatever
-- the order they were posted in (review r7). The usual month end posts the payment of the last day, then that day's
-- revaluation, which never saw the share: its part was realized at the reversal (an invoice's rows on the unrealized
-- account short by it, the realized account off by it).
-- Each allocation (and reversal) now draws, when written, a value of the sequence finance.fx_revaluation_items.seq
-- draws from (posting_seq): a revaluation row of a lower seq was in the books before the allocation, one of a higher
-- seq came after. An allocation and a revaluation never overlap: a revaluation drains the organization's postings
-- (posting lock exclusive) before it reads the open items, an allocation of a foreign-currency item holds it shared
-- (assertAfterRevaluations) before it writes, so the values' order is the order they were posted in. Allocations
-- written before this migration have none (NULL): a row dated their day counts as before them, as it did.
-- Added without a default first (the existing rows stay NULL, no values in their physical order), then defaulted.

ALTER TABLE finance.receivable_allocations ADD COLUMN posting_seq bigint;
ALTER TABLE finance.receivable_allocations ALTER COLUMN posting_seq SET DEFAULT nextval('finance.fx_revaluation_items_seq_seq'::regclass);
ALTER TABLE finance.bill_allocations ADD COLUMN posting_seq bigint;
ALTER TABLE finance.bill_allocations ALTER COLUMN posting_seq SET DEFAULT nextval('finance.fx_revaluation_items_seq_seq'::regclass);
-- the roles that write allocations (the identity column of fx_revaluation_items needed no grant on it)
GRANT USAGE ON SEQUENCE finance.fx_revaluation_items_seq_seq TO authenticated, service_role;

COMMENT ON COLUMN finance.receivable_allocations.posting_seq IS
  'Drawn from finance.fx_revaluation_items'' seq sequence when written: the revaluation rows of a lower seq were posted before it (NULL: written before 20270210700100)';
COMMENT ON COLUMN finance.bill_allocations.posting_seq IS
  'Drawn from finance.fx_revaluation_items'' seq sequence when written: the revaluation rows of a lower seq were posted before it (NULL: written before 20270210700100)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210700100_allocation_posting_seq', 'ab1d224d28b0f891bb07e01846e4fd53769a36dde8e2eedcceb9603219fcbede', 0)
  ON CONFLICT (name) DO NOTHING;
