-- When an outbox row first became due: set by its first claim (NULL while it was never claimed, when available_at still
-- says it). Every claim and every failure moves available_at forward, so the lag measured from available_at stayed near
-- 0 for a job that fails for ever and OmniZenOutboxLag could not fire; omnizen_outbox_lag_seconds is now measured from
-- coalesce(first_due_at, available_at). Rows already claimed keep NULL until their next claim (then set to the
-- available_at of that claim): no row is rewritten here.
-- Needs no superuser; no table is created (core.outbox keeps its RLS and grants: they are table-wide and cover the new column).
ALTER TABLE core.outbox ADD COLUMN first_due_at timestamptz;
COMMENT ON COLUMN core.outbox.first_due_at IS 'when the row first became due (set by its first claim; NULL while never claimed): the outbox lag is measured from it';
