-- An invitation into a deleted (soft-deleted) organization can no longer be accepted.
CREATE OR REPLACE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text)
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
