-- Generated from prisma/migrations/20270210340100_webhook_claim_per_endpoint/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The delivery worker's claim (webhook.repository.ts, claimDue) took the globally oldest due messages: one
-- organization's backlog on receivers that do not answer filled every slot, and the others' messages waited behind it.
-- It now takes each enabled endpoint's own oldest due messages (a few per endpoint) and caps an organization's sends in
-- flight, so it reads the pending messages per endpoint in due order: this index. The global due-time index served only
-- the old claim. Needs no superuser; nothing else changes.
CREATE INDEX IF NOT EXISTS webhook_messages_endpoint_due_idx ON core.webhook_messages (org_id, endpoint_id, next_attempt_at, id)
  WHERE status = 'pending';
DROP INDEX IF EXISTS core.webhook_messages_due_idx;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210340100_webhook_claim_per_endpoint', 'a030e3edfe2d44a544279b21d3005d56f756fb041bd0a890090322f3da3efe7f', 0)
  ON CONFLICT (name) DO NOTHING;
