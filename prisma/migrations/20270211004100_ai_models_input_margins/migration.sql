-- A budget reserves an LLM call's worst case before the call: its input counted with o200k_base (js-tiktoken), times a
-- margin, plus max output tokens. The margin was one for every model (1.1 x the count + 16 tokens), OpenAI's: a model
-- whose tokenizer counts more went past it: claude-sonnet-4's calls were billed past their reservations, and 20 runs at
-- once overspent an organization's token limit by 16.6 %.
--
-- The margin is now data of the catalog, per model (read with the model: RunsService, EmbeddingUsageService):
-- input_token_factor x the o200k count + input_token_overhead tokens. Output needs none: the provider stops at the
-- max_tokens it is asked for, counted in its own tokens, which is what the reservation holds.
--   * OpenAI models: o200k_base is their tokenizer (text-embedding-3-small's cl100k_base counts no more for English):
--     1.1 and 16, as before (the 16: the provider's own framing of a request).
--   * claude-sonnet-4: Anthropic's tokenizer counts ~1.2-1.35 x tiktoken's for English prose and more for code and JSON
--     (a run's tool schemas and results): 1.5 covers prose and code with room. Anthropic adds a
--     tool-use system prompt of 346 tokens (Sonnet 4, tool_choice auto) to a request with tools, which the OpenAI-compatible
--     proxy cannot show: 400 tokens of overhead covers it and the framing.
--   * Any other (a model added later without its own figures; a model outside the catalog gets the same in code,
--     DEFAULT_INPUT_MARGIN): 2 x the count + 512, conservative: a tokenizer nobody measured.
-- No object is created: ai.models keeps its RLS and grants (SELECT to authenticated and service_role covers the new
-- columns). Needs no superuser.
ALTER TABLE ai.models
  ADD COLUMN input_token_factor numeric(4, 2) NOT NULL DEFAULT 2.00 CHECK (input_token_factor >= 1),
  ADD COLUMN input_token_overhead integer NOT NULL DEFAULT 512 CHECK (input_token_overhead >= 0);
COMMENT ON COLUMN ai.models.input_token_factor IS 'a budget reserves the input as this many times its o200k_base count (the model''s tokenizer may count more)';
COMMENT ON COLUMN ai.models.input_token_overhead IS 'tokens a budget reserves on top of the input''s count: the provider''s own framing and hidden prompts';
UPDATE ai.models SET input_token_factor = 1.10, input_token_overhead = 16 WHERE provider = 'openai';
UPDATE ai.models SET input_token_factor = 1.50, input_token_overhead = 400 WHERE id = 'claude-sonnet-4';
