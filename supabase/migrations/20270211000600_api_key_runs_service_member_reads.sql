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

CREATE TRIGGER runs_api_key_fixed BEFORE UPDATE OF api_key_id ON ai.runs FOR EACH ROW
  WHEN (NEW.api_key_id IS DISTINCT FROM OLD.api_key_id) EXECUTE FUNCTION core.reject_change();

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
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000600_api_key_runs_service_member_reads', '96c2223719e6afe59c8a88f0b368314c2f867491554a7ebf15d808c19b356220', 0)
  ON CONFLICT (name) DO NOTHING;
