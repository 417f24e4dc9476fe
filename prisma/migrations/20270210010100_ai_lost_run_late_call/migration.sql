-- A run the agents module's sweep failed as worker_lost (its lease passed: RunsService.failLostRuns) may still have its
-- execution alive (a paused process, a call slower than its longest duration): when its LLM call in flight then ends, the
-- budget is charged what the provider billed (the sweep had settled the call's reservation at nothing), while the failed
-- run refused the call's step: the run showed no step and cost 0 for what its budget was charged. Such a run now takes
-- the steps of LLM calls (the one in flight when it was swept: the API adds no other, as for a cancelled run since
-- 20270203000320), and its counters (tokens, cost, steps: what adding a step adds) may grow with them; nothing else of
-- it changes. Every other finished run stays immutable.
CREATE OR REPLACE FUNCTION ai.guard_finished_run() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  counters CONSTANT text[] := ARRAY['input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'cost', 'steps', 'call_in_flight_until'];
BEGIN
  IF TG_TABLE_NAME = 'runs' THEN
    IF OLD.status = 'running'
       OR ((OLD.status = 'cancelled' OR (OLD.status = 'failed' AND OLD.error_class = 'worker_lost'))
           AND to_jsonb(NEW) - counters = to_jsonb(OLD) - counters
           AND NEW.input_tokens >= OLD.input_tokens AND NEW.output_tokens >= OLD.output_tokens
           AND NEW.cached_input_tokens >= OLD.cached_input_tokens AND NEW.cache_write_tokens >= OLD.cache_write_tokens
           AND NEW.cost >= OLD.cost AND NEW.steps >= OLD.steps
           AND (NEW.call_in_flight_until IS NULL OR NEW.call_in_flight_until = OLD.call_in_flight_until)) THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'run % is finished (%): it cannot change', OLD.id, OLD.status USING ERRCODE = '23514', HINT = 'ai.run_finished';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ai.runs r WHERE r.org_id = NEW.org_id AND r.id = NEW.run_id
      AND (r.status = 'running'
        OR ((r.status = 'cancelled' OR (r.status = 'failed' AND r.error_class = 'worker_lost')) AND NEW.kind = 'llm_call'))) THEN
    RAISE EXCEPTION 'run % is finished: no step can be added', NEW.run_id USING ERRCODE = '23514', HINT = 'ai.run_finished';
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION ai.guard_finished_run() FROM PUBLIC, anon, authenticated, service_role;
