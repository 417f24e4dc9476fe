-- Generated from prisma/migrations/20270211002400_analytics_partitions_serialized/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The monthly partition functions, serialized and idempotent (review: two instances' maintenance runs made the same
-- partition at once; the second failed `relation "analytics_events_pYYYYMM" already exists`, or `table ... does not
-- exist` when dropping, every month on a multi-instance deployment). Each takes one transaction-scoped advisory lock
-- on a fixed key first, then looks the partitions up with a statement of its own (a snapshot taken after the lock:
-- what the run it waited for committed is seen), and creates / drops with IF NOT EXISTS / IF EXISTS besides.
-- CREATE OR REPLACE keeps the owner (the migration role, the table's owner), SECURITY DEFINER and the grants
-- (EXECUTE to service_role only, 20261228000200).

CREATE OR REPLACE FUNCTION core.analytics_create_partitions(p_from date, p_months_ahead integer) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  m date := date_trunc('month', p_from)::date;
  part text;
BEGIN
  IF p_months_ahead < 0 OR p_months_ahead > 24 THEN
    RAISE EXCEPTION 'months ahead must be between 0 and 24' USING ERRCODE = '22023';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.analytics_events.partitions'));
  FOR i IN 0..p_months_ahead LOOP
    part := 'analytics_events_p' || pg_catalog.to_char(m, 'YYYYMM');
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'core' AND c.relname = part) THEN
      EXECUTE pg_catalog.format('CREATE TABLE IF NOT EXISTS core.%I PARTITION OF core.analytics_events FOR VALUES FROM (%L) TO (%L)',
        part, m::text || ' 00:00:00+00', (m + interval '1 month')::date::text || ' 00:00:00+00');
      EXECUTE pg_catalog.format('ALTER TABLE core.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', part);
      -- no grants: the partition is reached through the parent only (default privileges of schema core gave some)
      EXECUTE pg_catalog.format('REVOKE ALL ON core.%I FROM PUBLIC, anon, authenticated, service_role', part);
      EXECUTE pg_catalog.format('CREATE POLICY partition_service ON core.%I FOR ALL TO service_role USING (true) WITH CHECK (true)', part);
      RETURN NEXT part;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION core.analytics_drop_partitions(p_before date) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  part record;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.analytics_events.partitions'));
  FOR part IN
    SELECT c.relname FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE i.inhparent = 'core.analytics_events'::regclass AND n.nspname = 'core' AND c.relname ~ '^analytics_events_p[0-9]{6}$'
      AND (pg_catalog.to_date(substring(c.relname from 19 for 6), 'YYYYMM') + interval '1 month')::date <= p_before
    ORDER BY c.relname
  LOOP
    EXECUTE pg_catalog.format('DROP TABLE IF EXISTS core.%I', part.relname);
    RETURN NEXT part.relname;
  END LOOP;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211002400_analytics_partitions_serialized', '5d6b26c3f1f542e49494d8532bf2cecbed343c7776881da357f6b1bafe5e994f', 0)
  ON CONFLICT (name) DO NOTHING;
