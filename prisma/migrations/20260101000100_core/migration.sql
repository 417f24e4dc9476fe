-- Core: roles, request helpers, users, organizations, memberships, workspaces, invitations,
-- settings, feature flags, sessions, audit log and the job outbox.
--
-- Conventions every later migration follows:
--  * every table: ENABLE and FORCE row level security, policies TO named roles;
--  * tenant tables carry org_id first in their primary, unique and foreign keys;
--  * tenant policies call functions (org_id = public.auth_org_id()), never subqueries (Citus);
--  * SECURITY DEFINER functions set search_path = '' and qualify every name;
--  * it applies as Supabase's `postgres`, which is not a superuser (CREATEROLE, CREATEDB, BYPASSRLS): no
--    ALTER ... OWNER TO a role without first `GRANT <role> TO CURRENT_USER` and, for the hand-over only,
--    `GRANT CREATE ON SCHEMA <schema> TO <role>` (revoked right after); nothing in schemas we do not own (auth,
--    storage, extensions); code running as a helper role reads claims through public.auth_user_id() and
--    core.request_claims(), not auth.*;
--  * every privilege explicit: each new table, view, sequence and function gets
--    `REVOKE ALL ... FROM PUBLIC, anon, authenticated, service_role` (Supabase's default privileges in public
--    grant them ALL) and then exactly the grants it needs; TRUNCATE, REFERENCES and TRIGGER to no API-facing
--    role; internal and trigger functions to no one. Add the object to test/platform/privileges.ts;
--  * then run `npm run supabase:migrations` (the Supabase CLI's copy in supabase/migrations).

-- ---------------------------------------------------------------- roles
DO $$
BEGIN
  -- The API's runtime login: not an owner, not a superuser, no BYPASSRLS. NOINHERIT: outside
  -- SET LOCAL ROLE it has no table privileges at all, so a query outside the tenant transaction fails.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omnizen_api') THEN
    CREATE ROLE omnizen_api LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  -- Analysts' database logins are granted this role and mapped to one organization in core.analyst_logins.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omnizen_analyst') THEN
    CREATE ROLE omnizen_analyst NOLOGIN NOINHERIT NOBYPASSRLS;
  END IF;
END
$$;
GRANT anon, authenticated TO omnizen_api;

CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS semantic;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
GRANT USAGE ON SCHEMA core TO authenticated, anon, service_role;
GRANT USAGE ON SCHEMA semantic TO authenticated, service_role, omnizen_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA core GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA core GRANT USAGE, SELECT ON SEQUENCES TO authenticated, service_role;

-- ---------------------------------------------------------------- users (seed 000, exactly)
CREATE TABLE core."User" (
    id TEXT PRIMARY KEY,          -- UUID, must be consistent across all apps
    email TEXT UNIQUE NOT NULL,   -- Login identifier
    name TEXT,
    image TEXT,
    "accountType" TEXT DEFAULT 'personal', -- 'personal' or 'business'
    "createdAt" TIMESTAMP,
    "updatedAt" TIMESTAMP
);

-- Password hashes live apart from core."User": only the privileged login path reads them.
CREATE TABLE core.user_credentials (
  user_id text PRIMARY KEY REFERENCES core."User"(id) ON DELETE CASCADE,
  password_hash text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON core.user_credentials FROM authenticated;

-- ---------------------------------------------------------------- organizations
CREATE TABLE core.organizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  account_type text NOT NULL DEFAULT 'business' CHECK (account_type IN ('personal', 'business')),
  owner_user_id text NOT NULL REFERENCES core."User"(id),
  domain text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- organizations are soft-deleted: their books and audit trail stay, nobody can act in them
  deleted_at timestamptz
);
CREATE UNIQUE INDEX organizations_personal_uq ON core.organizations (owner_user_id) WHERE account_type = 'personal';

