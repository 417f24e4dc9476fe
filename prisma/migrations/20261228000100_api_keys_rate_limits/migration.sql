-- API keys (issue 19): a key acts as a service principal of exactly one organization, restricted to its scopes.
-- The database verifies the key on every request, not the API: public.begin_key_request checks the key's hash,
-- revocation and expiry before it sets the claims, and public.auth_org_id() checks them again (key id, secret
-- hash, organization, not revoked, not expired) for every policy that asks, so a revoked key stops at once and
-- claims naming a key are worth nothing without its secret's hash (which no API-facing role can read).
-- Per-organization rate limits: the plan feature api_requests_per_minute and an override per organization.

-- ---------------------------------------------------------------- api keys
CREATE TABLE core.api_keys (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  -- the public part of the secret (ozk_live_<id without dashes>), shown in lists to recognize a key
  prefix text NOT NULL,
  -- SHA-256 (hex) of the whole secret; the secret itself is shown once and never stored
  secret_hash text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
  -- the fixed list documented in src/modules/api-keys/api-key-scopes.ts
  scopes text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 20 AND scopes <@ ARRAY[
    'org:read', 'ledger:read', 'ledger:write', 'receivables:read', 'receivables:write', 'payables:read', 'payables:write',
    'agents:run', 'analytics:read', 'analytics:write']::text[]),
  created_by text REFERENCES core."User"(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  -- touched at most once a minute by public.verify_api_key, not on every request
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by text,
  PRIMARY KEY (org_id, id)
);
-- verification finds a key by its id alone (the organization is checked after, to answer 404 rather than 401)
CREATE INDEX api_keys_id_idx ON core.api_keys (id);

-- Whether (key, secret hash) is a live key of organization p_org. Runs inside auth_org_id() on the hot path.
CREATE FUNCTION core.api_key_valid(p_org uuid, p_key text, p_hash text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF p_key IS NULL OR p_hash IS NULL OR p_key !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    RETURN false;
  END IF;
  RETURN EXISTS (
    SELECT 1 FROM core.api_keys k JOIN core.organizations o ON o.id = k.org_id AND o.deleted_at IS NULL
    WHERE k.org_id = p_org AND k.id = p_key::uuid AND k.secret_hash = p_hash
      AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()));
END
$$;

-- The key a request authenticates with: its organization and scopes, or 28000 (401) when the secret is wrong or
-- the key is revoked or expired. Touches last_used_at at most once a minute, only for a request in the key's own
-- organization. Called by begin_key_request as the runtime login (in schema public because that login has no
-- USAGE on schema core; executable by it alone, like begin_request).
CREATE FUNCTION public.verify_api_key(p_key uuid, p_hash text, p_org uuid, OUT org_id uuid, OUT scopes text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  k core.api_keys;
BEGIN
  SELECT * INTO k FROM core.api_keys a WHERE a.id = p_key AND a.secret_hash = p_hash;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the API key is not valid' USING ERRCODE = '28000';
  END IF;
  IF k.revoked_at IS NOT NULL THEN
    RAISE EXCEPTION 'the API key has been revoked' USING ERRCODE = '28000';
  END IF;
  IF k.expires_at IS NOT NULL AND k.expires_at <= now() THEN
    RAISE EXCEPTION 'the API key has expired' USING ERRCODE = '28000';
  END IF;
  org_id := k.org_id;
  scopes := k.scopes;
  IF k.org_id = p_org AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute') THEN
    UPDATE core.api_keys a SET last_used_at = now()
    WHERE a.org_id = k.org_id AND a.id = k.id AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute');
  END IF;
END
$$;

-- The verified key of this request (NULL for every other principal).
CREATE FUNCTION public.auth_api_key_id() RETURNS uuid
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

-- Whether the request may use `p_scope`: always for people and services, for a key only when it holds the scope.
CREATE FUNCTION public.auth_has_scope(p_scope text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  key uuid := public.auth_api_key_id();
BEGIN
  IF key IS NULL THEN
    RETURN NOT coalesce(core.request_claims() ? 'api_key_id', false);
  END IF;
  RETURN EXISTS (SELECT 1 FROM core.api_keys k WHERE k.org_id = public.auth_org_id() AND k.id = key AND p_scope = ANY (k.scopes));
END
$$;

-- auth_org_id() as in 20260101000100_core, plus: claims naming an API key count only for a live key of the
-- claimed organization with that secret hash.
CREATE OR REPLACE FUNCTION public.auth_org_id() RETURNS uuid
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

-- auth_role() as before, plus: a verified API key acts as 'service' in its organization.
CREATE OR REPLACE FUNCTION public.auth_role() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
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

-- The tenant transaction of a request made with an API key. Verifies the key (401 when wrong, revoked or
-- expired), then sets claims the database can check again on every statement (begin_request). A key of another
-- organization gets org_id NULL (the API answers 404). A key whose scopes only read runs its transaction
-- read-only: even a route that forgot its scope could not write with it.
CREATE FUNCTION public.begin_key_request(p_key uuid, p_hash text, p_org uuid, p_workspace text,
  OUT org_id uuid, OUT role text, OUT workspace_id uuid, OUT scopes text[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  key_org uuid;
  claims jsonb;
BEGIN
  SELECT v.org_id, v.scopes INTO key_org, scopes FROM public.verify_api_key(p_key, p_hash, p_org) v;
  claims := jsonb_build_object('role', 'authenticated', 'org_id', p_org, 'api_key_id', p_key, 'api_key_hash', p_hash);
  IF p_workspace IS NOT NULL THEN claims := claims || jsonb_build_object('workspace_id', p_workspace); END IF;
  SELECT b.org_id, b.role, b.workspace_id INTO org_id, role, workspace_id FROM public.begin_request(claims::text, 'authenticated') b;
  IF key_org IS DISTINCT FROM p_org THEN
    org_id := NULL; role := NULL; workspace_id := NULL;
  END IF;
  IF org_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM unnest(scopes) s WHERE s NOT LIKE '%:read') THEN
    PERFORM set_config('transaction_read_only', 'on', true);
  END IF;
END
$$;

-- audit rows of a key name the key: principal 'service', actor 'api_key:<id>', checked against the verified key
ALTER POLICY audit_insert ON core.audit_logs
  WITH CHECK (
    (org_id = public.auth_org_id() OR core.is_member(org_id))
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND auth.role() = 'service_role')
         OR (principal_type = 'service' AND actor_id = 'api_key:' || public.auth_api_key_id()::text)));
ALTER POLICY audit_insert_posting ON core.audit_logs
  WITH CHECK (
    org_id = finance.posting_org() AND entity_type = 'journal_entry'
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND core.request_claims() ->> 'role' = 'service_role')
         OR (principal_type = 'service' AND actor_id = 'api_key:' || public.auth_api_key_id()::text)));

