-- Generated from prisma/migrations/20270206002200_ai_run_cancel_event_sweep/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A run cancelled while an LLM call of its execution was in flight (ai.runs.call_in_flight_until > finished_at) had its
-- agent.run.failed event left to the executing instance (20270206000600), which knew it owed it only in memory: an instance
-- that died before the call returned never emitted it. The mark now also records that the event is still owed: whoever
-- emits it clears the mark in the same transaction (UPDATE ... RETURNING, so once): the execution once the call's step
-- is stored, or, once the mark has passed (the call's longest possible duration), the agents module's sweep
-- (RunsService.emitOwedCancelEvents). A cancel taken by the instance executing the run sets the mark too (the event is
-- that execution's). On a cancelled run the mark may only be cleared; the rest stays as 20270203000320 allows.
CREATE OR REPLACE FUNCTION ai.guard_finished_run() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  counters CONSTANT text[] := ARRAY['input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'cost', 'steps', 'call_in_flight_until'];
BEGIN
  IF TG_TABLE_NAME = 'runs' THEN
    IF OLD.status = 'running'
       OR (OLD.status = 'cancelled' AND to_jsonb(NEW) - counters = to_jsonb(OLD) - counters
           AND NEW.input_tokens >= OLD.input_tokens AND NEW.output_tokens >= OLD.output_tokens
           AND NEW.cached_input_tokens >= OLD.cached_input_tokens AND NEW.cache_write_tokens >= OLD.cache_write_tokens
           AND NEW.cost >= OLD.cost AND NEW.steps >= OLD.steps
           AND (NEW.call_in_flight_until IS NULL OR NEW.call_in_flight_until = OLD.call_in_flight_until)) THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'run % is finished (%): it cannot change', OLD.id, OLD.status USING ERRCODE = '23514', HINT = 'ai.run_finished';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ai.runs r WHERE r.org_id = NEW.org_id AND r.id = NEW.run_id
      AND (r.status = 'running' OR (r.status = 'cancelled' AND NEW.kind = 'llm_call'))) THEN
    RAISE EXCEPTION 'run % is finished: no step can be added', NEW.run_id USING ERRCODE = '23514', HINT = 'ai.run_finished';
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION ai.guard_finished_run() FROM PUBLIC, anon, authenticated, service_role;

-- the sweep's rows: cancelled runs whose event is still owed (few, and only until their mark passes)
CREATE INDEX runs_cancel_event_owed_idx ON ai.runs (call_in_flight_until) WHERE status = 'cancelled' AND call_in_flight_until IS NOT NULL;

COMMENT ON COLUMN ai.runs.call_in_flight_until IS 'while an LLM call of the run is in flight: the latest it can end (its budget reservation''s expiry); NULL otherwise. On a cancelled run, later than finished_at: its agent.run.failed event is still owed (cleared when emitted)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270206002200_ai_run_cancel_event_sweep', '77fc61f84255e19ab80fdfceb12f77422b8962e95dc9f6293205599ffccafced', 0)
  ON CONFLICT (name) DO NOTHING;
