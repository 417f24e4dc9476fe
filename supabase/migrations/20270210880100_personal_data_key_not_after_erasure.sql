-- Generated from prisma/migrations/20270210880100_personal_data_key_not_after_erasure/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- An erasure deletes its person's key (crypto-shredding: the audit entries sealed with it read "[erased]"), yet the next
-- audit entry about the person made a new one: core.personal_data_key created a key for any subject without one. A
-- change that had read the person's data before the erasure committed (a customer's update waiting for the erasure's
-- row lock) then sealed the old name, e-mail and phone under that new, live key, readable in the audit log for good.
--
-- core.personal_data_key now refuses a subject whose erasure is recorded: it answers no key (the audit writer,
-- privacy/audit-sealing.ts, then writes the personal fields as "[erased]") and deletes a key of it (made by such a
-- writer before this migration, or by one whose insert waited for the erasure's delete and went through when it
-- committed: checked after the insert, which read the erasure's result once it committed). An erasure is recorded
--  * for a user: core."User".email pseudonymized to 'erased+<id>@invalid' (the catalog's treatment, personal-data.catalog.ts);
--  * for an organization's party (vendor, customer): its audit entry party.erased (PartyErasureService; append-only).
-- An e-mail subject (an invitee's address) is not refused: an address can be invited again after its person's erasure,
-- as a new person's.
--
-- Same signature, owner and grants (restated as 20270202000200 states them). Needs no superuser.

CREATE OR REPLACE FUNCTION core.personal_data_key(p_id uuid, p_subject text, p_candidate jsonb) RETURNS TABLE (id uuid, wrapped jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  candidate_keys text[];
  v_kind text := split_part(p_subject, ':', 1);
  v_erased boolean := false;
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
  INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES (p_id, p_subject, p_candidate) ON CONFLICT (subject) DO NOTHING;
  -- after the insert (each statement reads a new snapshot): an erasure whose delete it waited for is seen here
  IF v_kind = 'user' THEN
    v_erased := EXISTS (SELECT 1 FROM core."User" u WHERE u.id = split_part(p_subject, ':', 2) AND u.email = 'erased+' || u.id || '@invalid');
  ELSIF v_kind IN ('vendor', 'customer') AND p_subject ~ '^[a-z]+:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9a-f-]{36}$' THEN
    -- the organization's erasures (audit_logs_org_action_idx); the entry names the party's id as the request gave it
    v_erased := EXISTS (SELECT 1 FROM core.audit_logs a WHERE a.org_id = split_part(p_subject, ':', 2)::uuid AND a.action = 'party.erased'
      AND a.entity_type = v_kind AND lower(a.entity_id) = split_part(p_subject, ':', 3));
  END IF;
  IF v_erased THEN
    DELETE FROM core.personal_data_keys k WHERE k.subject = p_subject;
    RETURN;
  END IF;
  RETURN QUERY SELECT k.id, k.wrapped FROM core.personal_data_keys k WHERE k.subject = p_subject;
END
$$;

REVOKE ALL ON FUNCTION core.personal_data_key(uuid, text, jsonb) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.personal_data_key(uuid, text, jsonb) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210880100_personal_data_key_not_after_erasure', 'b471125d1e9b96dbe6478734a8a5099f1da94acee989149eeaf7a50176b87b19', 0)
  ON CONFLICT (name) DO NOTHING;
