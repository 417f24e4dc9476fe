-- Generated from prisma/migrations/20270210130100_webhook_endpoints_of_deleted_orgs/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A deleted organization's webhook endpoints stayed enabled: the worker went on sending its pending messages (retries
-- for up to ~28 hours), and its events after the deletion (its organization.deleted, the subscription.canceled of each
-- subscription canceled with it) were queued and sent, to endpoints nobody can see or manage any more. It now sends
-- nothing more: the worker claims no message of a deleted organization and fans none of its events out
-- (webhook.repository.ts), and on organization.deleted its enabled endpoints are disabled with the reason
-- organization_deleted, audited (WebhookDelivery.organizationDeleted). Their pending messages stay unsent, left to the
-- retention job as any disabled endpoint's.
--
-- The reason joins the check (the table is small: at most WEBHOOKS_MAX_ENDPOINTS rows per organization, scanned under
-- this statement's lock). Organizations deleted before this migration get the same: their enabled endpoints are
-- disabled now, each audited (principal 'system', as the worker's disabling). Needs no superuser: applied as the
-- owner of the tables (Supabase's postgres, BYPASSRLS); nothing to do on an empty database.
ALTER TABLE core.webhook_endpoints DROP CONSTRAINT webhook_endpoints_disabled_reason_check,
  ADD CONSTRAINT webhook_endpoints_disabled_reason_check CHECK (disabled_reason IN ('gone', 'failing', 'organization_deleted'));

WITH disabled AS (
  UPDATE core.webhook_endpoints e SET enabled = false, disabled_reason = 'organization_deleted', disabled_at = now(), updated_at = now()
  FROM core.organizations o
  WHERE o.id = e.org_id AND o.deleted_at IS NOT NULL AND e.enabled
  RETURNING e.org_id, e.id)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT d.org_id, 'migration:20270210130100', 'system', 'webhooks.endpoint_disabled', 'webhook_endpoint', d.id::text,
  jsonb_build_object('enabled', true), jsonb_build_object('enabled', false, 'reason', 'organization_deleted')
FROM disabled d ORDER BY d.org_id, d.id;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210130100_webhook_endpoints_of_deleted_orgs', 'eaebd0b776dec9bcaa329eed0bde543b8454e0232a98a18fc152ea4c2f93a40c', 0)
  ON CONFLICT (name) DO NOTHING;
