-- Generated from prisma/migrations/20270210500200_invitation_mailbox_gmail_dots/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The hourly invitation caps count an address as its mailbox: lower-cased, a "+tag" of its local part dropped. Gmail
-- also ignores dots in the local part and takes googlemail.com for gmail.com: j.doe@gmail.com, jdoe@googlemail.com and
-- j.d.o.e@gmail.com reach one inbox, and each spelling was a fresh count of 3 mails an hour. core.invitation_mailbox
-- folds them too, for the counts only (the invitation keeps the address as given). core.invitations_within_hour counts
-- and locks by it; its index replaces invitations_mailbox_created_idx. Same outputs, checks, locks and grants.
-- Needs no superuser.
CREATE FUNCTION core.invitation_mailbox(p_email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT SET search_path = '' AS $$
  SELECT CASE WHEN pg_catalog.split_part(m, '@', 2) IN ('gmail.com', 'googlemail.com')
              THEN pg_catalog.replace(pg_catalog.split_part(m, '@', 1), '.', '') || '@gmail.com'
              ELSE m END
  FROM (SELECT pg_catalog.regexp_replace(pg_catalog.lower(p_email), '\+[^@]*@', '@') AS m) s
$$;
-- an index's expression runs as the role writing the row: the roles that write core.invitations execute it (a pure
-- function of its argument); core.invitations_within_hour calls it as its owner
REVOKE ALL ON FUNCTION core.invitation_mailbox(text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.invitation_mailbox(text) TO authenticated, service_role;

CREATE INDEX invitations_mailbox_folded_created_idx ON core.invitations (core.invitation_mailbox(email), created_at);
DROP INDEX core.invitations_mailbox_created_idx;

CREATE OR REPLACE FUNCTION core.invitations_within_hour(p_email text)
RETURNS TABLE (to_mailbox integer, to_mailbox_retry_after integer, to_mailbox_from_org integer, to_mailbox_from_org_retry_after integer,
               by_org integer, by_org_retry_after integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  mailbox text := core.invitation_mailbox(p_email);
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/orgs/:orgId/invitations)' USING ERRCODE = '42501';
  END IF;
  IF org IS NULL OR NOT public.auth_has_role('owner', 'admin', 'service') THEN
    RAISE EXCEPTION 'only an admin of the organization counts its invitations' USING ERRCODE = '42501';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.invitations.org:' || org::text));
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.invitations.mailbox:' || mailbox));
  -- after the locks (a statement of its own, so a snapshot of its own): a creation that held them has committed
  RETURN QUERY
    SELECT a.n, a.wait, m.n, m.wait, o.n, o.wait
    FROM (SELECT count(*)::integer AS n,
                 coalesce(greatest(1, ceil(extract(epoch FROM min(i.created_at) + interval '1 hour' - now())))::integer, 0) AS wait
          FROM core.invitations i
          WHERE core.invitation_mailbox(i.email) = mailbox AND i.created_at > now() - interval '1 hour') a,
         (SELECT count(*)::integer AS n,
                 coalesce(greatest(1, ceil(extract(epoch FROM min(i.created_at) + interval '1 hour' - now())))::integer, 0) AS wait
          FROM core.invitations i
          WHERE core.invitation_mailbox(i.email) = mailbox AND i.org_id = org AND i.created_at > now() - interval '1 hour') m,
         (SELECT count(*)::integer AS n,
                 coalesce(greatest(1, ceil(extract(epoch FROM min(i.created_at) + interval '1 hour' - now())))::integer, 0) AS wait
          FROM core.invitations i
          WHERE i.org_id = org AND i.created_at > now() - interval '1 hour') o;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210500200_invitation_mailbox_gmail_dots', '99b8f4295ccdb6f53a2a039595aa0ac4dffd691cc0a59f14c692eeaa88e0b55d', 0)
  ON CONFLICT (name) DO NOTHING;
