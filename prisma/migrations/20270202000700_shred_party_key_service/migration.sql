-- core.shred_party_key: a service acting for the organization may erase a party, as the API route allows
-- (@RequireRole owner, admin, service). It refused the service and answered false, so the party's contact fields were
-- blanked and the erasure audited while the key sealing its earlier audit snapshots stayed. Otherwise as in
-- 20270108000100_privacy_exports_and_keys.
CREATE OR REPLACE FUNCTION core.shred_party_key(p_party text, p_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_org uuid := public.auth_org_id();
BEGIN
  IF v_org IS NULL OR NOT public.auth_has_role('owner', 'admin', 'service') THEN RETURN false; END IF;
  IF p_party = 'vendor' THEN
    IF NOT EXISTS (SELECT 1 FROM finance.vendors WHERE org_id = v_org AND id = p_id) THEN RETURN false; END IF;
  ELSIF p_party = 'customer' THEN
    IF NOT EXISTS (SELECT 1 FROM finance.customers WHERE org_id = v_org AND id = p_id) THEN RETURN false; END IF;
  ELSE
    RETURN false;
  END IF;
  DELETE FROM core.personal_data_keys WHERE subject = p_party || ':' || p_id::text;
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION core.shred_party_key(text, uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.shred_party_key(text, uuid) TO authenticated;
