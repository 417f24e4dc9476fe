-- A person's erasure (DELETE /v1/me, privileged path privacy.erasure) now clears the content of the AI agent runs that
-- are theirs: the runs they started, and the runs whose input or output names one of their proven addresses (an event
-- trigger pastes the event's payload into its run's input: member.invited carries the invitee's e-mail). A run's input
-- becomes '{}' and its output NULL; its steps' detail (the model's answers, tool arguments and results) becomes '{}'.
-- Amounts, tokens, statuses and times stay (budgets and usage reports read them).
--
-- Finished runs and every step are immutable (ai.guard_finished_run, core.reject_change): the two triggers now skip
-- that one change only, made on that path only (as service_role, the path named by PrivilegedDatabase.run); any other
-- change is refused as before. The trigger functions are unchanged.
DROP TRIGGER runs_immutable ON ai.runs;
CREATE TRIGGER runs_immutable BEFORE UPDATE ON ai.runs FOR EACH ROW
  WHEN (NOT (current_user = 'service_role' AND current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure'
    AND NEW.input = '{}'::jsonb AND NEW.output IS NULL
    AND to_jsonb(NEW) - 'input' - 'output' = to_jsonb(OLD) - 'input' - 'output'))
  EXECUTE FUNCTION ai.guard_finished_run();

DROP TRIGGER run_steps_immutable ON ai.run_steps;
CREATE TRIGGER run_steps_immutable BEFORE UPDATE ON ai.run_steps FOR EACH ROW
  WHEN (NOT (current_user = 'service_role' AND current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure'
    AND NEW.detail = '{}'::jsonb AND to_jsonb(NEW) - 'detail' = to_jsonb(OLD) - 'detail'))
  EXECUTE FUNCTION core.reject_change();

-- service_role may write a step's detail (nothing else of it); the policies admit the erasure's path only
GRANT UPDATE (detail) ON ai.run_steps TO service_role;
CREATE POLICY runs_erasure ON ai.runs FOR UPDATE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure')
  WITH CHECK (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY runs_erasure_read ON ai.runs FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY run_steps_erasure ON ai.run_steps FOR UPDATE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure')
  WITH CHECK (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY run_steps_erasure_read ON ai.run_steps FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
