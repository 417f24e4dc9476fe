-- Generated from prisma/migrations/20270208060200_knowledge_plan_limits/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The knowledge base's size is a plan limit: documents per organization, and the bytes of text its document versions
-- store (every version is kept: a restore re-indexes an earlier one). Enforced by KnowledgeService under the counted
-- limits' lock (hub.limit_locks): a new document counts one document and its text, a new version (an upload or a
-- restore) its text. Past either, the write is a 402 billing.limit_reached naming the feature and the plan that allows it.
INSERT INTO hub.features (app_id, code, kind, unit, description) VALUES
  ('omnizen', 'knowledge_documents', 'limit', 'documents', 'Knowledge base documents'),
  ('omnizen', 'knowledge_storage_bytes', 'limit', 'bytes', 'Knowledge base text, every version of every document');
-- limits: NULL = unlimited. Starter 1,000 documents and 100 MB of text; Professional 20,000 and 2 GB.
INSERT INTO hub.plan_features (app_id, plan_code, feature, limit_value) VALUES
  ('omnizen', 'starter', 'knowledge_documents', 1000),
  ('omnizen', 'starter', 'knowledge_storage_bytes', 104857600),
  ('omnizen', 'professional', 'knowledge_documents', 20000),
  ('omnizen', 'professional', 'knowledge_storage_bytes', 2147483648),
  ('omnizen', 'enterprise', 'knowledge_documents', NULL),
  ('omnizen', 'enterprise', 'knowledge_storage_bytes', NULL),
  ('omnizen', 'custom', 'knowledge_documents', NULL),
  ('omnizen', 'custom', 'knowledge_storage_bytes', NULL);

-- The request's organization's knowledge base: its documents and the bytes of its versions' text. SECURITY DEFINER
-- because the policies show a member only the collections their role reads, yet the limit counts every document of
-- the organization (as hub.seat_usage() counts invitations only admins see). octet_length reads a stored text's size
-- from its header, without reading the text.
CREATE FUNCTION ai.knowledge_usage(OUT documents bigint, OUT text_bytes bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization in this request' USING ERRCODE = '42501';
  END IF;
  documents := (SELECT count(*) FROM ai.knowledge_documents d WHERE d.org_id = org);
  text_bytes := (SELECT coalesce(sum(octet_length(v.text)), 0) FROM ai.knowledge_versions v WHERE v.org_id = org);
END
$$;
REVOKE ALL ON FUNCTION ai.knowledge_usage() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.knowledge_usage() TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208060200_knowledge_plan_limits', '13165e5bae59cead2c9cefd3e2d65d19b4cee985afbf863e2774b85ce6bac666', 0)
  ON CONFLICT (name) DO NOTHING;
