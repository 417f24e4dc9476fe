-- A run whose executing instance stopped (a crash, a kill, a deploy) stayed 'running' for ever: nothing but that
-- instance ever finished it, and its in-flight call's budget reservation stayed counted as reserved until the next
-- reservation on the same budget. The executing instance now holds a lease on the run: lease_until is the latest it
-- will write to the run again, renewed by each of its writes (the start of an interactive run, a job taking an
-- ?async=true run, an LLM call beginning: up to the call's longest possible duration, as call_in_flight_until; each step
-- stored: up to the next step's longest duration). A running run whose lease has passed is finished by the agents
-- module's sweep (RunsService.failLostRuns) as failed, error class worker_lost: the reservation of the call it had in
-- flight (call_in_flight_id) released as a failed run's is (ai.settle_budget), agent.run.failed emitted and the change
-- audited, once. NULL lease: no instance has taken the run yet (its job has not started); a job takes only such a run.
ALTER TABLE ai.runs
  ADD COLUMN lease_until timestamptz,
  ADD COLUMN call_in_flight_id uuid;

ALTER TABLE ai.runs DROP CONSTRAINT runs_error_class_check,
  ADD CONSTRAINT runs_error_class_check
    CHECK (error_class IN ('provider_rate_limited', 'provider_error', 'timeout', 'tool_error', 'budget_exceeded', 'cancelled', 'worker_lost'));

-- Interactive runs running now were started by instances that renew no lease (no job will take them): a day is longer
-- than any run executes, so the sweep finishes those whose instance is gone, and no other. A job's run keeps NULL: its
-- job takes it (or took it, on an instance of the earlier release: left as before).
UPDATE ai.runs SET lease_until = now() + interval '1 day' WHERE status = 'running' AND trigger = 'interactive';

-- the sweep's rows: running runs by lease (few)
CREATE INDEX runs_lease_idx ON ai.runs (lease_until) WHERE status = 'running';

COMMENT ON COLUMN ai.runs.lease_until IS 'while running: the latest the instance executing the run will write to it again (renewed by each write); past it, the run is failed as worker_lost. NULL: no instance has taken the run yet';
COMMENT ON COLUMN ai.runs.call_in_flight_id IS 'while an LLM call of the running run is in flight: the call id of its budget reservation (released by the sweep should the executing instance be lost)';
