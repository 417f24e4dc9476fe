CREATE OR REPLACE FUNCTION public.begin_request(p_claims text, p_role text, OUT org_id uuid, OUT role text, OUT workspace_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF p_role NOT IN ('authenticated', 'anon') THEN
    RAISE EXCEPTION 'begin_request: role % is not allowed', p_role USING ERRCODE = '42501';
  END IF;
  PERFORM set_config('request.jwt.claims', p_claims, true);
  PERFORM set_config('role', p_role, true);
  -- An access token of a revoked session (logout, revocation, refresh-token reuse) stops working
  -- at once, not when it expires. Runs as the caller: RLS shows a user only their own sessions.
  -- Two IFs, not one AND: the query must never run for anon, which has no rights on core.sessions
  -- (a cached plan would check those rights even when the first operand is false).
  IF p_claims::jsonb ? 'session_id' THEN
    IF EXISTS (
      SELECT 1 FROM core.sessions s
      WHERE s.id = (p_claims::jsonb ->> 'session_id')::uuid AND (s.revoked_at IS NOT NULL OR s.expires_at <= now())
    ) THEN
      RAISE EXCEPTION 'the session of this access token has ended; log in again' USING ERRCODE = '28000';
    END IF;
  END IF;
  org_id := public.auth_org_id();
  role := public.auth_role();
  workspace_id := public.auth_workspace_id();
END
$$;
