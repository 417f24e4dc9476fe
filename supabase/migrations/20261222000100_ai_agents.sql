-- Generated from prisma/migrations/20261222000100_ai_agents/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- AI agents (issue 16): the model catalog with dated prices, agents, runs as traces of steps with tokens and
-- cost, budgets with atomic reservations, the organization's own provider key, and semantic.v_agent_metrics.
--
--  * Prices are data with the date they take effect (ai.model_prices): a step stores the cost computed at the
--    prices in effect when it ran, so a later price row never rewrites a past run's cost.
--    List prices in USD per million tokens as published on the providers' pricing pages
--    (openai.com/api/pricing, anthropic.com/pricing), read on 2026-12-02.
--  * A finished run (status other than 'running') is immutable: a trigger refuses to change it or to add steps.
--  * Budgets: ai.reserve_budget() reserves a call's worst case against every budget that applies in one
--    statement per budget whose WHERE re-checks the limit on the locked row (zero overshoot under concurrency);
--    ai.settle_budget() turns the reservation into actual spend. Reservations carry an expiry: those of a call
--    that never settled (a crashed process) are released by the next reservation on the same budget.
--  * Every member of the organization may run an agent (a viewer too: tools only read, and only what the
--    runner's claims allow), so members write runs, steps and budget usage (through the API only); owner and
--    admin manage agents, budgets and the provider key.

CREATE SCHEMA IF NOT EXISTS ai;
GRANT USAGE ON SCHEMA ai TO authenticated, service_role;

-- ---------------------------------------------------------------- model catalog (shared reference data)
CREATE TABLE ai.models (
  id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$'),
  provider text NOT NULL CHECK (provider IN ('openai', 'anthropic', 'google', 'mistral', 'meta', 'other')),
  display_name text NOT NULL,
  kind text NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat', 'embedding')),
  context_window integer NOT NULL CHECK (context_window > 0),
  max_output_tokens integer NOT NULL CHECK (max_output_tokens > 0)
);

CREATE TABLE ai.model_prices (
  model_id text NOT NULL REFERENCES ai.models(id),
  effective_from timestamptz NOT NULL,
  -- USD per million tokens
  input numeric(12, 6) NOT NULL CHECK (input >= 0),
  output numeric(12, 6) NOT NULL CHECK (output >= 0),
  cached_input numeric(12, 6) NOT NULL CHECK (cached_input >= 0),
  cache_write numeric(12, 6) NOT NULL CHECK (cache_write >= 0),
  source text NOT NULL,
  PRIMARY KEY (model_id, effective_from)
);

INSERT INTO ai.models (id, provider, display_name, kind, context_window, max_output_tokens) VALUES
  ('gpt-4o', 'openai', 'GPT-4o', 'chat', 128000, 16384),
  ('gpt-4o-mini', 'openai', 'GPT-4o mini', 'chat', 128000, 16384),
  ('gpt-4.1', 'openai', 'GPT-4.1', 'chat', 1047576, 32768),
  ('gpt-4.1-mini', 'openai', 'GPT-4.1 mini', 'chat', 1047576, 32768),
  ('o4-mini', 'openai', 'o4-mini', 'chat', 200000, 100000),
  ('claude-sonnet-4', 'anthropic', 'Claude Sonnet 4 (through an OpenAI-compatible proxy)', 'chat', 200000, 64000),
  ('text-embedding-3-small', 'openai', 'text-embedding-3-small', 'embedding', 8191, 1);
-- cache_write: OpenAI bills no cache writes (0); Anthropic's 5-minute cache write is 1.25 x input
INSERT INTO ai.model_prices (model_id, effective_from, input, output, cached_input, cache_write, source) VALUES
  ('gpt-4o', '2024-10-01', 2.50, 10.00, 1.25, 0, 'openai.com/api/pricing, read 2026-12-02'),
  ('gpt-4o-mini', '2024-07-18', 0.15, 0.60, 0.075, 0, 'openai.com/api/pricing, read 2026-12-02'),
  ('gpt-4.1', '2025-04-14', 2.00, 8.00, 0.50, 0, 'openai.com/api/pricing, read 2026-12-02'),
  ('gpt-4.1-mini', '2025-04-14', 0.40, 1.60, 0.10, 0, 'openai.com/api/pricing, read 2026-12-02'),
  ('o4-mini', '2025-04-16', 1.10, 4.40, 0.275, 0, 'openai.com/api/pricing, read 2026-12-02'),
  ('claude-sonnet-4', '2025-05-22', 3.00, 15.00, 0.30, 3.75, 'anthropic.com/pricing, read 2026-12-02'),
  ('text-embedding-3-small', '2024-01-25', 0.02, 0, 0, 0, 'openai.com/api/pricing, read 2026-12-02');

-- ---------------------------------------------------------------- the organization's own provider key
CREATE TABLE ai.provider_keys (
  org_id uuid PRIMARY KEY REFERENCES core.organizations(id) ON DELETE CASCADE,
  -- an OpenAI-compatible endpoint of the organization's own (NULL: the platform's AI_BASE_URL)
  base_url text CHECK (base_url ~ '^https?://'),
  -- the integrations' secret box: AES-256-GCM ciphertext, iv, tag and key id (never the key itself)
  secret jsonb NOT NULL,
  -- last four characters, to recognise the key
  key_hint text NOT NULL CHECK (length(key_hint) <= 4),
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- agents
CREATE TABLE ai.agents (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  type text NOT NULL CHECK (type IN ('assistant', 'accountant', 'analyst', 'custom')),
  instructions text NOT NULL DEFAULT '' CHECK (length(instructions) <= 20000),
  model_id text NOT NULL REFERENCES ai.models(id),
  temperature numeric(3, 2) NOT NULL DEFAULT 0.2 CHECK (temperature BETWEEN 0 AND 2),
  max_output_tokens integer NOT NULL DEFAULT 1024 CHECK (max_output_tokens BETWEEN 1 AND 100000),
  max_steps integer NOT NULL DEFAULT 8 CHECK (max_steps BETWEEN 1 AND 50),
  tools text[] NOT NULL DEFAULT '{}',
  knowledge_collection_ids uuid[] NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  workspace_id uuid,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, name),
  FOREIGN KEY (org_id, workspace_id) REFERENCES core.workspaces(org_id, id)
);

