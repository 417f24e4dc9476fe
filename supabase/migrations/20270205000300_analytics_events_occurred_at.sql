-- Generated from prisma/migrations/20270205000300_analytics_events_occurred_at/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The daily roll-up (analyticsRepository.rollUp, one statement for every organization over the days to redo) selects
-- the events by an occurred_at range; the only index on the table leads on org_id, so every partition in the span was
-- read whole. An index on occurred_at serves that range (and the active-users gauge's 30 days, also across
-- organizations). Created on the partitioned parent: PostgreSQL builds it on each partition, and the partitions
-- core.analytics_create_partitions makes later get it too. The parent and its partitions belong to the migration role
-- (the partitions are made by its SECURITY DEFINER function), which is all CREATE INDEX needs: no superuser.
-- Not CONCURRENTLY: that is refused on a partitioned table and inside the migration's transaction.
CREATE INDEX analytics_events_occurred_at_idx ON core.analytics_events (occurred_at);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270205000300_analytics_events_occurred_at', 'c16b7508ae0ebc1e54e57b67377ef9d56a571ba28156cb813b97bc89c31f3f1a', 0)
  ON CONFLICT (name) DO NOTHING;
