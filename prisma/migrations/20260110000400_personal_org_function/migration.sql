-- A person's personal organization: one definition for the privileged paths of every module
-- (session purge, Stripe events, subscription expiry, secret rotation) instead of each joining
-- core.organizations itself. Runs with the caller's rights: under RLS a user sees only their own.
CREATE FUNCTION core.personal_org_id(p_user text) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT o.id FROM core.organizations o WHERE o.owner_user_id = p_user AND o.account_type = 'personal'
$$;
