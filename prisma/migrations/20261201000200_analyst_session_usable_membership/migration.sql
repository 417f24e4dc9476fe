-- core.is_analyst_session() took any direct membership in omnizen_analyst for an analyst's login. On PostgreSQL 16+
-- a non-superuser that creates a role (Supabase's `postgres`, which runs the migrations) is recorded as a direct
-- member of it with ADMIN OPTION only (no INHERIT, no SET): on a Supabase project on PostgreSQL 16 or 17, the
-- migration login and the privileged paths would have been taken for an unmapped analyst, and auth_org_id()
-- answered NULL for every claim they set. An analyst's login is a member whose membership is usable (it inherits
-- omnizen_analyst's privileges); superusers, members of every role, are still not analysts (no direct membership).
CREATE OR REPLACE FUNCTION core.is_analyst_session() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles member ON member.oid = m.member
    JOIN pg_catalog.pg_roles grp ON grp.oid = m.roleid
    WHERE member.rolname = session_user AND grp.rolname = 'omnizen_analyst')
  AND pg_catalog.pg_has_role(session_user, 'omnizen_analyst', 'USAGE')
$$;
