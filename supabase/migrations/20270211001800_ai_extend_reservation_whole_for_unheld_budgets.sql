-- Generated from prisma/migrations/20270211001800_ai_extend_reservation_whole_for_unheld_budgets/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Before a retry, every budget that applies to the call must hold what the call may cost: what its attempts billed so
-- far plus the retry's worst case. ai.extend_reservation (20270211001300) added only what the failed attempts billed
-- since the call last reserved, to every budget, a budget the call held no reservation on (created while the call was in
-- flight) included, and RunsService did not ask it when they billed nothing (a 500). A call holding a reservation on a
-- budget of the whole organization (1,000,000 tokens), retried after a budget of 1,000 tokens for its agent was created
-- during its back-off, spent 3,510 tokens of those 1,000 (review of 74f2ceb). A call whose only budget was deleted during
-- the back-off held nothing any more: the function extended nothing and the new budget was not asked either (same).
--
-- ai.extend_reservation(p_agent, p_call, p_cost, p_tokens, p_whole_cost, p_whole_tokens, p_now, p_expires) adds, budget
-- by budget in id order as before, p_cost / p_tokens (billed since the call last reserved) to a reservation the call
-- holds, and reserves p_whole_cost / p_whole_tokens (billed so far plus the retry's worst case) on a budget it holds
-- none on, for the period of p_now. A held reservation with nothing to add (p_cost and p_tokens 0) is left as it is,
-- its usage row not locked: RunsService asks before every retry, and a call whose budgets all hold its reservation
-- costs one lookup per budget. Each budget answers as before, with what was asked of it (asked_cost, asked_tokens: the
-- 402 states them). A call holding no reservation on any budget still extends nothing (no row: released by a sweep, or
-- no budget applied when it reserved, or its budgets were deleted since); RunsService then reserves the whole amount with
-- ai.reserve_budget, the run locked and running (a swept call is not retried). Refusals, locks and their order, the
-- release of expired reservations and the checks under each lock are those of 20270211001300.
--
-- Rolling deploy: the six-argument function (20270211001300) is kept, unchanged, for the instances of the previous
-- release. TODO(remove after one release): once no instance of the release before this one runs:
--   DROP FUNCTION ai.extend_reservation(uuid, uuid, numeric, bigint, timestamptz, timestamptz);
-- SECURITY INVOKER (the caller's RLS applies), EXECUTE to authenticated and service_role only, as the six-argument one.
-- Needs no superuser; no table is created.
CREATE FUNCTION ai.extend_reservation(p_agent uuid, p_call uuid, p_cost numeric, p_tokens bigint, p_whole_cost numeric, p_whole_tokens bigint,
  p_now timestamptz, p_expires timestamptz)
RETURNS TABLE (budget_id uuid, ok boolean, cost_left numeric, tokens_left bigint, asked_cost numeric, asked_tokens bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  per date;
  b ai.budgets;
  u ai.budget_usage;
  held boolean;
  expired_cost numeric;
  expired_tokens bigint;
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  -- none held: released (settled) by a sweep, no budget applied when the call reserved, or its budgets deleted since
  IF NOT EXISTS (SELECT 1 FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call) THEN
    RETURN;
  END IF;
  FOR b IN SELECT * FROM ai.budgets x WHERE x.org_id = org AND (x.agent_id IS NULL OR x.agent_id = p_agent) ORDER BY x.id LOOP
    -- the usage row of the reservation's period first (the reservation is read without a lock): reserve_budget's order
    SELECT x.period INTO per FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id;
    held := FOUND;
    budget_id := b.id;
    asked_cost := CASE WHEN held THEN p_cost ELSE p_whole_cost END;
    asked_tokens := CASE WHEN held THEN p_tokens ELSE p_whole_tokens END;
    IF held AND p_cost = 0 AND p_tokens = 0 THEN
      -- held, nothing to add: as it is (read without a lock)
      SELECT * INTO u FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per;
      ok := true;
      cost_left := CASE WHEN b.cost_limit IS NULL THEN NULL ELSE b.cost_limit - u.spent_cost - u.reserved_cost END;
      tokens_left := CASE WHEN b.token_limit IS NULL THEN NULL ELSE b.token_limit - u.spent_tokens - u.reserved_tokens END;
      RETURN NEXT;
      CONTINUE;
    END IF;
    IF NOT held THEN
      per := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;
      INSERT INTO ai.budget_usage (org_id, budget_id, period) VALUES (org, b.id, per) ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per FOR UPDATE;
    -- released while this waited for the lock: nothing reserved yet (a budget extended before this one would hold its row)
    IF NOT EXISTS (SELECT 1 FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call) THEN
      RETURN;
    END IF;
    WITH gone AS (
      DELETE FROM ai.budget_reservations r
      WHERE r.org_id = org AND r.budget_id = b.id AND r.period = per AND r.expires_at <= p_now AND r.call_id <> p_call
      RETURNING r.cost, r.tokens)
    SELECT coalesce(sum(g.cost), 0), coalesce(sum(g.tokens), 0) INTO expired_cost, expired_tokens FROM gone g;
    UPDATE ai.budget_usage x SET
      reserved_cost = x.reserved_cost - expired_cost + asked_cost,
      reserved_tokens = x.reserved_tokens - expired_tokens + asked_tokens
    WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per
      AND (b.cost_limit IS NULL OR x.spent_cost + x.reserved_cost - expired_cost + asked_cost <= b.cost_limit)
      AND (b.token_limit IS NULL OR x.spent_tokens + x.reserved_tokens - expired_tokens + asked_tokens <= b.token_limit)
    RETURNING x.* INTO u;
    IF NOT FOUND THEN
      SELECT * INTO u FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per;
      ok := false;
      cost_left := CASE WHEN b.cost_limit IS NULL THEN NULL ELSE greatest(b.cost_limit - u.spent_cost - u.reserved_cost + expired_cost, 0) END;
      tokens_left := CASE WHEN b.token_limit IS NULL THEN NULL ELSE greatest(b.token_limit - u.spent_tokens - u.reserved_tokens + expired_tokens, 0) END;
      RETURN NEXT;
      RETURN;
    END IF;
    UPDATE ai.budget_reservations x SET cost = x.cost + asked_cost, tokens = x.tokens + asked_tokens, expires_at = greatest(x.expires_at, p_expires)
    WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id AND x.period = per;
    -- none held on this budget (created since the call reserved, which it still holds on the others): the whole amount
    IF NOT FOUND THEN
      INSERT INTO ai.budget_reservations (org_id, call_id, budget_id, period, cost, tokens, expires_at)
      VALUES (org, p_call, b.id, per, asked_cost, asked_tokens, p_expires);
    END IF;
    ok := true;
    cost_left := CASE WHEN b.cost_limit IS NULL THEN NULL ELSE b.cost_limit - u.spent_cost - u.reserved_cost END;
    tokens_left := CASE WHEN b.token_limit IS NULL THEN NULL ELSE b.token_limit - u.spent_tokens - u.reserved_tokens END;
    RETURN NEXT;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ai.extend_reservation(uuid, uuid, numeric, bigint, numeric, bigint, timestamptz, timestamptz) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.extend_reservation(uuid, uuid, numeric, bigint, numeric, bigint, timestamptz, timestamptz) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211001800_ai_extend_reservation_whole_for_unheld_budgets', 'dfc68ac3a13a377217585d8f0719d8ab53b92eb6417807f9eb0545fd865e86ee', 0)
  ON CONFLICT (name) DO NOTHING;
