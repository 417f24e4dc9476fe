-- Validates the error class checks swapped NOT VALID by 20270208050100_ai_run_internal_error (ai.runs) and
-- 20270208150100_ai_step_internal_error (ai.run_steps), each migration running in its own transaction: VALIDATE
-- CONSTRAINT scans the table under SHARE UPDATE EXCLUSIVE, which lets runs and their steps be read and written meanwhile
-- (the rows already there passed the narrower checks these replaced).
ALTER TABLE ai.runs VALIDATE CONSTRAINT runs_error_class_check;
ALTER TABLE ai.run_steps VALIDATE CONSTRAINT run_steps_error_class_check;
