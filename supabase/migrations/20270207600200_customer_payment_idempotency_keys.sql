-- Generated from prisma/migrations/20270207600200_customer_payment_idempotency_keys/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Receivables, from an accountant's review: a payment received (POST /receivables/payments) and a refund of customer
-- credit (POST /receivables/payments/{id}/refunds) take an optional Idempotency-Key header (README "When a dependency
-- fails": clients retry writes with it). The key is stored with the row it created, with the hash of the request
-- (src/platform/http/idempotency-key.ts: sha256 of the request's canonical JSON): the same key with the same request
-- answers that row again and writes nothing; with another request it is a 409 (receivables.idempotency_conflict). A key
-- is unique per organization among its payments, and among its refunds. The service serializes requests with one key
-- (an advisory lock) and reads the key first; the unique indexes are the backstop. Grants and RLS are unchanged: the
-- columns are written by the same INSERT, and rows are never updated.

ALTER TABLE finance.customer_payments
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT customer_payments_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX customer_payments_idempotency_key ON finance.customer_payments (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.customer_payments.idempotency_key IS 'The Idempotency-Key the payment was recorded with (unique per organization); null: none';
COMMENT ON COLUMN finance.customer_payments.request_hash IS 'sha256 (hex) of the request recorded with idempotency_key: a retry with the key and another request is refused';

ALTER TABLE finance.customer_refunds
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT customer_refunds_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX customer_refunds_idempotency_key ON finance.customer_refunds (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.customer_refunds.idempotency_key IS 'The Idempotency-Key the refund was made with (unique per organization); null: none';
COMMENT ON COLUMN finance.customer_refunds.request_hash IS 'sha256 (hex) of the request (the payment id and the body) made with idempotency_key';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270207600200_customer_payment_idempotency_keys', 'a1df29084257cba1aa5da9b903a1538d8bbb6f20177955929cdc72a2ebe69062', 0)
  ON CONFLICT (name) DO NOTHING;
