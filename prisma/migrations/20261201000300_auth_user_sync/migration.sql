-- Registration and token exchange (the privileged path auth.credentials, running as service_role) keep auth.users
-- in step with core."User": seed 004's tables reference auth.users(id). On Supabase auth.users is Supabase Auth's
-- table (schema auth belongs to supabase_auth_admin): the migration login may write it (Supabase grants postgres
-- its tables) but service_role holds nothing there, so registering answered "permission denied for table users".
-- This function writes the row as its owner, the migration login; only service_role may call it.
CREATE FUNCTION core.sync_auth_user(p_id uuid, p_email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
  INSERT INTO auth.users (id, email) VALUES (p_id, p_email) ON CONFLICT DO NOTHING
$$;
REVOKE ALL ON FUNCTION core.sync_auth_user(uuid, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.sync_auth_user(uuid, text) TO service_role;
