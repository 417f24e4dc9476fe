-- An invitation inserted while its sender's demotion or removal committed (the insert not yet committed, so the
-- trigger memberships_revoke_invitations of 20270210560100 did not see it) stayed pending: an admin invitation sent by
-- a member now a viewer could still be accepted, as core.accept_invitation never looked at who sent it. The function
-- now checks the sender at the point of use: an invitation whose invited_by is set and who is no longer owner or admin
-- of the organization is refused with the answer a revoked one gets (P0002, invitation.not_found: indistinguishable).
-- Invitations a service or an API key sent (invited_by NULL) are unchanged. No lock on the sender's membership: a
-- demotion committing after this check read it orders after the acceptance (its trigger then finds the invitation
-- accepted, no longer pending). Otherwise the function is 20270210400100's; its grants as 20270210500100 states them.

CREATE OR REPLACE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text, p_app text)
RETURNS core.memberships
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  inv core.invitations;
  member core.memberships;
  caller_email text;
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/invitations/accept), which audits it and emits its event' USING ERRCODE = '42501';
  END IF;
  IF uid IS NULL THEN RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501'; END IF;
  -- the caller first, in the erasure's order (it locks the person, then deletes the invitations and identities)
  SELECT u.email INTO caller_email FROM core."User" u WHERE u.id = uid FOR NO KEY UPDATE;
  IF NOT FOUND OR caller_email = 'erased+' || uid || '@invalid' THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- the organization's row FOR SHARE, checked as locked: a person's erasure locks the rows of their organizations
  -- (FOR NO KEY UPDATE) before counting their members; this acceptance waits for it and then finds the organization
  -- deleted, or the erasure waits for this one and counts the new member
  PERFORM 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- the counted limits' lock of the organization (hub.limit_locks, as BillingRepository.lockLimits takes it), held
  -- until the transaction ends: the API counts the members against the users limit after this function, under it
  INSERT INTO hub.limit_locks (org_id, app_id) VALUES (p_org, p_app) ON CONFLICT DO NOTHING;
  PERFORM 1 FROM hub.limit_locks l WHERE l.org_id = p_org AND l.app_id = p_app FOR UPDATE;
  SELECT * INTO inv FROM core.invitations i
  WHERE i.org_id = p_org AND (i.token_hash = p_token_hash OR i.mailed_token_hash = p_token_hash) FOR UPDATE;
  IF NOT FOUND OR inv.revoked_at IS NOT NULL OR inv.accepted_at IS NOT NULL OR inv.expires_at <= now() THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- its sender must still be owner or admin of the organization (an invitation's role is admin at most): one sent while
  -- the sender's demotion or removal committed escaped memberships_revoke_invitations; refused as a revoked one is.
  -- Sent by a service or an API key (invited_by NULL): unchanged
  IF inv.invited_by IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM core.memberships m WHERE m.org_id = inv.org_id AND m.user_id = inv.invited_by AND m.role IN ('owner', 'admin')) THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  IF lower(caller_email) IS DISTINCT FROM lower(inv.email) THEN
    RAISE EXCEPTION 'invitation was sent to another email address' USING ERRCODE = '42501';
  END IF;
  IF inv.mailed_token_hash IS NOT DISTINCT FROM p_token_hash THEN
    UPDATE core.user_identities SET email_verified_at = coalesce(email_verified_at, now())
    WHERE user_id = uid AND provider = 'password' AND lower(email) = lower(caller_email);
  ELSIF NOT EXISTS (SELECT 1 FROM core.user_identities ui
                    WHERE ui.user_id = uid AND lower(ui.email) = lower(caller_email) AND ui.email_verified_at IS NOT NULL) THEN
    RAISE EXCEPTION 'verify your e-mail address first (or accept with the link mailed to it)' USING HINT = 'invitation.email_unverified';
  END IF;
  IF EXISTS (SELECT 1 FROM core.memberships m WHERE m.org_id = inv.org_id AND m.user_id = uid) THEN
    RAISE EXCEPTION 'already a member of this organization' USING ERRCODE = '23505';
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

REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text, text) TO authenticated;
