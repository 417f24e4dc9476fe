-- auth.users' copy of a user's e-mail follows an e-mail change (POST /v1/auth/email-change/confirm), which calls
-- core.sync_auth_user again. It used to insert only: the old address stayed in auth.users, so a later account with
-- that address got no auth.users row (ON CONFLICT DO NOTHING on its unique e-mail), and every write of seed 004's
-- tables that reference auth.users failed for it. An address that another auth.users row holds (Supabase Auth's own
-- user) is still left alone: that row is never changed from here.
CREATE OR REPLACE FUNCTION core.sync_auth_user(p_id uuid, p_email text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO auth.users (id, email) VALUES (p_id, p_email)
  ON CONFLICT (id) DO UPDATE SET email = excluded.email WHERE auth.users.email IS DISTINCT FROM excluded.email;
EXCEPTION WHEN unique_violation THEN
  NULL; -- the address is another auth.users row's: as before, nothing is written
END
$$;
