-- Generated from prisma/migrations/20270210410200_invitation_mail_limits/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Each invitation mails its invitee, with a subject naming the organization its admin chose: invite, revoke and invite
-- the same outside address again, and every round mailed it once more (a spam and phishing channel). The API now
-- refuses an invitation (429 invitation.mail_limited) past 3 an hour to one address, whichever organizations sent
-- them, and past 50 an hour from one organization: InvitationsService counts the invitations created within the hour
-- (revoked ones too: their mail went out) with core.invitations_within_hour.
--
-- It reads across organizations (the address's count), which no tenant policy shows: SECURITY DEFINER, for an admin of
-- the request's organization (the roles of the invitation_admin policy), through the API only (begin_request verified
-- the claims; not rpc/ on the REST path). It answers counts and waits, never whose invitations they were. The address
-- is counted as its mailbox: lower-cased, a "+tag" of its local part dropped (victim+1@, victim+2@ reach the same
-- inbox). Before counting it takes transaction advisory locks on the organization and on the mailbox, in that order,
-- held until the creation commits: concurrent creations count one after the other (nothing else takes these keys).
-- The indexes serve the two counts; the organization's also serves the newest-first list of its invitations.
CREATE INDEX invitations_mailbox_created_idx ON core.invitations ((regexp_replace(lower(email), '\+[^@]*@', '@')), created_at);
CREATE INDEX invitations_org_created_idx ON core.invitations (org_id, created_at);

CREATE FUNCTION core.invitations_within_hour(p_email text)
RETURNS TABLE (to_mailbox integer, to_mailbox_retry_after integer, by_org integer, by_org_retry_after integer)
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
    SELECT a.n, a.wait, o.n, o.wait
    FROM (SELECT count(*)::integer AS n,
                 coalesce(greatest(1, ceil(extract(epoch FROM min(i.created_at) + interval '1 hour' - now())))::integer, 0) AS wait
          FROM core.invitations i
          WHERE regexp_replace(lower(i.email), '\+[^@]*@', '@') = mailbox AND i.created_at > now() - interval '1 hour') a,
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
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210410200_invitation_mail_limits', '5e5a586e641371abab2ff5366fecc945673f61a57b185bba51b9e58ebd7bf51e', 0)
  ON CONFLICT (name) DO NOTHING;
