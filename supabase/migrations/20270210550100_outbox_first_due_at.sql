-- Generated from prisma/migrations/20270210550100_outbox_first_due_at/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- When an outbox row first became due: set by its first claim (NULL while it was never claimed, when available_at still
-- says it). Every claim and every failure moves available_at forward, so the lag measured from available_at stayed near
-- 0 for a job that fails for ever and OmniZenOutboxLag could not fire; omnizen_outbox_lag_seconds is now measured from
-- coalesce(first_due_at, available_at). Rows already claimed keep NULL until their next claim (then set to the
-- available_at of that claim): no row is rewritten here.
-- Needs no superuser; no table is created (core.outbox keeps its RLS and grants: they are table-wide and cover the new column).
ALTER TABLE core.outbox ADD COLUMN first_due_at timestamptz;
COMMENT ON COLUMN core.outbox.first_due_at IS 'when the row first became due (set by its first claim; NULL while never claimed): the outbox lag is measured from it';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210550100_outbox_first_due_at', 'b9857e83a65b1b4a68b899367e2bcae5f776fb309e2fea28a54f2341abca1237', 0)
  ON CONFLICT (name) DO NOTHING;
