-- A signing secret taken on from someone gone kept signing through a rotation's overlap (review rA of 5c6cfc4). An
-- admin created an endpoint and received its secret S_A; the owner removed the admin (the endpoint disabled,
-- configurer_removed) and enabled it again: the owner answered for the secret from then on (secret_set_by), but the
-- secret was still S_A, which the removed admin knows and the owner never saw. The owner then rotated with the default
-- overlap: S_A became the previous secret, held by the owner (previous_secret_set_by := OLD.secret_set_by), and went
-- on signing deliveries for 24 h (up to 30 days) for the removed admin. Rotating before enabling ended that overlap
-- (its holder no longer answered); enabling before rotating did not.
--
-- secret_taken_on: the current secret was taken on by the person who enabled the endpoint (false -> true) in place
-- of a receiver no longer owner or admin of the organization, or unknown (secret_set_by NULL: a service's creation, a
-- deleted user, a claimed account): someone who no longer answers could have known it (the person named, or, after a
-- service's rotation, which leaves the person before it named, whoever called the service). Set by the endpoints'
-- trigger when an enabling replaces secret_set_by; cleared by every rotation (a new secret, received by whoever
-- rotates). A rotation of a taken-on secret keeps no overlap: the trigger drops the previous secret whatever the
-- statement says (previous_secret, its expiry and holder NULL), and the API (WebhooksService.rotateSecret) rotates it
-- without one: the default overlap is not applied, an explicit overlapSeconds above 0 is refused (409
-- webhooks.secret_taken_on); audited with the rotation. The endpoint answers it (secretTakenOn). The resealing under a new key (service_role, the same secret) leaves it as it is.
--
-- The API role may not write the column, as it may not write the *_set_by columns: the trigger (whose UPDATE OF list
-- names it) refuses an authenticated statement that changes it, or inserts it true (42501), and sets it itself. The
-- grants stay table-wide (review rC of b531d3b: column grants guarded it only until a table-wide GRANT, and made every
-- later column need its own). service_role (the privileged paths) is not checked, as for the *_set_by columns.
--
-- Backfill, from the audit log (20270211000400 audits secretSetBy before and after every change of an endpoint): an
-- endpoint whose last enabling that replaced secretSetBy with a person (webhooks.endpoint_updated, enabled false ->
-- true) came after its creation and its last rotation, and whose secret_set_by is still that person, is marked taken
-- on; an endpoint whose previous secret is the one such an enabling took on (the enabling between its last rotation
-- and the creation or rotation before) has its overlap ended now. Each audited (actor migration:20270211001400,
-- principal 'system'): webhooks.secret_taken_on, webhooks.previous_secret_cleared (reason secret_taken_on), and each
-- organization concerned reported (RAISE WARNING, in the migrator's log). The audit log is read per endpoint
-- (audit_logs_org_entity_idx), not scanned whole: the ALTER TABLE holds ACCESS EXCLUSIVE on core.webhook_endpoints
-- (the worker's claims, the webhook routes, every owner or admin's removal) until the commit (review rC: a scan took
-- 3.7 s at 1M audit rows). Needs no superuser; nothing to do on an empty database.

ALTER TABLE core.webhook_endpoints ADD COLUMN secret_taken_on boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN core.webhook_endpoints.secret_taken_on IS
  'The current signing secret was taken on when the endpoint was enabled in place of a receiver no longer owner or admin (or unknown): its rotation keeps no overlap; set by the database, cleared by a rotation';

-- 20270211000400's function, with secret_taken_on: the API role's own value refused; set by an enabling that takes the
-- secret on, cleared by a rotation, which keeps no overlap of a taken-on secret
CREATE OR REPLACE FUNCTION core.webhook_endpoints_set_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  person text;
  url_changed boolean;
  secret_changed boolean;
BEGIN
  -- no previous secret, no one holding it (the worker clearing an ended overlap, whatever role)
  IF NEW.previous_secret IS NULL THEN NEW.previous_secret_set_by := NULL; END IF;
  IF current_user <> 'authenticated' THEN RETURN NEW; END IF;
  -- the database's alone (review rC): a table-wide grant lets the API role name the column, not change it
  IF (TG_OP = 'INSERT' AND NEW.secret_taken_on) OR (TG_OP = 'UPDATE' AND NEW.secret_taken_on IS DISTINCT FROM OLD.secret_taken_on) THEN
    RAISE EXCEPTION 'whether a webhook endpoint''s signing secret was taken on is set by the database' USING ERRCODE = '42501';
  END IF;
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
  IF secret_changed THEN
    -- a rotation of a secret taken on from someone gone: they could have known it, so it signs no more (review rA)
    IF OLD.secret_taken_on THEN
      NEW.previous_secret := NULL;
      NEW.previous_secret_expires_at := NULL;
      NEW.previous_secret_set_by := NULL;
    END IF;
    NEW.secret_taken_on := false;
  END IF;
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
      -- the secret itself is still the one the gone (or unknown) receiver knows: its rotation keeps no overlap
      NEW.secret_taken_on := true;
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

-- 20270211000400's trigger, its columns with secret_taken_on: a statement naming it is checked
DROP TRIGGER webhook_endpoints_set_by ON core.webhook_endpoints;
CREATE TRIGGER webhook_endpoints_set_by
  BEFORE INSERT OR UPDATE OF url_set_by, secret_set_by, previous_secret_set_by, secret_taken_on, url, secret, previous_secret, enabled ON core.webhook_endpoints
  FOR EACH ROW EXECUTE FUNCTION core.webhook_endpoints_set_by();

-- backfill (see above): the audit log's take-ons, rotations and creations of each endpoint, read per endpoint by
-- audit_logs_org_entity_idx (OFFSET 0: kept a nested loop, not a scan of the whole audit log)
DO $$
DECLARE
  reported record;
BEGIN
  CREATE TEMPORARY TABLE webhook_secret_events ON COMMIT DROP AS
  SELECT e.org_id, e.id, a.seq, a.kind, a.person
  FROM core.webhook_endpoints e
  CROSS JOIN LATERAL (
    SELECT a.id AS seq, CASE WHEN a.action = 'webhooks.endpoint_updated' THEN 'taken_on' ELSE 'new_secret' END AS kind,
      a.after ->> 'secretSetBy' AS person
    FROM core.audit_logs a
    WHERE a.org_id = e.org_id AND a.entity_type = 'webhook_endpoint' AND a.entity_id = e.id::text
      AND (a.action IN ('webhooks.endpoint_created', 'webhooks.secret_rotated')
           OR (a.action = 'webhooks.endpoint_updated' AND a.before ->> 'enabled' = 'false' AND a.after ->> 'enabled' = 'true'
               AND a.after ->> 'secretSetBy' IS NOT NULL AND (a.before -> 'secretSetBy') IS DISTINCT FROM (a.after -> 'secretSetBy')))
    OFFSET 0) a;

  -- the current secret taken on: the last event a take-on, by the person still named
  FOR reported IN
    WITH last AS (
      SELECT DISTINCT ON (v.org_id, v.id) v.org_id, v.id, v.kind, v.person FROM webhook_secret_events v ORDER BY v.org_id, v.id, v.seq DESC),
    marked AS (
      UPDATE core.webhook_endpoints e SET secret_taken_on = true
      FROM last l
      WHERE e.org_id = l.org_id AND e.id = l.id AND l.kind = 'taken_on' AND e.secret_set_by = l.person AND NOT e.secret_taken_on
      RETURNING e.org_id, e.id, e.secret_set_by),
    audited AS (
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
      SELECT m.org_id, 'migration:20270211001400', 'system', 'webhooks.secret_taken_on', 'webhook_endpoint', m.id::text,
        jsonb_build_object('secretTakenOn', false), jsonb_build_object('secretTakenOn', true, 'secretSetBy', m.secret_set_by)
      FROM marked m ORDER BY m.org_id, m.id
      RETURNING org_id)
    SELECT a.org_id, count(*)::int AS n FROM audited a GROUP BY a.org_id ORDER BY a.org_id
  LOOP
    RAISE WARNING 'organization %: % webhook endpoint(s) marked secret_taken_on: their signing secret is still the one they had when a person enabled them in place of its receiver, no longer owner or admin there (or unknown); their next rotation keeps no overlap: rotate each secret now',
      reported.org_id, reported.n;
  END LOOP;

  -- the previous secret taken on: a take-on between the last rotation and the new secret before it
  FOR reported IN
    WITH ranked AS (
      SELECT v.*, max(v.seq) FILTER (WHERE v.kind = 'new_secret') OVER (PARTITION BY v.org_id, v.id) AS last_rotation
      FROM webhook_secret_events v),
    previous_taken_on AS (
      SELECT DISTINCT r.org_id, r.id FROM ranked r
      WHERE r.kind = 'taken_on' AND r.seq < r.last_rotation
        AND NOT EXISTS (SELECT 1 FROM webhook_secret_events n
                        WHERE n.org_id = r.org_id AND n.id = r.id AND n.kind = 'new_secret' AND n.seq > r.seq AND n.seq < r.last_rotation)),
    locked AS (
      SELECT e.org_id, e.id, e.previous_secret_expires_at, e.previous_secret_set_by FROM core.webhook_endpoints e
      JOIN previous_taken_on p ON p.org_id = e.org_id AND p.id = e.id
      -- an overlap still running (one that ran out stopped signing already: nothing to end, audit or report)
      WHERE e.previous_secret IS NOT NULL AND e.previous_secret_expires_at > now() ORDER BY e.org_id, e.id FOR NO KEY UPDATE OF e),
    cleared AS (
      UPDATE core.webhook_endpoints e SET previous_secret = NULL, previous_secret_expires_at = NULL, previous_secret_set_by = NULL, updated_at = now()
      FROM locked l WHERE e.org_id = l.org_id AND e.id = l.id
      RETURNING e.org_id, e.id, l.previous_secret_expires_at, l.previous_secret_set_by),
    audited AS (
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
      SELECT c.org_id, 'migration:20270211001400', 'system', 'webhooks.previous_secret_cleared', 'webhook_endpoint', c.id::text,
        jsonb_build_object('previousSecretExpiresAt', c.previous_secret_expires_at, 'previousSecretSetBy', c.previous_secret_set_by),
        jsonb_build_object('previousSecretExpiresAt', NULL::text, 'reason', 'secret_taken_on')
      FROM cleared c ORDER BY c.org_id, c.id
      RETURNING org_id)
    SELECT a.org_id, count(*)::int AS n FROM audited a GROUP BY a.org_id ORDER BY a.org_id
  LOOP
    RAISE WARNING 'organization %: % webhook endpoint(s) stopped signing with their previous secret (reason secret_taken_on): it was one taken on when a person enabled them in place of its receiver, no longer owner or admin there (or unknown)',
      reported.org_id, reported.n;
  END LOOP;
END
$$;
