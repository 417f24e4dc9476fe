-- Generated from prisma/migrations/20270211000600_api_key_runs_service_member_reads/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- API keys read and cancel the runs they started, not every run. The run routes (GET a run, the list, the usage report,
-- cancel) open to keys with agents:run; a key's role is 'service', which runs_read (20270205001000) let read every run
-- of the organization. But a run holds what its tools read with the claims of whoever started it: a person's run the
-- knowledge collections and ledger rows that person may read, another key's run what that key's scopes allowed. A key
-- reading every run would read past its own scopes (an agents:run key, the trial balance an owner's run fetched).
-- A run now records the API key that started it (api_key_id, set by the database from the verified key:
-- public.auth_api_key_id(), NULL for everyone else, checked on insert and never changed); a key sees and changes only
-- its own runs (their steps follow: ai.run_readable). A service-role key (role 'service', no key id: the sweeps, other
-- services) still sees every run; people as before (owner, admin: every run; other members: their own).
ALTER TABLE ai.runs ADD COLUMN api_key_id uuid DEFAULT public.auth_api_key_id();
COMMENT ON COLUMN ai.runs.api_key_id IS 'The API key that started the run (set by the database from the verified key); NULL for a person, a trigger or a service';

-- The runs keys started before this migration (review r6): their key is the actor of their start's audit row
-- (RunsService: action ai.run_started, entity ai_run <run id>, actor api_key:<key id>). Without it a run queued or
-- running at the deploy would be invisible to its own job and to its key (404) until the lost-runs sweep failed it;
-- finished ones would drop out of their key's list and usage report. All are backfilled: runs_immutable (a finished run
-- never changes) is off for this one statement, which changes nothing but the new column; each run backfilled is audited.
ALTER TABLE ai.runs DISABLE TRIGGER runs_immutable;
-- Driven by the runs no person started (a key's, a trigger's, a service's: started_by NULL), each looking up its start's
-- audit row by audit_logs_org_entity_idx, not by a scan of the whole audit log while ADD COLUMN holds ai.runs locked.
WITH started AS (
  SELECT r.org_id, r.id,
    (SELECT a.actor_id FROM core.audit_logs a
     WHERE a.org_id = r.org_id AND a.entity_type = 'ai_run' AND a.entity_id = r.id::text AND a.action = 'ai.run_started'
     ORDER BY a.id LIMIT 1) AS actor_id
  FROM ai.runs r WHERE r.started_by IS NULL AND r.api_key_id IS NULL),
recorded AS (
  UPDATE ai.runs r SET api_key_id = substr(s.actor_id, 9)::uuid
  FROM started s WHERE s.org_id = r.org_id AND s.id = r.id AND s.actor_id LIKE 'api_key:%'
  RETURNING r.org_id, r.id, r.api_key_id)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT c.org_id, 'migration:20270211000600', 'system', 'ai.run_api_key_recorded', 'ai_run', c.id::text,
  jsonb_build_object('apiKeyId', NULL), jsonb_build_object('apiKeyId', c.api_key_id)
FROM recorded c ORDER BY c.org_id, c.id;
ALTER TABLE ai.runs ENABLE TRIGGER runs_immutable;

CREATE TRIGGER runs_api_key_fixed BEFORE UPDATE OF api_key_id ON ai.runs FOR EACH ROW
  WHEN (NEW.api_key_id IS DISTINCT FROM OLD.api_key_id) EXECUTE FUNCTION core.reject_change();

-- A key's runs, newest first per agent (its run list) and by start (its usage report): the API adds the verified key to
-- those queries (api_key_id = the key), RLS still deciding. Without it a key's first page read every run of the
-- organization through the policy (r6: 4.2-4.9 s at 101k runs). Measured at 101k runs, 1% of them the key's (h6b,
-- EXPLAIN ANALYZE as omnizen_api in the key's transaction): first page 115-260 ms -> 0.3 ms, usage report 2.1-2.8 s
-- -> 6-7 ms. The policies call the functions per row (initplans, (SELECT ...), took the unfiltered scan from ~37 to
-- ~6-11 us a row, but a tenant table's policy may hold no subquery: Citus rejects them, test/platform/citus.test.ts).
CREATE INDEX runs_api_key_idx ON ai.runs (org_id, api_key_id, agent_id, started_at DESC, id DESC) WHERE api_key_id IS NOT NULL;

ALTER POLICY runs_read ON ai.runs
  USING (org_id = public.auth_org_id()
    AND (public.auth_has_role('owner', 'admin') OR started_by::text = public.auth_user_id()
         OR (public.auth_has_role('service') AND (public.auth_api_key_id() IS NULL OR api_key_id = public.auth_api_key_id()))));

ALTER POLICY runs_insert ON ai.runs
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service')
    AND api_key_id IS NOT DISTINCT FROM public.auth_api_key_id());

ALTER POLICY runs_update ON ai.runs
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service')
    AND (public.auth_has_role('owner', 'admin') OR started_by::text = public.auth_user_id()
         OR (public.auth_has_role('service') AND (public.auth_api_key_id() IS NULL OR api_key_id = public.auth_api_key_id()))))
  WITH CHECK (org_id = public.auth_org_id());

-- semantic.v_agent_metrics reads ai.runs as its caller (security_invoker): for an API key (semantic:read) it counts the
-- runs that key started, none for a key that runs no agent; the organization's aggregates are its people's to read.
COMMENT ON VIEW semantic.v_agent_metrics IS 'AI agent runs per agent and UTC day: outcomes, failures by error class, tokens by type, cost (USD), latency percentiles (owners, admins: every run; other members: the runs they started; an API key: the runs that key started, none if it runs no agent)';

-- The Supabase service-role key acting for an organization (claims role service_role, org_id; auth_role() 'service')
-- manages its members: the member routes and membership policies let it (owner-level: it may grant or take away
-- 'owner'). But the members list and a member's lookup join core."User", whose read policy (user_select) shows a user
-- yourself or your co-members, and a service has no user: it listed no member (200, no items) and changed or removed
-- none (404 member.not_found). It now reads the users who are members of the organization it acts for, and no other.
-- API keys (role 'service' too, claims role authenticated) are not let in: the member routes are closed to them.
CREATE FUNCTION core.member_of_service_org(p_user text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF auth.role() IS DISTINCT FROM 'service_role' OR public.auth_api_key_id() IS NOT NULL THEN RETURN false; END IF;
  RETURN EXISTS (SELECT 1 FROM core.memberships m WHERE m.org_id = public.auth_org_id() AND m.user_id = p_user);
END
$$;
REVOKE ALL ON FUNCTION core.member_of_service_org(text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.member_of_service_org(text) TO authenticated;

CREATE POLICY user_select_service_org ON core."User" FOR SELECT TO authenticated
  USING (core.member_of_service_org(id));

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000600_api_key_runs_service_member_reads', '177b9251a47df65b3659e594b0ca7aaaf752f8e364b5d01a8e45d4da5b9913fa', 0)
  ON CONFLICT (name) DO NOTHING;
