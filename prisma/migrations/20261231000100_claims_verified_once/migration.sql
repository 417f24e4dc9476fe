-- The organization and role of a request are verified once per transaction, not once per row.
--
-- Every tenant policy compares with public.auth_org_id() (and many with public.auth_has_role(...)). Both were
-- SECURITY DEFINER plpgsql functions that look the membership up again on every call, and a policy calls them
-- for every row a statement reads or writes: about 22 membership lookups in one posting, a million in a semantic
-- aggregation over a million journal lines. The usual cure, `(SELECT auth_org_id())` in every policy, is a
-- subquery, which Citus refuses in policies of distributed tables (docs/scaling.md, test/platform/citus.test.ts).
--
-- So begin_request, which the API's runtime login calls at the start of every tenant transaction, records what
-- it verified: the exact claims text, and the organization and role the database decided for those claims
-- (transaction-local settings, gone at commit). auth_org_id() and auth_role() become plain SQL functions that
-- PostgreSQL inlines into each policy: when the session is the API's runtime login and the claims are still the
-- verified ones, they answer the recorded organization and role (a settings read per row); in every other case
-- (an analyst login, Supabase's PostgREST, a privileged path, claims replaced after begin_request) they run the
-- full check, as before, in public.auth_org_id_checked() / public.auth_role_checked().
--
-- What this trusts: only the runtime login (omnizen_api) takes the fast path, and that login already sets the
-- claims themselves; a value it could set in omnizen.verified_* it could equally set in request.jwt.claims. The
-- SQL it runs on behalf of others (semantic queries) cannot set settings (the query checker refuses set_config,
-- SET and every function outside its allow-list). A membership or role change made later in the same
-- transaction is not seen by the policies until the transaction ends: a request is authorized as of its start.

-- the full checks, unchanged (the bodies of 20261228000100_api_keys_rate_limits), under new names; in schema public
-- like the functions that call them, since the policies call them as the querying role (an analyst login has no
-- USAGE on schema core)
CREATE FUNCTION public.auth_org_id_checked() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb;
  claimed text;
BEGIN
  -- the API's own login is never an analyst: skip the catalog lookup on its hot path
  IF session_user <> 'omnizen_api' THEN
    IF core.is_analyst_session() THEN
      RETURN (SELECT a.org_id FROM core.analyst_logins a
              JOIN core.organizations o ON o.id = a.org_id AND o.deleted_at IS NULL
              WHERE a.login = session_user);
    END IF;
  END IF;
  claims := auth.jwt();
  claimed := claims ->> 'org_id';
  IF claimed IS NOT NULL AND claimed ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    IF claims ? 'api_key_id' THEN
      IF core.api_key_valid(claimed::uuid, claims ->> 'api_key_id', claims ->> 'api_key_hash') THEN
        RETURN claimed::uuid;
      END IF;
      RETURN NULL;
    END IF;
    IF claims ->> 'role' = 'service_role' THEN
      IF EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = claimed::uuid AND o.deleted_at IS NULL) THEN
        RETURN claimed::uuid;
      END IF;
      RETURN NULL;
    END IF;
    IF core.is_member(claimed::uuid) THEN
      RETURN claimed::uuid;
    END IF;
    RETURN NULL;
  END IF;
  IF claims IS NULL THEN
    -- a login mapped in core.analyst_logins without being granted omnizen_analyst directly
    RETURN (SELECT a.org_id FROM core.analyst_logins a
            JOIN core.organizations o ON o.id = a.org_id AND o.deleted_at IS NULL
            WHERE a.login = session_user);
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION public.auth_role_checked() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id_checked();
BEGIN
  IF org IS NULL THEN RETURN NULL; END IF;
  IF auth.jwt() IS NULL THEN RETURN 'analyst'; END IF;
  IF session_user <> 'omnizen_api' THEN
    IF core.is_analyst_session() THEN RETURN 'analyst'; END IF;
  END IF;
  IF auth.role() = 'service_role' THEN RETURN 'service'; END IF;
  IF auth.jwt() ? 'api_key_id' THEN RETURN 'service'; END IF;
  RETURN (SELECT m.role FROM core.memberships m WHERE m.org_id = org AND m.user_id = auth.uid()::text);
END
$$;

-- Whether this transaction's claims are the ones begin_request verified (for the runtime login only). Inlined.
CREATE FUNCTION public.auth_claims_verified() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT session_user = 'omnizen_api'
     AND coalesce(current_setting('request.jwt.claim', true), '') = ''
     AND current_setting('omnizen.verified_claims', true) = current_setting('request.jwt.claims', true)
$$;

-- Same signatures, so every policy (which refers to the function, not its body) takes the new form at once.
-- No SECURITY DEFINER and no SET clause: both would stop PostgreSQL from inlining them into the policies.
CREATE OR REPLACE FUNCTION public.auth_org_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN public.auth_claims_verified() THEN nullif(current_setting('omnizen.verified_org', true), '')::uuid
              ELSE public.auth_org_id_checked() END
$$;

CREATE OR REPLACE FUNCTION public.auth_role() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN public.auth_claims_verified() THEN nullif(current_setting('omnizen.verified_role', true), '')
              ELSE public.auth_role_checked() END
$$;

-- begin_request as in 20260101000100_core (plus the session check of a later migration), deciding organization
-- and role with the full checks and recording them for the rest of the transaction.
CREATE OR REPLACE FUNCTION public.begin_request(p_claims text, p_role text, OUT org_id uuid, OUT role text, OUT workspace_id uuid)
LANGUAGE plpgsql AS $$
BEGIN
  IF p_role NOT IN ('authenticated', 'anon') THEN
    RAISE EXCEPTION 'begin_request: role % is not allowed', p_role USING ERRCODE = '42501';
  END IF;
  -- nothing verified yet for these claims (a second begin_request in one transaction starts over)
  PERFORM set_config('omnizen.verified_claims', '', true);
  PERFORM set_config('request.jwt.claims', p_claims, true);
  PERFORM set_config('role', p_role, true);
  -- An access token of a revoked session (logout, revocation, refresh-token reuse) stops working
  -- at once, not when it expires. Runs as the caller: RLS shows a user only their own sessions.
  -- Two IFs, not one AND: the query must never run for anon, which has no rights on core.sessions
  -- (a cached plan would check those rights even when the first operand is false).
  IF p_claims::jsonb ? 'session_id' THEN
    IF EXISTS (
      SELECT 1 FROM core.sessions s
      WHERE s.id = (p_claims::jsonb ->> 'session_id')::uuid AND (s.revoked_at IS NOT NULL OR s.expires_at <= now())
    ) THEN
      RAISE EXCEPTION 'the session of this access token has ended; log in again' USING ERRCODE = '28000';
    END IF;
  END IF;
  org_id := public.auth_org_id_checked();
  role := public.auth_role_checked();
  PERFORM set_config('omnizen.verified_org', coalesce(org_id::text, ''), true);
  PERFORM set_config('omnizen.verified_role', coalesce(role, ''), true);
  PERFORM set_config('omnizen.verified_claims', p_claims, true);
  workspace_id := public.auth_workspace_id();
END
$$;

REVOKE ALL ON FUNCTION public.auth_org_id_checked(), public.auth_role_checked(), public.auth_claims_verified() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.auth_org_id_checked(), public.auth_role_checked(), public.auth_claims_verified()
  TO anon, authenticated, service_role, omnizen_analyst, finance_posting;
