-- Generated from prisma/migrations/20270211002200_revenue_recognitions_entry_index/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A revenue recognition run of more lines than one journal entry holds posts several entries (400 posting lines each);
-- the run records the first, each recognition the entry it was posted in. Every one of them is the run's: the ledger's
-- generic reversal asks the receivables' entry owners (receivablesRepository.entryOwner) of every entry it is to
-- reverse, and they now look the entry up among the recognitions too. This index answers that lookup (and the
-- recognitions' foreign key to their entry) without reading the organization's recognitions. The migration role owns
-- the table (no superuser). RLS and grants are unchanged (an index only).
CREATE INDEX revenue_recognitions_entry_idx ON finance.revenue_recognitions (org_id, entry_id);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211002200_revenue_recognitions_entry_index', '8b8212bd9984e244109f9e8e8af3b32656f288a419c81d34423b8bf03fde158d', 0)
  ON CONFLICT (name) DO NOTHING;
