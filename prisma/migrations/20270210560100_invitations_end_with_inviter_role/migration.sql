-- A removed or demoted admin's pending invitations still granted their role (review r8): an admin invited a second
-- address of their own as admin, the owner removed the admin (or made them a viewer), and the second account then
-- accepted as admin (core.accept_invitation inserts the invitation's role and never looks at who sent it). Only owners
-- and admins invite (policy on core.invitations, InvitationsService), so, as an API key since 20270210160100, a pending
-- invitation now ends with its sender's right to send it: when a membership stops being 'owner' or 'admin' (removed,
-- left, demoted, ended by the person's erasure), the invitations its user sent in that organization that are still
-- pending (neither accepted, revoked nor expired) are revoked in the same statement, each audited as the API's revoke
-- (invitation.revoked) with a reason: inviter_removed, inviter_left, inviter_demoted, inviter_erased. A trigger on
-- core.memberships next to memberships_revoke_api_keys, so every path gets it (the API, the erasure, an operator's SQL).
-- An owner made admin keeps their invitations: no invitation's role is above an admin's reach (the roles an invitation
-- can carry, admin at most, are all an admin may invite). Other members' invitations, and those a service or an API
-- key sent (invited_by NULL), are untouched.
--
-- A user row deleted (other apps of the database write core."User") sets invited_by NULL (ON DELETE SET NULL) before
-- the cascaded memberships' trigger runs, as it did created_by for keys (20270210260100): a BEFORE DELETE trigger on
-- core."User" revokes the user's pending invitations in every organization first (reason inviter_deleted).
--
-- The audit row is written by the database, which cannot seal (AuditService seals an invitation's e-mail with the
-- invitee's key, privacy/audit-sealing.ts): its `after` is the invitation as InvitationDto has it without the e-mail
-- (the entity id names the invitation; the API's own revoke row has it, sealed), plus the reason. Actor, principal,
-- request id and IP as core.revoke_api_keys_of_creator names them (20270210300100): the request's, 'system' without one.
-- SECURITY DEFINER functions owned by the tables' owner, search_path '', executable by no API role (only the triggers
-- run them).
--
-- Invitations still pending whose sender is already no longer owner or admin of the organization are revoked now, each
-- audited (principal 'system', actor the migration, reason inviter_no_longer_admin). Needs no superuser; nothing to do
-- on an empty database.

CREATE FUNCTION core.revoke_invitations_of_inviter(p_user text, p_org uuid, p_reason text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := core.request_claims();
  actor text;
  principal text := 'system';
  v_request_id text := nullif(current_setting('omnizen.request_id', true), '');
  v_ip text := nullif(current_setting('omnizen.request_ip', true), '');
  n integer;
BEGIN
  IF p_user IS NULL THEN RETURN 0; END IF;
  IF claims ? 'api_key_id' THEN
    -- claims naming a key count only for the key the database verified (auth_api_key_id(): NULL otherwise)
    actor := 'api_key:' || public.auth_api_key_id()::text;
    IF actor IS NOT NULL THEN principal := 'service'; END IF;
  ELSIF claims ->> 'role' = 'service_role' THEN
    actor := 'service:' || (claims ->> 'service');
    principal := 'service';
  ELSIF claims ? 'sub' THEN
    actor := public.auth_user_id();
    IF actor IS NOT NULL THEN principal := 'user'; END IF;
  END IF;

  WITH revoked AS (
    UPDATE core.invitations i SET revoked_at = now()
    WHERE i.invited_by = p_user AND (p_org IS NULL OR i.org_id = p_org)
      AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
    RETURNING i.*),
  audited AS (
    -- `after` as InvitationsService.revoke audits it (InvitationDto, instants as JSON writes them) but the e-mail, with the reason
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
    SELECT r.org_id, actor, principal, 'invitation.revoked', 'invitation', r.id::text, NULL,
      jsonb_build_object('id', r.id, 'orgId', r.org_id, 'role', r.role, 'status', 'revoked', 'invitedBy', r.invited_by,
        'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'acceptedAt', NULL, 'acceptedBy', NULL,
        'revokedAt', to_char(r.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'createdAt', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'reason', p_reason),
      left(v_request_id, 200), left(v_ip, 100)
    FROM revoked r ORDER BY r.org_id, r.created_at, r.id
    RETURNING 1)
  SELECT count(*)::int INTO n FROM audited;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION core.revoke_invitations_of_inviter(text, uuid, text) FROM PUBLIC, anon, authenticated, service_role;

-- A membership that stops being owner or admin: its user's pending invitations in the organization go (see above). An
-- organization being deleted (its memberships cascading) takes its invitations and audit log with it: nothing to revoke.
CREATE FUNCTION core.memberships_revoke_invitations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.role IN ('owner', 'admin') THEN RETURN NULL; END IF;
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = OLD.org_id) THEN RETURN NULL; END IF;
  PERFORM core.revoke_invitations_of_inviter(OLD.user_id, OLD.org_id, CASE
    WHEN TG_OP = 'UPDATE' THEN 'inviter_demoted'
    WHEN current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure' THEN 'inviter_erased'
    WHEN OLD.user_id = public.auth_user_id() THEN 'inviter_left'
    ELSE 'inviter_removed' END);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION core.memberships_revoke_invitations() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER memberships_revoke_invitations AFTER UPDATE OF role OR DELETE ON core.memberships
  FOR EACH ROW WHEN (OLD.role IN ('owner', 'admin')) EXECUTE FUNCTION core.memberships_revoke_invitations();

-- a user row deleted: their pending invitations go while invited_by still names them
CREATE FUNCTION core.users_revoke_invitations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM core.revoke_invitations_of_inviter(OLD.id, NULL, 'inviter_deleted');
  RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION core.users_revoke_invitations() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER users_revoke_invitations BEFORE DELETE ON core."User"
  FOR EACH ROW EXECUTE FUNCTION core.users_revoke_invitations();

-- pending invitations whose sender already lost the role (removed, left, demoted or erased before this migration)
WITH revoked AS (
  UPDATE core.invitations i SET revoked_at = now()
  WHERE i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now() AND i.invited_by IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM core.memberships m
                    WHERE m.org_id = i.org_id AND m.user_id = i.invited_by AND m.role IN ('owner', 'admin'))
  RETURNING i.*)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT r.org_id, 'migration:20270210560100', 'system', 'invitation.revoked', 'invitation', r.id::text, NULL,
  jsonb_build_object('id', r.id, 'orgId', r.org_id, 'role', r.role, 'status', 'revoked', 'invitedBy', r.invited_by,
    'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'acceptedAt', NULL, 'acceptedBy', NULL,
    'revokedAt', to_char(r.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'createdAt', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'reason', 'inviter_no_longer_admin')
FROM revoked r ORDER BY r.org_id, r.created_at, r.id;
