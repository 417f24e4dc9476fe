-- Generated from prisma/migrations/20270210330100_payables_no_truncate/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The append-only tables of payables refuse TRUNCATE too, as receivables' do (customer_payments, receivable_allocations:
-- 20261220000100) and the bill payments' refunds already did (20270103000200). Their row triggers (core.reject_change:
-- bill_payments_append_only, bill_allocations_append_only, bill_decisions_append_only, 20261221000100) stop UPDATE and
-- DELETE, but TRUNCATE fires no row trigger: the owner connection (the migration login, a maintenance session) could
-- empty a payment, its allocations or a bill's approvals at once, with their journal entries left behind. No API-facing
-- role holds TRUNCATE on them (20261221000100 revoked ALL and granted SELECT, INSERT); revoked again here, explicitly.
-- Needs no superuser; the tables' owner adds the triggers.
CREATE TRIGGER bill_payments_no_truncate BEFORE TRUNCATE ON finance.bill_payments FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
CREATE TRIGGER bill_allocations_no_truncate BEFORE TRUNCATE ON finance.bill_allocations FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
CREATE TRIGGER bill_decisions_no_truncate BEFORE TRUNCATE ON finance.bill_decisions FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
REVOKE TRUNCATE ON finance.bill_payments, finance.bill_allocations, finance.bill_decisions, finance.bill_payment_refunds
  FROM PUBLIC, anon, authenticated, service_role, omnizen_analyst;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210330100_payables_no_truncate', '487d35f1a9ee77b29f38f39b9c82fa2ffa3f2ab163ab7f3061cb2ebfd548e4ca', 0)
  ON CONFLICT (name) DO NOTHING;
