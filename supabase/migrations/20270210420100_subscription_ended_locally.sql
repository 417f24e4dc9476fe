-- Generated from prisma/migrations/20270210420100_subscription_ended_locally/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- BillingExpiryJob ends a Stripe subscription canceled at period end once the period has passed, without asking Stripe
-- (it calls no Stripe API): Stripe normally says so too (customer.subscription.deleted), but the customer may have
-- turned the cancellation off and Stripe renewed it, its event arriving late. `canceled` is final for a Stripe
-- subscription only when Stripe said so (stripe-webhook.service.ts `refusal`): ended_locally_at tells the job's local
-- end apart, so that a newer Stripe event (the renewal, its invoice.paid) still applies. The next Stripe event applied
-- to the row clears it (its status is Stripe's again). The table's grants and policies cover the new column.
ALTER TABLE hub.subscription_billing ADD COLUMN ended_locally_at timestamptz;

COMMENT ON COLUMN hub.subscription_billing.ended_locally_at IS
  'When BillingExpiryJob ended the subscription without Stripe saying so (canceled at period end, period passed); NULL when its status is Stripe''s (or the Hub''s own). A newer Stripe event overrides such an end.';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210420100_subscription_ended_locally', '10454af8198276aa3a8460c65f9887e94cd8da236b35f5ee41d128792bcba82e', 0)
  ON CONFLICT (name) DO NOTHING;
