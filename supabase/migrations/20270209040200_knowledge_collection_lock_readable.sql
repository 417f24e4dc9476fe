-- Generated from prisma/migrations/20270209040200_knowledge_collection_lock_readable/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- ai.lock_knowledge_collection locks only a collection the caller may add documents to.
--
-- 20270208100100's function (SECURITY DEFINER, so that a member, whom the collections' UPDATE policy does not let take
-- FOR KEY SHARE, can take the lock) locked any collection row of the request's organization: a member, or a viewer,
-- locked a restricted collection they cannot read (its read_roles do not name them), holding off its deletion by an
-- owner, and learnt from the answer that a collection of that id exists. Its comment relied on KnowledgeService reading
-- the collection under the policies first; the function now checks it itself, with the policies' own conditions:
--  * readable: ai.knowledge_collections' read policy (20270105000100): owner, admin and service read every
--    collection of the organization, other roles those whose read_roles name them;
--  * writable: ai.knowledge_documents' write policy adds "not a viewer". The lock is a writer's (a new document,
--    version or restore): a viewer writes no document (the API answers 403 before), so they lock nothing.
-- Otherwise false, as for a collection that is not there: KnowledgeService answers the 404 a read of it answers.
-- test/knowledge/collection-lock-readable.test.ts compares the answer with a read as the caller, role by role.
-- Same signature, grants set again as they were.
CREATE OR REPLACE FUNCTION ai.lock_knowledge_collection(p_collection uuid) RETURNS boolean
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
  PERFORM 1 FROM ai.knowledge_collections k
  WHERE k.org_id = org AND k.id = p_collection
    AND (public.auth_has_role('owner', 'admin', 'service') OR public.auth_role() = ANY (k.read_roles))
    AND NOT public.auth_has_role('viewer')
  FOR KEY SHARE;
  RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION ai.lock_knowledge_collection(uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.lock_knowledge_collection(uuid) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209040200_knowledge_collection_lock_readable', '38176b53f914f492010316633220a297a174bfaf353cf164333530949d90f015', 0)
  ON CONFLICT (name) DO NOTHING;
