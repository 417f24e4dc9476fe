-- Generated from prisma/migrations/20261226000100_notifications/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Notifications (issue 18): e-mail and in-app notices people control, and the account e-mails that need a mailer
-- (password reset, e-mail change, invitation links).
--
--  * core.notification_routes: which domain events notify whom (roles of the event's organization, or the person
--    a payload field names) under which category, with the notice's title and body templates. Data, not code.
--  * core.notifications: the in-app inbox, one row per recipient; a user reads and marks only their own rows
--    (user_id = auth_user_id()), from whichever organization they came. The unread count is derived from it.
--  * core.notification_preferences: per user, category and channel; security notices cannot be switched off.
--  * core.email_deliveries: one row per e-mail (queued, sending, sent, failed with the SMTP answer, not_sent
--    without SMTP_URL, digest_pending / digested for digests). Never holds a token: links with tokens are
--    minted by the sending job, which stores only the token's hash.
--  * core.email_digests: at most one digest per (user, category, hour); the unique key makes "exactly one
--    digest for 100 events in the same second" a property of the database.
--  * core.notification_event_receipts: each domain event is routed once (the subscriber is idempotent).
--  * core.known_devices: a user's (user agent, IPv4 /24 or IPv6 /48) hashes seen at sign-in; a new one is
--    a "sign-in from an unknown device" security notice.
--  * core.password_reset_tokens, core.email_change_requests: single-use, hashed, expiring.
--  * core.invitations.mailed_token_hash: the invitee's mailed link carries its own token (minted at send
--    time); core.accept_invitation accepts it as well as the one shown to the inviting admin.
--  * An account whose e-mail is not verified may not accept an invitation with the admin's token: the invitation
--    is for a mailbox, and nothing proved the account holds it. The mailed link proves it (and so verifies the
--    account's password identity of that e-mail).

CREATE TABLE core.notification_routes (
  event_type text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  -- roles: the members of the event's organization holding one of `roles`; person: the user whose id is in
  -- the payload field `payload_field` (a string or an array of strings); payload_roles: the members holding one
  -- of the roles the payload field lists (e.g. a bill's approver roles)
  recipients text NOT NULL CHECK (recipients IN ('roles', 'person', 'payload_roles')),
  roles text[] NOT NULL DEFAULT '{}' CHECK (roles <@ ARRAY['owner', 'admin', 'accountant', 'member', 'viewer']),
  payload_field text CHECK (payload_field ~ '^[A-Za-z][A-Za-z0-9]*$'),
  category text NOT NULL CHECK (category IN ('security', 'billing', 'finance', 'ai', 'organization')),
  -- Handlebars templates over the event payload (plus orgName)
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  body text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
  PRIMARY KEY (event_type, recipients),
  CHECK ((recipients = 'roles') = (cardinality(roles) > 0)),
  CHECK ((recipients <> 'roles') = (payload_field IS NOT NULL))
);

INSERT INTO core.notification_routes (event_type, recipients, roles, payload_field, category, title, body) VALUES
  ('member.invited', 'roles', '{owner,admin}', NULL, 'organization', '{{email}} was invited to {{orgName}}', '{{email}} was invited as {{role}}.'),
  ('member.joined', 'roles', '{owner,admin}', NULL, 'organization', 'A new member joined {{orgName}}', '{{email}} joined as {{role}}.'),
  ('member.role_changed', 'person', '{}', 'userId', 'organization', 'Your role in {{orgName}} changed', 'Your role changed from {{previousRole}} to {{role}}.'),
  ('member.removed', 'person', '{}', 'userId', 'organization', 'You no longer belong to {{orgName}}', 'Your membership ({{role}}) was removed.'),
  ('session.started_from_unknown_device', 'person', '{}', 'userId', 'security', 'New sign-in from an unknown device',
   'Someone signed in to your account from {{userAgent}} ({{ipPrefix}}) at {{signedInAt}}. If this was not you, change your password and end your other sessions.'),
  ('subscription.trial_ending', 'roles', '{owner}', NULL, 'billing', 'The {{app}} trial of {{orgName}} ends soon', 'The trial ends at {{trialEndsAt}}. Choose a plan to keep writing.'),
  ('payment.failed', 'roles', '{owner}', NULL, 'billing', 'A payment for {{orgName}} failed', 'The payment for the {{app}} {{plan}} plan failed; the subscription is {{status}}. Update the payment method.'),
  ('subscription.canceled', 'roles', '{owner}', NULL, 'billing', 'The {{app}} subscription of {{orgName}} ended', 'The {{plan}} plan is canceled; the organization is read-only in {{app}}.'),
  -- payables (issue 15): the approvers are the members of the roles the approval rule names (approverRoles)
  ('bill.submitted', 'payload_roles', '{}', 'approverRoles', 'finance', 'A bill awaits approval in {{orgName}}',
   'A bill of {{total}} {{currency}} awaits approval ({{approvalsRequired}} approval(s) needed).'),
  ('expense_claim.submitted', 'payload_roles', '{}', 'approverRoles', 'finance', 'An expense claim awaits approval in {{orgName}}',
   'An expense claim of {{total}} {{currency}} awaits approval ({{approvalsRequired}} approval(s) needed).'),
  ('invoice.overdue', 'roles', '{owner,admin,accountant}', NULL, 'finance', 'An invoice of {{orgName}} is overdue', 'Invoice {{number}} to {{customerName}} ({{amountDue}} {{currency}}) was due on {{dueDate}}.'),
  ('ai.budget.threshold_reached', 'roles', '{owner,admin}', NULL, 'ai', 'AI budget of {{orgName}} at {{thresholdPercent}}%', 'The AI spend reached {{thresholdPercent}}% of the budget.'),
  ('webhook_endpoint.disabled', 'roles', '{owner,admin}', NULL, 'organization', 'A webhook endpoint of {{orgName}} was disabled', 'The endpoint {{url}} was disabled: {{reason}}.');

CREATE TABLE core.notifications (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  -- the domain event (outbox id) it came from
  event_id bigint NOT NULL,
  event_type text NOT NULL,
  category text NOT NULL CHECK (category IN ('security', 'billing', 'finance', 'ai', 'organization')),
  title text NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  read_at timestamptz,
  archived_at timestamptz,
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, event_id, user_id)
);
CREATE INDEX notifications_inbox_idx ON core.notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON core.notifications (user_id, category) WHERE read_at IS NULL AND archived_at IS NULL;

CREATE TABLE core.notification_preferences (
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  category text NOT NULL CHECK (category IN ('security', 'billing', 'finance', 'ai', 'organization')),
  channel text NOT NULL CHECK (channel IN ('email', 'in_app')),
  enabled boolean NOT NULL,
  digest boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, category, channel),
  CONSTRAINT notification_preferences_security_on CHECK (category <> 'security' OR enabled),
  CONSTRAINT notification_preferences_digest_email CHECK (channel = 'email' OR NOT digest)
);

