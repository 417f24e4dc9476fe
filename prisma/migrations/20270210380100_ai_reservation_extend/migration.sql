-- A retried LLM call could spend past its budget: its reservation covers one attempt's worst case, but its settlement
-- adds what the provider billed for the failed attempts before it (a stream broken off after part of the answer), and
-- the run retried without asking the budget again. Before each retry the run now adds to the call's reservation what the
-- failed attempts billed since it last reserved (RunsService.loop): the reservation then holds what is billed so far plus
-- the next attempt's worst case; a budget that cannot take it refuses the retry (the run fails, budget_exceeded, the
-- failed attempts settled at what they billed).
--
-- ai.extend_reservation adds p_cost / p_tokens to the reservations of call p_call, budget by budget in id order, as
-- ai.reserve_budget reserves (it locks each budget's usage row, releases its expired reservations, and takes the
-- amount only if it fits in the limit); a budget the call holds no reservation on (created since) gets one for the
-- period of p_now. Answers each budget as reserve_budget does; a refusal answers that budget with ok false and stops:
-- the caller rolls its transaction back (nothing stays reserved). The call keeps one reservation row per budget
-- (ai.settle_budget deletes it as before). SECURITY INVOKER: the caller's RLS applies, as for reserve_budget.
-- Needs no superuser; no table is created.
CREATE OR REPLACE FUNCTION ai.extend_reservation(p_agent uuid, p_call uuid, p_cost numeric, p_tokens bigint, p_now timestamptz, p_expires timestamptz)
RETURNS TABLE (budget_id uuid, ok boolean, cost_left numeric, tokens_left bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  per date;
  b ai.budgets;
  u ai.budget_usage;
  expired_cost numeric;
  expired_tokens bigint;
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  FOR b IN SELECT * FROM ai.budgets x WHERE x.org_id = org AND (x.agent_id IS NULL OR x.agent_id = p_agent) ORDER BY x.id LOOP
    -- the usage row of the reservation's period first (the reservation is read without a lock): reserve_budget's order
    SELECT x.period INTO per FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id;
    IF NOT FOUND THEN
      per := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;
      INSERT INTO ai.budget_usage (org_id, budget_id, period) VALUES (org, b.id, per) ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per FOR UPDATE;
    WITH gone AS (
      DELETE FROM ai.budget_reservations r
      WHERE r.org_id = org AND r.budget_id = b.id AND r.period = per AND r.expires_at <= p_now AND r.call_id <> p_call
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
    UPDATE ai.budget_reservations x SET cost = x.cost + p_cost, tokens = x.tokens + p_tokens, expires_at = greatest(x.expires_at, p_expires)
    WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id AND x.period = per;
    -- none held (the budget is newer than the call, or its reservation was settled meanwhile): one is taken
    IF NOT FOUND THEN
      INSERT INTO ai.budget_reservations (org_id, call_id, budget_id, period, cost, tokens, expires_at)
      VALUES (org, p_call, b.id, per, p_cost, p_tokens, p_expires);
    END IF;
    budget_id := b.id;
    ok := true;
    cost_left := CASE WHEN b.cost_limit IS NULL THEN NULL ELSE b.cost_limit - u.spent_cost - u.reserved_cost END;
    tokens_left := CASE WHEN b.token_limit IS NULL THEN NULL ELSE b.token_limit - u.spent_tokens - u.reserved_tokens END;
    RETURN NEXT;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ai.extend_reservation(uuid, uuid, numeric, bigint, timestamptz, timestamptz) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.extend_reservation(uuid, uuid, numeric, bigint, timestamptz, timestamptz) TO authenticated, service_role;
