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
-- One UPDATE of ai.runs alone, never joined with itself: the runs no person started (a key's, a trigger's, a service's:
-- started_by NULL) each look up their start's audit row by audit_logs_org_entity_idx (not a scan of the whole audit log
-- while ADD COLUMN holds ai.runs locked). Its plan is one pass over ai.runs whatever the statistics say (the new column
-- has none yet). A join of ai.runs with a subquery over ai.runs (its first form) was estimated at 1 row (the LIKE over
-- the looked-up actor) and planned as a Nested Loop scanning ai.runs once per key run: 582 s at 100k runs, 40k of them
-- keys' (review rk); this form 6.1 s there (hk). The lookup runs twice for a key's run (filter and value), cheap by index.
-- Only an actor naming a key by its uuid: one written by operator SQL or a service ('api_key:legacy-import') would fail
-- the cast and the whole migration (review rk2); such runs stay without a key, as a person's or a service's.
WITH recorded AS (
  UPDATE ai.runs r SET api_key_id = substr(
      (SELECT a.actor_id FROM core.audit_logs a
       WHERE a.org_id = r.org_id AND a.entity_type = 'ai_run' AND a.entity_id = r.id::text AND a.action = 'ai.run_started'
       ORDER BY a.id LIMIT 1), 9)::uuid
  WHERE r.started_by IS NULL AND r.api_key_id IS NULL
    AND (SELECT a.actor_id FROM core.audit_logs a
         WHERE a.org_id = r.org_id AND a.entity_type = 'ai_run' AND a.entity_id = r.id::text AND a.action = 'ai.run_started'
         ORDER BY a.id LIMIT 1) ~* '^api_key:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
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

-- The verified key, recorded once per transaction like the organization and role (20261231000100_claims_verified_once).
-- runs_read and runs_update call public.auth_api_key_id() per row (twice for a key, once for a service), and it was a
-- SECURITY DEFINER plpgsql function PostgreSQL cannot inline, checking the key again on each call (review rk, 100k runs:
-- a key's count(*) of semantic.v_agent_metrics 5.9-8.4 s, past the semantic route's 5 s statement_timeout; a service's
-- count(*) of 20k runs 75-85 -> 416-511 ms). begin_request (which begin_key_request calls) now records the key it
-- verified in omnizen.verified_api_key, and auth_api_key_id() is plain inlinable SQL: the recorded key while the
-- claims are the verified ones on the runtime login (public.auth_claims_verified()), the full check otherwise (an
-- analyst login, PostgREST, claims replaced after begin_request). The same trust as omnizen.verified_org and _role:
-- only the runtime login takes the fast path, and it sets the claims themselves; the SQL it runs for others (semantic
-- queries) cannot set settings.
CREATE FUNCTION public.auth_api_key_id_checked() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := core.request_claims();
  org uuid;
BEGIN
  IF claims IS NULL OR NOT claims ? 'api_key_id' THEN RETURN NULL; END IF;
  org := public.auth_org_id();
  IF org IS NULL THEN RETURN NULL; END IF;
  RETURN (claims ->> 'api_key_id')::uuid;
END
$$;
REVOKE ALL ON FUNCTION public.auth_api_key_id_checked() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.auth_api_key_id_checked() TO anon, authenticated, service_role, omnizen_analyst, finance_posting;

-- Same signature (the policies, defaults and functions that call it take the new form at once); no SECURITY DEFINER
-- and no SET clause, which would stop PostgreSQL from inlining it. The record is the key's id or 'none'; an empty or
-- missing record (a begin_request that did not write it, a pooled connection's earlier transaction) is no answer and
-- takes the full check, so a missing record never reads as "no key" (which would show a key every run).
CREATE OR REPLACE FUNCTION public.auth_api_key_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN NOT public.auth_claims_verified() OR coalesce(current_setting('omnizen.verified_api_key', true), '') = ''
                THEN public.auth_api_key_id_checked()
              WHEN current_setting('omnizen.verified_api_key', true) = 'none' THEN NULL
              ELSE current_setting('omnizen.verified_api_key', true)::uuid END
$$;

-- begin_request as in 20270115000100_ledger_posting_statements, plus omnizen.verified_api_key: what
-- auth_api_key_id_checked() answers for the claims just verified (their api_key_id when they name a key and the
-- organization was granted, else 'none').
CREATE OR REPLACE FUNCTION public.begin_request(p_claims text, p_role text, OUT org_id uuid, OUT role text, OUT workspace_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
  claims jsonb;
  decided record;
  _ text;
BEGIN
  IF p_role NOT IN ('authenticated', 'anon') THEN
    RAISE EXCEPTION 'begin_request: role % is not allowed', p_role USING ERRCODE = '42501';
  END IF;
  -- nothing verified yet for these claims (a second begin_request in one transaction starts over)
  _ := set_config('omnizen.verified_claims', '', true);
  _ := set_config('request.jwt.claims', p_claims, true);
  _ := set_config('role', p_role, true);
  claims := p_claims::jsonb;
  -- An access token of a revoked session (logout, revocation, refresh-token reuse) stops working
  -- at once, not when it expires. Runs as the caller: RLS shows a user only their own sessions.
  -- Two IFs, not one AND: the query must never run for anon, which has no rights on core.sessions
  -- (a cached plan would check those rights even when the first operand is false).
  IF claims ? 'session_id' THEN
    IF EXISTS (
      SELECT 1 FROM core.sessions s
      WHERE s.id = (claims ->> 'session_id')::uuid AND (s.revoked_at IS NOT NULL OR s.expires_at <= now())
    ) THEN
      RAISE EXCEPTION 'the session of this access token has ended; log in again' USING ERRCODE = '28000';
    END IF;
  END IF;
  decided := public.auth_org_role_checked();
  org_id := decided.org_id;
  role := decided.role;
  _ := set_config('omnizen.verified_org', coalesce(org_id::text, ''), true);
  _ := set_config('omnizen.verified_role', coalesce(role, ''), true);
  -- an organization is granted to claims naming a key only for that live key with its secret's hash (api_key_valid)
  _ := set_config('omnizen.verified_api_key',
         CASE WHEN org_id IS NOT NULL AND claims ? 'api_key_id' THEN (claims ->> 'api_key_id')::uuid::text ELSE 'none' END, true);
  _ := set_config('omnizen.verified_claims', p_claims, true);
  -- auth_workspace_id() answers NULL for claims without a workspace
  IF auth.jwt() ? 'workspace_id' THEN
    workspace_id := public.auth_workspace_id();
  END IF;
END
$$;

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
  -- the role decided for the request ('service': the service-role key, or an API key, which has a key id), not the
  -- claims' role as read now (auth.role() prefers request.jwt.claim.role, which is no part of the verified claims).
  -- Only in the API's verified transactions, tested first: elsewhere (PostgREST, as authenticated) auth_role() takes
  -- its full check for every row of core."User" the other policy hides (review rk2: 180-225 us a row); PostgREST's
  -- service key runs as service_role, which user_service covers
  IF public.auth_claims_verified() IS NOT TRUE OR public.auth_role() IS DISTINCT FROM 'service' OR public.auth_api_key_id() IS NOT NULL THEN
    RETURN false;
  END IF;
  RETURN EXISTS (SELECT 1 FROM core.memberships m WHERE m.org_id = public.auth_org_id() AND m.user_id = p_user);
END
$$;
REVOKE ALL ON FUNCTION core.member_of_service_org(text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.member_of_service_org(text) TO authenticated;

CREATE POLICY user_select_service_org ON core."User" FOR SELECT TO authenticated
  USING (core.member_of_service_org(id));
