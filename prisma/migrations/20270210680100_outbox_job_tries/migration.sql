-- The cap on a job's attempts (20270210600100_outbox_dead_jobs) counted claims, not tries (review r4): every claim bumps
-- attempts, and under Bull a job Bull still holds (waiting in a backlog, running a long export) is claimed again each time
-- its claim runs out (JOBS_CLAIM_TIMEOUT_MS) without being run again, and a hand-off Redis refused was a claim too: a
-- 7-hour backlog spent the PostHog erasure job's whole cap, and a job Bull held as failed was given up, untried, once
-- Redis was back. tries counts the times the job's handler was started: in-process right before it runs, under Bull by
-- the worker at each of its starts (Bull's retries included). The cap (JobRegistry.maxAttempts) and the backoff after
-- a failure of the job compare tries; attempts stays the claim's guard (it only grows). Rows pending now start at 0:
-- their attempts may be claims that ran nothing, and a few more tries beat giving up a job never run (an operator's
-- retry of a dead job sets tries back to 0 with attempts). A dead job's Bull copy (its payload) is removed from Redis.
-- Needs no superuser; no table is created (core.outbox keeps its RLS and grants: they are table-wide and cover the new
-- column; adding a column with a constant default rewrites no row).
ALTER TABLE core.outbox ADD COLUMN tries int NOT NULL DEFAULT 0;
COMMENT ON COLUMN core.outbox.tries IS 'times the job''s handler was started (in-process, or each start in Bull''s worker); its topic''s cap and the backoff after a failure compare it; attempts counts claims';
