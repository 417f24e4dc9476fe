-- Generated from prisma/migrations/20270208150200_ai_error_class_checks_validate/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Validates the error class checks swapped NOT VALID by 20270208050100_ai_run_internal_error (ai.runs) and
-- 20270208150100_ai_step_internal_error (ai.run_steps), each migration running in its own transaction: VALIDATE
-- CONSTRAINT scans the table under SHARE UPDATE EXCLUSIVE, which lets runs and their steps be read and written meanwhile
-- (the rows already there passed the narrower checks these replaced).
ALTER TABLE ai.runs VALIDATE CONSTRAINT runs_error_class_check;
ALTER TABLE ai.run_steps VALIDATE CONSTRAINT run_steps_error_class_check;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208150200_ai_error_class_checks_validate', 'fbd8fc26f27f1b0763b06ced7263530cebaa54348c77d294eb3c8a2a4bc837f8', 0)
  ON CONFLICT (name) DO NOTHING;
