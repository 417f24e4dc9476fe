-- Generated from prisma/migrations/20270211000400_webhook_endpoints_end_with_creator_role/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A webhook endpoint outlived the admin who set it up (review r2): an admin created an endpoint (every event type, to a
-- server of theirs) and got its signing secret, the owner removed the admin, and the endpoint stayed enabled,
-- unchanged, unaudited: the former admin went on receiving every domain event of the organization, signed. Only owners
-- and admins (and services) manage endpoints (policy webhook_endpoints_admin, WebhookEndpointsController), so, as an
-- API key (20270210160100) and a pending invitation (20270210560100), an endpoint now ends with the role of the people
-- answerable for it (url_set_by, secret_set_by: below): when a membership stops being 'owner' or 'admin' (removed, left,
-- demoted, ended by the person's erasure), the enabled endpoints of that organization whose URL or current secret that
-- person set are disabled in the same statement (enabled false, disabled_reason configurer_removed, configurer_left,
-- configurer_demoted or configurer_erased), each audited as webhooks.endpoint_disabled (before {enabled: true}, after
-- {enabled: false, reason, urlSetBy, secretSetBy}). A trigger on core.memberships next to memberships_revoke_api_keys
-- and memberships_revoke_invitations, so every path gets it (the API, the erasure, an operator's SQL). A user row
-- deleted (other apps of the database write core."User") sets the columns NULL (ON DELETE SET NULL) before the cascaded
-- memberships' trigger runs: a BEFORE DELETE trigger on core."User" disables the user's endpoints in every organization
-- first (configurer_deleted). An owner made admin keeps their endpoints. No domain event: the keys' and invitations'
-- revocations emit none either (and the audit row is the record).
--
-- url_set_by and secret_set_by: the two people answerable for an endpoint (review r4; before, one configured_by named
-- whoever last created, re-pointed, enabled or rotated it, so the last enabler or rotator replaced the person who chose
-- the URL: an admin re-pointed the owner's endpoint at their host, the owner rotated its secret, removed the admin, and
-- the endpoint kept sending to the admin's host). url_set_by: who chose where its events go, set on its creation and
-- on every change of its URL. secret_set_by: who received its current signing secret, set on its creation and on every
-- rotation. When either stops being owner or admin (above), the endpoint is disabled; both must be owner or admin for
-- it to be enabled again: enabling it (false -> true) by a person makes them answerable for whichever of the two is
-- NULL or names someone no longer owner or admin (they take it on); a service (no person: the service-role key) never
-- sets, clears or replaces either (a change it makes leaves them to the previous person), and enabling an endpoint one
-- of whose two is NULL or no longer owner or admin is refused to it (403 webhooks.person_required: a person must take
-- it on). Changing the description or the event types touches neither: the events still go to the URL and secret
-- someone answerable chose (widening the types sends more, not elsewhere). The person: the signed-in user (the webhook
-- routes are closed to API keys; core.request_person names a key's creator, as the other key-aware paths do, should a
-- key's request ever write). Set by the database on every insert by the API role (authenticated) and on every update
-- by that role that changes the URL or the secret or enables the endpoint, whatever the statement says; never set to
-- anything else by that role (42501). NULL when a service set it up, when the person's user row was deleted, when the
-- account was claimed (auth/account-claim.service.ts: it stays owner or admin, now its address's real owner's, who did
-- not choose the URL or receive the secret; review rx: a service could enable such an endpoint again; the audit row of
-- the claim keeps the name), and for endpoints set up before this migration whose audit log names no person.
-- Setting one also locks the acting person's user row (FOR SHARE, first: an erasure locks the user row FOR UPDATE, then
-- their memberships; an account claim FOR NO KEY UPDATE, then ends the account's sessions: the write then waits for the
-- claim and requires its access token's session to be live still, 401 otherwise, review rx 2) and then their
-- membership (FOR SHARE), and requires the
-- membership to be owner or admin there (403 forbidden.role otherwise), as ApiKeysService.create does with
-- creatorRoleLocked: an endpoint created, re-pointed or enabled while the person's demotion or removal commits would
-- otherwise escape the membership trigger (it waits for the lock, then sees the endpoint). The API locks them so before
-- it locks the endpoint (WebhooksService: the trigger then finds them held; locking the endpoint first deadlocked with
-- a demotion holding the membership and disabling the endpoint). Enabling reads the two people's roles under the same
-- locks (a demotion of one committing meanwhile is seen).
--
-- previous_secret_set_by: who received the previous signing secret, which keeps signing during a rotation's overlap
-- (deliveries carry both signatures until previous_secret_expires_at: whoever holds it can sign what the receiver
-- accepts). Review rx: the owner's rotation with an overlap after an admin's made the owner the only one answerable
-- while the admin's secret still signed; the admin's removal left it signing. Set by the database on a rotation that
-- keeps an overlap (the secret before it: OLD.secret_set_by, whoever rotates, a service too), NULL with the previous
-- secret (cleared by the worker at its expiry, or a rotation without overlap). When that person stops being owner or
-- admin (every path above: membership, user row deleted; and the account claim), the overlap ends at once:
-- previous_secret and its expiry NULL, audited per endpoint as webhooks.previous_secret_cleared (before
-- {previousSecretExpiresAt, previousSecretSetBy}, after {reason}); the endpoint stays enabled when its two people still
-- answer. An enabling (false -> true) ends it too when its holder no longer answers (a rotation of a disabled endpoint
-- whose secret's receiver was already gone kept that secret as the previous one). Never set by the API role (42501).
-- NULL for rotations before this migration (an overlap lasts at most 30 days).
--
-- Backfill: from the audit log, as the triggers would have set them: url_set_by, the person of the last row that
-- created the endpoint or changed its URL (webhooks.endpoint_created, webhooks.endpoint_updated whose url changed);
-- secret_set_by, the person of the last row that created it or rotated its secret (webhooks.secret_rotated); rows of a
-- service name no person and are passed over (a service replaces neither: the person before it stays answerable),
-- an API key's row names the key's creator. Enablings are not replayed (whether the enabler took an endpoint on
-- depended on roles the log does not keep): an endpoint re-enabled after its URL's chooser lost the role is disabled
-- below, and a remaining owner or admin takes it on by enabling it. A person named whose user row no longer exists
-- leaves the column NULL. Enabled endpoints one of whose two named people is already no longer owner or admin of the
-- organization, or whose user row is gone, are disabled now (configurer_no_longer_admin), each audited (principal
-- 'system', actor the migration, after naming both people as the log does), and each organization concerned reported
-- (RAISE WARNING, in the migrator's log): docs/webhooks.md tells owners to check their disabled endpoints after
-- upgrading. Functions SECURITY DEFINER (owned by the tables' owner), search_path '', executable by no API role except
-- the two the endpoints' trigger calls as its caller. Grants and policies of core.webhook_endpoints unchanged (the
-- columns are covered by the table-wide grants of 20261227000100). Needs no superuser; nothing to do on an empty
-- database.

ALTER TABLE core.webhook_endpoints
  ADD COLUMN url_set_by text REFERENCES core."User"(id) ON DELETE SET NULL,
  ADD COLUMN secret_set_by text REFERENCES core."User"(id) ON DELETE SET NULL,
  ADD COLUMN previous_secret_set_by text REFERENCES core."User"(id) ON DELETE SET NULL;
-- the triggers' lookup: a person's endpoints (in an organization), by either column
CREATE INDEX webhook_endpoints_url_set_by_idx ON core.webhook_endpoints (url_set_by, org_id) WHERE url_set_by IS NOT NULL;
CREATE INDEX webhook_endpoints_secret_set_by_idx ON core.webhook_endpoints (secret_set_by, org_id) WHERE secret_set_by IS NOT NULL;
CREATE INDEX webhook_endpoints_previous_secret_set_by_idx ON core.webhook_endpoints (previous_secret_set_by, org_id) WHERE previous_secret_set_by IS NOT NULL;

ALTER TABLE core.webhook_endpoints DROP CONSTRAINT webhook_endpoints_disabled_reason_check,
  ADD CONSTRAINT webhook_endpoints_disabled_reason_check CHECK (disabled_reason IN ('gone', 'failing', 'organization_deleted', 'account_claimed',
    'configurer_removed', 'configurer_left', 'configurer_demoted', 'configurer_erased', 'configurer_deleted', 'configurer_no_longer_admin'));

-- The person a request acts for: the signed-in user, or the creator of the request's verified API key (as the other
-- key-aware paths count it; the webhook routes themselves are closed to keys); NULL otherwise (a service, no request).
-- SECURITY DEFINER: a key's request may not read core.api_keys (policy api_keys_read).
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

-- The person of the request, who creates, re-points, enables or gives a new secret to an endpoint of p_org: their user
-- row locked FOR KEY SHARE, then their membership FOR SHARE, which must be owner or admin (a removal or demotion waits
-- for this transaction, and its trigger then sees the endpoint); NULL for a service. Called by the endpoints' trigger,
-- and by the API before it locks the endpoint (WebhooksService: the same locks in the same order, taken first).
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
  -- their user row FOR SHARE (not only KEY SHARE): an account claim holds it FOR NO KEY UPDATE from its start
  -- (userRepository.lockIfNotErased) and ends the account's sessions before it commits; a write racing it waits for it,
  -- then finds the session of its access token ended (the claim's changes to the endpoints are not undone by it: 401,
  -- nothing written), or the claim waits for the write and then sees the endpoint (review rx 2)
  PERFORM 1 FROM core."User" u WHERE u.id = person FOR SHARE;
  IF (core.request_claims() ? 'session_id') AND NOT EXISTS (
    SELECT 1 FROM core.sessions s
    WHERE s.id = (core.request_claims() ->> 'session_id')::uuid AND s.user_id = person AND s.revoked_at IS NULL AND s.expires_at > now()
  ) THEN
    RAISE EXCEPTION 'the session of this access token has ended; log in again' USING ERRCODE = '28000';
  END IF;
  IF NOT core.webhook_endpoint_person_answers(p_org, person) THEN
    RAISE EXCEPTION 'only an owner or admin of the organization creates a webhook endpoint, changes its URL, enables it or rotates its secret'
      USING ERRCODE = '42501', HINT = 'forbidden.role';
  END IF;
  RETURN person;
END
$$;

-- Whether p_person may answer for an endpoint of p_org: owner or admin there, read under lock (their user row FOR KEY
-- SHARE first, as the erasure locks it FOR UPDATE before their memberships: the foreign key's own check, after the
-- trigger, waited for an erasure holding it while this held the membership the erasure was about to lock; then the
-- membership FOR SHARE: a demotion or removal committing meanwhile is waited for and seen, one starting later waits for
-- this transaction and its trigger sees the endpoint).
CREATE FUNCTION core.webhook_endpoint_person_answers(p_org uuid, p_person text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  -- the API's verified requests, for their own organization only (no probing, or locking, of another's members)
  IF public.auth_claims_verified() IS NOT TRUE THEN
    RAISE EXCEPTION 'webhook endpoints are written through the API only' USING ERRCODE = '42501';
  END IF;
  IF p_org IS DISTINCT FROM (core.request_claims() ->> 'org_id')::uuid THEN
    RAISE EXCEPTION 'webhook endpoints are written through the API only' USING ERRCODE = '42501';
  END IF;
  IF p_person IS NULL THEN RETURN false; END IF;
  PERFORM 1 FROM core."User" u WHERE u.id = p_person FOR KEY SHARE;
  PERFORM 1 FROM core.memberships m WHERE m.org_id = p_org AND m.user_id = p_person AND m.role IN ('owner', 'admin') FOR SHARE;
  RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION core.webhook_endpoint_person_answers(uuid, text) FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON FUNCTION core.webhook_endpoint_configurer(uuid) FROM PUBLIC, anon, authenticated, service_role;
-- the trigger function runs as its caller (current_user below): the API role calls these through it (anon may not
-- write endpoints at all), and the API calls them itself before locking an endpoint
GRANT EXECUTE ON FUNCTION core.webhook_endpoint_configurer(uuid) TO authenticated;
GRANT EXECUTE ON FUNCTION core.webhook_endpoint_person_answers(uuid, text) TO authenticated;

-- url_set_by and secret_set_by as the database states them (see above). The role checked is the statement's
-- (current_user): the API's tenant transaction and Supabase's REST path run as authenticated; the privileged paths (the
-- worker, the key rotation, the account claim) as service_role; the foreign key's ON DELETE SET NULL as the table's
-- owner.
CREATE FUNCTION core.webhook_endpoints_set_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  person text;
  url_changed boolean;
  secret_changed boolean;
BEGIN
  -- no previous secret, no one holding it (the worker clearing an ended overlap, whatever role)
  IF NEW.previous_secret IS NULL THEN NEW.previous_secret_set_by := NULL; END IF;
  IF current_user <> 'authenticated' THEN RETURN NEW; END IF;
  IF TG_OP = 'INSERT' THEN
    person := core.webhook_endpoint_configurer(NEW.org_id);
    NEW.url_set_by := person;
    NEW.secret_set_by := person;
    NEW.previous_secret_set_by := NULL;
    RETURN NEW;
  END IF;
  IF NEW.url_set_by IS DISTINCT FROM OLD.url_set_by OR NEW.secret_set_by IS DISTINCT FROM OLD.secret_set_by
     OR (NEW.previous_secret_set_by IS DISTINCT FROM OLD.previous_secret_set_by AND NEW.previous_secret IS NOT NULL) THEN
    RAISE EXCEPTION 'who set a webhook endpoint''s URL and secret is set by the database' USING ERRCODE = '42501';
  END IF;
  url_changed := NEW.url IS DISTINCT FROM OLD.url;
  secret_changed := NEW.secret IS DISTINCT FROM OLD.secret;
  -- a rotation keeping an overlap: the secret before it (the previous one now) is held by whoever received it
  IF secret_changed AND NEW.previous_secret IS NOT NULL THEN NEW.previous_secret_set_by := OLD.secret_set_by; END IF;
  IF NOT (url_changed OR secret_changed OR (NEW.enabled AND NOT OLD.enabled)) THEN RETURN NEW; END IF;
  person := core.webhook_endpoint_configurer(NEW.org_id);
  -- a service's change leaves both to the person before it
  IF person IS NOT NULL AND url_changed THEN NEW.url_set_by := person; END IF;
  IF person IS NOT NULL AND secret_changed THEN NEW.secret_set_by := person; END IF;
  IF NEW.enabled AND NOT OLD.enabled THEN
    -- enabled again: each of the two must be owner or admin now; a person enabling it takes on one that is not
    IF NOT core.webhook_endpoint_person_answers(NEW.org_id, NEW.url_set_by) THEN
      IF person IS NULL THEN
        RAISE EXCEPTION 'the person who set this webhook endpoint''s URL is no longer owner or admin of the organization (or is unknown): an owner or admin must enable it, and then answers for it'
          USING ERRCODE = '42501', HINT = 'webhooks.person_required';
      END IF;
      NEW.url_set_by := person;
    END IF;
    IF NOT core.webhook_endpoint_person_answers(NEW.org_id, NEW.secret_set_by) THEN
      IF person IS NULL THEN
        RAISE EXCEPTION 'the person who received this webhook endpoint''s signing secret is no longer owner or admin of the organization (or is unknown): an owner or admin must enable it, and then answers for it'
          USING ERRCODE = '42501', HINT = 'webhooks.person_required';
      END IF;
      NEW.secret_set_by := person;
    END IF;
    -- the previous secret's holder no longer answers, or it has none: its overlap ends (WebhooksService audits it). A
    -- rotation after an account claim or a user row's deletion (which leave secret_set_by NULL) kept the gone person's
    -- secret with no name on it (review ry), whatever the endpoint was last disabled for (review rf2: 'failing', or a
    -- disable and enable in between); a service's rotation keeps a nameless overlap only while the endpoint stays enabled
    IF NEW.previous_secret IS NOT NULL
       AND (NEW.previous_secret_set_by IS NULL OR NOT core.webhook_endpoint_person_answers(NEW.org_id, NEW.previous_secret_set_by)) THEN
      NEW.previous_secret := NULL;
      NEW.previous_secret_expires_at := NULL;
      NEW.previous_secret_set_by := NULL;
    END IF;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION core.webhook_endpoints_set_by() FROM PUBLIC, anon, authenticated, service_role;

CREATE TRIGGER webhook_endpoints_set_by BEFORE INSERT OR UPDATE OF url_set_by, secret_set_by, previous_secret_set_by, url, secret, previous_secret, enabled ON core.webhook_endpoints
  FOR EACH ROW EXECUTE FUNCTION core.webhook_endpoints_set_by();

-- Disables the enabled endpoints whose URL or secret p_user set (in p_org; every organization when NULL), and ends the
-- overlap of those whose previous secret they hold (enabled or not), locked in (org_id, id) order as the worker's
-- recording locks endpoints (webhook.repository.ts lockEndpoints), each audited (webhooks.endpoint_disabled,
-- webhooks.previous_secret_cleared). Disabled endpoints whose secret they received are locked too: a rotation keeping
-- an overlap that commits meanwhile (they then hold its previous secret) is waited for and seen.
-- Actor, principal, request id and IP as core.revoke_invitations_of_inviter names them: the request's, 'system' without
-- one.
CREATE FUNCTION core.disable_webhook_endpoints_set_by(p_user text, p_org uuid, p_reason text) RETURNS integer
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

  -- the values read under the lock (a concurrent change is waited for, and the row read again)
  WITH locked AS (
    SELECT e.org_id, e.id, e.url_set_by, e.secret_set_by, e.previous_secret_set_by, e.previous_secret_expires_at,
      e.enabled AND (e.url_set_by = p_user OR e.secret_set_by = p_user) IS TRUE AS disabling,
      (e.previous_secret_set_by = p_user) IS TRUE AS clearing
    FROM core.webhook_endpoints e
    WHERE (e.url_set_by = p_user OR e.secret_set_by = p_user OR e.previous_secret_set_by = p_user) AND (p_org IS NULL OR e.org_id = p_org)
    ORDER BY e.org_id, e.id FOR NO KEY UPDATE OF e),
  changed AS (
    UPDATE core.webhook_endpoints e SET
      enabled = e.enabled AND NOT l.disabling,
      disabled_reason = CASE WHEN l.disabling THEN p_reason ELSE e.disabled_reason END,
      disabled_at = CASE WHEN l.disabling THEN now() ELSE e.disabled_at END,
      previous_secret = CASE WHEN l.clearing THEN NULL ELSE e.previous_secret END,
      previous_secret_expires_at = CASE WHEN l.clearing THEN NULL ELSE e.previous_secret_expires_at END,
      previous_secret_set_by = CASE WHEN l.clearing THEN NULL ELSE e.previous_secret_set_by END,
      updated_at = now()
    FROM locked l WHERE e.org_id = l.org_id AND e.id = l.id AND (l.disabling OR l.clearing)
    RETURNING e.org_id, e.id, l.url_set_by, l.secret_set_by, l.previous_secret_set_by, l.previous_secret_expires_at, l.disabling, l.clearing),
  audited AS (
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
    SELECT d.org_id, actor, principal, a.action, 'webhook_endpoint', d.id::text, a.before, a.after, left(v_request_id, 200), left(v_ip, 100)
    FROM changed d
    CROSS JOIN LATERAL (VALUES
      (1, d.disabling, 'webhooks.endpoint_disabled', jsonb_build_object('enabled', true),
       jsonb_build_object('enabled', false, 'reason', p_reason, 'urlSetBy', d.url_set_by, 'secretSetBy', d.secret_set_by)),
      (2, d.clearing, 'webhooks.previous_secret_cleared',
       jsonb_build_object('previousSecretExpiresAt', d.previous_secret_expires_at, 'previousSecretSetBy', d.previous_secret_set_by),
       jsonb_build_object('previousSecretExpiresAt', NULL::text, 'reason', p_reason))) AS a(k, due, action, before, after)
    WHERE a.due
    ORDER BY d.org_id, d.id, a.k
    RETURNING action)
  SELECT count(*) FILTER (WHERE action = 'webhooks.endpoint_disabled')::int INTO n FROM audited;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION core.disable_webhook_endpoints_set_by(text, uuid, text) FROM PUBLIC, anon, authenticated, service_role;

-- A membership that stops being owner or admin: the endpoints of the organization whose URL or secret its user set are
-- disabled (see above). An organization being deleted (its memberships cascading) takes its endpoints and audit log
-- with it: nothing to disable.
CREATE FUNCTION core.memberships_disable_webhook_endpoints() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.role IN ('owner', 'admin') THEN RETURN NULL; END IF;
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = OLD.org_id) THEN RETURN NULL; END IF;
  PERFORM core.disable_webhook_endpoints_set_by(OLD.user_id, OLD.org_id, CASE
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

-- a user row deleted: their endpoints are disabled while the columns still name them
CREATE FUNCTION core.users_disable_webhook_endpoints() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM core.disable_webhook_endpoints_set_by(OLD.id, NULL, 'configurer_deleted');
  RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION core.users_disable_webhook_endpoints() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER users_disable_webhook_endpoints BEFORE DELETE ON core."User"
  FOR EACH ROW EXECUTE FUNCTION core.users_disable_webhook_endpoints();

-- backfill: the people the audit log names for the last creation or change of URL, and for the last creation or
-- rotation of the secret (a user, or an API key's creator; a service's rows name none and are passed over); the
-- endpoints found with a person named whose user row is gone, or no longer owner or admin, disabled and reported per
-- organization
DO $$
DECLARE
  r record;
BEGIN
  CREATE TEMPORARY TABLE webhook_endpoint_people ON COMMIT DROP AS
  SELECT e.org_id, e.id, (
      SELECT p.person FROM core.audit_logs a
      CROSS JOIN LATERAL (SELECT CASE WHEN a.principal_type = 'user' THEN a.actor_id
                                      WHEN a.actor_id LIKE 'api_key:%' THEN (SELECT k.created_by FROM core.api_keys k
                                                                             WHERE k.org_id = a.org_id AND k.id::text = substr(a.actor_id, 9)) END AS person) p
      WHERE a.org_id = e.org_id AND a.entity_type = 'webhook_endpoint' AND a.entity_id = e.id::text AND p.person IS NOT NULL
        AND (a.action = 'webhooks.endpoint_created'
             OR (a.action = 'webhooks.endpoint_updated' AND (a.after -> 'url') IS DISTINCT FROM (a.before -> 'url')))
      ORDER BY a.id DESC LIMIT 1) AS url_person, (
      SELECT p.person FROM core.audit_logs a
      CROSS JOIN LATERAL (SELECT CASE WHEN a.principal_type = 'user' THEN a.actor_id
                                      WHEN a.actor_id LIKE 'api_key:%' THEN (SELECT k.created_by FROM core.api_keys k
                                                                             WHERE k.org_id = a.org_id AND k.id::text = substr(a.actor_id, 9)) END AS person) p
      WHERE a.org_id = e.org_id AND a.entity_type = 'webhook_endpoint' AND a.entity_id = e.id::text AND p.person IS NOT NULL
        AND a.action IN ('webhooks.endpoint_created', 'webhooks.secret_rotated')
      ORDER BY a.id DESC LIMIT 1) AS secret_person
  FROM core.webhook_endpoints e
  -- applied again (the test does): what the triggers set since stays
  WHERE e.url_set_by IS NULL AND e.secret_set_by IS NULL;

  UPDATE core.webhook_endpoints e
  SET url_set_by = (SELECT u.id FROM core."User" u WHERE u.id = c.url_person),
      secret_set_by = (SELECT u.id FROM core."User" u WHERE u.id = c.secret_person)
  FROM webhook_endpoint_people c
  WHERE e.org_id = c.org_id AND e.id = c.id AND (c.url_person IS NOT NULL OR c.secret_person IS NOT NULL);

  FOR r IN
    WITH disabled AS (
      UPDATE core.webhook_endpoints e SET enabled = false, disabled_reason = 'configurer_no_longer_admin', disabled_at = now(), updated_at = now()
      FROM webhook_endpoint_people c
      WHERE e.org_id = c.org_id AND e.id = c.id AND e.enabled
        AND EXISTS (SELECT 1 FROM (VALUES (c.url_person), (c.secret_person)) AS p(person)
                    WHERE p.person IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM core.memberships m
                                      WHERE m.org_id = e.org_id AND m.user_id = p.person AND m.role IN ('owner', 'admin')))
      RETURNING e.org_id, e.id, c.url_person, c.secret_person),
    audited AS (
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
      SELECT d.org_id, 'migration:20270211000400', 'system', 'webhooks.endpoint_disabled', 'webhook_endpoint', d.id::text,
        jsonb_build_object('enabled', true),
        jsonb_build_object('enabled', false, 'reason', 'configurer_no_longer_admin', 'urlSetBy', d.url_person, 'secretSetBy', d.secret_person)
      FROM disabled d ORDER BY d.org_id, d.id
      RETURNING org_id)
    SELECT a.org_id, count(*)::int AS n FROM audited a GROUP BY a.org_id ORDER BY a.org_id
  LOOP
    RAISE WARNING 'organization %: % enabled webhook endpoint(s) disabled (disabled_reason configurer_no_longer_admin): the person who set their URL or received their signing secret is no longer owner or admin there, or their user was deleted; check each URL, rotate its secret and enable it again if it is to stay',
      r.org_id, r.n;
  END LOOP;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000400_webhook_endpoints_end_with_creator_role', '4de41c69f187691145d3e59138c814be7b1e04e36621af2acedf63d441e055f5', 0)
  ON CONFLICT (name) DO NOTHING;
