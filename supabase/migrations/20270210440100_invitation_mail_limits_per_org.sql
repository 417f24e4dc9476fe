-- Generated from prisma/migrations/20270210440100_invitation_mail_limits_per_org/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The hourly invitation caps (20270210410200) refused an invitation (429) once 3 invitations to its mailbox were made
-- within the hour by any organizations: an unrelated organization inviting, revoking and inviting an address 3 times an
-- hour kept every other organization from inviting it at all (review r11). A refusal is now decided within the
-- organization only: 3 an hour to one mailbox from it, 50 an hour from it. The mailbox's count across organizations
-- still caps the e-mails: past it the invitation is made but not mailed (InvitationsService; the invitation job records
-- the e-mail not_sent with the reason). core.invitations_within_hour answers the organization's count to the mailbox
-- too (to_mailbox_from_org, with its wait); its outputs change, so it is dropped and created again, with the same
-- grants, the same checks and the same locks (the organization's, then the mailbox's, held until the creation commits).
-- Needs no superuser.
DROP FUNCTION core.invitations_within_hour(text);

CREATE FUNCTION core.invitations_within_hour(p_email text)
RETURNS TABLE (to_mailbox integer, to_mailbox_retry_after integer, to_mailbox_from_org integer, to_mailbox_from_org_retry_after integer,
               by_org integer, by_org_retry_after integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  mailbox text := pg_catalog.regexp_replace(pg_catalog.lower(p_email), '\+[^@]*@', '@');
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
          WHERE regexp_replace(lower(i.email), '\+[^@]*@', '@') = mailbox AND i.created_at > now() - interval '1 hour') a,
         (SELECT count(*)::integer AS n,
                 coalesce(greatest(1, ceil(extract(epoch FROM min(i.created_at) + interval '1 hour' - now())))::integer, 0) AS wait
          FROM core.invitations i
          WHERE regexp_replace(lower(i.email), '\+[^@]*@', '@') = mailbox AND i.org_id = org AND i.created_at > now() - interval '1 hour') m,
         (SELECT count(*)::integer AS n,
                 coalesce(greatest(1, ceil(extract(epoch FROM min(i.created_at) + interval '1 hour' - now())))::integer, 0) AS wait
          FROM core.invitations i
          WHERE i.org_id = org AND i.created_at > now() - interval '1 hour') o;
END
$$;
REVOKE ALL ON FUNCTION core.invitations_within_hour(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.invitations_within_hour(text) TO authenticated;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210440100_invitation_mail_limits_per_org', '9cd1799ed36dbe32f959742973e41fede47c9499ca269dda5a7d77d6c1c285b9', 0)
  ON CONFLICT (name) DO NOTHING;