-- ---------------------------------------------------------------- runs and their steps
CREATE TABLE ai.runs (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  agent_id uuid NOT NULL,
  model_id text NOT NULL REFERENCES ai.models(id),
  -- the person whose claims the run executes with
  started_by uuid,
  trigger text NOT NULL DEFAULT 'interactive' CHECK (trigger IN ('interactive', 'async', 'schedule', 'event')),
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  input jsonb NOT NULL,
  output text,
  stop_reason text CHECK (stop_reason IN ('answer', 'max_steps', 'error', 'cancelled')),
  error_class text CHECK (error_class IN ('provider_rate_limited', 'provider_error', 'timeout', 'tool_error', 'budget_exceeded', 'cancelled')),
  error_message text,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cached_input_tokens bigint NOT NULL DEFAULT 0,
  cache_write_tokens bigint NOT NULL DEFAULT 0,
  cost numeric(18, 8) NOT NULL DEFAULT 0,
  steps integer NOT NULL DEFAULT 0,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  latency_ms integer,
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, agent_id) REFERENCES ai.agents(org_id, id) ON DELETE CASCADE,
  CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX runs_agent_idx ON ai.runs (org_id, agent_id, started_at DESC);

CREATE TABLE ai.run_steps (
  org_id uuid NOT NULL,
  run_id uuid NOT NULL,
  step_no integer NOT NULL CHECK (step_no > 0),
  kind text NOT NULL CHECK (kind IN ('llm_call', 'tool_call', 'retrieval')),
  -- the model id of an LLM call, the tool's name of a tool call
  name text NOT NULL,
  status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  error_class text CHECK (error_class IN ('provider_rate_limited', 'provider_error', 'timeout', 'tool_error', 'budget_exceeded', 'cancelled')),
  error_message text,
  started_at timestamptz NOT NULL,
  ended_at timestamptz NOT NULL,
  latency_ms integer NOT NULL CHECK (latency_ms >= 0),
  time_to_first_token_ms integer,
  streamed boolean NOT NULL DEFAULT false,
  attempts integer NOT NULL DEFAULT 1,
  -- tokens as the provider reported them (counted with a tokenizer when it reported none: tokens_counted)
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cached_input_tokens bigint NOT NULL DEFAULT 0,
  cache_write_tokens bigint NOT NULL DEFAULT 0,
  tokens_counted boolean NOT NULL DEFAULT false,
  -- cost at the prices in effect at started_at, and those prices (USD per million tokens)
  cost numeric(18, 8) NOT NULL DEFAULT 0,
  prices jsonb,
  detail jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (org_id, run_id, step_no),
  FOREIGN KEY (org_id, run_id) REFERENCES ai.runs(org_id, id) ON DELETE CASCADE
);

