-- Generated from prisma/migrations/20270207300100_invitation_accept_app/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.accept_invitation takes the app whose users limit applies (p_app) from the API instead of naming 'omnizen'
-- itself: InvitationsService passes SEATS_APP, the app of the users limit that creating an invitation consumes
-- (@ConsumesLimit(SEATS_APP, 'users')), so the lock and the refusal's details follow one name.
--
-- It no longer decides the users limit: 20270206000900's body read the organization's plan from hub."Subscription",
-- hub."App", hub.features, hub.plan_features and hub.plans itself, a copy of EntitlementsService's plan lookup (which
-- also knows personal-vs-business billing, the status rules, the upgrade to name and the refusal's wording). The
-- function keeps the organization's counted-limits lock (hub.limit_locks, taken before the invitation is read), the
-- invitation's checks and the insert of the membership; InvitationsService.accept then counts the members in the same
-- transaction, still under that lock, and EntitlementsService.enforceWithin refuses (402 billing.limit_reached) when
-- they exceed the plan's users limit; the API also refuses while that app's subscription of the organization is
-- read-only (402 billing.subscription_inactive). Either refusal rolls the whole transaction back: the invitation stays
-- pending.
--
-- The caller's core."User" row is locked first (FOR NO KEY UPDATE, as UserRepository.lockIfNotErased takes it), before
-- the invitation: the person's erasure locks that row FOR UPDATE and then deletes the invitations to the address and
-- the identities, which an acceptance locks (the invitation) and updates (a mailed token verifies the identity); the
-- membership's insert then needs a key-share lock on that row. Taken the other way round, the two deadlocked (409).
-- An erased caller (pseudonymous e-mail erased+<id>@invalid, or no row) is answered like the invitations the erasure
-- deleted: invalid (P0002, 404 invitation.not_found).
--
-- The two-argument function is dropped: nothing else calls it, and it would keep the hard-coded app reachable.

DROP FUNCTION core.accept_invitation(uuid, text);

CREATE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text, p_app text)
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
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL) THEN
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
  IF lower(caller_email) IS DISTINCT FROM lower(inv.email) THEN
    RAISE EXCEPTION 'invitation was sent to another email address' USING ERRCODE = '42501';
  END IF;
  IF inv.mailed_token_hash IS NOT DISTINCT FROM p_token_hash THEN
    UPDATE core.user_identities SET email_verified_at = coalesce(email_verified_at, now())
    WHERE user_id = uid AND provider = 'password' AND lower(email) = lower(caller_email);
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

REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text, text) TO authenticated;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270207300100_invitation_accept_app', '171f196589aa91843c1d7d583811f13a61906222a25da62bfe1daf1ace177184', 0)
  ON CONFLICT (name) DO NOTHING;
