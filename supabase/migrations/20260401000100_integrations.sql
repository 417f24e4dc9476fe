-- Generated from prisma/migrations/20260401000100_integrations/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Seed 004, first step: integrations and their secrets, scoped by user (auth.uid()), not by organization.
-- integrations still carries selected_calendar_ids here, as the seed's history had it; the next
-- migration (providers) moves it into providers.settings.calendar.selectedCalendarIds and drops it.
-- Beyond the seed, as every table of ours: RLS is FORCED and policies name the role (TO authenticated).

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE OR REPLACE FUNCTION public.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TABLE public.integrations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  integration_type text NOT NULL, -- e.g. 'icloud', 'google', 'stripe'
  label text,
  status text NOT NULL DEFAULT 'active', -- active|disabled|error
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  external_username text,
  external_email text,
  selected_calendar_ids text[] -- moved to providers.settings by the next migration
);
CREATE INDEX integrations_user_id_idx ON public.integrations (user_id);
ALTER TABLE public.integrations ADD CONSTRAINT integrations_user_type_uq UNIQUE (user_id, integration_type);
CREATE TRIGGER integrations_touch BEFORE UPDATE ON public.integrations
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- Sensitive credentials/config, apart from integrations on purpose. `secret` holds what the API
-- sealed (AES-256-GCM): {ciphertext, iv, tag, kid}; the database never sees a plaintext secret.
CREATE TABLE public.integration_secrets (
  integration_id uuid PRIMARY KEY REFERENCES public.integrations(id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  secret jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integration_secrets_user_id_idx ON public.integration_secrets (user_id);

-- Fills user_id from the integration when missing and refuses a user_id that is not the
-- integration's owner. Runs with the caller's rights: an integration the caller cannot see
-- (another user's) is "not found" here, before the policies are even asked.
CREATE OR REPLACE FUNCTION public.enforce_integration_owner() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  owner uuid;
BEGIN
  SELECT i.user_id INTO owner FROM public.integrations i WHERE i.id = NEW.integration_id;
  IF owner IS NULL THEN
    RAISE EXCEPTION 'integration % was not found', NEW.integration_id USING ERRCODE = '23503';
  END IF;
  IF NEW.user_id IS NULL THEN
    NEW.user_id := owner;
  ELSIF NEW.user_id <> owner THEN
    RAISE EXCEPTION 'integration_secrets.user_id must be the owner of integration %', NEW.integration_id
      USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER integration_secrets_owner BEFORE INSERT OR UPDATE ON public.integration_secrets
  FOR EACH ROW EXECUTE FUNCTION public.enforce_integration_owner();
CREATE TRIGGER integration_secrets_touch BEFORE UPDATE ON public.integration_secrets
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

ALTER TABLE public.integrations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE public.integration_secrets ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY integrations_select ON public.integrations FOR SELECT TO authenticated USING (auth.uid() = user_id);
CREATE POLICY integrations_insert ON public.integrations FOR INSERT TO authenticated WITH CHECK (auth.uid() = user_id);
CREATE POLICY integrations_update ON public.integrations FOR UPDATE TO authenticated
  USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);
CREATE POLICY integrations_delete ON public.integrations FOR DELETE TO authenticated USING (auth.uid() = user_id);

CREATE POLICY integration_secrets_select ON public.integration_secrets FOR SELECT TO authenticated USING (auth.uid() = user_id);
CREATE POLICY integration_secrets_insert ON public.integration_secrets FOR INSERT TO authenticated WITH CHECK (auth.uid() = user_id);
CREATE POLICY integration_secrets_update ON public.integration_secrets FOR UPDATE TO authenticated
  USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);
CREATE POLICY integration_secrets_delete ON public.integration_secrets FOR DELETE TO authenticated USING (auth.uid() = user_id);

-- anon gets nothing on these tables (public pages go through a SECURITY DEFINER function);
-- service_role (BYPASSRLS) is the secrets:rotate path.
REVOKE ALL ON public.integrations, public.integration_secrets FROM PUBLIC, anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.integrations, public.integration_secrets TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260401000100_integrations', '759ba1b298337c80bb3e4de9c9f52102dcea64851096fcd234bad773aeb1eb06', 0)
  ON CONFLICT (name) DO NOTHING;
