-- public.begin_request sets the request's claims and role; only the API's runtime login calls it (granted
-- in 20260101000100_core). Functions are executable by PUBLIC unless revoked, so anon, authenticated and
-- analyst logins could call it too: on Supabase, PostgREST exposes public functions as /rpc/..., where an
-- anonymous caller could name any user and organization in the claims and learn from the answer whether
-- that user is a member.
REVOKE ALL ON FUNCTION public.begin_request(text, text) FROM PUBLIC;
