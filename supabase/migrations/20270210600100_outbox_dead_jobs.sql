-- Generated from prisma/migrations/20270210600100_outbox_dead_jobs/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A job refused for good was retried for ever: the PostHog erasure job with a revoked key tried again every hour, its
-- payload (the person's distinct ids) kept for ever, and nothing but OmniZenOutboxLag said so. Each job topic now has a
-- cap on its attempts (JobRegistry.register, DEFAULT_JOB_MAX_ATTEMPTS); a job that fails its last attempt is dead: never
-- relayed again (processed_at is set with dead_at, so every claim, the depth and the lag leave it alone), its last_error
-- and payload kept for an operator to read and retry it (processed_at, dead_at and first_due_at back to NULL, attempts to
-- 0), until the retention purge of processed jobs (RETENTION_OUTBOX_DAYS) deletes it as it deletes the done ones.
-- omnizen_outbox_dead counts them by topic (outbox_dead_idx keeps that scrape off the processed rows).
-- Needs no superuser; no table is created (core.outbox keeps its RLS and grants: they are table-wide and cover the new column).
ALTER TABLE core.outbox ADD COLUMN dead_at timestamptz;
COMMENT ON COLUMN core.outbox.dead_at IS 'when the job was given up after its topic''s last attempt (processed_at is set with it): it is never relayed again; last_error says why';
CREATE INDEX outbox_dead_idx ON core.outbox (topic) WHERE dead_at IS NOT NULL;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210600100_outbox_dead_jobs', '57e3902789a9951afafc06154190a73978c39484b3e3649cffada6e8d3391b39', 0)
  ON CONFLICT (name) DO NOTHING;
