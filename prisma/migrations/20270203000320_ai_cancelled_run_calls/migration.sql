-- A run cancelled through the API is finished at once (here or in another process, its execution stops at its next
-- step), but an LLM call in flight then is cut and billed (its input, what had been streamed): its cost went to the
-- budget while the finished run refused its step, so the run's steps no longer summed to what was billed. A cancelled
-- run now still takes the steps of LLM calls (those in flight when it was cancelled: the API adds no other), and the
-- run's counters (tokens, cost, steps: what adding a step adds) may grow with them; nothing else of a finished run changes.
CREATE OR REPLACE FUNCTION ai.guard_finished_run() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  counters CONSTANT text[] := ARRAY['input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'cost', 'steps'];
BEGIN
  IF TG_TABLE_NAME = 'runs' THEN
    IF OLD.status = 'running'
       OR (OLD.status = 'cancelled' AND to_jsonb(NEW) - counters = to_jsonb(OLD) - counters
           AND NEW.input_tokens >= OLD.input_tokens AND NEW.output_tokens >= OLD.output_tokens
           AND NEW.cached_input_tokens >= OLD.cached_input_tokens AND NEW.cache_write_tokens >= OLD.cache_write_tokens
           AND NEW.cost >= OLD.cost AND NEW.steps >= OLD.steps) THEN
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