CREATE TABLE core.memberships (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'accountant', 'member', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON core.memberships (user_id, org_id);

-- Database logins of analysts, each mapped to one organization (read-only on schema semantic).
CREATE TABLE core.analyst_logins (
  login name PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- request helpers (seed 002)
CREATE FUNCTION core.is_member(p_org uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id AND o.deleted_at IS NULL
    WHERE m.org_id = p_org AND m.user_id = auth.uid()::text)
$$;

-- Whether this session's login is an analyst's (a direct member of omnizen_analyst).
CREATE FUNCTION core.is_analyst_session() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles member ON member.oid = m.member
    JOIN pg_catalog.pg_roles grp ON grp.oid = m.roleid
    WHERE member.rolname = session_user AND grp.rolname = 'omnizen_analyst')
$$;

-- The organization of the request, only when the caller may act in it. An analyst login (a direct member of
-- omnizen_analyst) gets the organization it is mapped to, whatever claims it sets: any login can set
-- request.jwt.claims. Otherwise a member (user claims) or the service role acting for it. Else NULL.
CREATE FUNCTION public.auth_org_id() RETURNS uuid
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

CREATE FUNCTION public.auth_user_id() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT auth.uid()::text $$;

-- The caller's role in auth_org_id(): a membership role, 'service' or 'analyst'.
CREATE FUNCTION public.auth_role() RETURNS text
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
  RETURN (SELECT m.role FROM core.memberships m WHERE m.org_id = org AND m.user_id = auth.uid()::text);
END
$$;

CREATE FUNCTION public.auth_has_role(VARIADIC roles text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT coalesce(public.auth_role() = ANY (roles), false) $$;

-- ---------------------------------------------------------------- workspaces
CREATE TABLE core.workspaces (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, name)
);

CREATE FUNCTION public.auth_workspace_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claimed text := auth.jwt() ->> 'workspace_id';
  org uuid;
BEGIN
  IF claimed IS NULL OR claimed !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    RETURN NULL;
  END IF;
  org := public.auth_org_id();
  IF org IS NULL THEN RETURN NULL; END IF;
  RETURN (SELECT w.id FROM core.workspaces w WHERE w.org_id = org AND w.id = claimed::uuid);
END
$$;

-- Sets the claims and role of one request; called first in every tenant transaction.
-- Returns what the database concluded, so the API can answer 404 for a non-member in one round trip.
CREATE FUNCTION public.begin_request(p_claims text, p_role text, OUT org_id uuid, OUT role text, OUT workspace_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF p_role NOT IN ('authenticated', 'anon') THEN
    RAISE EXCEPTION 'begin_request: role % is not allowed', p_role USING ERRCODE = '42501';
  END IF;
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
  org_id := public.auth_org_id();
  role := public.auth_role();
  workspace_id := public.auth_workspace_id();
END
$$;
GRANT EXECUTE ON FUNCTION public.begin_request(text, text) TO omnizen_api;

-- ---------------------------------------------------------------- invitations
CREATE TABLE core.invitations (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  email text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'accountant', 'member', 'viewer')),
  token_hash text NOT NULL,
  invited_by text REFERENCES core."User"(id) ON DELETE SET NULL,
  expires_at timestamptz NOT NULL,
  accepted_at timestamptz,
  accepted_by text REFERENCES core."User"(id) ON DELETE SET NULL,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, token_hash)
);
CREATE UNIQUE INDEX invitations_pending_email_uq ON core.invitations (org_id, lower(email))
  WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_expires_idx ON core.invitations (expires_at) WHERE accepted_at IS NULL;

-- ---------------------------------------------------------------- settings and feature flags
-- scope 'org' holds organization-level settings; any other scope is an app code (app-level settings).
CREATE TABLE core.settings (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  scope text NOT NULL CHECK (scope ~ '^[a-z][a-z0-9_]{0,62}$'),
  key text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_.]{0,127}$'),
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, scope, key)
);

CREATE TABLE core.feature_flags (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  flag text NOT NULL CHECK (flag ~ '^[a-z][a-z0-9_.]{0,127}$'),
  enabled boolean NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, flag)
);

-- ---------------------------------------------------------------- sessions and refresh tokens
-- A session is one refresh-token family: a reused (already rotated) token revokes the whole session.
CREATE TABLE core.sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  user_agent text,
  ip text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_reason text
);
CREATE INDEX sessions_user_idx ON core.sessions (user_id, created_at DESC);