CREATE TABLE core.email_digests (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  category text NOT NULL CHECK (category IN ('security', 'billing', 'finance', 'ai', 'organization')),
  window_start timestamptz NOT NULL,
  due_at timestamptz NOT NULL,
  sent_at timestamptz,
  UNIQUE (user_id, category, window_start)
);
CREATE INDEX email_digests_due_idx ON core.email_digests (due_at) WHERE sent_at IS NULL;

CREATE TABLE core.email_deliveries (
  -- the organization the mail is about (a person's personal organization for account e-mails)
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id text REFERENCES core."User"(id) ON DELETE SET NULL,
  to_address text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 320),
  template text NOT NULL,
  category text NOT NULL CHECK (category IN ('security', 'billing', 'finance', 'ai', 'organization')),
  -- what the template renders; never a token
  data jsonb NOT NULL DEFAULT '{}'::jsonb,
  event_id bigint,
  status text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'not_sent', 'digest_pending', 'digested')),
  digest_id uuid REFERENCES core.email_digests(id) ON DELETE SET NULL,
  attempts int NOT NULL DEFAULT 0,
  smtp_response text,
  message_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX email_deliveries_event_idx ON core.email_deliveries (org_id, event_id, user_id) WHERE event_id IS NOT NULL;
CREATE INDEX email_deliveries_digest_idx ON core.email_deliveries (user_id, category) WHERE status = 'digest_pending';

CREATE TABLE core.notification_event_receipts (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  event_id bigint NOT NULL,
  event_type text NOT NULL,
  routed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, event_id)
);

CREATE TABLE core.known_devices (
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  -- SHA-256 of user agent + "|" + the address's /24 (IPv4) or /48 (IPv6)
  device_hash text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, device_hash)
);

