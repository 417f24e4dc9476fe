-- Generated from prisma/migrations/20270105000100_knowledge_policies_per_statement/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Knowledge base (issue 17): the read policies no longer call a plpgsql function per row.
--
-- The policies of 20261224000100_knowledge called ai.can_read(org_id, collection_id), a plpgsql function, for every
-- row a scan visits: an HNSW scan with a selective filter, or a full-text match of common words, visits tens of
-- thousands of chunks. Now, with the claims functions inlined (20261231000100_claims_verified_once):
--  * a collection is readable when it belongs to the caller's organization and the caller's role is owner, admin or
--    service, or one its read_roles name;
--  * documents, versions and chunks compare their collection_id with ai.readable_collections(): a plain SQL function
--    that PostgreSQL inlines, its ARRAY(SELECT ...) becoming an InitPlan run once per statement under the
--    collections' own policy, so which collections are readable is decided in one place. The policies themselves
--    hold no subquery (Citus refuses them, test/platform/citus.test.ts).
-- Owner and admin read every collection of their organization; other roles read those whose read_roles name them.
CREATE FUNCTION ai.readable_collections() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT ARRAY(SELECT k.id FROM ai.knowledge_collections k)
$$;
REVOKE ALL ON FUNCTION ai.readable_collections() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ai.readable_collections() TO authenticated, service_role;

DROP POLICY knowledge_collections_read ON ai.knowledge_collections;
DROP POLICY knowledge_collections_insert ON ai.knowledge_collections;
DROP POLICY knowledge_collections_update ON ai.knowledge_collections;
DROP POLICY knowledge_collections_delete ON ai.knowledge_collections;
DROP POLICY knowledge_documents_read ON ai.knowledge_documents;
DROP POLICY knowledge_documents_write ON ai.knowledge_documents;
DROP POLICY knowledge_versions_read ON ai.knowledge_versions;
DROP POLICY knowledge_versions_insert ON ai.knowledge_versions;
DROP POLICY knowledge_versions_update ON ai.knowledge_versions;
DROP POLICY knowledge_chunks_read ON ai.knowledge_chunks;

CREATE POLICY knowledge_collections_read ON ai.knowledge_collections FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id()
    AND (public.auth_has_role('owner', 'admin', 'service') OR public.auth_role() = ANY (read_roles)));
CREATE POLICY knowledge_collections_insert ON ai.knowledge_collections FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY knowledge_collections_update ON ai.knowledge_collections FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY knowledge_collections_delete ON ai.knowledge_collections FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));

CREATE POLICY knowledge_documents_read ON ai.knowledge_documents FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections()));
CREATE POLICY knowledge_documents_write ON ai.knowledge_documents FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections())
    AND NOT public.auth_has_role('viewer'))
  WITH CHECK (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections())
    AND NOT public.auth_has_role('viewer'));

CREATE POLICY knowledge_versions_read ON ai.knowledge_versions FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections()));
CREATE POLICY knowledge_versions_insert ON ai.knowledge_versions FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections())
    AND NOT public.auth_has_role('viewer'));
-- re-indexing marks the latest version pending again
CREATE POLICY knowledge_versions_update ON ai.knowledge_versions FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections())
    AND NOT public.auth_has_role('viewer'))
  WITH CHECK (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections()));

-- chunks: written only by the ingestion job (service_role); read by readers of their collection
CREATE POLICY knowledge_chunks_read ON ai.knowledge_chunks FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND collection_id = ANY (ai.readable_collections()));

DROP FUNCTION ai.can_read(uuid, uuid);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270105000100_knowledge_policies_per_statement', '5fee4c7bd659b079369d5ebf9fb8fc4d49fc05770f706aa09584c44818ce06f7', 0)
  ON CONFLICT (name) DO NOTHING;
