-- Automation of AI agents (issue 16, plan feature ai_automation): a trigger runs an agent on a schedule (cron,
-- UTC) or on a domain event of the outbox, with the claims of the member who set it. Those claims are checked
-- again at every firing (a member who left, or lost the role, stops the trigger with an error). A firing is
-- recorded under a unique key (the event id, or the scheduled minute): at most one run per event or slot.
--
-- Finding the triggers a domain event or a clock tick fires spans organizations before any member's claims are
-- known: the privileged path 'agents.triggers' (service_role) reads triggers and records their stop; the run
-- itself, and its firing row, are written as the member.

CREATE TABLE ai.agent_triggers (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  agent_id uuid NOT NULL,
  kind text NOT NULL CHECK (kind IN ('schedule', 'event')),
  -- schedule: a 5-field cron expression, evaluated in UTC
  cron text CHECK (cron IS NULL OR length(cron) <= 100),
  -- event: the domain event type (e.g. bill.submitted)
  event_type text CHECK (event_type IS NULL OR event_type ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
  -- what the agent is told when it fires (the event's payload follows it)
  prompt text NOT NULL CHECK (length(prompt) BETWEEN 1 AND 20000),
  -- the member whose claims the runs execute with
  created_by uuid NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
  last_error text,
  last_fired_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, agent_id) REFERENCES ai.agents(org_id, id) ON DELETE CASCADE,
  CHECK ((kind = 'schedule') = (cron IS NOT NULL) AND (kind = 'event') = (event_type IS NOT NULL))
);
CREATE INDEX agent_triggers_event_idx ON ai.agent_triggers (org_id, event_type) WHERE kind = 'event' AND status = 'active';
CREATE INDEX agent_triggers_schedule_idx ON ai.agent_triggers (kind, status) WHERE kind = 'schedule';

CREATE TABLE ai.trigger_firings (
  org_id uuid NOT NULL,
  trigger_id uuid NOT NULL,
  -- the domain event's id, or the scheduled minute (ISO 8601)
  fire_key text NOT NULL,
  run_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, trigger_id, fire_key),
  FOREIGN KEY (org_id, trigger_id) REFERENCES ai.agent_triggers(org_id, id) ON DELETE CASCADE
);

ALTER TABLE ai.agent_triggers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.trigger_firings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY agent_triggers_read ON ai.agent_triggers FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY agent_triggers_write ON ai.agent_triggers FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
-- a firing runs as the trigger's member, who records its last firing
CREATE POLICY agent_triggers_fired ON ai.agent_triggers FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND created_by = auth.uid()) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY agent_triggers_service ON ai.agent_triggers FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY trigger_firings_read ON ai.trigger_firings FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY trigger_firings_insert ON ai.trigger_firings FOR INSERT TO authenticated WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY trigger_firings_service ON ai.trigger_firings FOR SELECT TO service_role USING (true);

REVOKE ALL ON ai.agent_triggers, ai.trigger_firings FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ai.agent_triggers TO authenticated, service_role;
GRANT SELECT, INSERT ON ai.trigger_firings TO authenticated;
GRANT SELECT ON ai.trigger_firings TO service_role;
