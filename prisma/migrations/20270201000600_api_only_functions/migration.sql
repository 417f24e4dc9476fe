-- core.create_organization and core.accept_invitation change state (an organization and its owner, a membership)
-- without an audit row or a domain event: the API writes those around its call. Granted to `authenticated` for the
-- API's tenant transaction, they were also reachable through the Supabase REST API (rpc/create_organization,
-- rpc/accept_invitation), where nothing is audited and no member.joined reaches notifications or webhooks. They now run
-- only where begin_request verified the claims (the API's own login), or for service_role (a privileged path, a
-- service key). auth_claims_verified() is NULL, not false, on a connection where begin_request never ran: IS NOT TRUE.
-- The bodies are otherwise those of 20260101000100 and 20261226000100.
CREATE OR REPLACE FUNCTION core.create_organization(p_name text, p_account_type text DEFAULT 'business')
RETURNS core.organizations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  org core.organizations;
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/orgs), which audits it' USING ERRCODE = '42501';
  END IF;
  IF uid IS NULL THEN
    RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501';
  END IF;
  INSERT INTO core.organizations (name, account_type, owner_user_id)
  VALUES (p_name, p_account_type, uid) RETURNING * INTO org;
  INSERT INTO core.memberships (org_id, user_id, role) VALUES (org.id, uid, 'owner');
  RETURN org;
END
$$;

CREATE OR REPLACE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text)
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
  SELECT * INTO inv FROM core.invitations i
  WHERE i.org_id = p_org AND (i.token_hash = p_token_hash OR i.mailed_token_hash = p_token_hash) FOR UPDATE;
  IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL) OR inv.revoked_at IS NOT NULL OR inv.accepted_at IS NOT NULL OR inv.expires_at <= now() THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  SELECT u.email INTO caller_email FROM core."User" u WHERE u.id = uid;
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
