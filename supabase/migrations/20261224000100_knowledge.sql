-- Generated from prisma/migrations/20261224000100_knowledge/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Knowledge base (issue 17): collections readable by named organization roles, documents with versions, and the
-- chunks of each document's indexed version with their embeddings, searched by full text and by vector similarity.
--
-- Access control is in the policies: a chunk carries org_id and collection_id, and a caller sees it only when the
-- caller's role may read that collection (ai.can_read). Owner, admin and the service role read every
-- collection; other roles read those whose read_roles name them.
--
-- Embedding storage, decided here once:
--  * pgvector available (pg_available_extensions) and not switched off: `CREATE EXTENSION IF NOT EXISTS vector`,
--    chunks.embedding is `vector` (no fixed dimension: each chunk records its model and dimension, so a model change
--    re-embeds rather than mixing spaces) with one partial HNSW (cosine) index per common dimension on
--    `embedding::vector(n)`. On Supabase the extension is trusted and the non-superuser migration login creates it;
--    where it is installed but not trusted and the login is no superuser, a superuser runs
--    `CREATE EXTENSION vector` first (then this migration finds it installed), else the real[] path is taken.
--  * otherwise (the embedded PostgreSQL, a server without pgvector): chunks.embedding is `real[]` (unit vectors)
--    and search ranks by exact cosine similarity in SQL (ai.dot_product).
--  * the database setting `omnizen.knowledge_embedding_storage = 'array'` (ALTER DATABASE ... SET) forces real[]:
--    the tests migrate one database that way to run the knowledge tests on both paths.
CREATE SCHEMA IF NOT EXISTS ai;
GRANT USAGE ON SCHEMA ai TO authenticated, service_role;

-- ---------------------------------------------------------------- collections
CREATE TABLE ai.knowledge_collections (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  workspace_id uuid,
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  description text CHECK (length(description) <= 2000),
  -- organization roles that may read, besides owner and admin (who read every collection)
  read_roles text[] NOT NULL DEFAULT '{}'
    CHECK (read_roles <@ ARRAY['owner', 'admin', 'accountant', 'member', 'viewer']::text[]),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, name),
  FOREIGN KEY (org_id, workspace_id) REFERENCES core.workspaces(org_id, id) ON DELETE CASCADE
);

