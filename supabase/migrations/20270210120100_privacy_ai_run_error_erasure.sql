-- Generated from prisma/migrations/20270210120100_privacy_ai_run_error_erasure/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A person's erasure (privileged path privacy.erasure) now also clears the error messages of the AI runs that are theirs
-- and of their steps (personal-data.catalog: a provider's refusal, a tool's or the database's error may quote the input
-- or the model's answer): ai.runs.error_message and ai.run_steps.error_message become NULL, their error classes stay.
-- The two triggers of 20270210040100 skip that change too, made on that path only; any other change of a finished run or
-- a step is refused as before. The trigger functions are unchanged.
DROP TRIGGER runs_immutable ON ai.runs;
CREATE TRIGGER runs_immutable BEFORE UPDATE ON ai.runs FOR EACH ROW
  WHEN (NOT (current_user = 'service_role' AND current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure'
    AND NEW.input = '{}'::jsonb AND NEW.output IS NULL AND NEW.error_message IS NULL
    AND to_jsonb(NEW) - 'input' - 'output' - 'error_message' = to_jsonb(OLD) - 'input' - 'output' - 'error_message'))
  EXECUTE FUNCTION ai.guard_finished_run();

DROP TRIGGER run_steps_immutable ON ai.run_steps;
CREATE TRIGGER run_steps_immutable BEFORE UPDATE ON ai.run_steps FOR EACH ROW
  WHEN (NOT (current_user = 'service_role' AND current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure'
    AND NEW.detail = '{}'::jsonb AND NEW.error_message IS NULL
    AND to_jsonb(NEW) - 'detail' - 'error_message' = to_jsonb(OLD) - 'detail' - 'error_message'))
  EXECUTE FUNCTION core.reject_change();

-- service_role may write a step's detail and error message (nothing else of it), on the erasure's path (its policies)
GRANT UPDATE (error_message) ON ai.run_steps TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210120100_privacy_ai_run_error_erasure', 'a7611b44cc0a67138d59c322d70371d93b8d68aed596f45665fbb3e28f9f829a', 0)
  ON CONFLICT (name) DO NOTHING;
