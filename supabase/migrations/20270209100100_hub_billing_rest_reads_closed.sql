-- Generated from prisma/migrations/20270209100100_hub_billing_rest_reads_closed/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- What a member's token read of hub over Supabase's REST API (PostgREST: `authenticated` with the token's claims, never
-- through begin_request), table by table, after 20270209090100 closed hub.limit_locks:
--
-- * hub.subscription_billing (every member; a person their personal plans' rows): the Stripe customer id, price, trial
--   and period ends, past-due start. The API's bookkeeping of what Stripe adds (docs/plans.md), read by its own
--   routes (entitlements, checkout, portal) and kept out of the contract table so that apps see exactly seed 000: no
--   client reads it directly. Closed.
-- * hub."BillingEvent" (the organization's owners and admins): Stripe's raw event payloads (the customer's e-mail
--   address, name, address, invoice and card details), which GET /v1/orgs/:orgId/billing/events does not answer.
--   Closed.
-- * hub.rate_limit_overrides (every member): an operator's negotiated limit and its reason, read by the API's rate
--   limiter in its tenant transaction (hub.request_rate_limit runs as the caller). Closed.
-- * hub."Subscription" stays readable: seed 000's contract table, which apps read directly (ARCHITECTURE.md "Who calls
--   it"; docs/plans.md: "apps reading it see exactly seed 000"); its rows hold no customer data.
-- * The catalog (hub."App", plans, features, plan_features) stays readable by every signed-in caller, as designed.
--
-- RESTRICTIVE policies ANDed with each table's read policy (no subquery: Citus; inlined expressions). Where only
-- the API reads in transactions whose claims begin_request verified, as for hub.limit_locks: auth_claims_verified().
-- hub.subscription_billing is also read, with the entitlements, in API transactions whose claims it replaced to
-- enter another organization (DatabaseService.tenantResolving: a service key's GET /v1/billing/users/:userId/
-- entitlements; invitationRepository.readAsNewMember: an accepted invitation's seat and subscription checks), where
-- the read policy decides the membership again in full: there the API's runtime login (session_user, which a REST
-- caller's login is not) is what is required. Service-role keys (role service_role) and privileged paths are
-- untouched: the policies are TO authenticated.
CREATE POLICY rest_path_closed_select ON hub.subscription_billing AS RESTRICTIVE FOR SELECT TO authenticated
  USING (session_user = 'omnizen_api');
CREATE POLICY rest_path_closed_select ON hub."BillingEvent" AS RESTRICTIVE FOR SELECT TO authenticated
  USING (public.auth_claims_verified());
CREATE POLICY rest_path_closed_select ON hub.rate_limit_overrides AS RESTRICTIVE FOR SELECT TO authenticated
  USING (public.auth_claims_verified());

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209100100_hub_billing_rest_reads_closed', '5afef0242681d1afc32dc90c0f6d00382f57ecb286d19f650072dc7a964ed674', 0)
  ON CONFLICT (name) DO NOTHING;
