-- public.verify_api_key touches last_used_at without waiting for anyone.
--
-- Its UPDATE (at most once a minute) ran inside the request's transaction and so held the key's row lock until that
-- request ended: every other request with the same key that read the old last_used_at blocked on the same UPDATE for
-- the whole first request. The row is now taken with SKIP LOCKED: when another transaction holds it (another
-- request's touch, or a revocation being written), this request leaves the touch to it and goes on at once.
-- As in 20261228000100_api_keys_rate_limits otherwise (grants are kept by CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION public.verify_api_key(p_key uuid, p_hash text, p_org uuid, OUT org_id uuid, OUT scopes text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  k core.api_keys;
BEGIN
  SELECT * INTO k FROM core.api_keys a WHERE a.id = p_key AND a.secret_hash = p_hash;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the API key is not valid' USING ERRCODE = '28000';
  END IF;
  IF k.revoked_at IS NOT NULL THEN
    RAISE EXCEPTION 'the API key has been revoked' USING ERRCODE = '28000';
  END IF;
  IF k.expires_at IS NOT NULL AND k.expires_at <= now() THEN
    RAISE EXCEPTION 'the API key has expired' USING ERRCODE = '28000';
  END IF;
  org_id := k.org_id;
  scopes := k.scopes;
  IF k.org_id = p_org AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute') THEN
    UPDATE core.api_keys a SET last_used_at = now()
    WHERE (a.org_id, a.id) = (
      SELECT l.org_id, l.id FROM core.api_keys l
      WHERE l.org_id = k.org_id AND l.id = k.id AND (l.last_used_at IS NULL OR l.last_used_at < now() - interval '1 minute')
      FOR NO KEY UPDATE SKIP LOCKED);
  END IF;
END
$$;
