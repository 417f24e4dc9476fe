-- public.auth_claims_verified() answers false, never NULL, where begin_request has not run in the transaction.
--
-- Its last comparison (the verified claims = the transaction's claims) is NULL when either setting is unset, so on the
-- runtime login before begin_request the function answered NULL. The policies and auth_org_id() / auth_role() use it
-- in CASE WHEN, where NULL acts as false; a check written `NOT public.auth_claims_verified()` would have let such a
-- connection through (migration 20270201000600 had to write IS NOT TRUE).
-- And it answered true on a pooled connection of the runtime login whose earlier transaction had run begin_request:
-- once set in a session, an unset placeholder setting reads '' (not NULL) after that transaction, so '' = '' held.
-- Organization and role then read NULL (nullif(..., '')), so no row was reachable, but the API-only functions of
-- 20270201000600 took such a transaction for a verified one. An empty record is now never a verified one.
-- Still one inlinable SQL expression.
CREATE OR REPLACE FUNCTION public.auth_claims_verified() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT session_user = 'omnizen_api'
     AND coalesce(current_setting('request.jwt.claim', true), '') = ''
     AND coalesce(nullif(current_setting('omnizen.verified_claims', true), '') = current_setting('request.jwt.claims', true), false)
$$;