CREATE TABLE core.password_reset_tokens (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_reset_tokens_user_idx ON core.password_reset_tokens (user_id);

CREATE TABLE core.email_change_requests (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  old_email text NOT NULL,
  new_email text NOT NULL CHECK (length(new_email) BETWEEN 3 AND 320),
  -- set by the mail job when it mints the link's token
  token_hash text UNIQUE,
  expires_at timestamptz NOT NULL,
  confirmed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_change_requests_user_idx ON core.email_change_requests (user_id);

ALTER TABLE core.notification_routes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.notifications ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.notification_preferences ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.email_digests ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.email_deliveries ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.notification_event_receipts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.known_devices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.password_reset_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.email_change_requests ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- a user reads and marks their own notices, whichever organization they came from; the delivery job writes them
CREATE POLICY notifications_own_select ON core.notifications FOR SELECT TO authenticated USING (user_id = public.auth_user_id());
CREATE POLICY notifications_own_update ON core.notifications FOR UPDATE TO authenticated
  USING (user_id = public.auth_user_id()) WITH CHECK (user_id = public.auth_user_id());
CREATE POLICY notifications_service ON core.notifications FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY notification_preferences_own ON core.notification_preferences FOR ALL TO authenticated
  USING (user_id = public.auth_user_id()) WITH CHECK (user_id = public.auth_user_id());
CREATE POLICY notification_preferences_service ON core.notification_preferences FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY notification_routes_service ON core.notification_routes FOR SELECT TO service_role USING (true);
CREATE POLICY email_digests_service ON core.email_digests FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY email_deliveries_service ON core.email_deliveries FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY notification_event_receipts_service ON core.notification_event_receipts FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY known_devices_service ON core.known_devices FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY password_reset_tokens_service ON core.password_reset_tokens FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY email_change_requests_service ON core.email_change_requests FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON core.notification_routes, core.notifications, core.notification_preferences, core.email_digests, core.email_deliveries,
  core.notification_event_receipts, core.known_devices, core.password_reset_tokens, core.email_change_requests
  FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON core.notifications TO authenticated;
-- a user only marks: read and archived, nothing else
GRANT UPDATE (read_at, archived_at) ON core.notifications TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.notification_preferences TO authenticated;
GRANT SELECT ON core.notification_routes TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.notifications, core.notification_preferences, core.email_digests, core.email_deliveries,
  core.notification_event_receipts, core.known_devices, core.password_reset_tokens, core.email_change_requests TO service_role;

-- ---------------------------------------------------------------- invitations: the mailed link's own token
ALTER TABLE core.invitations ADD COLUMN mailed_token_hash text;
CREATE UNIQUE INDEX invitations_mailed_token_idx ON core.invitations (org_id, mailed_token_hash) WHERE mailed_token_hash IS NOT NULL;

CREATE OR REPLACE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text)
RETURNS core.memberships
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  inv core.invitations;
  member core.memberships;
  caller_email text;
BEGIN
  IF uid IS NULL THEN RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501'; END IF;
  SELECT * INTO inv FROM core.invitations i
  WHERE i.org_id = p_org AND (i.token_hash = p_token_hash OR i.mailed_token_hash = p_token_hash) FOR UPDATE;
  IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL) OR inv.revoked_at IS NOT NULL OR inv.accepted_at IS NOT NULL OR inv.expires_at <= now() THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  SELECT u.email INTO caller_email FROM core."User" u WHERE u.id = uid;
  IF lower(caller_email) IS DISTINCT FROM lower(inv.email) THEN
    RAISE EXCEPTION 'invitation was sent to another email address' USING ERRCODE = '42501';
  END IF;
  IF inv.mailed_token_hash IS NOT DISTINCT FROM p_token_hash THEN
    UPDATE core.user_identities SET email_verified_at = coalesce(email_verified_at, now())
    WHERE user_id = uid AND provider = 'password' AND lower(email) = lower(caller_email);
  ELSIF NOT EXISTS (SELECT 1 FROM core.user_identities ui
                    WHERE ui.user_id = uid AND lower(ui.email) = lower(caller_email) AND ui.email_verified_at IS NOT NULL) THEN
    RAISE EXCEPTION 'verify your e-mail address first (or accept with the link mailed to it)' USING HINT = 'invitation.email_unverified';
  END IF;
  UPDATE core.invitations SET accepted_at = now(), accepted_by = uid WHERE org_id = inv.org_id AND id = inv.id;
  INSERT INTO core.memberships (org_id, user_id, role) VALUES (inv.org_id, uid, inv.role)
  ON CONFLICT ON CONSTRAINT memberships_pkey DO NOTHING
  RETURNING * INTO member;
  IF member IS NULL THEN
    RAISE EXCEPTION 'already a member of this organization' USING ERRCODE = '23505';
  END IF;
  RETURN member;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261226000100_notifications', '4675a766a1e08cea512026ab1ecb63939ec42c4b899f57f5c16f624384e3fded', 0)
  ON CONFLICT (name) DO NOTHING;
