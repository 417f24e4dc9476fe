-- A run keeps what it saw: its input (a trigger's event payload included), its output, and in its steps every tool's
-- full answer (knowledge passages of collections limited by read_roles, semantic query rows, reports), read with the
-- claims of the person who started it. Any member could read every run of the organization, so a viewer read an
-- owner-only collection through an owner's run. A run and its steps are now readable only by the person who started
-- it, an owner, an admin, or a service key (what they read through the run, they may read anyway, or are trusted to);
-- other members do not see the run at all (GET answers 404, the list, the usage report and v_agent_metrics count
-- only their own runs). Writing follows the same rule: a run's execution writes as its starter, a cancel as its
-- starter, an owner or an admin.
ALTER POLICY runs_read ON ai.runs
  USING (org_id = public.auth_org_id()
    AND (public.auth_has_role('owner', 'admin', 'service') OR started_by::text = public.auth_user_id()));

ALTER POLICY runs_update ON ai.runs
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service')
    AND (public.auth_has_role('owner', 'admin', 'service') OR started_by::text = public.auth_user_id()))
  WITH CHECK (org_id = public.auth_org_id());

-- Whether the caller may read run p_run: the runs' own policy decides (the function is not SECURITY DEFINER, so RLS
-- applies inside it), and a run's steps follow their run from that one place. The policies hold no subquery (Citus
-- refuses them, test/platform/citus.test.ts).
CREATE FUNCTION ai.run_readable(p_org uuid, p_run uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM ai.runs r WHERE r.org_id = p_org AND r.id = p_run)
$$;
REVOKE ALL ON FUNCTION ai.run_readable(uuid, uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.run_readable(uuid, uuid) TO authenticated;

ALTER POLICY run_steps_read ON ai.run_steps
  USING (org_id = public.auth_org_id() AND ai.run_readable(org_id, run_id));

ALTER POLICY run_steps_insert ON ai.run_steps
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service')
    AND ai.run_readable(org_id, run_id));

COMMENT ON VIEW semantic.v_agent_metrics IS 'AI agent runs per agent and UTC day: outcomes, failures by error class, tokens by type, cost (USD), latency percentiles (owners, admins: every run; other members: the runs they started)';
