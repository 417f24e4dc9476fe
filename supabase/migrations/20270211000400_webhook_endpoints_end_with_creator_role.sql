-- Generated from prisma/migrations/20270211000400_webhook_endpoints_end_with_creator_role/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A webhook endpoint outlived the admin who set it up (review r2): an admin created an endpoint (every event type, to a
-- server of theirs) and got its signing secret, the owner removed the admin, and the endpoint stayed enabled,
-- unchanged, unaudited: the former admin went on receiving every domain event of the organization, signed. Only owners
-- and admins (and services) manage endpoints (policy webhook_endpoints_admin, WebhookEndpointsController), so, as an
-- API key (20270210160100) and a pending invitation (20270210560100), an endpoint now ends with the role of the person
-- answerable for it: when a membership stops being 'owner' or 'admin' (removed, left, demoted, ended by the person's
-- erasure), the enabled endpoints it configured in that organization are disabled in the same statement (enabled
-- false, disabled_reason configurer_removed, configurer_left, configurer_demoted or configurer_erased), each audited as
-- webhooks.endpoint_disabled (before {enabled: true}, after {enabled: false, reason, configuredBy}). A trigger on
-- core.memberships next to memberships_revoke_api_keys and memberships_revoke_invitations, so every path gets it (the
-- API, the erasure, an operator's SQL). A user row deleted (other apps of the database write core."User") sets
-- configured_by NULL (ON DELETE SET NULL) before the cascaded memberships' trigger runs: a BEFORE DELETE trigger on
-- core."User" disables the user's endpoints in every organization first (configurer_deleted). An owner made admin
-- keeps their endpoints. No domain event: the keys' and invitations' revocations emit none either (and the audit row is
-- the record).
--
-- configured_by: the person answerable for where the endpoint's events go and how they are signed: whoever created it,
-- or last changed its URL, enabled it (false -> true) or rotated its secret (review r3: with the creator fixed for
-- good, an admin re-pointed the owner's endpoint at their own host and rotated its secret, and kept receiving after
-- their removal; a colluding admin re-enabled a removed admin's endpoint and their own removal left it enabled). The
-- person: the signed-in user, or, for an API key, the key's creator (whose role the key itself ends with). Set by the
-- database on every insert by the API role (authenticated), and on every update by that role that sets the URL to
-- another, enables the endpoint or replaces its secret, whatever the statement says; never set to anything else by that
-- role (42501). Changing the description or the event types does not make the person answerable: the events still go
-- to the URL and secret someone answerable chose (widening the types sends more, not elsewhere; narrowing them or
-- disabling sends less). NULL when a service set it up (no person), when the person's user row was deleted, and for
-- endpoints set up before this migration whose audit log names no person (unknown: left alone, enabled as they were).
-- Setting it also locks the person's user row (FOR KEY SHARE, as the foreign key's check would, but first: an erasure
-- locks the user row FOR UPDATE, then their memberships) and then their membership (FOR SHARE), and requires the
-- membership to be owner or admin there (403 forbidden.role otherwise), as ApiKeysService.create does with
-- creatorRoleLocked: an endpoint created, re-pointed or enabled while the person's demotion or removal commits would
-- otherwise escape the membership trigger (it waits for the lock, then sees the endpoint).
--
-- Backfill: from the audit log: the last row that created the endpoint, changed its URL, enabled it or rotated its
-- secret (webhooks.endpoint_created, webhooks.endpoint_updated whose url changed or enabled went false -> true,
-- webhooks.secret_rotated): its actor when a user, the key's creator when an API key, kept only when that user row
-- exists (a service's: unknown). Endpoints whose backfilled configurer is already no longer owner or admin of the
-- organization are disabled now (configurer_no_longer_admin), each audited (principal 'system', actor the migration),
-- and each organization concerned reported (RAISE WARNING, in the migrator's log): docs/webhooks.md tells owners to
-- check their disabled endpoints after upgrading. Functions SECURITY DEFINER (owned by the tables' owner), search_path
-- '', executable by no API role (only the triggers run them). Grants and policies of core.webhook_endpoints unchanged
-- (the column is covered by the table-wide grants of 20261227000100). Needs no superuser; nothing to do on an empty
-- database.

ALTER TABLE core.webhook_endpoints ADD COLUMN configured_by text REFERENCES core."User"(id) ON DELETE SET NULL;
-- the triggers' lookup: a person's endpoints (in an organization)
CREATE INDEX webhook_endpoints_configured_by_idx ON core.webhook_endpoints (configured_by, org_id) WHERE configured_by IS NOT NULL;

ALTER TABLE core.webhook_endpoints DROP CONSTRAINT webhook_endpoints_disabled_reason_check,
  ADD CONSTRAINT webhook_endpoints_disabled_reason_check CHECK (disabled_reason IN ('gone', 'failing', 'organization_deleted', 'account_claimed',
    'configurer_removed', 'configurer_left', 'configurer_demoted', 'configurer_erased', 'configurer_deleted', 'configurer_no_longer_admin'));

-- The person a request acts for: the signed-in user, or the creator of the request's verified API key; NULL otherwise
-- (a service, no request). SECURITY DEFINER: a key's request may not read core.api_keys (policy api_keys_read).
CREATE FUNCTION core.request_person() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := core.request_claims();
  key uuid;
BEGIN
  IF claims IS NULL THEN RETURN NULL; END IF;
  IF claims ? 'api_key_id' THEN
    key := public.auth_api_key_id();
    IF key IS NULL THEN RETURN NULL; END IF;
    RETURN (SELECT k.created_by FROM core.api_keys k WHERE k.org_id = public.auth_org_id() AND k.id = key);
  END IF;
  IF claims ->> 'role' = 'service_role' THEN RETURN NULL; END IF;
  RETURN public.auth_user_id();
END
$$;
REVOKE ALL ON FUNCTION core.request_person() FROM PUBLIC, anon, authenticated, service_role;

-- The person answerable for an endpoint of p_org the request creates, re-points, enables or gives a new secret: its
-- person (core.request_person), whose user row is locked FOR KEY SHARE and then whose membership is locked FOR SHARE
-- and must be owner or admin (a removal or demotion waits for this transaction, and its trigger then sees the
-- endpoint); NULL for a service.
CREATE FUNCTION core.webhook_endpoint_configurer(p_org uuid) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  person text := core.request_person();
BEGIN
  IF person IS NULL THEN RETURN NULL; END IF;
  -- a person's: the API's requests only (begin_request's verified claims); a REST caller's write is refused by the
  -- table's restrictive policy (rest_path_closed_*) anyway, after this BEFORE trigger
  IF public.auth_claims_verified() IS NOT TRUE THEN
    RAISE EXCEPTION 'webhook endpoints are written through the API only' USING ERRCODE = '42501';
  END IF;
  -- the user row first, as the erasure locks it (FOR UPDATE) before their memberships: the foreign key's own check
  -- (FOR KEY SHARE, after this trigger) waited for an erasure holding it while this held the membership the erasure
  -- was about to lock (a deadlock)
  PERFORM 1 FROM core."User" u WHERE u.id = person FOR KEY SHARE;
  PERFORM 1 FROM core.memberships m WHERE m.org_id = p_org AND m.user_id = person AND m.role IN ('owner', 'admin') FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'only an owner or admin of the organization creates a webhook endpoint, changes its URL, enables it or rotates its secret'
      USING ERRCODE = '42501', HINT = 'forbidden.role';
  END IF;
  RETURN person;
END
$$;
REVOKE ALL ON FUNCTION core.webhook_endpoint_configurer(uuid) FROM PUBLIC, anon, authenticated, service_role;
-- the trigger function runs as its caller (current_user below): the API role calls this one through it (anon may not
-- write endpoints at all)
GRANT EXECUTE ON FUNCTION core.webhook_endpoint_configurer(uuid) TO authenticated;

-- configured_by as the database states it (see above). The role checked is the statement's (current_user): the API's
-- tenant transaction and Supabase's REST path run as authenticated; the privileged paths (the worker, the key
-- rotation) as service_role; the foreign key's ON DELETE SET NULL as the table's owner.
CREATE FUNCTION core.webhook_endpoints_configured_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF current_user <> 'authenticated' THEN RETURN NEW; END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.configured_by IS DISTINCT FROM OLD.configured_by THEN
      RAISE EXCEPTION 'who configured a webhook endpoint is set by the database' USING ERRCODE = '42501';
    END IF;
    IF NEW.url IS DISTINCT FROM OLD.url OR NEW.secret IS DISTINCT FROM OLD.secret OR (NEW.enabled AND NOT OLD.enabled) THEN
      NEW.configured_by := core.webhook_endpoint_configurer(NEW.org_id);
    END IF;
    RETURN NEW;
  END IF;
  NEW.configured_by := core.webhook_endpoint_configurer(NEW.org_id);
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION core.webhook_endpoints_configured_by() FROM PUBLIC, anon, authenticated, service_role;

CREATE TRIGGER webhook_endpoints_configured_by BEFORE INSERT OR UPDATE OF configured_by, url, secret, enabled ON core.webhook_endpoints
  FOR EACH ROW EXECUTE FUNCTION core.webhook_endpoints_configured_by();

-- Disables the enabled endpoints p_user configured (in p_org; every organization when NULL), locked in (org_id, id)
-- order as the worker's recording locks endpoints (webhook.repository.ts lockEndpoints), each audited. Actor,
-- principal, request id and IP as core.revoke_invitations_of_inviter names them: the request's, 'system' without one.
CREATE FUNCTION core.disable_webhook_endpoints_configured_by(p_user text, p_org uuid, p_reason text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := core.request_claims();
  actor text;
  principal text := 'system';
  v_request_id text := nullif(current_setting('omnizen.request_id', true), '');
  v_ip text := nullif(current_setting('omnizen.request_ip', true), '');
  n integer;
BEGIN
  IF p_user IS NULL THEN RETURN 0; END IF;
  IF claims ? 'api_key_id' THEN
    -- claims naming a key count only for the key the database verified (auth_api_key_id(): NULL otherwise)
    actor := 'api_key:' || public.auth_api_key_id()::text;
    IF actor IS NOT NULL THEN principal := 'service'; END IF;
  ELSIF claims ->> 'role' = 'service_role' THEN
    actor := 'service:' || (claims ->> 'service');
    principal := 'service';
  ELSIF claims ? 'sub' THEN
    actor := public.auth_user_id();
    IF actor IS NOT NULL THEN principal := 'user'; END IF;
  END IF;

  WITH locked AS (
    SELECT e.org_id, e.id FROM core.webhook_endpoints e
    WHERE e.configured_by = p_user AND (p_org IS NULL OR e.org_id = p_org) AND e.enabled
    ORDER BY e.org_id, e.id FOR NO KEY UPDATE OF e),
  disabled AS (
    UPDATE core.webhook_endpoints e SET enabled = false, disabled_reason = p_reason, disabled_at = now(), updated_at = now()
    FROM locked WHERE e.org_id = locked.org_id AND e.id = locked.id AND e.enabled AND e.configured_by = p_user
    RETURNING e.org_id, e.id, e.configured_by),
  audited AS (
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
    SELECT d.org_id, actor, principal, 'webhooks.endpoint_disabled', 'webhook_endpoint', d.id::text,
      jsonb_build_object('enabled', true), jsonb_build_object('enabled', false, 'reason', p_reason, 'configuredBy', d.configured_by),
      left(v_request_id, 200), left(v_ip, 100)
    FROM disabled d ORDER BY d.org_id, d.id
    RETURNING 1)
  SELECT count(*)::int INTO n FROM audited;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION core.disable_webhook_endpoints_configured_by(text, uuid, text) FROM PUBLIC, anon, authenticated, service_role;

-- A membership that stops being owner or admin: the endpoints its user configured in the organization are disabled
-- (see above). An organization being deleted (its memberships cascading) takes its endpoints and audit log with it:
-- nothing to disable.
CREATE FUNCTION core.memberships_disable_webhook_endpoints() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.role IN ('owner', 'admin') THEN RETURN NULL; END IF;
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = OLD.org_id) THEN RETURN NULL; END IF;
  PERFORM core.disable_webhook_endpoints_configured_by(OLD.user_id, OLD.org_id, CASE
    WHEN TG_OP = 'UPDATE' THEN 'configurer_demoted'
    WHEN current_setting('omnizen.privileged_path', true) IS NOT DISTINCT FROM 'privacy.erasure' THEN 'configurer_erased'
    WHEN OLD.user_id = public.auth_user_id() THEN 'configurer_left'
    ELSE 'configurer_removed' END);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION core.memberships_disable_webhook_endpoints() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER memberships_disable_webhook_endpoints AFTER UPDATE OF role OR DELETE ON core.memberships
  FOR EACH ROW WHEN (OLD.role IN ('owner', 'admin')) EXECUTE FUNCTION core.memberships_disable_webhook_endpoints();

-- a user row deleted: their endpoints are disabled while configured_by still names them
CREATE FUNCTION core.users_disable_webhook_endpoints() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM core.disable_webhook_endpoints_configured_by(OLD.id, NULL, 'configurer_deleted');
  RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION core.users_disable_webhook_endpoints() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER users_disable_webhook_endpoints BEFORE DELETE ON core."User"
  FOR EACH ROW EXECUTE FUNCTION core.users_disable_webhook_endpoints();

-- backfill: the person the audit log names for the last creation, change of URL, enabling or rotation of the secret
-- (a user, or an API key's creator; a service's row names none)
UPDATE core.webhook_endpoints e SET configured_by = c.person
FROM (
  SELECT e2.org_id, e2.id, (
    SELECT CASE WHEN a.principal_type = 'user' THEN a.actor_id
                WHEN a.actor_id LIKE 'api_key:%' THEN (SELECT k.created_by FROM core.api_keys k
                                                        WHERE k.org_id = a.org_id AND k.id::text = substr(a.actor_id, 9)) END
    FROM core.audit_logs a
    WHERE a.org_id = e2.org_id AND a.entity_type = 'webhook_endpoint' AND a.entity_id = e2.id::text
      AND (a.action IN ('webhooks.endpoint_created', 'webhooks.secret_rotated')
           OR (a.action = 'webhooks.endpoint_updated'
               AND ((a.after -> 'url') IS DISTINCT FROM (a.before -> 'url')
                    OR (a.after ->> 'enabled' = 'true' AND a.before ->> 'enabled' = 'false'))))
    ORDER BY a.id DESC LIMIT 1) AS person
  FROM core.webhook_endpoints e2) c
WHERE e.org_id = c.org_id AND e.id = c.id AND c.person IS NOT NULL
  AND EXISTS (SELECT 1 FROM core."User" u WHERE u.id = c.person);

-- enabled endpoints whose configurer already lost the role (removed, left, demoted or erased before this migration),
-- reported per organization
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    WITH disabled AS (
      UPDATE core.webhook_endpoints e SET enabled = false, disabled_reason = 'configurer_no_longer_admin', disabled_at = now(), updated_at = now()
      WHERE e.enabled AND e.configured_by IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM core.memberships m
                        WHERE m.org_id = e.org_id AND m.user_id = e.configured_by AND m.role IN ('owner', 'admin'))
      RETURNING e.org_id, e.id, e.configured_by),
    audited AS (
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
      SELECT d.org_id, 'migration:20270211000400', 'system', 'webhooks.endpoint_disabled', 'webhook_endpoint', d.id::text,
        jsonb_build_object('enabled', true), jsonb_build_object('enabled', false, 'reason', 'configurer_no_longer_admin', 'configuredBy', d.configured_by)
      FROM disabled d ORDER BY d.org_id, d.id
      RETURNING org_id)
    SELECT a.org_id, count(*)::int AS n FROM audited a GROUP BY a.org_id ORDER BY a.org_id
  LOOP
    RAISE WARNING 'organization %: % enabled webhook endpoint(s) disabled (disabled_reason configurer_no_longer_admin): the person who set their URL, enabled them or rotated their secret is no longer owner or admin there; check each URL, rotate its secret and enable it again if it is to stay',
      r.org_id, r.n;
  END LOOP;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000400_webhook_endpoints_end_with_creator_role', '8e219ddc0ed17bd95bded48030cd184a6fb0be73d8627a75a8aaf73ca7f43c9e', 0)
  ON CONFLICT (name) DO NOTHING;