-- Whether the caller may read collection p_collection of organization p_org: p_org is the caller's organization
-- (auth_org_id()) and its role is owner, admin or service, or one the collection's read_roles name.
-- A chunk policy calls it for every row an index scan visits (an HNSW scan does not use the org_id index, so
-- auth_org_id() would be evaluated per row, with its membership lookups): the answer's inputs are worked out once
-- per transaction and request claims and kept in the transaction-local setting omnizen.knowledge_access, keyed by
-- a hash of the login and the claims (new claims, new key). Collections whose read_roles change later in the same
-- transaction are seen with the roles of its start: only owner and admin change them, and they read every collection.
-- SECURITY DEFINER: it reads the collections past their own policy (which calls it).
CREATE FUNCTION ai.can_read(p_org uuid, p_collection uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  k text := md5(session_user || '|' || coalesce(current_setting('request.jwt.claims', true), '') || '|'
                || coalesce(current_setting('request.jwt.claim', true), ''));
  memo text[] := string_to_array(current_setting('omnizen.knowledge_access', true), '|');
  org uuid;
  r text;
BEGIN
  IF memo IS NULL OR memo[1] IS DISTINCT FROM k THEN
    org := public.auth_org_id();
    r := CASE WHEN org IS NULL THEN NULL ELSE public.auth_role() END;
    memo := ARRAY[k, coalesce(org::text, ''), CASE WHEN r IN ('owner', 'admin', 'service') THEN 't' ELSE 'f' END,
      coalesce((SELECT string_agg(c.id::text, ',') FROM ai.knowledge_collections c WHERE c.org_id = org AND r = ANY (c.read_roles)), '')];
    PERFORM set_config('omnizen.knowledge_access', array_to_string(memo, '|'), true);
  END IF;
  RETURN memo[2] <> '' AND memo[2] = p_org::text
    AND (memo[3] = 't' OR p_collection::text = ANY (string_to_array(memo[4], ',')));
END
$$;
REVOKE ALL ON FUNCTION ai.can_read(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ai.can_read(uuid, uuid) TO authenticated, service_role;

-- ---------------------------------------------------------------- documents and versions
CREATE TABLE ai.knowledge_documents (
  org_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  collection_id uuid NOT NULL,
  title text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
  source text NOT NULL CHECK (source IN ('upload', 'url', 'note')),
  source_url text CHECK (length(source_url) <= 2000),
  tags text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
  -- the newest version (what ingestion indexes) and the version whose chunks are searchable now
  latest_version_no int NOT NULL DEFAULT 0,
  indexed_version_no int,
  -- the latest version's ingestion: pending, ready, failed (with the reason)
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
  status_reason text,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, collection_id) REFERENCES ai.knowledge_collections(org_id, id) ON DELETE CASCADE
);
CREATE INDEX knowledge_documents_collection_idx ON ai.knowledge_documents (org_id, collection_id, created_at DESC);

CREATE TABLE ai.knowledge_versions (
  org_id uuid NOT NULL,
  document_id uuid NOT NULL,
  collection_id uuid NOT NULL,
  version_no int NOT NULL CHECK (version_no > 0),
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  content_type text NOT NULL CHECK (content_type IN ('text/plain', 'text/markdown', 'text/html', 'application/pdf')),
  filename text CHECK (length(filename) <= 300),
  byte_size int NOT NULL CHECK (byte_size >= 0),
  -- the extracted text: what is chunked, and what a restore re-indexes
  text text NOT NULL,
  restored_from_version_no int,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed', 'superseded')),
  status_reason text,
  chunk_count int,
  embedding_model text,
  embedding_dimensions int,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  indexed_at timestamptz,
  PRIMARY KEY (org_id, document_id, version_no),
  UNIQUE (org_id, id),
  FOREIGN KEY (org_id, document_id) REFERENCES ai.knowledge_documents(org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, collection_id) REFERENCES ai.knowledge_collections(org_id, id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------- chunks
-- Only the indexed version's chunks exist: ingestion replaces a document's chunks in one transaction, so a version
-- becomes searchable whole or not at all.
CREATE TABLE ai.knowledge_chunks (
  org_id uuid NOT NULL,
  id bigint GENERATED ALWAYS AS IDENTITY,
  collection_id uuid NOT NULL,
  document_id uuid NOT NULL,
  version_no int NOT NULL,
  chunk_no int NOT NULL,
  content text NOT NULL,
  token_count int NOT NULL,
  -- copied from the document and version, so filters need no join
  tags text[] NOT NULL DEFAULT '{}',
  document_date timestamptz NOT NULL,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
  embedding_model text NOT NULL,
  embedding_dimensions int NOT NULL CHECK (embedding_dimensions BETWEEN 1 AND 4096),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, document_id, chunk_no),
  FOREIGN KEY (org_id, document_id) REFERENCES ai.knowledge_documents(org_id, id) ON DELETE CASCADE
);
CREATE INDEX knowledge_chunks_tsv_idx ON ai.knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_collection_idx ON ai.knowledge_chunks (org_id, collection_id);
CREATE INDEX knowledge_chunks_tags_idx ON ai.knowledge_chunks USING gin (tags);

-- Dot product of two real[] (unit vectors: the cosine similarity), for the real[] path.
CREATE FUNCTION ai.dot_product(a real[], b real[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT sum(x::double precision * y) FROM unnest(a, b) AS t(x, y)
$$;
REVOKE ALL ON FUNCTION ai.dot_product(real[], real[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ai.dot_product(real[], real[]) TO authenticated, service_role;

DO $$
DECLARE
  forced text := current_setting('omnizen.knowledge_embedding_storage', true);
  installed boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector');
  available boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector');
  use_vector boolean := false;
  dims int;
BEGIN
  IF coalesce(forced, '') <> 'array' AND (installed OR available) THEN
    BEGIN
      -- trusted on Supabase (any login with CREATE on the database may create it); else needs a superuser
      CREATE EXTENSION IF NOT EXISTS vector;
      use_vector := true;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'pgvector is available but this login may not create it (%): embeddings stored as real[]; a superuser can run CREATE EXTENSION vector and the data be re-indexed after a migration to vector', SQLERRM;
    END;
  END IF;
  IF use_vector THEN
    -- the type's schema (public on plain PostgreSQL, extensions on Supabase) is not on the migration's search path
    EXECUTE format('ALTER TABLE ai.knowledge_chunks ADD COLUMN embedding %s NOT NULL',
      (SELECT format('%I.vector', n.nspname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector' LIMIT 1));
    FOREACH dims IN ARRAY ARRAY[256, 384, 512, 768, 1024, 1536] LOOP
      EXECUTE format('CREATE INDEX knowledge_chunks_embedding_%s_idx ON ai.knowledge_chunks USING hnsw ((embedding::%s(%s)) %s) WHERE embedding_dimensions = %s',
        dims,
        (SELECT format('%I.vector', n.nspname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector' LIMIT 1),
        dims,
        (SELECT format('%I.vector_cosine_ops', n.nspname) FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE o.opcname = 'vector_cosine_ops' LIMIT 1),
        dims);
    END LOOP;
  ELSE
    ALTER TABLE ai.knowledge_chunks ADD COLUMN embedding real[] NOT NULL;
  END IF;
END
$$;

-- Which storage the migration chose: 'vector' or 'array' (the repository reads it once per process).
CREATE FUNCTION ai.embedding_storage() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN t.typname = 'vector' THEN 'vector' ELSE 'array' END
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = 'ai.knowledge_chunks'::regclass AND a.attname = 'embedding'
$$;
REVOKE ALL ON FUNCTION ai.embedding_storage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ai.embedding_storage() TO authenticated, service_role;

-- ---------------------------------------------------------------- row level security
ALTER TABLE ai.knowledge_collections ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.knowledge_documents ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.knowledge_versions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.knowledge_chunks ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- collections: readers see them; owner and admin manage them
CREATE POLICY knowledge_collections_read ON ai.knowledge_collections FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND ai.can_read(org_id, id));
CREATE POLICY knowledge_collections_insert ON ai.knowledge_collections FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY knowledge_collections_update ON ai.knowledge_collections FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY knowledge_collections_delete ON ai.knowledge_collections FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY knowledge_collections_service ON ai.knowledge_collections FOR ALL TO service_role USING (true) WITH CHECK (true);

-- documents and versions: readers of the collection see them; its readers other than viewers write them
CREATE POLICY knowledge_documents_read ON ai.knowledge_documents FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id));
CREATE POLICY knowledge_documents_write ON ai.knowledge_documents FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id) AND NOT public.auth_has_role('viewer'))
  WITH CHECK (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id) AND NOT public.auth_has_role('viewer'));
CREATE POLICY knowledge_documents_service ON ai.knowledge_documents FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY knowledge_versions_read ON ai.knowledge_versions FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id));
CREATE POLICY knowledge_versions_insert ON ai.knowledge_versions FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id) AND NOT public.auth_has_role('viewer'));
-- re-indexing marks the latest version pending again
CREATE POLICY knowledge_versions_update ON ai.knowledge_versions FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id) AND NOT public.auth_has_role('viewer'))
  WITH CHECK (org_id = public.auth_org_id() AND ai.can_read(org_id, collection_id));
