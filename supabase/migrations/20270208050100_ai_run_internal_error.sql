-- Generated from prisma/migrations/20270208050100_ai_run_internal_error/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- An interactive (synchronous or streamed) run whose execution failed unexpectedly (a database error, no error of the
-- provider's or of a tool's) stayed 'running' until the lost-runs sweep failed it as worker_lost once its lease passed
-- (minutes later: the longest duration of an LLM call), its in-flight call's reservation counted until then, although the
-- instance executing it knew at once: no job retries an interactive run. The
-- execution now fails it at once (RunsService.execute), as failed with the error class internal (the code a 500
-- answers with), its lease and its in-flight call's reservation released. A job's run is not failed so: its job
-- releases it for the queue's retry, which resumes it.
-- The check is swapped NOT VALID (no scan of ai.runs under this statement's ACCESS EXCLUSIVE lock, which this migration's
-- transaction holds to its end); 20270208150200_ai_error_class_checks_validate validates it in a transaction of its own,
-- under a lock that lets runs be read and written meanwhile.
ALTER TABLE ai.runs DROP CONSTRAINT runs_error_class_check,
  ADD CONSTRAINT runs_error_class_check
    CHECK (error_class IN ('provider_rate_limited', 'provider_error', 'timeout', 'tool_error', 'budget_exceeded', 'cancelled', 'worker_lost', 'internal')) NOT VALID;

-- semantic.v_agent_metrics counts failures per error class: redefined with failed_internal among them (dropped and created
-- again, for the column's place: nothing depends on the view), its grants, its comment and its columns' descriptions as
-- before, and the new column's.
DROP VIEW semantic.v_agent_metrics;

CREATE VIEW semantic.v_agent_metrics WITH (security_invoker = true) AS
SELECT r.org_id, r.agent_id, a.name AS agent_name, (r.started_at AT TIME ZONE 'UTC')::date AS day,
  count(*) AS runs,
  count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
  count(*) FILTER (WHERE r.status = 'failed') AS failed,
  count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
  count(*) FILTER (WHERE r.error_class = 'provider_rate_limited') AS failed_provider_rate_limited,
  count(*) FILTER (WHERE r.error_class = 'provider_error') AS failed_provider_error,
  count(*) FILTER (WHERE r.error_class = 'timeout') AS failed_timeout,
  count(*) FILTER (WHERE r.error_class = 'tool_error') AS failed_tool_error,
  count(*) FILTER (WHERE r.error_class = 'budget_exceeded') AS failed_budget_exceeded,
  count(*) FILTER (WHERE r.error_class = 'worker_lost') AS failed_worker_lost,
  count(*) FILTER (WHERE r.error_class = 'internal') AS failed_internal,
  sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens,
  sum(r.cached_input_tokens) AS cached_input_tokens, sum(r.cache_write_tokens) AS cache_write_tokens,
  sum(r.cost) AS cost,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) AS p50_latency_ms,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) AS p95_latency_ms
FROM ai.runs r
JOIN ai.agents a ON a.org_id = r.org_id AND a.id = r.agent_id
WHERE r.org_id = public.auth_org_id()
GROUP BY r.org_id, r.agent_id, a.name, (r.started_at AT TIME ZONE 'UTC')::date;
REVOKE ALL ON semantic.v_agent_metrics FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON semantic.v_agent_metrics TO authenticated, service_role;

COMMENT ON VIEW semantic.v_agent_metrics IS 'AI agent runs per agent and UTC day: outcomes, failures by error class, tokens by type, cost (USD), latency percentiles (owners, admins: every run; other members: the runs they started)';
COMMENT ON COLUMN semantic.v_agent_metrics.agent_id IS 'the agent';
COMMENT ON COLUMN semantic.v_agent_metrics.agent_name IS 'the agent''s name';
COMMENT ON COLUMN semantic.v_agent_metrics.day IS 'UTC day the runs started';
COMMENT ON COLUMN semantic.v_agent_metrics.runs IS 'runs started';
COMMENT ON COLUMN semantic.v_agent_metrics.succeeded IS 'runs that answered';
COMMENT ON COLUMN semantic.v_agent_metrics.failed IS 'runs that failed';
COMMENT ON COLUMN semantic.v_agent_metrics.failed_worker_lost IS 'runs failed because the instance executing them stopped before finishing them, or because their job never started them (within a day)';
COMMENT ON COLUMN semantic.v_agent_metrics.failed_internal IS 'runs failed because their execution failed unexpectedly (an internal error, e.g. of the database) while the caller waited for them (synchronous or streamed runs)';
COMMENT ON COLUMN semantic.v_agent_metrics.cost IS 'cost in USD at the prices in effect when each step ran';
COMMENT ON COLUMN semantic.v_agent_metrics.p50_latency_ms IS 'median run latency (ms)';
COMMENT ON COLUMN semantic.v_agent_metrics.p95_latency_ms IS '95th percentile run latency (ms)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208050100_ai_run_internal_error', 'cba5bff398abfd601111689065b7ef24c48a7bffc207f9d4d3128030e5066e66', 0)
  ON CONFLICT (name) DO NOTHING;
