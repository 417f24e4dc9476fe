-- Four eyes through an API key (review r2). What an API key writes is recorded as 'api_key:<key id>' (created_by,
-- actor_id), so the payables' own-document check (PayablesService.approve: whoever created, last edited or submitted a
-- bill does not approve it) compared 'api_key:<id>' with the approver's user id and let an admin approve the bill their
-- own key had entered. A key acts for the person who created it (core.api_keys.created_by): the check now compares the
-- people behind the actors (src/modules/api-keys/acting-people.ts). Who created a key is read here: api_keys_read shows
-- keys to owners and admins signed in as themselves only, while an accountant approves too (and a creator demoted to
-- accountant keeps the documents their key wrote), so a read under RLS would miss the very key that matters.
-- The creators of the named keys of the caller's organization, to its bookkeepers (the roles that approve, and the
-- role 'service' of a key, for the same check the other way); NULL for a key whose creator was deleted (ON DELETE SET
-- NULL: a person who can no longer approve anything). The API's requests only (claims begin_request verified): over
-- Supabase's REST API (rpc/api_key_creators) it answers nothing. Read-only; needs no superuser.
CREATE FUNCTION core.api_key_creators(p_keys uuid[]) RETURNS TABLE (key_id uuid, created_by text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT k.id, k.created_by FROM core.api_keys k
  WHERE k.org_id = public.auth_org_id() AND k.id = ANY(p_keys)
    AND public.auth_claims_verified() AND public.auth_has_role('owner', 'admin', 'accountant', 'service')
$$;

REVOKE ALL ON FUNCTION core.api_key_creators(uuid[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.api_key_creators(uuid[]) TO authenticated;
