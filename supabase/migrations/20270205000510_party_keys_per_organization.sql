-- Generated from prisma/migrations/20270205000510_party_keys_per_organization/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A vendor's or customer's audit key belongs to one organization, and only the API's transactions shred it.
--
-- The key of a party was named `vendor:<id>` / `customer:<id>`, but a party's id is unique only with its organization
-- (finance.vendors and finance.customers are keyed by (org_id, id)). core.shred_party_key (20270202000700) checked that
-- the caller's organization had a party of that id, then deleted the key of that id whoever's it was, and, unlike the
-- other key functions (20270202000200), it ran for any caller holding EXECUTE, Supabase's REST API included. So the
-- owner of organization A, a viewer in organization B (who sees B's vendor ids), inserted over REST a vendor into A
-- with the id of B's vendor and called rpc/shred_party_key('vendor', id): B's key was deleted and B's audit entries
-- about its vendor read "[erased]".
--
--  * A party's subject names its organization: `vendor:<org_id>:<id>`, `customer:<org_id>:<id>` (the audit writer,
--    privacy/audit-sealing.ts, seals with it; the function deletes the key of the caller's organization only).
--  * The function runs only where begin_request verified the claims (the API's runtime login), as
--    core.personal_data_key does; anyone else gets 42501.
--  * Existing party keys are renamed to the organization whose audit entry about that party first used the key (the
--    entries bind the key to their organization: it is in each sealed field's additional data). A key that sealed no
--    entry seals nothing: it goes (the next entry about its party makes a new one).
-- Key ids and wrappings are unchanged (a wrapping is bound to the key's id, not its subject), so every sealed entry
-- still opens.

ALTER TABLE core.personal_data_keys DROP CONSTRAINT personal_data_keys_subject_check;

WITH old AS (
  SELECT k.id, split_part(k.subject, ':', 1) AS party, split_part(k.subject, ':', 2) AS party_id
  FROM core.personal_data_keys k
  WHERE k.subject ~ '^(vendor|customer):[^:]+$'
), first_use AS (
  SELECT DISTINCT ON (o.id) o.id, a.org_id
  FROM old o
  JOIN core.audit_logs a ON a.entity_type = o.party AND a.entity_id = o.party_id
   AND o.id::text IN (a.before -> '$sealed' ->> 'k', a.after -> '$sealed' ->> 'k')
  ORDER BY o.id, a.id
)
UPDATE core.personal_data_keys k SET subject = o.party || ':' || f.org_id::text || ':' || lower(o.party_id)
FROM old o JOIN first_use f ON f.id = o.id
WHERE k.id = o.id;

DELETE FROM core.personal_data_keys WHERE subject ~ '^(vendor|customer):[^:]+$';

ALTER TABLE core.personal_data_keys ADD CONSTRAINT personal_data_keys_subject_check CHECK (
  subject ~ '^(user|email):[A-Za-z0-9_-]{1,64}$'
  OR subject ~ '^(vendor|customer):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');

CREATE OR REPLACE FUNCTION core.shred_party_key(p_party text, p_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_org uuid;
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE THEN
    RAISE EXCEPTION 'a party''s key is shredded only through the API (POST /v1/orgs/{orgId}/privacy/{party}s/{id}/erasure)' USING ERRCODE = '42501';
  END IF;
  v_org := public.auth_org_id();
  IF v_org IS NULL OR NOT public.auth_has_role('owner', 'admin', 'service') THEN RETURN false; END IF;
  IF p_party = 'vendor' THEN
    IF NOT EXISTS (SELECT 1 FROM finance.vendors WHERE org_id = v_org AND id = p_id) THEN RETURN false; END IF;
  ELSIF p_party = 'customer' THEN
    IF NOT EXISTS (SELECT 1 FROM finance.customers WHERE org_id = v_org AND id = p_id) THEN RETURN false; END IF;
  ELSE
    RETURN false;
  END IF;
  DELETE FROM core.personal_data_keys WHERE subject = p_party || ':' || v_org::text || ':' || p_id::text;
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION core.shred_party_key(text, uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.shred_party_key(text, uuid) TO authenticated;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270205000510_party_keys_per_organization', '3660ee66a117fffb1492801dc2d0001dca2dd02e4ba349da5e54dfe0dd23949b', 0)
  ON CONFLICT (name) DO NOTHING;
