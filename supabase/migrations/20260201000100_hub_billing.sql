-- Generated from prisma/migrations/20260201000100_hub_billing/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Hub: apps, plans, plan features and limits (the catalog, as data), subscriptions (seed 000's
-- contract table, exactly), Stripe bookkeeping, billing events, and the per-(organization, app)
-- lock row that serializes counted-limit checks.
--
-- Naming: the three tables seed 000 names ("App", "Subscription", "BillingEvent") keep its
-- PascalCase table names and camelCase quoted columns, because other apps (SecureVault) read
-- them; our own tables are snake_case. Catalog rows can be edited with plain SQL (no deploy):
-- every read of entitlements goes to these tables, nothing is cached.

CREATE SCHEMA IF NOT EXISTS hub;
GRANT USAGE ON SCHEMA hub TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA hub GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO authenticated, service_role;

-- ---------------------------------------------------------------- catalog
CREATE TABLE hub."App" (
    id TEXT PRIMARY KEY,                -- the "appId" of hub."Subscription": 'app_securevault', 'omnizen'
    name TEXT NOT NULL,
    description TEXT,
    "defaultPlan" TEXT NOT NULL,        -- what a subscriber without a subscription row gets (a trial)
    "trialDays" INT NOT NULL DEFAULT 14 CHECK ("trialDays" >= 0),
    "createdAt" TIMESTAMP NOT NULL DEFAULT now()
);

-- audience: which subscriber can buy the plan (a person, an organization, or either).
CREATE TABLE hub.plans (
  app_id text NOT NULL REFERENCES hub."App"(id) ON DELETE CASCADE,
  code text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
  name text NOT NULL,
  audience text NOT NULL CHECK (audience IN ('personal', 'business', 'any')),
  -- upgrade order inside (app, audience): the plan that lifts a limit is the next one up
  rank int NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app_id, code)
);

-- kind 'limit': counted (limit_value on plan_features, NULL = unlimited); kind 'boolean': on/off.
CREATE TABLE hub.features (
  app_id text NOT NULL REFERENCES hub."App"(id) ON DELETE CASCADE,
  code text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
  kind text NOT NULL CHECK (kind IN ('boolean', 'limit')),
  unit text,
  description text NOT NULL,
  PRIMARY KEY (app_id, code)
);

CREATE TABLE hub.plan_features (
  app_id text NOT NULL,
  plan_code text NOT NULL,
  feature text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  limit_value bigint CHECK (limit_value >= 0),  -- NULL = unlimited (limit features only)
  PRIMARY KEY (app_id, plan_code, feature),
  FOREIGN KEY (app_id, plan_code) REFERENCES hub.plans (app_id, code) ON DELETE CASCADE,
  FOREIGN KEY (app_id, feature) REFERENCES hub.features (app_id, code) ON DELETE CASCADE
);

-- ---------------------------------------------------------------- subscriptions (seed 000, exactly)
CREATE TABLE hub."Subscription" (
    id TEXT PRIMARY KEY,
    "userId" TEXT REFERENCES core."User"(id),
    "appId" TEXT NOT NULL,         -- MUST BE 'app_securevault'
    "plan" TEXT NOT NULL,          -- See "Plan Identifiers" below
    "status" TEXT DEFAULT 'active', -- 'active', 'past_due', 'canceled'
    "organizationId" TEXT,         -- Null for personal plans
    "stripeSubscriptionId" TEXT,   -- Optional link to Stripe
    "createdAt" TIMESTAMP,
    "updatedAt" TIMESTAMP,
    UNIQUE("userId", "appId")      -- One active subscription per user per app
);
-- Organization subscriptions have "userId" NULL: one per (organization, app).
CREATE UNIQUE INDEX subscription_org_app_uq ON hub."Subscription" ("organizationId", "appId") WHERE "organizationId" IS NOT NULL;
CREATE UNIQUE INDEX subscription_stripe_uq ON hub."Subscription" ("stripeSubscriptionId") WHERE "stripeSubscriptionId" IS NOT NULL;

