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
