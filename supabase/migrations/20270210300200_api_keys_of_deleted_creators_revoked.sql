-- Generated from prisma/migrations/20270210300200_api_keys_of_deleted_creators_revoked/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Keys left live by a creator deleted before 20270210260100 (review of it): core.api_keys.created_by references
-- core."User" ON DELETE SET NULL, and until that migration's trigger (users_revoke_api_keys) nothing revoked a deleted
-- user's keys, so they stayed live with created_by NULL, out of reach of every revocation by creator. created_by is NULL
-- for no other reason: the only way a key is made is POST /v1/orgs/{orgId}/api-keys by a signed-in owner or admin
-- (ApiKeysService: 403 api_keys.user_required for a key or a service), and the table's insert policy for the API role
-- (api_keys_create, 20261228000100) requires created_by = auth_user_id(); a key whose creator cannot be named has no
-- creator whose role it could end with (20270210160100). Each is revoked now, audited as the trigger audits a deleted
-- creator's key (api_key.revoked, the key as after, reason creator_deleted; principal 'system', actor the migration).
-- Needs no superuser; nothing to do on an empty database, nor when applied again.

WITH revoked AS (
  UPDATE core.api_keys k SET revoked_at = now()
  WHERE k.created_by IS NULL AND k.revoked_at IS NULL
  RETURNING k.*)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT r.org_id, 'migration:20270210300200', 'system', 'api_key.revoked', 'api_key', r.id::text, NULL,
  jsonb_build_object('id', r.id, 'orgId', r.org_id, 'name', r.name, 'prefix', r.prefix, 'scopes', to_jsonb(r.scopes),
    'createdBy', r.created_by,
    'createdAt', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'lastUsedAt', to_char(r.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'revokedAt', to_char(r.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'reason', 'creator_deleted')
FROM revoked r ORDER BY r.org_id, r.id;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210300200_api_keys_of_deleted_creators_revoked', '694f2bb6d23fe61fd15bf2321014cfaf0cc1f897e90fb3946ca99623e6cf4fc1', 0)
  ON CONFLICT (name) DO NOTHING;