ALTER TABLE core.api_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- owners and admins (people, not keys) manage the organization's keys; a key cannot mint or revoke keys
CREATE POLICY api_keys_read ON core.api_keys FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin') AND public.auth_api_key_id() IS NULL);
CREATE POLICY api_keys_create ON core.api_keys FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin') AND created_by = public.auth_user_id());
CREATE POLICY api_keys_revoke ON core.api_keys FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY api_keys_service ON core.api_keys FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON core.api_keys FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT (org_id, id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at, revoked_at, revoked_by) ON core.api_keys TO authenticated;
GRANT INSERT (org_id, id, name, prefix, secret_hash, scopes, created_by, expires_at) ON core.api_keys TO authenticated;
GRANT UPDATE (revoked_at, revoked_by) ON core.api_keys TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.api_keys TO service_role;

REVOKE ALL ON FUNCTION core.api_key_valid(uuid, text, text), public.verify_api_key(uuid, text, uuid),
  public.auth_api_key_id(), public.auth_has_scope(text), public.begin_key_request(uuid, text, uuid, text)
  FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.verify_api_key(uuid, text, uuid) TO omnizen_api;
GRANT EXECUTE ON FUNCTION public.begin_key_request(uuid, text, uuid, text) TO omnizen_api;
GRANT EXECUTE ON FUNCTION public.auth_api_key_id(), public.auth_has_scope(text)
  TO anon, authenticated, service_role, omnizen_analyst, finance_posting;

-- ---------------------------------------------------------------- rate limits
INSERT INTO hub.features (app_id, code, kind, unit, description) VALUES
  ('omnizen', 'api_requests_per_minute', 'limit', 'requests/minute', 'API requests per minute (per organization, and per API key)');
INSERT INTO hub.plan_features (app_id, plan_code, feature, limit_value) VALUES
  ('omnizen', 'starter', 'api_requests_per_minute', 600),
  ('omnizen', 'professional', 'api_requests_per_minute', 3000),
  ('omnizen', 'enterprise', 'api_requests_per_minute', 10000),
  ('omnizen', 'custom', 'api_requests_per_minute', 10000);

-- A negotiated limit for one organization, set by operators (SQL or a service-role key), read by its members.
CREATE TABLE hub.rate_limit_overrides (
  org_id uuid PRIMARY KEY REFERENCES core.organizations(id) ON DELETE CASCADE,
  requests_per_minute integer NOT NULL CHECK (requests_per_minute > 0),
  reason text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE hub.rate_limit_overrides ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY rate_limit_override_read ON hub.rate_limit_overrides FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY rate_limit_override_service ON hub.rate_limit_overrides FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON hub.rate_limit_overrides FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON hub.rate_limit_overrides TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON hub.rate_limit_overrides TO service_role;

-- The request organization's limit in requests per minute for `p_app`: its override, else its plan's
-- api_requests_per_minute (the subscription's plan, or the app's default plan); NULL = no cap. `known` is false when
-- the plan has no such feature (the API then applies its default). Runs as the caller, in the tenant transaction.
CREATE FUNCTION hub.request_rate_limit(p_app text, OUT known boolean, OUT requests_per_minute bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  org uuid := public.auth_org_id();
  v_plan text;
BEGIN
  known := false;
  IF org IS NULL THEN RETURN; END IF;
  SELECT o.requests_per_minute INTO requests_per_minute FROM hub.rate_limit_overrides o WHERE o.org_id = org;
  IF requests_per_minute IS NOT NULL THEN known := true; RETURN; END IF;
  SELECT coalesce(s.plan, a."defaultPlan") INTO v_plan
  FROM hub."App" a
  JOIN core.organizations og ON og.id = org
  LEFT JOIN hub."Subscription" s ON s."appId" = a.id AND (
    (og.account_type = 'personal' AND s."userId" = og.owner_user_id AND s."organizationId" IS NULL)
    OR (og.account_type <> 'personal' AND s."organizationId" = org::text))
  WHERE a.id = p_app;
  SELECT pf.limit_value INTO requests_per_minute
  FROM hub.plan_features pf WHERE pf.app_id = p_app AND pf.plan_code = v_plan AND pf.feature = 'api_requests_per_minute';
  known := FOUND;
END
$$;
REVOKE ALL ON FUNCTION hub.request_rate_limit(text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION hub.request_rate_limit(text) TO authenticated;
