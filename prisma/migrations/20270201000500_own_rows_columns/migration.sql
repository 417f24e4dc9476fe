-- A user's own rows as the Supabase REST API (PostgREST) reaches them: there no begin_request runs, only the grants
-- and policies hold. The API itself writes these columns on its privileged paths (service_role) only.
--
-- Sessions: a user ends their own live session (revoked_at, revoked_reason), and nothing more. With UPDATE on every
-- column, the holder of a still-valid access token could clear revoked_at and move expires_at to 2099 after a logout,
-- a password reset or a detected refresh-token reuse, and refresh again.
REVOKE UPDATE ON core.sessions FROM authenticated;
GRANT UPDATE (revoked_at, revoked_reason) ON core.sessions TO authenticated;
DROP POLICY session_revoke ON core.sessions;
CREATE POLICY session_revoke ON core.sessions FOR UPDATE TO authenticated
  USING (user_id = public.auth_user_id() AND revoked_at IS NULL)
  WITH CHECK (user_id = public.auth_user_id() AND revoked_at IS NOT NULL);

-- Users: the e-mail changes only through the confirmed e-mail change (a link to the new address, a notice to the old,
-- auth.users kept in step); rows are made and erased by the auth and privacy paths. A user edits their name and image.
REVOKE INSERT, UPDATE, DELETE ON core."User" FROM authenticated;
GRANT UPDATE (name, image, "updatedAt") ON core."User" TO authenticated;