-- a finished run is immutable (deleting the organization or the agent cascades)
CREATE FUNCTION ai.guard_finished_run() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF TG_TABLE_NAME = 'runs' THEN
    IF OLD.status <> 'running' THEN
      RAISE EXCEPTION 'run % is finished (%): it cannot change', OLD.id, OLD.status USING ERRCODE = '23514', HINT = 'ai.run_finished';
    END IF;
    RETURN NEW;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ai.runs r WHERE r.org_id = NEW.org_id AND r.id = NEW.run_id AND r.status = 'running') THEN
    RAISE EXCEPTION 'run % is finished: no step can be added', NEW.run_id USING ERRCODE = '23514', HINT = 'ai.run_finished';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER runs_immutable BEFORE UPDATE ON ai.runs FOR EACH ROW EXECUTE FUNCTION ai.guard_finished_run();
CREATE TRIGGER run_steps_append_only BEFORE INSERT ON ai.run_steps FOR EACH ROW EXECUTE FUNCTION ai.guard_finished_run();
CREATE TRIGGER run_steps_immutable BEFORE UPDATE ON ai.run_steps FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- ---------------------------------------------------------------- budgets
CREATE TABLE ai.budgets (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  -- NULL: the organization's budget; otherwise one agent's
  agent_id uuid,
  cost_limit numeric(14, 4) CHECK (cost_limit > 0),
  token_limit bigint CHECK (token_limit > 0),
  -- percent of a limit at which ai.budget.threshold_reached is emitted (once per budget and month)
  thresholds integer[] NOT NULL DEFAULT '{50,80,100}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE NULLS NOT DISTINCT (org_id, agent_id),
  FOREIGN KEY (org_id, agent_id) REFERENCES ai.agents(org_id, id) ON DELETE CASCADE,
  CHECK (cost_limit IS NOT NULL OR token_limit IS NOT NULL),
  CHECK (thresholds <@ '{1,2,3,4,5,6,7,8,9,10,15,20,25,30,40,50,60,70,75,80,85,90,95,100}'::integer[])
);

-- one row per budget and calendar month (UTC): what is spent and what is reserved by calls in flight
CREATE TABLE ai.budget_usage (
  org_id uuid NOT NULL,
  budget_id uuid NOT NULL,
  period date NOT NULL CHECK (extract(day FROM period) = 1),
  spent_cost numeric(18, 8) NOT NULL DEFAULT 0,
  spent_tokens bigint NOT NULL DEFAULT 0,
  reserved_cost numeric(18, 8) NOT NULL DEFAULT 0 CHECK (reserved_cost >= 0),
  reserved_tokens bigint NOT NULL DEFAULT 0 CHECK (reserved_tokens >= 0),
  thresholds_reached integer[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (org_id, budget_id, period),
  FOREIGN KEY (org_id, budget_id) REFERENCES ai.budgets(org_id, id) ON DELETE CASCADE
);

CREATE TABLE ai.budget_reservations (
  org_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  -- one LLM call reserves against every budget that applies under the same call_id
  call_id uuid NOT NULL,
  budget_id uuid NOT NULL,
  period date NOT NULL,
  cost numeric(18, 8) NOT NULL CHECK (cost >= 0),
  tokens bigint NOT NULL CHECK (tokens >= 0),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, budget_id, period) REFERENCES ai.budget_usage(org_id, budget_id, period) ON DELETE CASCADE
);
CREATE INDEX budget_reservations_call_idx ON ai.budget_reservations (org_id, call_id);
CREATE INDEX budget_reservations_expiry_idx ON ai.budget_reservations (org_id, budget_id, period, expires_at);

