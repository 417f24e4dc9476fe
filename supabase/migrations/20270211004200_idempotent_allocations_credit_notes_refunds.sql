-- Generated from prisma/migrations/20270211004200_idempotent_allocations_credit_notes_refunds/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The Idempotency-Key header (README "When a dependency fails": clients retry writes with it) on the rest of the writes
-- that move money, as on payments and refunds (20270207600200, 20270207700100): a credit note (POST
-- /receivables/invoices/{id}/credit-notes), an allocation of a payment's credit and its reversal (POST
-- /receivables/payments/{id}/allocations, /receivables/allocations/{id}/reverse), and in payables an allocation and its
-- reversal (POST /payables/payments/{id}/allocations, /payables/allocations/{id}/reverse) and a refund of credit (POST
-- /payables/payments/{id}/refunds). A retry posted an allocation, a credit note or a refund twice (a reversal's retry
-- was a 409 already reversed instead of its first answer). The key is stored with the row the request created, with the hash of the request
-- (src/platform/http/idempotency-key.ts): the same key with the same request answers that row again and writes nothing;
-- with another request it is a 409 (receivables.idempotency_conflict, payables.idempotency_conflict). A receivables
-- allocation request writes one row per invoice: the key goes on its first row only. An allocation's keys and a
-- reversal's are one set (one table). The service serializes requests
-- with one key (an advisory lock) and reads the key first; the unique indexes (per organization) are the backstop.
-- Grants and RLS are unchanged: the columns are written by the same INSERTs and never changed after (allocations and
-- refunds are never updated; a credit note's row is only numbered after, a draft's update leaves them as they are).

ALTER TABLE finance.invoices
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT invoices_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX invoices_idempotency_key ON finance.invoices (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.invoices.idempotency_key IS 'The Idempotency-Key a credit note was created with (unique per organization); null: none (always for an invoice)';
COMMENT ON COLUMN finance.invoices.request_hash IS 'sha256 (hex) of the request (the credited invoice id and the body) made with idempotency_key';

ALTER TABLE finance.receivable_allocations
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT receivable_allocations_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX receivable_allocations_idempotency_key ON finance.receivable_allocations (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.receivable_allocations.idempotency_key IS 'The Idempotency-Key an allocation request (on its first row) or a reversal was made with (unique per organization); null: none';
COMMENT ON COLUMN finance.receivable_allocations.request_hash IS 'sha256 (hex) of the request (the payment or allocation id and the body) made with idempotency_key';

ALTER TABLE finance.bill_allocations
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT bill_allocations_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX bill_allocations_idempotency_key ON finance.bill_allocations (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.bill_allocations.idempotency_key IS 'The Idempotency-Key the allocation was made with (unique per organization); null: none';
COMMENT ON COLUMN finance.bill_allocations.request_hash IS 'sha256 (hex) of the request (the payment id and the body) made with idempotency_key';

ALTER TABLE finance.bill_payment_refunds
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT bill_payment_refunds_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX bill_payment_refunds_idempotency_key ON finance.bill_payment_refunds (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.bill_payment_refunds.idempotency_key IS 'The Idempotency-Key the refund was recorded with (unique per organization); null: none';
COMMENT ON COLUMN finance.bill_payment_refunds.request_hash IS 'sha256 (hex) of the request (the payment id and the body) made with idempotency_key';

-- analysts read finance.invoices and finance.bill_allocations (under the semantic views): their new text columns keep no
-- planner statistics, as 20270211003800 explains (an analyst's EXPLAIN would estimate another organization's keys)
ALTER TABLE finance.invoices ALTER COLUMN idempotency_key SET STATISTICS 0, ALTER COLUMN request_hash SET STATISTICS 0;
ALTER TABLE finance.bill_allocations ALTER COLUMN idempotency_key SET STATISTICS 0, ALTER COLUMN request_hash SET STATISTICS 0;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211004200_idempotent_allocations_credit_notes_refunds', 'b48a54b300bc40ab0671c82fc30616d30fd4b068425b8e0bebbbb943f2682271', 0)
  ON CONFLICT (name) DO NOTHING;
