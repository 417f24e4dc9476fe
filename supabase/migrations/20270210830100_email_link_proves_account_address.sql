-- Generated from prisma/migrations/20270210830100_email_link_proves_account_address/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A link OmniZen mails to an account's address proves that address, whatever way the account signs in. The verification
-- link (identityRepository.consumeVerificationToken) and an invitation's mailed link (core.accept_invitation) marked only
-- a password identity of the address verified: an account made by a Hub or Supabase token exchange without a verified
-- e-mail has none, and one whose Hub identity now asserts another address has none of its own address. The link
-- answered verified and changed nothing, and the rule of 20270210730100 (core.user_email_verified: an identity with the
-- account's current e-mail, verified) refused it organizations, invitations and API keys for good.
--
-- core.prove_user_email(user) states once what a mailed link proves, as the e-mail change did it alone
-- (accountTokenRepository.changeEmail, which now calls it too): the account's password identity (OmniZen's own, subject =
-- the user's id) takes the account's current e-mail, verified; an account without one gets one. The proof goes there,
-- not to a Hub or Supabase identity of the same address: that one's flag is its issuer's word, and it can be unlinked
-- (DELETE /v1/auth/identities/{provider} would then answer auth.email_proof_required while the account counts as
-- verified and no new link is sent). A password identity is no way to sign in: a password login checks
-- core.user_credentials, the last-sign-in-method rule counts the password there, and the listing shows it only with a
-- password (identityRepository). Runs as its caller: the privileged auth path (service_role) and core.accept_invitation
-- (SECURITY DEFINER, owned by the tables' owner).
--
-- core.accept_invitation is otherwise 20270210590100's; its grants as 20270210500100 states them. Needs no superuser.

CREATE FUNCTION core.prove_user_email(p_user text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH account AS (SELECT u.id, u.email FROM core."User" u WHERE u.id = p_user),
  proved AS (
    UPDATE core.user_identities i SET email = a.email,
      email_verified_at = CASE WHEN lower(i.email) = lower(a.email) THEN coalesce(i.email_verified_at, now()) ELSE now() END
    FROM account a WHERE i.user_id = a.id AND i.provider = 'password'
    RETURNING i.subject)
  INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at)
  SELECT 'password', a.id, a.id, a.email, now() FROM account a WHERE NOT EXISTS (SELECT 1 FROM proved)
  ON CONFLICT (provider, subject) DO NOTHING
$$;
REVOKE ALL ON FUNCTION core.prove_user_email(text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.prove_user_email(text) TO service_role;

CREATE OR REPLACE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text, p_app text)
RETURNS core.memberships
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  inv core.invitations;
  member core.memberships;
  caller_email text;
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/invitations/accept), which audits it and emits its event' USING ERRCODE = '42501';
  END IF;
  IF uid IS NULL THEN RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501'; END IF;
  -- the caller first, in the erasure's order (it locks the person, then deletes the invitations and identities)
  SELECT u.email INTO caller_email FROM core."User" u WHERE u.id = uid FOR NO KEY UPDATE;
  IF NOT FOUND OR caller_email = 'erased+' || uid || '@invalid' THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- the organization's row FOR SHARE, checked as locked: a person's erasure locks the rows of their organizations
  -- (FOR NO KEY UPDATE) before counting their members; this acceptance waits for it and then finds the organization
  -- deleted, or the erasure waits for this one and counts the new member
  PERFORM 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- the counted limits' lock of the organization (hub.limit_locks, as BillingRepository.lockLimits takes it), held
  -- until the transaction ends: the API counts the members against the users limit after this function, under it
  INSERT INTO hub.limit_locks (org_id, app_id) VALUES (p_org, p_app) ON CONFLICT DO NOTHING;
  PERFORM 1 FROM hub.limit_locks l WHERE l.org_id = p_org AND l.app_id = p_app FOR UPDATE;
  SELECT * INTO inv FROM core.invitations i
  WHERE i.org_id = p_org AND (i.token_hash = p_token_hash OR i.mailed_token_hash = p_token_hash) FOR UPDATE;
  IF NOT FOUND OR inv.revoked_at IS NOT NULL OR inv.accepted_at IS NOT NULL OR inv.expires_at <= now() THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- its sender must still be owner or admin of the organization (an invitation's role is admin at most): one sent while
  -- the sender's demotion or removal committed escaped memberships_revoke_invitations; refused as a revoked one is.
  -- Sent by a service or an API key (invited_by NULL): unchanged
  IF inv.invited_by IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM core.memberships m WHERE m.org_id = inv.org_id AND m.user_id = inv.invited_by AND m.role IN ('owner', 'admin')) THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  IF lower(caller_email) IS DISTINCT FROM lower(inv.email) THEN
    RAISE EXCEPTION 'invitation was sent to another email address' USING ERRCODE = '42501';
  END IF;
  IF inv.mailed_token_hash IS NOT DISTINCT FROM p_token_hash THEN
    -- the mailed link proves the caller's address, as the verification link does (core.prove_user_email): an account
    -- without a password identity of that address too
    PERFORM core.prove_user_email(uid);
  ELSIF NOT EXISTS (SELECT 1 FROM core.user_identities ui
                    WHERE ui.user_id = uid AND lower(ui.email) = lower(caller_email) AND ui.email_verified_at IS NOT NULL) THEN
    RAISE EXCEPTION 'verify your e-mail address first (or accept with the link mailed to it)' USING HINT = 'invitation.email_unverified';
  END IF;
  IF EXISTS (SELECT 1 FROM core.memberships m WHERE m.org_id = inv.org_id AND m.user_id = uid) THEN
    RAISE EXCEPTION 'already a member of this organization' USING ERRCODE = '23505';
  END IF;
  UPDATE core.invitations SET accepted_at = now(), accepted_by = uid WHERE org_id = inv.org_id AND id = inv.id;
  INSERT INTO core.memberships (org_id, user_id, role) VALUES (inv.org_id, uid, inv.role)
  ON CONFLICT ON CONSTRAINT memberships_pkey DO NOTHING
  RETURNING * INTO member;
  IF member IS NULL THEN
    RAISE EXCEPTION 'already a member of this organization' USING ERRCODE = '23505';
  END IF;
  RETURN member;
END
$$;

REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text, text) TO authenticated;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210830100_email_link_proves_account_address', 'faef81b50566a3a85a6dae6a67b33ed7c2a0caae8d1e4cb610deebf7502a9c56', 0)
  ON CONFLICT (name) DO NOTHING;
