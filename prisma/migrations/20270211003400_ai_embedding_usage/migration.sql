-- The knowledge base's embedding calls are AI usage of the organization. Every ingestion, re-index and search query called
-- the embedding provider (usually on the platform's AI_API_KEY) and none of it was reserved against ai.budgets nor
-- reported by GET /ai/usage, although a budget's token limit counts "all usage types": one member re-indexing a large
-- document in a loop embedded ~250k tokens a request, past a 1-token organization budget (review of the knowledge base).
--
-- Each embedding call now reserves its tokens (counted with the embedding models' tokenizer, plus the margin an LLM call's
-- input is reserved with) and their cost at the catalog's price against the organization's budget with ai.reserve_budget (p_agent NULL: only the budget of the whole
-- organization applies; an agent's budget is that agent's runs'), before the provider is called, and settles it with
-- ai.settle_budget at what the provider reported: the agents' functions, unchanged. What was spent is recorded here, one
-- row per call, and GET /ai/usage reports it beside the runs.
--
-- ai.embedding_usage: append-only (no UPDATE or DELETE granted). user_id: the person the call was made for (the one who
-- searched, or added the version or asked for the re-index an ingestion embeds); api_key_id: the API key that searched
-- (verified by the search's own transaction). Read as the runs are (20270211000600): owners and admins every row, other
-- members their own, an API key the rows of its own calls, a service-role key every row. Written only by a service
-- without a key (the API's knowledge-embeddings, in a transaction of the organization, with the reservation and the
-- settlement): a search with an API key whose scopes only read runs in a read-only transaction, which can write neither
-- this nor the budget's usage, and an ingestion job has no person's. The policies hold no subquery (Citus,
-- test/platform/citus.test.ts). Needs no superuser.
CREATE TABLE ai.embedding_usage (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  purpose text NOT NULL CHECK (purpose IN ('knowledge_ingestion', 'knowledge_search')),
  -- the configured embedding model (AI_EMBEDDING_MODEL): not necessarily in ai.models (a model the catalog has no price of costs 0 here)
  model_id text NOT NULL CHECK (length(model_id) BETWEEN 1 AND 200),
  user_id uuid,
  api_key_id uuid,
  -- the document an ingestion embedded (no reference: the usage outlives the document)
  document_id uuid,
  -- texts embedded, provider requests made
  inputs integer NOT NULL CHECK (inputs >= 0),
  requests integer NOT NULL CHECK (requests >= 0),
  -- as the provider reported them (counted with the tokenizer when it reported none: tokens_counted)
  input_tokens bigint NOT NULL CHECK (input_tokens >= 0),
  tokens_counted boolean NOT NULL,
  -- USD at the catalog's prices in effect at `at` (those prices in `prices`; NULL: the model has none)
  cost numeric(18, 8) NOT NULL CHECK (cost >= 0),
  prices jsonb,
  at timestamptz NOT NULL,
  PRIMARY KEY (org_id, id)
);
-- the usage report: an organization's rows by day; an API key's own
CREATE INDEX embedding_usage_at_idx ON ai.embedding_usage (org_id, at);
CREATE INDEX embedding_usage_api_key_idx ON ai.embedding_usage (org_id, api_key_id, at) WHERE api_key_id IS NOT NULL;
-- a person's export (personal-data.catalog: located by user_id)
CREATE INDEX embedding_usage_user_idx ON ai.embedding_usage (user_id) WHERE user_id IS NOT NULL;

COMMENT ON TABLE ai.embedding_usage IS 'The knowledge base''s embedding calls (ingestion, search): tokens and cost, spent on the organization''s AI budget; append-only';

ALTER TABLE ai.embedding_usage ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY embedding_usage_read ON ai.embedding_usage FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id()
    AND (public.auth_has_role('owner', 'admin') OR user_id::text = public.auth_user_id()
         OR (public.auth_has_role('service') AND (public.auth_api_key_id() IS NULL OR api_key_id = public.auth_api_key_id()))));

CREATE POLICY embedding_usage_insert ON ai.embedding_usage FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('service') AND public.auth_api_key_id() IS NULL);

-- as every table the API writes (20270205000900): not over Supabase's REST API, only in a verified transaction
CREATE POLICY rest_path_closed_insert ON ai.embedding_usage AS RESTRICTIVE FOR INSERT TO authenticated
  WITH CHECK (public.auth_claims_verified());

REVOKE ALL ON ai.embedding_usage FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON ai.embedding_usage TO authenticated, service_role;
