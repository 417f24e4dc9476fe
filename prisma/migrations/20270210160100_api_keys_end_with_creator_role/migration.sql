-- An organization's API keys outlived their creator's removal or demotion (review): an admin created a key, the owner
-- removed the admin (or made them an accountant), the admin's own token then got 404 for the organization, yet the key,
-- whose secret only its creator ever saw, still answered 200. Only owners and admins create keys (policy
-- api_keys_create, ApiKeysService), so a key now ends with its creator's right to create it: when a membership stops
-- being 'owner' or 'admin' (removed, left, demoted, ended by the creator's erasure), the keys its user created in that
-- organization and nobody has revoked yet are revoked in the same statement, each audited as the API's revoke
-- (api_key.revoked, the key as after, plus a reason). A trigger on core.memberships, so every path gets it: the API
-- (MembershipsService: remove, leave, role change), the erasure (privacy.erasure deletes the memberships of the
-- organizations the person leaves), an operator's SQL (Supabase's REST path writes no membership since
-- 20270205000900). Keys of a member who stays owner or admin, and other members' keys, are untouched.
--
-- core.revoke_api_keys_of_creator also serves the claim of a pre-registered account (identityRepository
-- .removeUnverifiedAccess, on the privileged path auth.credentials): whoever pre-registered the address may have
-- created keys, in every organization the account belongs to; they are revoked with the claim.
--
-- The audit row's actor is the request's, as AuditService names it (the person, 'api_key:<id>' for a verified key,
-- 'service:<name>' for a service), principal 'system' when there is none (the privileged paths: erasure, claim). A
-- SECURITY DEFINER function owned by the tables' owner (BYPASSRLS on Supabase): a member leaving no longer passes the
-- audit policy of the organization once their membership is gone, nor does the privileged path's service_role need to.
--
-- Keys whose creator is already no longer owner or admin of the key's organization are revoked now, each audited
-- (principal 'system', actor the migration, reason creator_no_longer_admin). Needs no superuser; nothing to do on an
-- empty database.

CREATE FUNCTION core.revoke_api_keys_of_creator(p_user text, p_org uuid, p_reason text,
  p_request_id text DEFAULT NULL, p_ip text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := core.request_claims();
  actor text;
  principal text := 'system';
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
    UPDATE core.api_keys k SET revoked_at = now(), revoked_by = actor
    WHERE k.created_by = p_user AND (p_org IS NULL OR k.org_id = p_org) AND k.revoked_at IS NULL
    RETURNING k.*),
  audited AS (
    -- `after` as ApiKeysService.revoke audits the key (ApiKeyDto, instants as JSON writes them), with the reason
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
    SELECT r.org_id, actor, principal, 'api_key.revoked', 'api_key', r.id::text, NULL,
      jsonb_build_object('id', r.id, 'orgId', r.org_id, 'name', r.name, 'prefix', r.prefix, 'scopes', to_jsonb(r.scopes),
        'createdBy', r.created_by,
        'createdAt', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'lastUsedAt', to_char(r.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'revokedAt', to_char(r.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'reason', p_reason),
      left(p_request_id, 200), left(p_ip, 100)
    FROM revoked r ORDER BY r.org_id, r.id
    RETURNING 1)
  SELECT count(*)::int INTO n FROM audited;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION core.revoke_api_keys_of_creator(text, uuid, text, text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.revoke_api_keys_of_creator(text, uuid, text, text, text) TO service_role;

-- A membership that stops being owner or admin: its user's keys in the organization go (see above). An organization
-- being deleted (its memberships cascading) takes its keys and audit log with it: nothing to revoke.
CREATE FUNCTION core.memberships_revoke_api_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.role IN ('owner', 'admin') THEN RETURN NULL; END IF;
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = OLD.org_id) THEN RETURN NULL; END IF;
  PERFORM core.revoke_api_keys_of_creator(OLD.user_id, OLD.org_id, CASE
    WHEN TG_OP = 'UPDATE' THEN 'creator_demoted'
    WHEN current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure' THEN 'creator_erased'
    WHEN OLD.user_id = public.auth_user_id() THEN 'creator_left'
    ELSE 'creator_removed' END);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION core.memberships_revoke_api_keys() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER memberships_revoke_api_keys AFTER UPDATE OF role OR DELETE ON core.memberships
  FOR EACH ROW WHEN (OLD.role IN ('owner', 'admin')) EXECUTE FUNCTION core.memberships_revoke_api_keys();

-- keys whose creator already lost the role (removed, left, demoted or erased before this migration)
WITH revoked AS (
  UPDATE core.api_keys k SET revoked_at = now()
  WHERE k.revoked_at IS NULL AND k.created_by IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM core.memberships m
                    WHERE m.org_id = k.org_id AND m.user_id = k.created_by AND m.role IN ('owner', 'admin'))
  RETURNING k.*)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT r.org_id, 'migration:20270210160100', 'system', 'api_key.revoked', 'api_key', r.id::text, NULL,
  jsonb_build_object('id', r.id, 'orgId', r.org_id, 'name', r.name, 'prefix', r.prefix, 'scopes', to_jsonb(r.scopes),
    'createdBy', r.created_by,
    'createdAt', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'lastUsedAt', to_char(r.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'revokedAt', to_char(r.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'reason', 'creator_no_longer_admin')
FROM revoked r ORDER BY r.org_id, r.id;