-- Reserves a call's worst case against every budget of the organization and of the agent, or none of them.
-- Budgets are locked in id order (two calls never wait on each other crosswise). The UPDATE's WHERE is
-- re-evaluated on the locked row, so concurrent reservations cannot together pass a limit. Returns one row
-- per budget; ok = false names the first budget that does not fit (nothing is then reserved: the caller
-- rolls back). Runs as the caller (RLS applies).
CREATE FUNCTION ai.reserve_budget(p_agent uuid, p_call uuid, p_cost numeric, p_tokens bigint, p_now timestamptz, p_expires timestamptz)
RETURNS TABLE (budget_id uuid, ok boolean, cost_left numeric, tokens_left bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  per date := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;
  b ai.budgets;
  u ai.budget_usage;
  expired_cost numeric;
  expired_tokens bigint;
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  FOR b IN SELECT * FROM ai.budgets x WHERE x.org_id = org AND (x.agent_id IS NULL OR x.agent_id = p_agent) ORDER BY x.id LOOP
    INSERT INTO ai.budget_usage (org_id, budget_id, period) VALUES (org, b.id, per) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per FOR UPDATE;
    -- release the reservations of calls that never settled
    WITH gone AS (
      DELETE FROM ai.budget_reservations r
      WHERE r.org_id = org AND r.budget_id = b.id AND r.period = per AND r.expires_at <= p_now
      RETURNING r.cost, r.tokens)
    SELECT coalesce(sum(g.cost), 0), coalesce(sum(g.tokens), 0) INTO expired_cost, expired_tokens FROM gone g;
    UPDATE ai.budget_usage x SET
      reserved_cost = x.reserved_cost - expired_cost + p_cost,
      reserved_tokens = x.reserved_tokens - expired_tokens + p_tokens
    WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per
      AND (b.cost_limit IS NULL OR x.spent_cost + x.reserved_cost - expired_cost + p_cost <= b.cost_limit)
      AND (b.token_limit IS NULL OR x.spent_tokens + x.reserved_tokens - expired_tokens + p_tokens <= b.token_limit)
    RETURNING x.* INTO u;
    IF NOT FOUND THEN
      SELECT * INTO u FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per;
      budget_id := b.id;
      ok := false;
      cost_left := CASE WHEN b.cost_limit IS NULL THEN NULL ELSE greatest(b.cost_limit - u.spent_cost - u.reserved_cost + expired_cost, 0) END;
      tokens_left := CASE WHEN b.token_limit IS NULL THEN NULL ELSE greatest(b.token_limit - u.spent_tokens - u.reserved_tokens + expired_tokens, 0) END;
      RETURN NEXT;
      RETURN;
    END IF;
    INSERT INTO ai.budget_reservations (org_id, call_id, budget_id, period, cost, tokens, expires_at)
    VALUES (org, p_call, b.id, per, p_cost, p_tokens, p_expires);
    budget_id := b.id;
    ok := true;
    cost_left := CASE WHEN b.cost_limit IS NULL THEN NULL ELSE b.cost_limit - u.spent_cost - u.reserved_cost END;
    tokens_left := CASE WHEN b.token_limit IS NULL THEN NULL ELSE b.token_limit - u.spent_tokens - u.reserved_tokens END;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Settles a call: its reservations are removed and the actual usage is spent on the same budgets (also when a
-- reservation had already expired: the call did happen). Returns each budget's thresholds crossed now for the
-- first time this month, marked in the same UPDATE (so a threshold is reported once, whatever runs concurrently).
CREATE FUNCTION ai.settle_budget(p_call uuid, p_cost numeric, p_tokens bigint, p_agent uuid, p_now timestamptz)
RETURNS TABLE (budget_id uuid, agent_id uuid, period date, threshold integer, spent_cost numeric, spent_tokens bigint, cost_limit numeric, token_limit bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  per date := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;
  b ai.budgets;
  r ai.budget_reservations;
  u ai.budget_usage;
  crossed integer[];
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  FOR b IN SELECT * FROM ai.budgets x WHERE x.org_id = org AND (x.agent_id IS NULL OR x.agent_id = p_agent) ORDER BY x.id LOOP
    DELETE FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id RETURNING x.* INTO r;
    IF FOUND THEN
      per := r.period;
    ELSE
      per := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;
      INSERT INTO ai.budget_usage (org_id, budget_id, period) VALUES (org, b.id, per) ON CONFLICT DO NOTHING;
    END IF;
    UPDATE ai.budget_usage x SET
      reserved_cost = x.reserved_cost - coalesce(r.cost, 0),
      reserved_tokens = x.reserved_tokens - coalesce(r.tokens, 0),
      spent_cost = x.spent_cost + p_cost,
      spent_tokens = x.spent_tokens + p_tokens
    WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per
    RETURNING x.* INTO u;
    SELECT coalesce(array_agg(t ORDER BY t), '{}') INTO crossed FROM unnest(b.thresholds) t
    WHERE NOT t = ANY (u.thresholds_reached)
      AND ((b.cost_limit IS NOT NULL AND u.spent_cost * 100 >= b.cost_limit * t)
        OR (b.token_limit IS NOT NULL AND u.spent_tokens * 100 >= b.token_limit * t));
    IF cardinality(crossed) > 0 THEN
      UPDATE ai.budget_usage x SET thresholds_reached = x.thresholds_reached || crossed
      WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per;
      FOREACH threshold IN ARRAY crossed LOOP
        budget_id := b.id; agent_id := b.agent_id; period := per;
        spent_cost := u.spent_cost; spent_tokens := u.spent_tokens; cost_limit := b.cost_limit; token_limit := b.token_limit;
        RETURN NEXT;
      END LOOP;
    END IF;
    r := NULL;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------- row-level security
ALTER TABLE ai.models ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.model_prices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.provider_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.agents ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.run_steps ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.budgets ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.budget_usage ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE ai.budget_reservations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY models_read ON ai.models FOR SELECT TO authenticated, service_role USING (true);
CREATE POLICY model_prices_read ON ai.model_prices FOR SELECT TO authenticated, service_role USING (true);

CREATE POLICY provider_keys_admin ON ai.provider_keys FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
-- a member's run opens the key (the API decrypts it; the ciphertext never leaves the API)
CREATE POLICY provider_keys_runner ON ai.provider_keys FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'));

-- npm run secrets:rotate re-seals the keys on the privileged path secrets.rotate (service_role)
CREATE POLICY provider_keys_rotation ON ai.provider_keys FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY agents_read ON ai.agents FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY agents_insert ON ai.agents FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY agents_update ON ai.agents FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY agents_delete ON ai.agents FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));

