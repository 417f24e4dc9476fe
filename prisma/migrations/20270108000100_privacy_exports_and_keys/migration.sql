-- Personal data (issue 20): data exports and crypto-shredding of the audit trail.
--
--  * core.personal_data_keys: one AES-256 key per person (a user, an invitee's e-mail, a natural-person vendor or
--    customer), wrapped by the application's secret box (SECRETS_KEYS). The audit writer seals the personal fields of
--    an entry's before/after snapshots with the key of the person the entry is about; the audit log stays
--    append-only, and an erasure deletes the key (crypto-shredding): the sealed fields then read as erased.
--    `subject` names the person without their data: user:<id>, vendor:<id>, customer:<id>, email:<sha-256 of the
--    lower-cased address>. Requests reach the keys only through the two functions below (get-or-create by subject,
--    read by id); the rows are wrapped, so a key is of no use without the application's SECRETS_KEYS.
--  * core.data_exports: a person's export (POST /v1/me/data-export, ZIP of JSON per table) or an organization's
--    (POST /v1/orgs/{orgId}/data-export, ZIP of CSV per table): status, progress, the file's name in the
--    configured directory (DATA_EXPORT_DIR) and when its download link expires. org_id is the organization exported,
--    or the person's personal organization (the outbox job's organization). No personal data: ids and counts.

CREATE TABLE core.personal_data_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  subject text NOT NULL UNIQUE CHECK (subject ~ '^(user|email|vendor|customer):[A-Za-z0-9_-]{1,64}$'),
  wrapped jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE core.data_exports (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  kind text NOT NULL CHECK (kind IN ('person', 'organization')),
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  -- who asked: the person exported, or the organization's owner
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'ready', 'failed', 'expired')),
  progress int NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  tables_total int NOT NULL DEFAULT 0,
  tables_done int NOT NULL DEFAULT 0,
  rows_written bigint NOT NULL DEFAULT 0,
  file_name text CHECK (file_name ~ '^[0-9a-f-]{36}\.zip$'),
  size_bytes bigint,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz,
  expires_at timestamptz,
  CHECK (status <> 'ready' OR (file_name IS NOT NULL AND expires_at IS NOT NULL)),
  -- org_id in the key, as on every tenant table (docs/scaling.md: distributed by org_id)
  PRIMARY KEY (org_id, id)
);
-- the download link and the job name an export by its id alone
CREATE INDEX data_exports_id_idx ON core.data_exports (id);
CREATE INDEX data_exports_user_idx ON core.data_exports (user_id, created_at DESC);
CREATE INDEX data_exports_org_idx ON core.data_exports (org_id, created_at DESC);
CREATE INDEX data_exports_expiry_idx ON core.data_exports (expires_at) WHERE status = 'ready';

ALTER TABLE core.personal_data_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.data_exports ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- an organization's owners start and read its exports in the organization's transaction; the job, the person's own
-- exports (not an organization's route) and the retention purge run on privileged paths
CREATE POLICY data_exports_owner_select ON core.data_exports FOR SELECT TO authenticated
  USING (kind = 'organization' AND org_id = public.auth_org_id() AND public.auth_has_role('owner'));
CREATE POLICY data_exports_owner_insert ON core.data_exports FOR INSERT TO authenticated
  WITH CHECK (kind = 'organization' AND org_id = public.auth_org_id() AND public.auth_has_role('owner')
              AND user_id = public.auth_user_id());
CREATE POLICY data_exports_service ON core.data_exports FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY personal_data_keys_service ON core.personal_data_keys FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON core.personal_data_keys, core.data_exports FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON core.data_exports TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.data_exports TO service_role;
GRANT SELECT, INSERT, DELETE ON core.personal_data_keys TO service_role;

-- The key of `p_subject`: the existing one, or the candidate (id `p_id`, a fresh key the application wrapped bound
-- to that id) stored now. Any request that writes an audit entry about a person may call it; it answers wrapped keys.
CREATE FUNCTION core.personal_data_key(p_id uuid, p_subject text, p_candidate jsonb) RETURNS TABLE (id uuid, wrapped jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  RETURN QUERY INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES (p_id, p_subject, p_candidate)
    ON CONFLICT (subject) DO NOTHING RETURNING personal_data_keys.id, personal_data_keys.wrapped;
  IF NOT FOUND THEN
    RETURN QUERY SELECT k.id, k.wrapped FROM core.personal_data_keys k WHERE k.subject = p_subject;
  END IF;
END
$$;

-- The keys of these ids that still exist (a deleted key: the person was erased), with their subjects.
CREATE FUNCTION core.personal_data_keys_by_id(p_ids uuid[]) RETURNS TABLE (id uuid, subject text, wrapped jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT k.id, k.subject, k.wrapped FROM core.personal_data_keys k WHERE k.id = ANY(p_ids)
$$;

REVOKE ALL ON FUNCTION core.personal_data_key(uuid, text, jsonb), core.personal_data_keys_by_id(uuid[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.personal_data_key(uuid, text, jsonb), core.personal_data_keys_by_id(uuid[]) TO anon, authenticated, service_role;

-- An organization erasing a natural-person party (owner, admin: its own transaction) deletes that party's key; the
-- party must be the organization's.
CREATE FUNCTION core.shred_party_key(p_party text, p_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_org uuid := public.auth_org_id();
BEGIN
  IF v_org IS NULL OR NOT public.auth_has_role('owner', 'admin') THEN RETURN false; END IF;
  IF p_party = 'vendor' THEN
    IF NOT EXISTS (SELECT 1 FROM finance.vendors WHERE org_id = v_org AND id = p_id) THEN RETURN false; END IF;
  ELSIF p_party = 'customer' THEN
    IF NOT EXISTS (SELECT 1 FROM finance.customers WHERE org_id = v_org AND id = p_id) THEN RETURN false; END IF;
  ELSE
    RETURN false;
  END IF;
  DELETE FROM core.personal_data_keys WHERE subject = p_party || ':' || p_id::text;
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION core.shred_party_key(text, uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.shred_party_key(text, uuid) TO authenticated;
