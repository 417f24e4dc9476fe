-- Rolling deploy: core.accept_invitation(uuid, text) again, for the instances of the previous release.
-- 20270207300100 replaced the two-argument function with core.accept_invitation(p_org, p_token_hash, p_app) and dropped
-- it; while a deploy replaces the instances one by one, an instance of the previous release still calls the two-argument
-- one and answered every acceptance 500 (undefined function) until it was replaced.
--
-- The wrapper calls the three-argument function with the app the previous release locked and counted, 'omnizen' (the
-- API's SEATS_APP), so every check of the invitation is that function's. The previous release's API does not count the
-- members after the call (its function did, 20270206000900): the wrapper does, under the lock the three-argument
-- function took, with the plan lookup and refusal of 20270206000900 (HINT billing.limit_reached, the JSON DETAIL that
-- release turns into the 402's details); a refusal rolls the membership back, the invitation stays pending.
-- Same security (SECURITY DEFINER, empty search_path, only through the API or for service_role: the three-argument
-- function's own guard) and the same grants (EXECUTE to authenticated only).
--
-- TODO(remove after one release): drop this function once no instance of the release before 20270207300100 runs:
--   DROP FUNCTION core.accept_invitation(uuid, text);

CREATE FUNCTION core.accept_invitation(p_org uuid, p_token_hash text)
RETURNS core.memberships
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  member core.memberships;
  cur_plan text;
  cur_rank int;
  seat_unit text;
  seat_listed boolean;
  seat_limit bigint;
  members bigint;
  upgrade text;
BEGIN
  -- as the three-argument function (which checks the same again): never over Supabase's REST API
  IF public.auth_claims_verified() IS NOT TRUE AND current_setting('role', true) IS DISTINCT FROM 'service_role' THEN
    RAISE EXCEPTION 'this function runs only through the API (POST /v1/invitations/accept), which audits it and emits its event' USING ERRCODE = '42501';
  END IF;
  member := core.accept_invitation(p_org, p_token_hash, 'omnizen');
  -- the users limit of the organization's plan, against the members it had before this one (20270206000900's check)
  cur_plan := coalesce(
    (SELECT s.plan FROM hub."Subscription" s WHERE s."organizationId" = p_org::text AND s."appId" = 'omnizen'),
    (SELECT a."defaultPlan" FROM hub."App" a WHERE a.id = 'omnizen'));
  SELECT f.unit, pf.plan_code IS NOT NULL, pf.limit_value INTO seat_unit, seat_listed, seat_limit
  FROM hub.features f
  LEFT JOIN hub.plan_features pf ON pf.app_id = f.app_id AND pf.feature = f.code AND pf.plan_code = cur_plan
  WHERE f.app_id = 'omnizen' AND f.code = 'users' AND f.kind = 'limit';
  IF FOUND THEN
    IF NOT seat_listed THEN seat_limit := 0; END IF;
    members := (SELECT count(*) FROM core.memberships m WHERE m.org_id = p_org AND m.user_id <> member.user_id);
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
  RETURN member;
END
$$;

REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text) TO authenticated;