CREATE POLICY runs_read ON ai.runs FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY runs_insert ON ai.runs FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'));
CREATE POLICY runs_update ON ai.runs FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY run_steps_read ON ai.run_steps FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY run_steps_insert ON ai.run_steps FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'));

CREATE POLICY budgets_read ON ai.budgets FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY budgets_write ON ai.budgets FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY budget_usage_read ON ai.budget_usage FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY budget_usage_write ON ai.budget_usage FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'));
CREATE POLICY budget_reservations_read ON ai.budget_reservations FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY budget_reservations_write ON ai.budget_reservations FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'viewer', 'service'));

-- ---------------------------------------------------------------- grants (Supabase's defaults revoked first)
REVOKE ALL ON ai.models, ai.model_prices, ai.provider_keys, ai.agents, ai.runs, ai.run_steps, ai.budgets, ai.budget_usage,
  ai.budget_reservations FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON FUNCTION ai.reserve_budget(uuid, uuid, numeric, bigint, timestamptz, timestamptz), ai.settle_budget(uuid, numeric, bigint, uuid, timestamptz),
  ai.guard_finished_run() FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON ai.models, ai.model_prices TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ai.provider_keys, ai.agents, ai.budgets TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE ON ai.runs TO authenticated, service_role;
GRANT SELECT, INSERT ON ai.run_steps TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ai.budget_usage, ai.budget_reservations TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.reserve_budget(uuid, uuid, numeric, bigint, timestamptz, timestamptz), ai.settle_budget(uuid, numeric, bigint, uuid, timestamptz)
  TO authenticated, service_role;

-- ---------------------------------------------------------------- semantic.v_agent_metrics
-- per agent and UTC day: runs, outcomes, failures by error class, tokens by type, cost, latency percentiles
CREATE VIEW semantic.v_agent_metrics WITH (security_invoker = true) AS
SELECT r.org_id, r.agent_id, a.name AS agent_name, (r.started_at AT TIME ZONE 'UTC')::date AS day,
  count(*) AS runs,
  count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
  count(*) FILTER (WHERE r.status = 'failed') AS failed,
  count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
  count(*) FILTER (WHERE r.error_class = 'provider_rate_limited') AS failed_provider_rate_limited,
  count(*) FILTER (WHERE r.error_class = 'provider_error') AS failed_provider_error,
  count(*) FILTER (WHERE r.error_class = 'timeout') AS failed_timeout,
  count(*) FILTER (WHERE r.error_class = 'tool_error') AS failed_tool_error,
  count(*) FILTER (WHERE r.error_class = 'budget_exceeded') AS failed_budget_exceeded,
  sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens,
  sum(r.cached_input_tokens) AS cached_input_tokens, sum(r.cache_write_tokens) AS cache_write_tokens,
  sum(r.cost) AS cost,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) AS p50_latency_ms,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) AS p95_latency_ms
