-- Generated from prisma/migrations/20270106000100_trial_notices/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Trials without Stripe get their `subscription.trial_ending` event from the billing side (Stripe sends
-- customer.subscription.trial_will_end for its own): a scheduled check emits it once per organization, app and
-- trial end, within the three days before it. One row per emitted notice: the primary key makes a second check
-- (another instance, the next tick) emit nothing, and a trial moved to a new end is a new trial.
-- subscription_id: the local subscription whose trial it is; NULL for the default trial of an organization
-- without a subscription (the app's default plan for "trialDays" from the organization's creation).
CREATE TABLE hub.trial_notices (
  org_id uuid NOT NULL REFERENCES core.organizations (id) ON DELETE CASCADE,
  app_id text NOT NULL,
  trial_ends_at timestamptz NOT NULL,
  subscription_id text,
  emitted_at timestamptz NOT NULL,
  PRIMARY KEY (org_id, app_id, trial_ends_at)
);

ALTER TABLE hub.trial_notices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- only the billing job (service_role, privileged path billing.expiry) reads and writes it
CREATE POLICY trial_notices_service ON hub.trial_notices FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON hub.trial_notices FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, DELETE ON hub.trial_notices TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270106000100_trial_notices', '83e0bfa1358b18e364a468da09003d8f499508066f5adb5b1456c533df1d2157', 0)
  ON CONFLICT (name) DO NOTHING;
