-- The AI runs that organizations deleted before this migration left behind. An owner's DELETE /v1/orgs/{id} soft-deleted
-- the organization without stopping its runs, and nothing could finish them afterwards: their executions open no
-- transaction in a deleted organization (begin_request finds none) and the lost-runs sweep leaves a deleted
-- organization's runs alone (agents.lost_runs). They stayed running for good, holding the budget reservations of the
-- calls they had in flight; a run a person had cancelled mid-call kept the mark of the event its execution owed, which
-- the sweep of owed events (agents.cancel_events) would emit into the deleted organization. The deletion now cancels
-- them in its transaction (RunsService.cancelRunsOfDeletedOrganization); those left before are finished here the same
-- way: cancelled, with no event now or owed (every mark cleared), every reservation of a deleted organization released
-- at nothing (as the lost-runs sweep settles a lost call: the amount reserved given back, nothing spent), each cancel
-- audited as the deletion audits it (ai.run_cancelled, reason organization_deleted; principal 'system', actor the
-- migration). Needs no superuser; nothing to do on an empty database, nor when applied again.

WITH released AS (
  DELETE FROM ai.budget_reservations r USING core.organizations o
  WHERE o.id = r.org_id AND o.deleted_at IS NOT NULL
  RETURNING r.org_id, r.budget_id, r.period, r.cost, r.tokens)
UPDATE ai.budget_usage u SET reserved_cost = u.reserved_cost - s.cost, reserved_tokens = u.reserved_tokens - s.tokens
FROM (SELECT org_id, budget_id, period, sum(cost) AS cost, sum(tokens) AS tokens FROM released GROUP BY org_id, budget_id, period) s
WHERE u.org_id = s.org_id AND u.budget_id = s.budget_id AND u.period = s.period;

WITH cancelled AS (
  UPDATE ai.runs x SET status = 'cancelled', stop_reason = 'cancelled', error_class = 'cancelled',
    error_message = 'cancelled: its organization was deleted', finished_at = now(),
    latency_ms = greatest(0, round(extract(epoch FROM (now() - x.started_at)) * 1000))::int, lease_until = NULL, call_in_flight_until = NULL
  FROM core.organizations o
  WHERE o.id = x.org_id AND o.deleted_at IS NOT NULL AND x.status = 'running'
  RETURNING x.*)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT c.org_id, 'migration:20270210330200', 'system', 'ai.run_cancelled', 'ai_run', c.id::text, '{"status": "running"}'::jsonb,
  jsonb_build_object('status', c.status, 'errorClass', c.error_class, 'stopReason', c.stop_reason, 'cost', c.cost::text,
    'usage', jsonb_build_object('inputTokens', c.input_tokens, 'outputTokens', c.output_tokens,
      'cachedInputTokens', c.cached_input_tokens, 'cacheWriteTokens', c.cache_write_tokens),
    'steps', c.steps, 'reason', 'organization_deleted')
FROM cancelled c ORDER BY c.org_id, c.id;

UPDATE ai.runs x SET call_in_flight_until = NULL
FROM core.organizations o
WHERE o.id = x.org_id AND o.deleted_at IS NOT NULL AND x.status = 'cancelled' AND x.call_in_flight_until IS NOT NULL;
