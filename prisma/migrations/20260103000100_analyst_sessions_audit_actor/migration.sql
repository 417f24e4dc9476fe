-- 1. An analyst login must not choose its organization: any login can set request.jwt.claims, so
--    for a session whose login is an analyst (a direct member of omnizen_analyst) the claims are
--    ignored and only core.analyst_logins decides. Before this, an analyst could claim
--    {"role":"service_role","org_id":<any>} and read that organization.
-- 2. Audit rows name their actor truthfully: a user writes rows with their own id as actor, a
--    service only rows of principal type 'service'.

CREATE FUNCTION core.is_analyst_session() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles member ON member.oid = m.member
    JOIN pg_catalog.pg_roles grp ON grp.oid = m.roleid
    WHERE member.rolname = session_user AND grp.rolname = 'omnizen_analyst')
$$;

CREATE OR REPLACE FUNCTION public.auth_org_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb;
  claimed text;
BEGIN
  IF core.is_analyst_session() THEN
    RETURN (SELECT a.org_id FROM core.analyst_logins a
            JOIN core.organizations o ON o.id = a.org_id AND o.deleted_at IS NULL
            WHERE a.login = session_user);
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

CREATE OR REPLACE FUNCTION public.auth_role() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
BEGIN
  IF org IS NULL THEN RETURN NULL; END IF;
  IF core.is_analyst_session() OR auth.jwt() IS NULL THEN RETURN 'analyst'; END IF;
  IF auth.role() = 'service_role' THEN RETURN 'service'; END IF;
  RETURN (SELECT m.role FROM core.memberships m WHERE m.org_id = org AND m.user_id = auth.uid()::text);
END
$$;

DROP POLICY audit_insert ON core.audit_logs;
CREATE POLICY audit_insert ON core.audit_logs FOR INSERT TO authenticated
  WITH CHECK (
    (org_id = public.auth_org_id() OR core.is_member(org_id))
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND auth.role() = 'service_role')));