CREATE TABLE core.refresh_tokens (
  token_hash text PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES core.sessions(id) ON DELETE CASCADE,
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_session_idx ON core.refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON core.refresh_tokens (expires_at);

-- ---------------------------------------------------------------- audit log (append-only)
CREATE TABLE core.audit_logs (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id bigint GENERATED ALWAYS AS IDENTITY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  actor_id text,
  principal_type text NOT NULL CHECK (principal_type IN ('user', 'service', 'system', 'anonymous')),
  action text NOT NULL,
  entity_type text NOT NULL,
  entity_id text,
  before jsonb,
  after jsonb,
  request_id text,
  ip text,
  PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_logs_org_action_idx ON core.audit_logs (org_id, action, id DESC);
CREATE INDEX audit_logs_org_entity_idx ON core.audit_logs (org_id, entity_type, entity_id, id DESC);

CREATE FUNCTION core.reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP
    USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON core.audit_logs
  FOR EACH ROW EXECUTE FUNCTION core.reject_change();
REVOKE UPDATE, DELETE, TRUNCATE ON core.audit_logs FROM authenticated, service_role, anon;

-- ---------------------------------------------------------------- job outbox
CREATE TABLE core.outbox (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id bigint GENERATED ALWAYS AS IDENTITY,
  topic text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  available_at timestamptz NOT NULL DEFAULT now(),
  attempts int NOT NULL DEFAULT 0,
  last_error text,
  processed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE INDEX outbox_pending_idx ON core.outbox (available_at, id) WHERE processed_at IS NULL;

-- ---------------------------------------------------------------- never zero owners
CREATE FUNCTION core.ensure_an_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = OLD.org_id)
     AND NOT EXISTS (SELECT 1 FROM core.memberships m WHERE m.org_id = OLD.org_id AND m.role = 'owner') THEN
    RAISE EXCEPTION 'an organization must keep at least one owner' USING ERRCODE = '23514', CONSTRAINT = 'memberships_owner_required';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER memberships_keep_owner AFTER UPDATE OR DELETE ON core.memberships
  DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION core.ensure_an_owner();

-- ---------------------------------------------------------------- privileged functions
-- Creating an organization makes its creator the owner: one call, checked against the caller's identity.
CREATE FUNCTION core.create_organization(p_name text, p_account_type text DEFAULT 'business')
RETURNS core.organizations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  org core.organizations;
BEGIN
  IF uid IS NULL THEN
    RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501';
  END IF;
  INSERT INTO core.organizations (name, account_type, owner_user_id)
  VALUES (p_name, p_account_type, uid) RETURNING * INTO org;
  INSERT INTO core.memberships (org_id, user_id, role) VALUES (org.id, uid, 'owner');
  RETURN org;
END
$$;
REVOKE ALL ON FUNCTION core.create_organization(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.create_organization(text, text) TO authenticated, service_role;

-- Accepting an invitation: the caller is not yet a member, so the check runs here, against the
-- hashed single-use token, its expiry and the caller's email.
CREATE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text)
RETURNS core.memberships
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  inv core.invitations;
  member core.memberships;
  caller_email text;
BEGIN
  IF uid IS NULL THEN RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501'; END IF;
  SELECT * INTO inv FROM core.invitations i WHERE i.org_id = p_org AND i.token_hash = p_token_hash FOR UPDATE;
  IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL) OR inv.revoked_at IS NOT NULL OR inv.accepted_at IS NOT NULL OR inv.expires_at <= now() THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  SELECT u.email INTO caller_email FROM core."User" u WHERE u.id = uid;
  IF lower(caller_email) IS DISTINCT FROM lower(inv.email) THEN
    RAISE EXCEPTION 'invitation was sent to another email address' USING ERRCODE = '42501';
  END IF;
  UPDATE core.invitations SET accepted_at = now(), accepted_by = uid WHERE org_id = inv.org_id AND id = inv.id;
  INSERT INTO core.memberships (org_id, user_id, role) VALUES (inv.org_id, uid, inv.role)
  ON CONFLICT ON CONSTRAINT memberships_pkey DO NOTHING
  RETURNING * INTO member;
  IF member IS NULL THEN
    RAISE EXCEPTION 'already a member of this organization' USING ERRCODE = '23505';
  END IF;
  RETURN member;
END
$$;
REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text) TO authenticated;

-- Members may see the profiles of people they share an organization with.
CREATE FUNCTION core.shares_org_with(p_user text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM core.memberships mine JOIN core.memberships theirs ON theirs.org_id = mine.org_id
    WHERE mine.user_id = auth.uid()::text AND theirs.user_id = p_user)
$$;

