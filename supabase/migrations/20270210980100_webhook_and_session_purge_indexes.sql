-- Generated from prisma/migrations/20270210980100_webhook_and_session_purge_indexes/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A volume review (scratch database, 100k–1M rows, the statements EXPLAIN ANALYZEd as service_role) found:
--
-- The retention job's webhook purge (retentionRepository.purgeWebhookDeliveries) read the whole messages table: finished
-- messages by the age of their last attempt (this index, walked in batches), then the pending ones of endpoints disabled
-- since before the cutoff (those endpoints through this partial index, their messages through
-- webhook_messages_endpoint_due_idx).
CREATE INDEX webhook_messages_finished_idx ON core.webhook_messages ((coalesce(last_attempt_at, created_at)), org_id, id)
  WHERE status <> 'pending';
CREATE INDEX webhook_endpoints_disabled_idx ON core.webhook_endpoints (disabled_at) WHERE NOT enabled;

-- The session purge (sessionRepository.purgeExpired: expired a day ago, or revoked 30 days ago) read every session;
-- it now walks these in batches.
CREATE INDEX sessions_expires_idx ON core.sessions (expires_at, id);
CREATE INDEX sessions_revoked_idx ON core.sessions (revoked_at, id) WHERE revoked_at IS NOT NULL;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210980100_webhook_and_session_purge_indexes', '30b9bda26ee8c361090366f518f8bfbb74f975df4df01e00fd03b6ef6b9547c8', 0)
  ON CONFLICT (name) DO NOTHING;
