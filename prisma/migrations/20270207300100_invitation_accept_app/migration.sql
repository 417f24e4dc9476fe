-- core.accept_invitation takes the app whose users limit it checks (p_app) from the API instead of naming 'omnizen'
-- itself: InvitationsService passes SEATS_APP, the app of the users limit that creating an invitation consumes
-- (@ConsumesLimit(SEATS_APP, 'users')), so the lock, the plan and the refusal's details follow one name. The API also
-- refuses an acceptance while that app's subscription of the organization is read-only (402
-- billing.subscription_inactive, decided by EntitlementsService after this function, in the same transaction, under the
-- lock it takes here): the whole transaction is rolled back, the invitation stays pending.
-- Otherwise the body is that of 20270206000900. The two-argument function is dropped: nothing else calls it, and it
-- would keep the hard-coded app reachable.

DROP FUNCTION core.accept_invitation(uuid, text);

CREATE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text, p_app text)
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
  INSERT INTO hub.limit_locks (org_id, app_id) VALUES (p_org, p_app) ON CONFLICT DO NOTHING;
  PERFORM 1 FROM hub.limit_locks l WHERE l.org_id = p_org AND l.app_id = p_app FOR UPDATE;
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
    (SELECT s.plan FROM hub."Subscription" s WHERE s."organizationId" = p_org::text AND s."appId" = p_app),
    (SELECT a."defaultPlan" FROM hub."App" a WHERE a.id = p_app));
  SELECT f.unit, pf.plan_code IS NOT NULL, pf.limit_value INTO seat_unit, seat_listed, seat_limit
  FROM hub.features f
  LEFT JOIN hub.plan_features pf ON pf.app_id = f.app_id AND pf.feature = f.code AND pf.plan_code = cur_plan
  WHERE f.app_id = p_app AND f.code = 'users' AND f.kind = 'limit';
  IF FOUND THEN
    IF NOT seat_listed THEN seat_limit := 0; END IF;
    members := (SELECT count(*) FROM core.memberships m WHERE m.org_id = p_org);
    IF seat_limit IS NOT NULL AND members + 1 > seat_limit THEN
      cur_rank := (SELECT p.rank FROM hub.plans p WHERE p.app_id = p_app AND p.code = cur_plan);
      upgrade := (SELECT p.code FROM hub.plans p
                  JOIN hub.plan_features pf ON pf.app_id = p.app_id AND pf.plan_code = p.code AND pf.feature = 'users'
                  WHERE p.app_id = p_app AND p.rank > coalesce(cur_rank, -2147483648) AND p.audience IN ('business', 'any')
                    AND (pf.limit_value IS NULL OR pf.limit_value >= members + 1)
                  ORDER BY p.rank, p.code LIMIT 1);
      RAISE EXCEPTION '%', format('the %s plan allows %s %s and this organization already has %s members; %s before this invitation can be accepted (it stays pending until then)',
          cur_plan, seat_limit, CASE WHEN seat_limit = 1 THEN regexp_replace(coalesce(seat_unit, 'users'), 's$', '') ELSE coalesce(seat_unit, 'users') END, members,
          CASE WHEN upgrade IS NULL THEN 'no plan allows more, so an admin must remove a member' ELSE 'an admin must upgrade to ' || upgrade END)
        USING HINT = 'billing.limit_reached',
              DETAIL = json_build_object('app', p_app, 'feature', 'users', 'plan', cur_plan, 'limit', seat_limit, 'usage', members, 'upgradeTo', upgrade)::text;
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

REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text, text) TO authenticated;
