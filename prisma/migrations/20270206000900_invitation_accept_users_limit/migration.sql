-- Accepting an invitation checks the organization's `users` limit again. The limit counts members plus pending
-- invitations, and creating an invitation consumes it (@ConsumesLimit('omnizen', 'users')), so accepting normally
-- only turns a counted invitation into a counted member. But invitations made before a downgrade stay pending: a
-- professional organization with 7 pending invitations dropped to starter (5 users) and all 7 were accepted, 8 members.
-- core.accept_invitation now locks the organization's hub.limit_locks row of the app (the lock every counted-limit check
-- takes, EntitlementsService.enforce), then refuses, HINT billing.limit_reached (402), when the members already reach
-- the plan's limit. The invitation stays pending (the whole transaction is rolled back): it can be accepted after an
-- upgrade, or once a member leaves. Two acceptances at once are counted one at a time.
-- The plan is read as the entitlements read it: the organization's subscription to omnizen (whatever its status), else
-- the app's default plan; a plan without a `users` row allows none, a NULL limit is unlimited. The refusal's DETAIL
-- (JSON: app, feature, plan, limit, usage = members, upgradeTo) becomes the error's details.
-- The lock is taken before the invitation row is, in the order of the other writers (limit first, then rows); a
-- refused caller (another e-mail, an unknown token) holds it only until its transaction is rolled back.
-- Otherwise the body is that of 20270201000600, but for two checks moved before the limit: the organization's existence
-- (first, so no lock row is made for an unknown organization) and an invitee who is already a member (409 rather than 402).

CREATE OR REPLACE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text)
RETURNS core.memberships
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  uid text := auth.uid()::text;
  inv core.invitations;
  member core.memberships;
  caller_email text;
  cur_plan text;
  cur_rank int;
  seat_unit text;
  seat_listed boolean;
  seat_limit bigint;
  members bigint;
  upgrade text;
BEGIN
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/invitations/accept), which audits it and emits its event' USING ERRCODE = '42501';
  END IF;
  IF uid IS NULL THEN RAISE EXCEPTION 'no authenticated user' USING ERRCODE = '42501'; END IF;
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL) THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  -- the counted limits' lock of the organization (hub.limit_locks, as BillingRepository.lockLimits takes it)
  INSERT INTO hub.limit_locks (org_id, app_id) VALUES (p_org, 'omnizen') ON CONFLICT DO NOTHING;
  PERFORM 1 FROM hub.limit_locks l WHERE l.org_id = p_org AND l.app_id = 'omnizen' FOR UPDATE;
  SELECT * INTO inv FROM core.invitations i
  WHERE i.org_id = p_org AND (i.token_hash = p_token_hash OR i.mailed_token_hash = p_token_hash) FOR UPDATE;
  IF NOT FOUND OR inv.revoked_at IS NOT NULL OR inv.accepted_at IS NOT NULL OR inv.expires_at <= now() THEN
    RAISE EXCEPTION 'invitation is invalid, used, revoked or expired' USING ERRCODE = 'P0002';
  END IF;
  SELECT u.email INTO caller_email FROM core."User" u WHERE u.id = uid;
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
  -- the users limit of the organization's plan, against the members it already has (read after the lock)
  cur_plan := coalesce(
    (SELECT s.plan FROM hub."Subscription" s WHERE s."organizationId" = p_org::text AND s."appId" = 'omnizen'),
    (SELECT a."defaultPlan" FROM hub."App" a WHERE a.id = 'omnizen'));
  SELECT f.unit, pf.plan_code IS NOT NULL, pf.limit_value INTO seat_unit, seat_listed, seat_limit
  FROM hub.features f
  LEFT JOIN hub.plan_features pf ON pf.app_id = f.app_id AND pf.feature = f.code AND pf.plan_code = cur_plan
  WHERE f.app_id = 'omnizen' AND f.code = 'users' AND f.kind = 'limit';
  IF FOUND THEN
    IF NOT seat_listed THEN seat_limit := 0; END IF;
    members := (SELECT count(*) FROM core.memberships m WHERE m.org_id = p_org);
    IF seat_limit IS NOT NULL AND members + 1 > seat_limit THEN
      cur_rank := (SELECT p.rank FROM hub.plans p WHERE p.app_id = 'omnizen' AND p.code = cur_plan);
      upgrade := (SELECT p.code FROM hub.plans p
                  JOIN hub.plan_features pf ON pf.app_id = p.app_id AND pf.plan_code = p.code AND pf.feature = 'users'
                  WHERE p.app_id = 'omnizen' AND p.rank > coalesce(cur_rank, -2147483648) AND p.audience IN ('business', 'any')
                    AND (pf.limit_value IS NULL OR pf.limit_value >= members + 1)
                  ORDER BY p.rank, p.code LIMIT 1);
      RAISE EXCEPTION '%', format('the %s plan allows %s %s and this organization already has %s members; %s before this invitation can be accepted (it stays pending until then)',
          cur_plan, seat_limit, CASE WHEN seat_limit = 1 THEN regexp_replace(coalesce(seat_unit, 'users'), 's$', '') ELSE coalesce(seat_unit, 'users') END, members,
          CASE WHEN upgrade IS NULL THEN 'no plan allows more, so an admin must remove a member' ELSE 'an admin must upgrade to ' || upgrade END)
        USING HINT = 'billing.limit_reached',
              DETAIL = json_build_object('app', 'omnizen', 'feature', 'users', 'plan', cur_plan, 'limit', seat_limit, 'usage', members, 'upgradeTo', upgrade)::text;
    END IF;
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
