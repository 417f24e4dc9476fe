-- Generated from prisma/migrations/20270208150100_ai_step_internal_error/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- An LLM call the provider answered (and billed) whose step could not be stored (the transaction after the call failed:
-- a database error) was settled at nothing when its execution failed (RunsService.releaseRun, failUnexpectedly): the
-- budget never recorded what the provider billed, and a job's retry made the call again. Its execution now stores it,
-- in the transaction that releases or fails the run, as a failed llm_call step with the error class internal: its tokens
-- and cost count in the run's and settle its reservation, and its answer is not used (a job's retry makes the call again,
-- not counting this one against maxSteps).
-- The check is swapped NOT VALID (no scan of ai.run_steps under this statement's ACCESS EXCLUSIVE lock, which this
-- migration's transaction holds to its end); 20270208150200_ai_error_class_checks_validate validates it.
ALTER TABLE ai.run_steps DROP CONSTRAINT run_steps_error_class_check,
  ADD CONSTRAINT run_steps_error_class_check
    CHECK (error_class IN ('provider_rate_limited', 'provider_error', 'timeout', 'tool_error', 'budget_exceeded', 'cancelled', 'internal')) NOT VALID;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208150100_ai_step_internal_error', '8a1cf9ab5dde6c3a4d187db178630d4e9725c89af37c37b07096b1bf2fa91a63', 0)
  ON CONFLICT (name) DO NOTHING;
