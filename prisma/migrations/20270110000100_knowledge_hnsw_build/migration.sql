-- Knowledge search (issue 17): HNSW indexes built for recall, embeddings kept in the row.
--
-- Measured by `npm run bench:knowledge` at 100,000 chunks (bench/README.md, section bench:knowledge): with
-- pgvector's default build (m 16, ef_construction 64) the HNSW ranking's recall@10 against exact search was 0.69
-- at ef_search 200 and 0.90 at ef_search 1000, unfiltered; rebuilt with m 32 and ef_construction 128 it is 0.995-1.0
-- at ef_search 1000. The price: a build (or an insert) does about four times the work, and the index is larger.
--
-- embedding SET STORAGE MAIN: pgvector's type is stored EXTERNAL, and a chunk row (content, tsvector, a 1 KB vector
-- of 256 dimensions, 6 KB of 1536) passes the 2 KB TOAST threshold, so the vector went out of line: an exact ranking
-- (real[] path, or a small filtered set on pgvector, see knowledge.repository.ts) fetched each row's vector from the
-- TOAST table. MAIN keeps it in the row, the text columns are compressed or moved out first. Rows written before
-- this migration keep their layout until they are written again (a re-index of the document).
ALTER TABLE ai.knowledge_chunks ALTER COLUMN embedding SET STORAGE MAIN;

DO $$
DECLARE
  vector_type text := (SELECT format('%I.vector', n.nspname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector' LIMIT 1);
  cosine_ops text := (SELECT format('%I.vector_cosine_ops', n.nspname) FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE o.opcname = 'vector_cosine_ops' LIMIT 1);
  dims int;
BEGIN
  IF ai.embedding_storage() <> 'vector' THEN
    RETURN; -- real[]: no HNSW index
  END IF;
  FOREACH dims IN ARRAY ARRAY[256, 384, 512, 768, 1024, 1536] LOOP
    EXECUTE format('DROP INDEX IF EXISTS ai.knowledge_chunks_embedding_%s_idx', dims);
    EXECUTE format('CREATE INDEX knowledge_chunks_embedding_%s_idx ON ai.knowledge_chunks USING hnsw ((embedding::%s(%s)) %s) WITH (m = 32, ef_construction = 128) WHERE embedding_dimensions = %s',
      dims, vector_type, dims, cosine_ops, dims);
  END LOOP;
END
$$;