-- ---------------------------------------------------------------- row level security
ALTER TABLE core."User" ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.user_credentials ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.organizations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.memberships ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.analyst_logins ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.workspaces ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.invitations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.settings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.feature_flags ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.sessions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.refresh_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.audit_logs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.outbox ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- users: yourself, and people you share an organization with
CREATE POLICY user_select ON core."User" FOR SELECT TO authenticated
  USING (id = public.auth_user_id() OR core.shares_org_with(id));
CREATE POLICY user_update ON core."User" FOR UPDATE TO authenticated
  USING (id = public.auth_user_id()) WITH CHECK (id = public.auth_user_id());
CREATE POLICY user_service ON core."User" FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY credentials_service ON core.user_credentials FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY analyst_logins_service ON core.analyst_logins FOR ALL TO service_role USING (true) WITH CHECK (true);

-- organizations: read those you belong to; update as admin; delete as owner
CREATE POLICY org_select ON core.organizations FOR SELECT TO authenticated, omnizen_analyst
  USING (id = public.auth_org_id() OR core.is_member(id)); -- both exclude deleted organizations
CREATE POLICY org_update ON core.organizations FOR UPDATE TO authenticated
  USING (id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (id = public.auth_org_id());
-- deletion is soft (deleted_at), by the owner of a business organization only
CREATE FUNCTION core.guard_org_deletion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.deleted_at IS DISTINCT FROM OLD.deleted_at AND current_user <> 'service_role' THEN
    IF OLD.account_type = 'personal' THEN
      RAISE EXCEPTION 'a personal organization cannot be deleted' USING ERRCODE = '42501';
    END IF;
    IF NOT public.auth_has_role('owner') THEN
      RAISE EXCEPTION 'only an owner can delete an organization' USING ERRCODE = '42501';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER organizations_guard_deletion BEFORE UPDATE ON core.organizations
  FOR EACH ROW EXECUTE FUNCTION core.guard_org_deletion();
CREATE POLICY org_service ON core.organizations FOR ALL TO service_role USING (true) WITH CHECK (true);

-- memberships: members see the organization's members, and everyone sees their own
CREATE POLICY membership_select ON core.memberships FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() OR user_id = public.auth_user_id());
CREATE POLICY membership_update ON core.memberships FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND (role <> 'owner' OR public.auth_has_role('owner', 'service')));
CREATE POLICY membership_delete ON core.memberships FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id()
         AND (user_id = public.auth_user_id() OR public.auth_has_role('owner', 'admin', 'service')));
CREATE POLICY membership_service ON core.memberships FOR ALL TO service_role USING (true) WITH CHECK (true);

-- workspaces, settings, flags: members read, admins write
CREATE POLICY workspace_select ON core.workspaces FOR SELECT TO authenticated, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY workspace_write ON core.workspaces FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));

CREATE POLICY settings_select ON core.settings FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id());
CREATE POLICY settings_write ON core.settings FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));

CREATE POLICY flags_select ON core.feature_flags FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id());
CREATE POLICY flags_write ON core.feature_flags FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));

CREATE POLICY invitation_admin ON core.invitations FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY invitation_service ON core.invitations FOR ALL TO service_role USING (true) WITH CHECK (true);

-- sessions: your own; refresh tokens only through the privileged auth path
CREATE POLICY session_select ON core.sessions FOR SELECT TO authenticated USING (user_id = public.auth_user_id());
CREATE POLICY session_revoke ON core.sessions FOR UPDATE TO authenticated
  USING (user_id = public.auth_user_id()) WITH CHECK (user_id = public.auth_user_id());
CREATE POLICY session_service ON core.sessions FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY refresh_service ON core.refresh_tokens FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON core.refresh_tokens FROM authenticated;

-- audit: written by whoever acts in the organization, read by its admins, never changed
-- rows name their true actor: a user only themself, a service only principal type 'service'
CREATE POLICY audit_insert ON core.audit_logs FOR INSERT TO authenticated
  WITH CHECK (
    (org_id = public.auth_org_id() OR core.is_member(org_id))
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND auth.role() = 'service_role')));
CREATE POLICY audit_select ON core.audit_logs FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY audit_service ON core.audit_logs FOR ALL TO service_role USING (true) WITH CHECK (true);

-- outbox: written in the business transaction; relayed by the privileged worker
CREATE POLICY outbox_insert ON core.outbox FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() OR core.is_member(org_id));
CREATE POLICY outbox_service ON core.outbox FOR ALL TO service_role USING (true) WITH CHECK (true);
