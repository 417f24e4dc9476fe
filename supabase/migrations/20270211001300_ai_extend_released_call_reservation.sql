-- Generated from prisma/migrations/20270211001300_ai_extend_released_call_reservation/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- ai.extend_reservation (20270210380100) gave a budget the call held no reservation on one for the period of p_now. Meant
-- for a budget created since the call reserved, it did so too when the call held none at all any more: its reservations
-- had been released (settled at nothing) by a sweep that took its execution for dead (the run swept as worker_lost, or
-- cancelled and past its mark: RunsService.failLostRuns, releaseDeadCancelledCalls). An execution that outlived its mark
-- and retried the call then reserved what the failed attempts billed again, with the call's expiry (passed), on a run no
-- sweep would look at again: should the execution die before the call's end settled it, that reservation stayed held
-- until another call on the same budget and month released it as expired.
--
-- A call that holds no reservation on any budget now extends nothing: the function answers no row, as for an agent no
-- budget applies to. RunsService does not ask for such a call: before a retry it locks the run and makes no retry once the
-- run is no longer running (swept, cancelled: a retry would be charged against no reservation, past a limit that later
-- calls reserved up to); the sweeps lock the run before they release. What the attempts billed is charged when the call
-- ends (ai.settle_budget spends it without a reservation, as for any swept call that ends late). Checked before the loop, and
-- again once each budget's usage row is locked: a release committed while this waited for the lock (settle_budget locks
-- the same rows in the same order) is seen then, before anything is reserved. A budget created since the call reserved,
-- on a call that still holds the others, still gets one (unchanged), as does everything else.
-- CREATE OR REPLACE keeps the owner, SECURITY INVOKER and the grants (EXECUTE to authenticated and service_role), stated
-- again below. Needs no superuser; no table is created.
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
  -- none held: released (settled) by a sweep, or no budget applied when the call reserved: nothing to extend
  IF NOT EXISTS (SELECT 1 FROM ai.budget_reservations x WHERE x.org_id = org AND x.call_id = p_call) THEN
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
    -- none held on this budget (newer than the call's reservations, which the call still holds on the others): one is taken
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

-- The sweep's rows (RunsService.emitOwedCancelEvents: agentsRepository.dueCancelledCalls, takeDueCancelEvents) are the
-- cancelled runs whose event is still owed: call_in_flight_until later than finished_at. runs_cancel_event_owed_idx
-- (20270206002200) held every cancelled run with a mark, a stale one (not later than its finish: a cancel after the mark
-- had passed) included, and those never leave it: each sweep read them all, index and table rows, to filter them out
-- (a scratch database of 200k runs with 20k stale marks: 20,003 rows removed by the filter, 598 buffers, 12.9 ms warm;
-- 54 ms cold in last session's review). The index now holds only what the sweep's statements ask for (their condition, as written there, implies
-- its predicate): 16 kB instead of 456 kB there, 8 buffers, 0.16 ms. No other statement reads it (the others find their
-- runs by key). Not CONCURRENTLY: refused inside the migration's transaction; the table belongs to the migration role.
-- The old one dropped first: DROP INDEX takes ACCESS EXCLUSIVE on ai.runs to COMMIT, so every statement on the table
-- waits for the build (240 ms warm at 220k runs, 344 MB; more cold). Built first (SHARE), an agent transaction that
-- locked a run meanwhile (FOR UPDATE is let through) and then writes it would wait for the migration while the DROP
-- waits for it: a deadlock (review rH, reproduced), one of them aborted.
DROP INDEX ai.runs_cancel_event_owed_idx;
CREATE INDEX runs_cancel_event_owed_idx ON ai.runs (call_in_flight_until) WHERE status = 'cancelled' AND call_in_flight_until > finished_at;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211001300_ai_extend_released_call_reservation', '21cf0f213f6537ab0084ab645d524d0b8d7dd238e0017541d19d912ad690bdbd', 0)
  ON CONFLICT (name) DO NOTHING;
