-- Knowledge search (issue 17): the full-text candidates through the GIN index.
--
-- Under row-level security PostgreSQL does not use `tsv @@ query` as an index condition: the operator is not
-- leakproof, so it may only run after the policies' conditions, and the GIN index is left out — every search was
-- a sequential scan of the organization's chunks (3 s at 100,000). This function finds the matching chunks by the
-- index and applies the same access rule as the policies itself, with the caller's claims: chunks of the caller's
-- organization, in collections the caller's role may read (owner, admin and service read all; other roles those
-- whose read_roles name them; as knowledge_collections_read). It answers ids only, at most p_limit, and search
-- joins them back to ai.knowledge_chunks under the policies, so a wrong answer here could never show more.
-- SECURITY DEFINER: it reads past the policies (whose conditions it restates) — like the other definer functions
-- of the claims, it is owned by the migration login.
CREATE FUNCTION ai.knowledge_text_matches(p_query text, p_collections uuid[], p_documents uuid[], p_tags text[],
  p_from timestamptz, p_to timestamptz, p_limit int) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH me AS MATERIALIZED (SELECT public.auth_org_id() AS org, public.auth_role() AS role),
  readable AS MATERIALIZED (
    SELECT array_agg(k.id) AS ids FROM ai.knowledge_collections k, me
    WHERE k.org_id = me.org AND (me.role IN ('owner', 'admin', 'service') OR me.role = ANY (k.read_roles)))
  SELECT c.id FROM ai.knowledge_chunks c, me, readable
  WHERE c.tsv @@ websearch_to_tsquery('english', p_query)
    AND c.org_id = me.org AND c.collection_id = ANY (readable.ids)
    AND (p_collections IS NULL OR c.collection_id = ANY (p_collections))
    AND (p_documents IS NULL OR c.document_id = ANY (p_documents))
    AND (p_tags IS NULL OR c.tags @> p_tags)
    AND (p_from IS NULL OR c.document_date >= p_from)
    AND (p_to IS NULL OR c.document_date < p_to)
  LIMIT greatest(p_limit, 0)
$$;
REVOKE ALL ON FUNCTION ai.knowledge_text_matches(text, uuid[], uuid[], text[], timestamptz, timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ai.knowledge_text_matches(text, uuid[], uuid[], text[], timestamptz, timestamptz, int) TO authenticated, service_role;
