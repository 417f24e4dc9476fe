-- Generated from prisma/migrations/20270206001210_journal_lines_base_only/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The cash-flow statement reports the effect of exchange-rate changes on cash (IAS 7) from the lines that change a
-- cash account's base value without any amount in its own currency (FX revaluations and their reversals). This
-- partial index holds only such lines (a handful per revaluation), so the report reads them per account and range
-- without scanning the bank accounts' lines. A posting's ordinary lines (an amount in their currency) do not enter it.
CREATE INDEX journal_lines_base_only_idx ON finance.journal_lines (org_id, account_id, entry_date)
  WHERE debit = 0 AND credit = 0;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270206001210_journal_lines_base_only', '526624f64f046de2ee8ee2ba70c79184aacfdb0aded28be728c0cec3bded0a8c', 0)
  ON CONFLICT (name) DO NOTHING;
