-- Generated from prisma/migrations/20270210300100_api_key_revocations_carry_request/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The api_key.revoked audit rows the triggers write (memberships_revoke_api_keys, users_revoke_api_keys: 20270210160100,
-- 20270210260100) had no request id nor IP, where the API's own audit rows carry both (AuditService, from the request):
-- a trigger gets no parameters. core.revoke_api_keys_of_creator now falls back, when its caller passes none, to the
-- request's context as the transaction publishes it: the transaction-local settings omnizen.request_id and
-- omnizen.request_ip (set_config(..., true); unset or empty: none, as before: an operator's SQL, another app). The
-- erasure (privacy.erasure) sets omnizen.request_id (no IP: its audit rows record none, it would be new personal data
-- about the erased person). Explicit parameters (the claim of a pre-registered account) still win. The settings only
-- annotate the audit row: nothing decides access by them. Same signature, grants unchanged; needs no superuser.

CREATE OR REPLACE FUNCTION core.revoke_api_keys_of_creator(p_user text, p_org uuid, p_reason text,
  p_request_id text DEFAULT NULL, p_ip text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := core.request_claims();
  actor text;
  principal text := 'system';
  v_request_id text := coalesce(p_request_id, nullif(current_setting('omnizen.request_id', true), ''));
  v_ip text := coalesce(p_ip, nullif(current_setting('omnizen.request_ip', true), ''));
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
      left(v_request_id, 200), left(v_ip, 100)
    FROM revoked r ORDER BY r.org_id, r.id
    RETURNING 1)
  SELECT count(*)::int INTO n FROM audited;
  RETURN n;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210300100_api_key_revocations_carry_request', '009f99ea98d3541bbabff462fc554bc7cd2c3ac8b9d737a3d5cde8c0e43715d3', 0)
  ON CONFLICT (name) DO NOTHING;
