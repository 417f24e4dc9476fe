-- Generated from prisma/migrations/20261228000200_analytics/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Usage analytics (issue 19): events partitioned by month, daily roll-ups per organization and event.
-- Partitions are created ahead and dropped after the retention by a scheduled job (AnalyticsPartitionJob) through
-- two SECURITY DEFINER functions owned by the migration role (the owner of the parent table, which is what
-- CREATE TABLE ... PARTITION OF and DROP TABLE need; no superuser). Each partition gets RLS enabled and forced, a
-- policy and no grants at all: rows are reached only through the parent, whose policies and grants apply.

CREATE TABLE core.analytics_events (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  occurred_at timestamptz NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.:-]{0,99}$'),
  properties jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(properties) = 'object'),
  -- the acting user (a user id of ours or of the calling app), or an anonymous id; active users count user_id
  user_id text CHECK (length(user_id) <= 200),
  anonymous_id text CHECK (length(anonymous_id) <= 200),
  source text NOT NULL CHECK (source IN ('client', 'server')),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, occurred_at, id)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX analytics_events_org_name_idx ON core.analytics_events (org_id, name, occurred_at);

-- One row per (organization, day in UTC, event): written by the roll-up job (AnalyticsRollupJob).
CREATE TABLE core.analytics_daily (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  day date NOT NULL,
  event text NOT NULL,
  events bigint NOT NULL CHECK (events >= 0),
  users bigint NOT NULL CHECK (users >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, day, event)
);

ALTER TABLE core.analytics_events ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.analytics_daily ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- anyone acting in the organization (a member, a service, a key with analytics:write) sends events; the modules'
-- own (server) events are recorded whatever the key's scopes; its owners and admins (and services) read them
CREATE POLICY analytics_events_insert ON core.analytics_events FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND (source = 'server' OR public.auth_has_scope('analytics:write')));
CREATE POLICY analytics_events_read ON core.analytics_events FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service') AND public.auth_has_scope('analytics:read'));
CREATE POLICY analytics_events_service ON core.analytics_events FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY analytics_daily_read ON core.analytics_daily FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service') AND public.auth_has_scope('analytics:read'));
CREATE POLICY analytics_daily_service ON core.analytics_daily FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON core.analytics_events, core.analytics_daily FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON core.analytics_events TO authenticated;
GRANT SELECT, INSERT, DELETE ON core.analytics_events TO service_role;
GRANT SELECT ON core.analytics_daily TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.analytics_daily TO service_role;

-- Creates the monthly partitions from the month of p_from through p_months_ahead months after it (idempotent).
-- Returns the names of the partitions it created.
CREATE FUNCTION core.analytics_create_partitions(p_from date, p_months_ahead integer) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  m date := date_trunc('month', p_from)::date;
  part text;
BEGIN
  IF p_months_ahead < 0 OR p_months_ahead > 24 THEN
    RAISE EXCEPTION 'months ahead must be between 0 and 24' USING ERRCODE = '22023';
  END IF;
  FOR i IN 0..p_months_ahead LOOP
    part := 'analytics_events_p' || to_char(m, 'YYYYMM');
    IF to_regclass('core.' || part) IS NULL THEN
      EXECUTE format('CREATE TABLE core.%I PARTITION OF core.analytics_events FOR VALUES FROM (%L) TO (%L)',
        part, m::text || ' 00:00:00+00', (m + interval '1 month')::date::text || ' 00:00:00+00');
      EXECUTE format('ALTER TABLE core.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', part);
      -- no grants: the partition is reached through the parent only (default privileges of schema core gave some)
      EXECUTE format('REVOKE ALL ON core.%I FROM PUBLIC, anon, authenticated, service_role', part);
      EXECUTE format('CREATE POLICY partition_service ON core.%I FOR ALL TO service_role USING (true) WITH CHECK (true)', part);
      RETURN NEXT part;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
END
$$;

-- Drops the monthly partitions that end on or before p_before (the retention cut-off). Returns their names.
CREATE FUNCTION core.analytics_drop_partitions(p_before date) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  part record;
BEGIN
  FOR part IN
    SELECT c.relname FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE i.inhparent = 'core.analytics_events'::regclass AND n.nspname = 'core' AND c.relname ~ '^analytics_events_p[0-9]{6}$'
      AND (to_date(substring(c.relname from 19 for 6), 'YYYYMM') + interval '1 month')::date <= p_before
    ORDER BY c.relname
  LOOP
    EXECUTE format('DROP TABLE core.%I', part.relname);
    RETURN NEXT part.relname;
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION core.analytics_create_partitions(date, integer), core.analytics_drop_partitions(date)
  FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.analytics_create_partitions(date, integer), core.analytics_drop_partitions(date) TO service_role;

-- the previous, current and next three months, so a fresh database takes events at once
SELECT core.analytics_create_partitions((now() - interval '1 month')::date, 4);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261228000200_analytics', '01e5c3bb48f74ea4ee0c571863c3fbbbce82cb7a0b52f491a3ea695ae72af592', 0)
  ON CONFLICT (name) DO NOTHING;
