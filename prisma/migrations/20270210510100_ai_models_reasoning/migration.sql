-- Whether a chat model is a reasoning model is data of the catalog, read with the model (RunsService), not a rule on
-- model ids in code: a reasoning model (OpenAI's o-series, the gpt-5 family) is asked for max_completion_tokens, not
-- max_tokens, and with no temperature (it refuses both); a model added to the catalog says which it is.
-- The existing catalog's reasoning models are flagged by the rule the code had (o<digits> or gpt-5, as a whole name or
-- followed by - . : _ @, behind any number of prefix/ parts, in any case): o4-mini. Needs no superuser; no table is
-- created (ai.models keeps its RLS and grants: SELECT to authenticated and service_role covers the new column).
ALTER TABLE ai.models ADD COLUMN reasoning boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN ai.models.reasoning IS 'a reasoning model: asked for max_completion_tokens (not max_tokens) and with no temperature';
UPDATE ai.models SET reasoning = true WHERE kind = 'chat' AND id ~* '^([^/]*/)*(o[0-9]+|gpt-5)($|[-.:_@])';
