-- A run cancelled through the API is finished at once by the instance that took the cancel, while another instance may
-- be executing it with an LLM call in flight: that call is billed, and its step (what the budget was charged) is added
-- to the cancelled run by the executing instance once the call returns. The cancel emitted agent.run.failed with the
-- cost before that step, so the event (and the webhooks fed by it) disagreed with the run and the budget.
--
-- The execution now marks the run while a call is in flight (set with the call's budget reservation, up to the same
-- expiry: the call's longest possible duration; cleared when the call's step is added to the running run). A cancel that
-- finds the mark (call_in_flight_until > the run's finished_at) leaves the run's event to the execution, which emits it
-- once with every step stored; otherwise the cancel emits it (RunsService.cancel). A finished run's mark never changes
-- (ai.guard_finished_run), so both sides read the same answer from the stored run.
ALTER TABLE ai.runs ADD COLUMN call_in_flight_until timestamptz;
COMMENT ON COLUMN ai.runs.call_in_flight_until IS 'while an LLM call of the run is in flight: the latest it can end (its budget reservation''s expiry); NULL otherwise';