-- What Stripe tells us beyond the contract columns, one row per subscription (kept apart so the
-- contract table stays exactly seed 000's). user_id / organization_id repeat the subscription's
-- owner so the policies need no subquery. last_event_at orders Stripe events: older ones are ignored.
CREATE TABLE hub.subscription_billing (
  subscription_id text PRIMARY KEY REFERENCES hub."Subscription"(id) ON DELETE CASCADE,
  user_id text,
  organization_id text,
  stripe_customer_id text,
  stripe_price_id text,
  trial_ends_at timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  past_due_since timestamptz,
  last_event_at timestamptz,
  last_event_id text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_billing_org_idx ON hub.subscription_billing (organization_id) WHERE organization_id IS NOT NULL;
CREATE INDEX subscription_billing_user_idx ON hub.subscription_billing (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX subscription_billing_customer_idx ON hub.subscription_billing (stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;

-- ---------------------------------------------------------------- billing events (Stripe webhooks)
-- "stripeEventId" is unique: a retried delivery is stored once and processed once.
-- "orgId" is the organization the event concerns (a person's: their personal organization);
-- NULL when it could not be told (then the event is 'ignored' and only service_role sees it).
CREATE TABLE hub."BillingEvent" (
    id TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "stripeEventId" TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    "orgId" UUID REFERENCES core.organizations(id) ON DELETE CASCADE,
    "subscriptionId" TEXT,
    "stripeCreatedAt" TIMESTAMPTZ NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
    reason TEXT,
    "receivedAt" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "processedAt" TIMESTAMPTZ
);
CREATE INDEX billing_event_org_idx ON hub."BillingEvent" ("orgId", "receivedAt" DESC);

-- ---------------------------------------------------------------- counted-limit lock
-- One row per (organization, app), locked FOR UPDATE by every counted-limit check inside the
-- request transaction: concurrent requests of one organization count and write one at a time.
CREATE TABLE hub.limit_locks (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  app_id text NOT NULL REFERENCES hub."App"(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, app_id)
);

-- ---------------------------------------------------------------- functions
-- Seats of the request's organization: members plus pending invitations. SECURITY DEFINER because
-- invitations are visible to admins only, yet every member may read the organization's usage.
CREATE FUNCTION hub.seat_usage() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization in this request' USING ERRCODE = '42501';
  END IF;
  RETURN (SELECT count(*) FROM core.memberships m WHERE m.org_id = org)
       + (SELECT count(*) FROM core.invitations i
          WHERE i.org_id = org AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now());
END
$$;
REVOKE ALL ON FUNCTION hub.seat_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hub.seat_usage() TO authenticated, service_role;

-- A person's personal organization, for a service (service-role key) asking about that person,
-- or for the person themself.
CREATE FUNCTION hub.personal_org_id(p_user text) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF auth.role() IS DISTINCT FROM 'service_role' AND p_user IS DISTINCT FROM auth.uid()::text THEN
    RAISE EXCEPTION 'only a service or the person may look up a personal organization' USING ERRCODE = '42501';
  END IF;
  RETURN (SELECT o.id FROM core.organizations o
          WHERE o.owner_user_id = p_user AND o.account_type = 'personal' AND o.deleted_at IS NULL);
END
$$;
REVOKE ALL ON FUNCTION hub.personal_org_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hub.personal_org_id(text) TO authenticated, service_role;

-- ---------------------------------------------------------------- row level security
ALTER TABLE hub."App" ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub.plans ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub.features ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub.plan_features ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub."Subscription" ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub.subscription_billing ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub."BillingEvent" ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE hub.limit_locks ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- catalog: read by every signed-in caller; changed by the owner or service_role only
CREATE POLICY app_read ON hub."App" FOR SELECT TO authenticated USING (true);
CREATE POLICY app_service ON hub."App" FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY plan_read ON hub.plans FOR SELECT TO authenticated USING (true);
CREATE POLICY plan_service ON hub.plans FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY feature_read ON hub.features FOR SELECT TO authenticated USING (true);
CREATE POLICY feature_service ON hub.features FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY plan_feature_read ON hub.plan_features FOR SELECT TO authenticated USING (true);
CREATE POLICY plan_feature_service ON hub.plan_features FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE INSERT, UPDATE, DELETE ON hub."App", hub.plans, hub.features, hub.plan_features FROM authenticated;

-- subscriptions: a person reads their personal ones; members read their organization's; a
-- service-role key reads any (that is what apps use to ask about entitlements). Writes only
-- through the privileged billing paths (service_role) or the Hub's own provisioning SQL.
CREATE POLICY subscription_read ON hub."Subscription" FOR SELECT TO authenticated
  USING (("userId" = public.auth_user_id() AND "organizationId" IS NULL)
         OR "organizationId" = public.auth_org_id()::text
         OR auth.role() = 'service_role');
CREATE POLICY subscription_service ON hub."Subscription" FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE INSERT, UPDATE, DELETE ON hub."Subscription" FROM authenticated;

CREATE POLICY subscription_billing_read ON hub.subscription_billing FOR SELECT TO authenticated
  USING ((user_id = public.auth_user_id() AND organization_id IS NULL)
         OR organization_id = public.auth_org_id()::text
         OR auth.role() = 'service_role');
CREATE POLICY subscription_billing_service ON hub.subscription_billing FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE INSERT, UPDATE, DELETE ON hub.subscription_billing FROM authenticated;

-- billing events: the organization's admins (and a service acting for it) only
CREATE POLICY billing_event_read ON hub."BillingEvent" FOR SELECT TO authenticated
  USING ("orgId" = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY billing_event_service ON hub."BillingEvent" FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE INSERT, UPDATE, DELETE ON hub."BillingEvent" FROM authenticated;

-- limit locks: any caller acting in the organization may create and lock its row (no data in it)
CREATE POLICY limit_lock_member ON hub.limit_locks FOR ALL TO authenticated
  USING (org_id = public.auth_org_id()) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY limit_lock_service ON hub.limit_locks FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE DELETE ON hub.limit_locks FROM authenticated;

-- ---------------------------------------------------------------- catalog data
-- SecureVault's plan identifiers are seed 000's; OmniZen's follow seed 002. docs/plans.md shows
-- the same table. Edit these rows to change a plan: the next request sees it.
INSERT INTO hub."App" (id, name, description, "defaultPlan", "trialDays") VALUES
  ('app_securevault', 'SecureVault Docs', 'Secure document vault (seed 000)', 'trial', 14),
  ('omnizen', 'OmniZen', 'AI agents with accounting and ERP (seed 002)', 'starter', 14);

INSERT INTO hub.plans (app_id, code, name, audience, rank) VALUES
  ('app_securevault', 'trial', 'Trial', 'personal', 0),
  ('app_securevault', 'starter', 'Starter', 'personal', 1),
  ('app_securevault', 'growth', 'Growth', 'personal', 2),
  ('app_securevault', 'pro', 'Pro', 'personal', 3),
  ('app_securevault', 'business_starter', 'Business Starter', 'business', 11),
  ('app_securevault', 'business_growth', 'Business Growth', 'business', 12),
  ('app_securevault', 'business_pro', 'Business Pro', 'business', 13),
  ('app_securevault', 'enterprise', 'Enterprise', 'business', 14),
  ('omnizen', 'starter', 'Starter', 'any', 1),
  ('omnizen', 'professional', 'Professional', 'any', 2),
  ('omnizen', 'enterprise', 'Enterprise', 'any', 3),
  ('omnizen', 'custom', 'Custom', 'any', 4);

INSERT INTO hub.features (app_id, code, kind, unit, description) VALUES
  ('app_securevault', 'storage', 'limit', 'GB', 'Document storage'),
  ('app_securevault', 'processing_units', 'limit', 'units/month', 'OCR and AI processing units per month'),
  ('app_securevault', 'users', 'limit', 'users', 'People sharing the vault'),
  ('app_securevault', 'team_sharing', 'boolean', NULL, 'Shared team vaults'),
  ('app_securevault', 'sso', 'boolean', NULL, 'Single sign-on'),
  ('omnizen', 'users', 'limit', 'users', 'Members plus pending invitations'),
  ('omnizen', 'ai_agents', 'limit', 'agents', 'AI agents'),
  ('omnizen', 'workspaces', 'limit', 'workspaces', 'Workspaces'),
  ('omnizen', 'basic_invoicing', 'boolean', NULL, 'Basic invoicing'),
  ('omnizen', 'simple_accounting', 'boolean', NULL, 'Simple accounting'),
  ('omnizen', 'full_accounting', 'boolean', NULL, 'Full accounting'),
  ('omnizen', 'inventory_management', 'boolean', NULL, 'Inventory management'),
  ('omnizen', 'ai_automation', 'boolean', NULL, 'AI automation'),
  ('omnizen', 'multiple_workspaces', 'boolean', NULL, 'Multiple workspaces'),
  ('omnizen', 'custom_workflows', 'boolean', NULL, 'Custom workflows'),
  ('omnizen', 'api_access', 'boolean', NULL, 'API access'),
  ('omnizen', 'white_label', 'boolean', NULL, 'White-label options');

-- limits: (app, plan, feature, limit) — NULL = unlimited
INSERT INTO hub.plan_features (app_id, plan_code, feature, limit_value) VALUES
  ('app_securevault', 'trial', 'storage', 5), ('app_securevault', 'trial', 'processing_units', 50), ('app_securevault', 'trial', 'users', 1),
  ('app_securevault', 'starter', 'storage', 50), ('app_securevault', 'starter', 'processing_units', 300), ('app_securevault', 'starter', 'users', 1),
  ('app_securevault', 'growth', 'storage', 100), ('app_securevault', 'growth', 'processing_units', 700), ('app_securevault', 'growth', 'users', 1),
  ('app_securevault', 'pro', 'storage', 200), ('app_securevault', 'pro', 'processing_units', 1350), ('app_securevault', 'pro', 'users', 1),
  ('app_securevault', 'business_starter', 'storage', 500), ('app_securevault', 'business_starter', 'processing_units', 3000), ('app_securevault', 'business_starter', 'users', 10),
  ('app_securevault', 'business_growth', 'storage', 1000), ('app_securevault', 'business_growth', 'processing_units', 7500), ('app_securevault', 'business_growth', 'users', 25),
  ('app_securevault', 'business_pro', 'storage', 2000), ('app_securevault', 'business_pro', 'processing_units', 15000), ('app_securevault', 'business_pro', 'users', 100),
  ('app_securevault', 'enterprise', 'storage', NULL), ('app_securevault', 'enterprise', 'processing_units', NULL), ('app_securevault', 'enterprise', 'users', NULL),
  ('omnizen', 'starter', 'users', 5), ('omnizen', 'starter', 'ai_agents', 2), ('omnizen', 'starter', 'workspaces', 1),
  ('omnizen', 'professional', 'users', 25), ('omnizen', 'professional', 'ai_agents', 10), ('omnizen', 'professional', 'workspaces', 1),
  ('omnizen', 'enterprise', 'users', NULL), ('omnizen', 'enterprise', 'ai_agents', NULL), ('omnizen', 'enterprise', 'workspaces', NULL),
  ('omnizen', 'custom', 'users', NULL), ('omnizen', 'custom', 'ai_agents', NULL), ('omnizen', 'custom', 'workspaces', NULL);

-- on/off features: every plan gets a row for every boolean feature of its app
INSERT INTO hub.plan_features (app_id, plan_code, feature, enabled)
SELECT p.app_id, p.code, f.code, CASE
    WHEN p.app_id = 'app_securevault' AND f.code = 'team_sharing' THEN p.audience = 'business'
    WHEN p.app_id = 'app_securevault' AND f.code = 'sso' THEN p.code = 'enterprise'
    WHEN f.code IN ('basic_invoicing', 'simple_accounting') THEN true
    WHEN f.code IN ('full_accounting', 'inventory_management', 'ai_automation') THEN p.code <> 'starter'
    ELSE p.code IN ('enterprise', 'custom')  -- multiple_workspaces, custom_workflows, api_access, white_label
  END
FROM hub.plans p JOIN hub.features f ON f.app_id = p.app_id AND f.kind = 'boolean';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260201000100_hub_billing', 'c5b304aa241e9c5c2eb93463468e94ac53ec05c9af9d1b477793280ea32720c0', 0)
  ON CONFLICT (name) DO NOTHING;
