-- What a caller of Supabase's REST API (PostgREST: `anon`, or `authenticated` with the token's claims, never through
-- begin_request) read in core, ai and public that the API does not show the same caller, after 20270209090100 and
-- 20270209100100 closed hub's. The catalog of every table, view and function readable by anon or authenticated was
-- reviewed; these four were open:
--
-- * ai.provider_keys (every member, a viewer too: provider_keys_runner): the organization's own AI provider key,
--   sealed, with its last four characters and its endpoint. GET /v1/orgs/:orgId/ai/provider-key answers the hint
--   and endpoint to owners and admins only, never the sealed value; runs open the key inside the API
--   (ProviderKeysService.connection, in the run's verified transaction; the embeddings' ingestion as service_role).
-- * core.webhook_endpoints (owners and admins): each endpoint's sealed signing secret and the previous one of a
--   rotation. The API shows a secret once, in the answer that creates it, never the sealed value; the delivery worker
--   and `npm run secrets:rotate` read it as service_role, rotate-secret in the admin's verified transaction.
-- * core.invitations (owners and admins): the hash of each invitation's token and of the token mailed to the
--   invitee, which GET /v1/orgs/:orgId/invitations does not answer. Acceptance compares them inside
--   core.accept_invitation (SECURITY DEFINER, API-only), seat counts read them in hub.seat_usage (SECURITY DEFINER),
--   the mailer as service_role: no API read of the table runs under claims begin_request did not verify.
--   For the three tables, reads as `authenticated` are closed to every transaction but the API's (verified
--   claims), as hub.limit_locks' were: a RESTRICTIVE policy ANDed with the table's own (one inlined expression, no
--   subquery: Citus). Service-role keys and the privileged paths are untouched (the policies are TO authenticated).
-- * public.public_provider_profile (anon, rpc/public_provider_profile): returned a public provider's whole WhatsApp
--   settings, the phone number also while WhatsApp booking is switched off, which GET /v1/public/providers/:slug
--   then leaves out ("absent when not enabled"). It now returns the fields the public page uses, and only while
--   enabled (truthy, as the API reads it); otherwise `{"enabled": false}`. No settings: NULL, as before.
--
-- Left readable, as the API shows them to the same callers: core.audit_logs, webhook_messages and _attempts (owners
-- and admins), core.sessions (your own), core.analytics_* (owners and admins with the analytics scope), ai.runs and
-- run_steps (your own, or owners and admins), ai.agents and agent_triggers (members), finance (members; a member's
-- expense claims are their own by policy), public.integrations and integration_secrets (your own, sealed, writable
-- over REST by their owner as seed 004 specifies).
CREATE POLICY rest_path_closed_select ON ai.provider_keys AS RESTRICTIVE FOR SELECT TO authenticated
  USING (public.auth_claims_verified());
CREATE POLICY rest_path_closed_select ON core.webhook_endpoints AS RESTRICTIVE FOR SELECT TO authenticated
  USING (public.auth_claims_verified());
CREATE POLICY rest_path_closed_select ON core.invitations AS RESTRICTIVE FOR SELECT TO authenticated
  USING (public.auth_claims_verified());

CREATE OR REPLACE FUNCTION public.public_provider_profile(p_slug text)
RETURNS TABLE (public_slug text, timezone text, working_hours jsonb, whatsapp jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT p.public_slug, p.timezone, p.settings -> 'workingHours',
    CASE WHEN w.v IS NULL OR jsonb_typeof(w.v) = 'null' THEN w.v
         WHEN jsonb_typeof(w.v) = 'object' AND CASE jsonb_typeof(w.v -> 'enabled')
                WHEN 'boolean' THEN (w.v ->> 'enabled')::boolean
                WHEN 'number' THEN (w.v ->> 'enabled')::numeric <> 0
                WHEN 'string' THEN w.v ->> 'enabled' <> ''
                WHEN 'object' THEN true
                WHEN 'array' THEN true
                ELSE false END
           THEN jsonb_strip_nulls(jsonb_build_object('enabled', w.v -> 'enabled', 'phoneE164', w.v -> 'phoneE164',
                                                     'messageTemplate', w.v -> 'messageTemplate'))
         ELSE '{"enabled": false}'::jsonb END
  FROM public.providers p CROSS JOIN LATERAL (SELECT p.settings -> 'whatsapp' AS v) w
  WHERE p.public_slug = p_slug AND p.is_public
$$;
