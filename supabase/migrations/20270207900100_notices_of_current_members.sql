-- Generated from prisma/migrations/20270207900100_notices_of_current_members/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Notices follow membership (h18), and webhook_endpoint.disabled names the endpoint's origin only.
--
-- 1. A removed member kept reading the organization's notices: the only policy on core.notifications was
--    user_id = auth_user_id() (20261226000100_notifications), so GET /v1/me/notifications (?orgId= too), its unread
--    count and read marks showed an admin who had been removed "... was invited to <the organization>" and every
--    notice after. A RESTRICTIVE policy, ANDed with the user's own, now leaves them the notices of organizations they
--    currently belong to, and the notices addressed to them in person (a 'person' route: their role changed, their
--    removal, a sign-in of theirs), which are about them and which they keep when they leave (the removal notice
--    reaches only someone who has just left).
--    Cost: core.member_org_ids() is a plain SQL function, inlined into the policy, its ARRAY(SELECT ...) an InitPlan
--    run once per statement (the user's memberships, under memberships' own policy: everyone sees their own), not a
--    membership lookup per row (like ai.readable_collections, 20270105000100). No subquery in the policy (Citus,
--    test/platform/citus.test.ts).
--    The hourly digest mails what it takes from email_deliveries the same way: a pending notice of an organization
--    the person has left is not sent (NotificationsService, flushDigests), unless it was addressed to them.
ALTER TABLE core.notifications ADD COLUMN to_person boolean NOT NULL DEFAULT false;
ALTER TABLE core.email_deliveries ADD COLUMN to_person boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN core.notifications.to_person IS 'Addressed to the recipient in person (a person route): kept after they leave the organization';
COMMENT ON COLUMN core.email_deliveries.to_person IS 'A notice addressed to the recipient in person (a person route): its digest sends it after they leave the organization';

UPDATE core.notifications n SET to_person = true
  WHERE n.event_type IN (SELECT r.event_type FROM core.notification_routes r WHERE r.recipients = 'person');
UPDATE core.email_deliveries d SET to_person = true
  WHERE d.template = 'notice' AND d.data ->> 'eventType' IN (SELECT r.event_type FROM core.notification_routes r WHERE r.recipients = 'person');

CREATE FUNCTION core.member_org_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT ARRAY(SELECT m.org_id FROM core.memberships m WHERE m.user_id = public.auth_user_id())
$$;
REVOKE ALL ON FUNCTION core.member_org_ids() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.member_org_ids() TO authenticated;

-- read and mark (FOR ALL: SELECT and UPDATE are what `authenticated` is granted)
CREATE POLICY notifications_current_member ON core.notifications AS RESTRICTIVE FOR ALL TO authenticated
  USING (to_person OR org_id = ANY (core.member_org_ids()))
  WITH CHECK (to_person OR org_id = ANY (core.member_org_ids()));

-- 2. webhook_endpoint.disabled (version 2) carries the endpoint's origin, not its URL: a URL's path and query can
--    hold a credential (Slack-style hooks), and the event reaches the organization's other endpoints and its admins'
--    notices and mail. The notice names the origin too.
UPDATE core.notification_routes SET body = 'The endpoint {{urlOrigin}} ({{endpointId}}) was disabled: {{reason}}.'
  WHERE event_type = 'webhook_endpoint.disabled';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270207900100_notices_of_current_members', '0103f04f6233e96f461e2e9c063479d61d362abb6955b883eea5449fd0b3cb57', 0)
  ON CONFLICT (name) DO NOTHING;