FROM ai.runs r
JOIN ai.agents a ON a.org_id = r.org_id AND a.id = r.agent_id
WHERE r.org_id = public.auth_org_id()
GROUP BY r.org_id, r.agent_id, a.name, (r.started_at AT TIME ZONE 'UTC')::date;
REVOKE ALL ON semantic.v_agent_metrics FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON semantic.v_agent_metrics TO authenticated, service_role;
COMMENT ON VIEW semantic.v_agent_metrics IS 'AI agent runs per agent and UTC day: outcomes, failures by error class, tokens by type, cost (USD), latency percentiles';
COMMENT ON COLUMN semantic.v_agent_metrics.agent_id IS 'the agent';
COMMENT ON COLUMN semantic.v_agent_metrics.agent_name IS 'the agent''s name';
COMMENT ON COLUMN semantic.v_agent_metrics.day IS 'UTC day the runs started';
COMMENT ON COLUMN semantic.v_agent_metrics.runs IS 'runs started';
COMMENT ON COLUMN semantic.v_agent_metrics.succeeded IS 'runs that answered';
COMMENT ON COLUMN semantic.v_agent_metrics.failed IS 'runs that failed';
COMMENT ON COLUMN semantic.v_agent_metrics.cost IS 'cost in USD at the prices in effect when each step ran';
COMMENT ON COLUMN semantic.v_agent_metrics.p50_latency_ms IS 'median run latency (ms)';
COMMENT ON COLUMN semantic.v_agent_metrics.p95_latency_ms IS '95th percentile run latency (ms)';

-- the documented columns of v_gl_fact, for GET /semantic/views and the agents' prompts
COMMENT ON VIEW semantic.v_gl_fact IS 'General ledger lines with their entry, account and fiscal period: one row per posted journal line';
COMMENT ON COLUMN semantic.v_gl_fact.entry_date IS 'date of the journal entry';
COMMENT ON COLUMN semantic.v_gl_fact.account_code IS 'account code in the chart of accounts';
COMMENT ON COLUMN semantic.v_gl_fact.account_name IS 'account name';
COMMENT ON COLUMN semantic.v_gl_fact.account_type IS 'asset, liability, equity, revenue or expense';
COMMENT ON COLUMN semantic.v_gl_fact.currency IS 'transaction currency of the line';
COMMENT ON COLUMN semantic.v_gl_fact.amount IS 'debit minus credit in the transaction currency';
COMMENT ON COLUMN semantic.v_gl_fact.base_amount IS 'debit minus credit in the base currency';
COMMENT ON COLUMN semantic.v_gl_fact.memo IS 'memo of the entry';
COMMENT ON COLUMN semantic.v_gl_fact.source IS 'manual, invoice, bill, payment, system or year_end';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261222000100_ai_agents', '98830e1eff0fc9750b7ec78a2512c83109d2fb4a1a8068300aacc82ad5bbe00a', 0)
  ON CONFLICT (name) DO NOTHING;
