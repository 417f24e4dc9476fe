-- Generated from prisma/migrations/20270210080100_ai_budget_settle_lock_order/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- ai.reserve_budget locks a budget's usage row, then deletes its expired reservations; ai.settle_budget deleted the
-- call's reservation, then updated the usage row: the opposite order. A swept call's reservation has always expired
-- (it expires when the run's lease ends), so the sweep's settlement, or a late call's, and another run reserving on the
-- same budget waited for each other (settle holding the reservation, reserve the usage row) and PostgreSQL aborted one
-- of them (40P01): a run failed for no reason of its own, or the sweep left the run running.
--
-- settle_budget now locks the usage row of the reservation's period before it deletes the reservation, budget by budget
-- in id order, as reserve_budget does: one order everywhere (the cascades from ai.budgets delete usage, then its
-- reservations, too). A reservation released between the read of its period and the lock (by a reservation on the same
-- budget and period) is spent on that period, without its release (done). What the function answers is unchanged.
-- CREATE OR REPLACE keeps the owner, the grants (EXECUTE to authenticated and service_role) and SECURITY INVOKER.
CREATE OR REPLACE FUNCTION ai.settle_budget(p_call uuid, p_cost numeric, p_tokens bigint, p_agent uuid, p_now timestamptz)
RETURNS TABLE (budget_id uuid, agent_id uuid, period date, threshold integer, spent_cost numeric, spent_tokens bigint, cost_limit numeric, token_limit bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  per date;
  b ai.budgets;
  r ai.budget_reservations;
  u ai.budget_usage;
  crossed integer[];
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  FOR b IN SELECT * FROM ai.budgets x WHERE x.org_id = org AND (x.agent_id IS NULL OR x.agent_id = p_agent) ORDER BY x.id LOOP
    -- the usage row first (the reservation is read without a lock), then the reservation: reserve_budget's order
    SELECT x.period INTO per FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id;
    IF NOT FOUND THEN
      per := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;
      INSERT INTO ai.budget_usage (org_id, budget_id, period) VALUES (org, b.id, per) ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM ai.budget_usage x WHERE x.org_id = org AND x.budget_id = b.id AND x.period = per FOR UPDATE;
    DELETE FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call AND x.budget_id = b.id AND x.period = per
    RETURNING x.* INTO r;
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

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210080100_ai_budget_settle_lock_order', '4fa39fac6249927b68d0cacaf6c914ba381257b0cb4281f309b75d15a902580f', 0)
  ON CONFLICT (name) DO NOTHING;