CREATE POLICY knowledge_versions_service ON ai.knowledge_versions FOR ALL TO service_role USING (true) WITH CHECK (true);

-- chunks: written only by the ingestion job (service_role); read by readers of their collection
-- (ai.can_read checks the organization too, once per transaction rather than once per row)
CREATE POLICY knowledge_chunks_read ON ai.knowledge_chunks FOR SELECT TO authenticated
  USING (ai.can_read(org_id, collection_id));
CREATE POLICY knowledge_chunks_service ON ai.knowledge_chunks FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON ai.knowledge_collections, ai.knowledge_documents, ai.knowledge_versions, ai.knowledge_chunks
  FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SEQUENCE ai.knowledge_chunks_id_seq FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ai.knowledge_collections, ai.knowledge_documents TO authenticated, service_role;
GRANT SELECT, INSERT ON ai.knowledge_versions TO authenticated;
GRANT UPDATE (status, status_reason) ON ai.knowledge_versions TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON ai.knowledge_versions TO service_role;
GRANT SELECT ON ai.knowledge_chunks TO authenticated;
GRANT SELECT, INSERT, DELETE ON ai.knowledge_chunks TO service_role;
GRANT USAGE ON SEQUENCE ai.knowledge_chunks_id_seq TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261224000100_knowledge', '1e5f703a128b8d89aa1ce9d8452ddce265c72ce15054e8d358c443deba691b1b', 0)
  ON CONFLICT (name) DO NOTHING;
