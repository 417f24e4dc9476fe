-- Generated from prisma/migrations/20270210410100_revenue_recognitions_no_truncate/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The revenue recognitions and their runs are append-only like the rest of receivables (customer_payments,
-- receivable_allocations: 20261220000100) and payables (20270210330100): their row triggers (core.reject_change:
-- revenue_recognition_runs_immutable, revenue_recognitions_immutable, 20261220000200) stop UPDATE and DELETE, but
-- TRUNCATE fires no row trigger: the owner connection (the migration login, a maintenance session) could empty them at
-- once, with their journal entries left behind and the next run recognizing every line's elapsed part again. No
-- API-facing role holds TRUNCATE on them (20261220000200 revoked ALL and granted SELECT, INSERT); revoked again here,
-- explicitly. Needs no superuser; the tables' owner adds the triggers.
CREATE TRIGGER revenue_recognition_runs_no_truncate BEFORE TRUNCATE ON finance.revenue_recognition_runs FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
CREATE TRIGGER revenue_recognitions_no_truncate BEFORE TRUNCATE ON finance.revenue_recognitions FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
REVOKE TRUNCATE ON finance.revenue_recognition_runs, finance.revenue_recognitions
  FROM PUBLIC, anon, authenticated, service_role, omnizen_analyst;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210410100_revenue_recognitions_no_truncate', 'deb8d704b556ee253938c3f92dcaecd4b352d393626a9d00139cc86ac525dc59', 0)
  ON CONFLICT (name) DO NOTHING;
