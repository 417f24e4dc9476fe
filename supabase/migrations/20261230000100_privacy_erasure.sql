-- Generated from prisma/migrations/20261230000100_privacy_erasure/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A person's erasure (DELETE /v1/me) runs on the privileged path privacy.erasure as service_role and deletes
-- their integrations, sealed secrets and provider page, which only their own requests could delete so far.
-- The policies admit that one path only (omnizen.privileged_path, set by PrivilegedDatabase.run); the grants
-- service_role holds on these tables are unchanged.
CREATE POLICY integrations_erasure ON public.integrations FOR DELETE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY integration_secrets_erasure ON public.integration_secrets FOR DELETE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY providers_erasure ON public.providers FOR DELETE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
-- the erasure also reads what it deletes (DELETE ... RETURNING, counts)
CREATE POLICY integrations_erasure_read ON public.integrations FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY integration_secrets_erasure_read ON public.integration_secrets FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');
CREATE POLICY providers_erasure_read ON public.providers FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'privacy.erasure');

-- auth.users mirrors our users for the foreign keys of seed tables (core.sync_auth_user): its e-mail copy is
-- pseudonymized with ours. Supabase's own columns are left to Supabase (an erased person is also deleted there
-- by the Hub, seed 000).
CREATE FUNCTION core.erase_auth_user(p_id uuid, p_email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
  UPDATE auth.users SET email = p_email WHERE id = p_id
$$;
REVOKE ALL ON FUNCTION core.erase_auth_user(uuid, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.erase_auth_user(uuid, text) TO service_role;

-- analytics identifiers of an erased person are pseudonymized in place (the organization's aggregates stay)
GRANT UPDATE ON core.analytics_events TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261230000100_privacy_erasure', '362049a42d7f9265697cffcce7a692367156d15202c780aea70af2b5d5cc3dd5', 0)
  ON CONFLICT (name) DO NOTHING;
