-- Generated from prisma/migrations/20270207900200_member_org_ids_once/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.notifications' membership policy looks the memberships up once per transaction, not once per row; the
-- webhook_endpoint.disabled notice of a version 1 event renders without the origin it does not carry.
--
-- 1. 20270207900100 said core.member_org_ids() was inlined into notifications_current_member with its
--    ARRAY(SELECT ...) an InitPlan run once per statement. It is not: PostgreSQL inlines no function whose body holds
--    a subquery, so the policy called it, and read the memberships, for every row: 20,001 calls for a count of
--    20,000 notices as `authenticated` (570 ms). `(SELECT core.member_org_ids())` in the policy would be an InitPlan,
--    but a subquery in a policy is what Citus refuses (test/platform/citus.test.ts), so, as auth_org_id() does
--    (20261231000100_claims_verified_once):
--    * core.member_org_ids_checked() reads the memberships (the old body, as the caller: memberships' own policy
--      shows everyone their own), and for claims begin_request verified (the API's runtime login) records the answer
--      in transaction-local settings, with the claims it is for;
--    * core.member_org_ids() becomes a plain SQL function without a subquery, which PostgreSQL does inline into the
--      policy: while the claims are still the verified ones it was recorded for, it answers the recorded list (a
--      settings read per row); otherwise (the first row of the transaction, Supabase's PostgREST, claims replaced)
--      it runs the lookup.
--    So a request through the API reads the memberships once per transaction, as of its first notice read; the
--    same trust as omnizen.verified_*: only the runtime login takes the fast path, and it sets the claims themselves.
--    Over PostgREST the lookup still runs per row (as auth_org_id_checked() does there).
-- 2. 20270207900100 made the notice say {{urlOrigin}}; a version 1 event (still in the outbox at the deploy) carries
--    `url` (the full URL, which may hold a credential) and no urlOrigin: its notice names the endpoint by id only.
CREATE FUNCTION core.member_org_ids_checked() RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
  ids uuid[] := ARRAY(SELECT m.org_id FROM core.memberships m WHERE m.user_id = public.auth_user_id());
  _ text;
BEGIN
  IF public.auth_claims_verified() THEN
    _ := set_config('omnizen.member_org_ids', ids::text, true);
    _ := set_config('omnizen.member_org_ids_claims', current_setting('request.jwt.claims', true), true);
  END IF;
  RETURN ids;
END
$$;
REVOKE ALL ON FUNCTION core.member_org_ids_checked() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.member_org_ids_checked() TO authenticated;

-- Same signature: the policy (which refers to the function) takes the new form at once. No SECURITY DEFINER, no SET
-- clause and no subquery: any of them would stop PostgreSQL from inlining it.
CREATE OR REPLACE FUNCTION core.member_org_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN public.auth_claims_verified()
                   AND current_setting('omnizen.member_org_ids_claims', true) = current_setting('request.jwt.claims', true)
              THEN current_setting('omnizen.member_org_ids', true)::uuid[]
              ELSE core.member_org_ids_checked() END
$$;

COMMENT ON POLICY notifications_current_member ON core.notifications IS
  'Notices of organizations the user belongs to, and those addressed to them in person. core.member_org_ids() is inlined: the memberships are read once per transaction for the API''s verified claims (20270207900200)';

UPDATE core.notification_routes
  SET body = '{{#if urlOrigin}}The endpoint {{urlOrigin}} ({{endpointId}}) was disabled: {{reason}}.{{else}}The endpoint {{endpointId}} was disabled: {{reason}}.{{/if}}'
  WHERE event_type = 'webhook_endpoint.disabled';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270207900200_member_org_ids_once', '86d0b93a0ba2916d949589e22c0f6d0190dc2f71ee402081502bd20663df654b', 0)
  ON CONFLICT (name) DO NOTHING;
