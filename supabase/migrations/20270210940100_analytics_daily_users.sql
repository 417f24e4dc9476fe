-- Generated from prisma/migrations/20270210940100_analytics_daily_users/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Who was active each day: the omnizen_active_users gauge's source (a volume review's HIGH finding).
--
-- The gauge counted count(DISTINCT user_id) per organization over 30 days of raw core.analytics_events
-- (analyticsRepository.activeUsersByOrg): 47.5 s at 2.5 million events in 30 days (2,000 business and 20,000 personal
-- organizations), past the statement timeout, and it ran in the roll-up's transaction, so the failure rolled back
-- core.analytics_daily too: at that volume nothing was rolled up. Now, once the roll-up committed, the job writes, a
-- transaction per UTC day it rolled up (each under the roll-up lock, about 1 s), one row per organization and user id
-- active that day (only the rows that changed), and the gauge, in another, counts the distinct user ids of the last 30
-- days of these rows (1.7 s on the same data, measured with an index by day this migration no longer creates).
--
-- Written and read by the privileged job only (analytics.maintenance, service_role): no tenant grant. 31 days kept
-- (maintainPartitions, nightly: the days before today - 30 deleted, audited as analytics.retention_purged); the gauge
-- reads 30. A user id is personal data: the personal-data catalog deletes the person's rows at their erasure (the next roll-up of the day writes the pseudonym
-- their events then carry) and exports them. Filled from the next roll-ups on: the day window at once, the 30 days by the
-- nightly roll-up, which recomputes every day an event may still be dated in (the gauge's 30 days).
CREATE TABLE core.analytics_daily_users (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  day date NOT NULL,
  user_id text NOT NULL CHECK (length(user_id) <= 200),
  PRIMARY KEY (org_id, day, user_id)
);
-- no index by day: 31 days are kept, the gauge reads 30 of them (a scan of the table is its read) and the nightly
-- retention deletes one day
-- the erasure's delete of a person's rows (personal-data catalog: user_id, in any organization): without it a scan of
-- every row kept (2.5 s for a month of the volume above; 2.6 ms with it)
CREATE INDEX analytics_daily_users_user_idx ON core.analytics_daily_users (user_id);

ALTER TABLE core.analytics_daily_users ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_daily_users_service ON core.analytics_daily_users FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON core.analytics_daily_users FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, DELETE ON core.analytics_daily_users TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210940100_analytics_daily_users', 'd1b831d96521c814b2bc65445076336bd2cb82d06a9d90dbb121dafbb5d0483d', 0)
  ON CONFLICT (name) DO NOTHING;
