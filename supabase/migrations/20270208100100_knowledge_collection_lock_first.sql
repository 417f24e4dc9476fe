-- Generated from prisma/migrations/20270208100100_knowledge_collection_lock_first/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The writers of a collection's documents lock the collection's row first: one order (collection, document, versions)
-- for creating a document, adding or restoring a version, and deleting the collection.
--
-- 20270208060200's KnowledgeService deleted a collection by locking its documents, then its row. A document created and
-- committed between the two locks was not among the documents locked; a new version of it could then lock the document,
-- and its insert's key check wait for the collection's row (FOR KEY SHARE, held FOR UPDATE by the deletion), while the
-- deletion's DELETE waited for that document's row: a deadlock (one of the two a 409). Now the deletion locks the
-- collection's row FOR UPDATE first, and a new document or version takes it FOR KEY SHARE before anything else: whichever
-- comes second waits for the first to end.
--
-- The lock of a writer is taken here: SELECT ... FOR KEY SHARE needs the UPDATE policy too, which lets only owners and
-- admins update a collection, so a member (who may add documents to the collections their role reads) could not take it
-- as the caller. SECURITY DEFINER, within the request's organization only; it reads nothing the caller did not already
-- read (KnowledgeService reads the collection or the document under the policies first) and answers only whether the row
-- is there. A row lock changes no data: nothing to audit.
CREATE FUNCTION ai.lock_knowledge_collection(p_collection uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
BEGIN
  -- a lock for the API's writes only: never taken over Supabase's REST API
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API' USING ERRCODE = '42501';
  END IF;
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization in this request' USING ERRCODE = '42501';
  END IF;
  PERFORM 1 FROM ai.knowledge_collections k WHERE k.org_id = org AND k.id = p_collection FOR KEY SHARE;
  RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION ai.lock_knowledge_collection(uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.lock_knowledge_collection(uuid) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208100100_knowledge_collection_lock_first', 'b6bd78dafe069bf7463f7f6a498c6fc9511639a6e82f75ab9c40d948ef4e9ee4', 0)
  ON CONFLICT (name) DO NOTHING;
