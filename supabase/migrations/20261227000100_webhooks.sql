-- Generated from prisma/migrations/20261227000100_webhooks/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Outbound webhooks (issue 18): endpoints per organization, one message per (event, endpoint), every delivery
-- attempt logged, and the plan feature `webhooks` (professional and up).
--
--  * Endpoints are managed by owners and admins (and services); the signing secret is sealed with the secret box
--    (AES-256-GCM, bound to the endpoint), never a hash: it must sign. During a rotation's overlap the previous
--    secret signs too, until previous_secret_expires_at.
--  * Messages are the delivery state: written by the fan-out (privileged path webhooks.delivery) from the
--    domain events of the outbox, claimed by the delivery worker with FOR UPDATE SKIP LOCKED. A claim moves
--    next_attempt_at past the send timeout, so a message whose outcome was never recorded (the process died
--    mid-send) is due again: at least once. UNIQUE (org_id, endpoint_id, event_id) makes the fan-out idempotent.
--  * Attempts are the delivery log (append-only for the API).

-- ---------------------------------------------------------------- plan feature
INSERT INTO hub.features (app_id, code, kind, unit, description) VALUES ('omnizen', 'webhooks', 'boolean', NULL, 'Outbound webhooks');
INSERT INTO hub.plan_features (app_id, plan_code, feature, enabled)
SELECT p.app_id, p.code, 'webhooks', p.code <> 'starter' FROM hub.plans p WHERE p.app_id = 'omnizen';

-- ---------------------------------------------------------------- tables
CREATE TABLE core.webhook_endpoints (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  url text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
  -- empty: every event type
  event_types text[] NOT NULL DEFAULT '{}' CHECK (cardinality(event_types) <= 100),
  enabled boolean NOT NULL DEFAULT true,
  -- why the delivery worker disabled it (410 Gone, or failing for 5 days); NULL when enabled or disabled by a person
  disabled_reason text CHECK (disabled_reason IN ('gone', 'failing')),
  disabled_at timestamptz,
  secret jsonb NOT NULL,
  previous_secret jsonb,
  previous_secret_expires_at timestamptz,
  -- the first failure since the last success: 5 days of failures disable the endpoint
  failing_since timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

CREATE TABLE core.webhook_messages (
  org_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  endpoint_id uuid NOT NULL,
  -- the domain event (outbox row id); NULL for a ping
  event_id bigint,
  event_type text NOT NULL,
  -- the exact JSON body delivered (the same on every attempt)
  body jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  -- attempts of the current round (a replay starts a new round; the attempts table keeps them all)
  attempts int NOT NULL DEFAULT 0,
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, endpoint_id, event_id),
  FOREIGN KEY (org_id, endpoint_id) REFERENCES core.webhook_endpoints (org_id, id) ON DELETE CASCADE,
  CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- the worker's claim: due pending messages of every organization
CREATE INDEX webhook_messages_due_idx ON core.webhook_messages (next_attempt_at) WHERE status = 'pending';
-- the delivery log: an endpoint's messages, newest first
CREATE INDEX webhook_messages_endpoint_idx ON core.webhook_messages (org_id, endpoint_id, created_at DESC, id);

CREATE TABLE core.webhook_attempts (
  org_id uuid NOT NULL,
  id bigint GENERATED ALWAYS AS IDENTITY,
  message_id uuid NOT NULL,
  endpoint_id uuid NOT NULL,
  attempted_at timestamptz NOT NULL,
  succeeded boolean NOT NULL,
  status_code int,
  latency_ms int NOT NULL CHECK (latency_ms >= 0),
  -- the first 1 KiB of the answer
  response_body text CHECK (length(response_body) <= 1024),
  error text,
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, message_id) REFERENCES core.webhook_messages (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_message_idx ON core.webhook_attempts (org_id, message_id, id);
CREATE INDEX webhook_attempts_endpoint_idx ON core.webhook_attempts (org_id, endpoint_id, id DESC);

-- ---------------------------------------------------------------- row level security
ALTER TABLE core.webhook_endpoints ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.webhook_messages ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.webhook_attempts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- owners, admins and services of the organization manage endpoints and read their log
CREATE POLICY webhook_endpoints_admin ON core.webhook_endpoints FOR ALL TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY webhook_endpoints_service ON core.webhook_endpoints FOR ALL TO service_role USING (true) WITH CHECK (true);
-- pings are inserted and replays update messages through the API; deliveries are the worker's
CREATE POLICY webhook_messages_select ON core.webhook_messages FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY webhook_messages_insert ON core.webhook_messages FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY webhook_messages_update ON core.webhook_messages FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY webhook_messages_service ON core.webhook_messages FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY webhook_attempts_select ON core.webhook_attempts FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY webhook_attempts_service ON core.webhook_attempts FOR ALL TO service_role USING (true) WITH CHECK (true);

-- ---------------------------------------------------------------- privileges
REVOKE ALL ON core.webhook_endpoints, core.webhook_messages, core.webhook_attempts FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.webhook_endpoints TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE ON core.webhook_messages TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.webhook_messages TO service_role;
GRANT SELECT ON core.webhook_attempts TO authenticated;
GRANT SELECT, INSERT, DELETE ON core.webhook_attempts TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261227000100_webhooks', 'e1c62c9c3df766ccd990c2a17301b75c80a767820f4e531f10250dc11742fd17', 0)
  ON CONFLICT (name) DO NOTHING;
