-- Generated from prisma/migrations/20270210730100_verified_email_to_create/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- An account whose e-mail nobody has proved (someone registered it with another person's address) could create business
-- organizations, invite people and create API keys. When the address's owner later claims the account (a verified
-- sign-in or a reset link: auth/account-claim.service.ts) its invitations and keys go, but its memberships stay (a
-- genuine never-verified user keeps their company's organizations). Each of the three now needs the acting person's
-- e-mail verified, here where each is written, so no path goes around it:
--  * core.create_organization: the calling user, who becomes the owner. The personal organization made at
--    registration is not made here (organizationRepository.createPersonal) and is unaffected.
--  * core.invitations, BEFORE INSERT: the sender (invited_by; without one, the calling user). An invitation a service
--    sends (invited_by NULL, no user's claims) is unchanged.
--  * core.api_keys, BEFORE INSERT: the creator (created_by; without one, the calling user). Only people create keys.
-- Verified is what identityRepository.hasVerifiedEmail answers for the account's own address and core.accept_invitation
-- checks: an identity of the user (core.user_identities) for the account's current e-mail with email_verified_at set;
-- core.user_email_verified states it once for the database. A refusal raises with HINT auth.email_unverified (P0001,
-- as accept_invitation's invitation.email_unverified; no RLS denial), which the API answers as 403 auth.email_unverified
-- (mapDatabaseError). Triggers rather than the tables' policies: a policy's refusal is a bare 42501 that cannot say why.
--
-- core.create_organization is otherwise 20270201000600's, its grants as 20261201000100 states them. The new functions
-- are owned by the migrations' role, search_path '', executable by no API role (the SECURITY DEFINER function and the
-- triggers call them). Existing organizations, invitations and keys are untouched. Needs no superuser.

-- Whether the user's current e-mail is proved by one of their identities. Runs as its caller: the SECURITY DEFINER
-- functions below (owned by the tables' owner, which reads core.user_identities).
CREATE FUNCTION core.user_email_verified(p_user text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM core."User" u JOIN core.user_identities i ON i.user_id = u.id
    WHERE u.id = p_user AND lower(i.email) = lower(u.email) AND i.email_verified_at IS NOT NULL)
$$;
REVOKE ALL ON FUNCTION core.user_email_verified(text) FROM PUBLIC, anon, authenticated, service_role;

CREATE OR REPLACE FUNCTION core.create_organization(p_name text, p_account_type text DEFAULT 'business')
RETURNS core.organizations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  org core.organizations;
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/orgs), which audits it' USING ERRCODE = '42501';
  END IF;
  IF uid IS NULL THEN
    RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501';
  END IF;
  IF NOT core.user_email_verified(uid) THEN
    RAISE EXCEPTION 'creating an organization needs a verified e-mail address: open the link mailed to it (POST /v1/auth/email-verification sends a new one)'
      USING HINT = 'auth.email_unverified';
  END IF;
  INSERT INTO core.organizations (name, account_type, owner_user_id)
  VALUES (p_name, p_account_type, uid) RETURNING * INTO org;
  INSERT INTO core.memberships (org_id, user_id, role) VALUES (org.id, uid, 'owner');
  RETURN org;
END
$$;
REVOKE ALL ON FUNCTION core.create_organization(text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.create_organization(text, text) TO authenticated, service_role;

CREATE FUNCTION core.invitations_need_verified_sender() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  sender text := coalesce(NEW.invited_by, public.auth_user_id());
BEGIN
  IF sender IS NOT NULL AND NOT core.user_email_verified(sender) THEN
    RAISE EXCEPTION 'inviting people needs a verified e-mail address: open the link mailed to it (POST /v1/auth/email-verification sends a new one)'
      USING HINT = 'auth.email_unverified';
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION core.invitations_need_verified_sender() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER invitations_need_verified_sender BEFORE INSERT ON core.invitations
  FOR EACH ROW EXECUTE FUNCTION core.invitations_need_verified_sender();

CREATE FUNCTION core.api_keys_need_verified_creator() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  creator text := coalesce(NEW.created_by, public.auth_user_id());
BEGIN
  IF creator IS NOT NULL AND NOT core.user_email_verified(creator) THEN
    RAISE EXCEPTION 'creating an API key needs a verified e-mail address: open the link mailed to it (POST /v1/auth/email-verification sends a new one)'
      USING HINT = 'auth.email_unverified';
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION core.api_keys_need_verified_creator() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER api_keys_need_verified_creator BEFORE INSERT ON core.api_keys
  FOR EACH ROW EXECUTE FUNCTION core.api_keys_need_verified_creator();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210730100_verified_email_to_create', '1d13060b34c4148fded8a97d858691fac0401813014258820ba6deac4b9e09fc', 0)
  ON CONFLICT (name) DO NOTHING;
