-- Generated from prisma/migrations/20270210430100_webhook_claim_due_order/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The delivery worker's claim (webhook.repository.ts, claimDue) looks for candidates among the oldest due messages
-- first, in due order, and per endpoint (webhook_messages_endpoint_due_idx) only when a few organizations' backlog fills
-- those: a per-endpoint lookup over every enabled endpoint cost a claim seconds with tens of thousands of them. The
-- due-order index is back (webhook_messages_due_idx, dropped by 20270210340100), with the id the claim orders by after
-- the due time. Needs no superuser; nothing else changes.
DROP INDEX IF EXISTS core.webhook_messages_due_idx;
CREATE INDEX webhook_messages_due_idx ON core.webhook_messages (next_attempt_at, id) WHERE status = 'pending';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210430100_webhook_claim_due_order', '1b72120f8f99f9f31acd0d942a37f8f086041bfe780a91aa81302852a85329a2', 0)
  ON CONFLICT (name) DO NOTHING;
