-- What Supabase's REST API (PostgREST, which exposes schema core: supabase/config.toml) could write that only the API's
-- own transactions are meant to write.
--
-- 1. core.outbox and core.audit_logs. Their INSERT policies for `authenticated` accepted a row for the request's
--    organization OR any organization the caller is a member of. The second branch is for the API's flows that write
--    into an organization that is not (yet) the request's: POST /v1/orgs (core.create_organization, then the
--    organization.created audit row) and POST /v1/invitations/accept (core.accept_invitation, then the audit row and
--    member.joined). Over PostgREST it let any member, a viewer too, insert an outbox job of their choosing (a domain
--    event `organization.deleted`, which the privileged relay dispatched: billing canceled the Stripe subscription,
--    webhooks and agent triggers fanned it out) and audit rows of their choosing. Both tables are now written by
--    `authenticated` only in a transaction whose claims begin_request verified (the API's runtime login); the
--    privileged paths write as service_role (their own policies), the postings as finance_posting.
-- 2. core.personal_data_key / core.personal_data_keys_by_id (20270108000100): SECURITY DEFINER, executable by anon.
--    Over rpc/personal_data_key anyone could plant the key of any person (email:<sha-256 of an address>) before the
--    API did: junk that made every later audit entry about them fail, or an `{"unwrapped": ...}` key the attacker
--    knows; rpc/personal_data_keys_by_id handed out keys. The API calls them in its tenant transactions
--    (`authenticated`, claims verified) and on its privileged paths (service_role), never as anon: anon loses EXECUTE,
--    and the functions refuse any other caller, as core.create_organization does (20270201000600). The candidate
--    must have a shape the application writes (the secret box's sealed value, or an unwrapped 32-byte key).

ALTER POLICY audit_insert ON core.audit_logs
  WITH CHECK (
    public.auth_claims_verified()
    AND (org_id = public.auth_org_id() OR core.is_member(org_id))
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND auth.role() = 'service_role')
         OR (principal_type = 'service' AND actor_id = 'api_key:' || public.auth_api_key_id()::text)));

ALTER POLICY outbox_insert ON core.outbox
  WITH CHECK (public.auth_claims_verified() AND (org_id = public.auth_org_id() OR core.is_member(org_id)));

CREATE OR REPLACE FUNCTION core.personal_data_key(p_id uuid, p_subject text, p_candidate jsonb) RETURNS TABLE (id uuid, wrapped jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  candidate_keys text[];
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'personal data keys are reached only through the API' USING ERRCODE = '42501';
  END IF;
  -- the secret box's sealed value (integrations/secret-box.ts), or, without SECRETS_KEYS, the bare 32-byte key
  IF jsonb_typeof(p_candidate) = 'object' THEN
    SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO candidate_keys FROM jsonb_object_keys(p_candidate) k;
  END IF;
  IF p_id IS NULL OR NOT coalesce(
       (candidate_keys = ARRAY['unwrapped']
        AND jsonb_typeof(p_candidate -> 'unwrapped') = 'string' AND p_candidate ->> 'unwrapped' ~ '^[A-Za-z0-9+/]{43}=$')
    OR (candidate_keys = ARRAY['ciphertext', 'iv', 'kid', 'tag']
        AND (SELECT bool_and(jsonb_typeof(p_candidate -> f) = 'string' AND p_candidate ->> f <> '') FROM unnest(candidate_keys) f)
        AND (SELECT bool_and(p_candidate ->> f ~ '^[A-Za-z0-9+/]+={0,2}$') FROM unnest(ARRAY['ciphertext', 'iv', 'tag']) f)), false)
  THEN
    RAISE EXCEPTION 'a personal data key candidate is a wrapped key: {ciphertext, iv, tag, kid} or {unwrapped}' USING ERRCODE = '22023';
  END IF;
  RETURN QUERY INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES (p_id, p_subject, p_candidate)
    ON CONFLICT (subject) DO NOTHING RETURNING personal_data_keys.id, personal_data_keys.wrapped;
  IF NOT FOUND THEN
    RETURN QUERY SELECT k.id, k.wrapped FROM core.personal_data_keys k WHERE k.subject = p_subject;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION core.personal_data_keys_by_id(p_ids uuid[]) RETURNS TABLE (id uuid, subject text, wrapped jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'personal data keys are reached only through the API' USING ERRCODE = '42501';
  END IF;
  RETURN QUERY SELECT k.id, k.subject, k.wrapped FROM core.personal_data_keys k WHERE k.id = ANY(p_ids);
END
$$;

REVOKE ALL ON FUNCTION core.personal_data_key(uuid, text, jsonb), core.personal_data_keys_by_id(uuid[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.personal_data_key(uuid, text, jsonb), core.personal_data_keys_by_id(uuid[]) TO authenticated, service_role;
