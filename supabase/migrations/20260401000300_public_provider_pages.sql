-- Generated from prisma/migrations/20260401000300_public_provider_pages/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Public provider pages: the anonymous role reads a public provider only through this function,
-- never the tables (no anon policies on seed 004's tables). It returns the public columns of a
-- provider whose is_public is true: slug, time zone, working hours and the WhatsApp contact.
-- Calendar selections, ids and the owner stay private.
CREATE FUNCTION public.public_provider_profile(p_slug text)
RETURNS TABLE (public_slug text, timezone text, working_hours jsonb, whatsapp jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT p.public_slug, p.timezone, p.settings -> 'workingHours', p.settings -> 'whatsapp'
  FROM public.providers p
  WHERE p.public_slug = p_slug AND p.is_public
$$;
REVOKE ALL ON FUNCTION public.public_provider_profile(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.public_provider_profile(text) TO anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260401000300_public_provider_pages', '2ee715741ccb0e16f954f2d1196978617bdbb3a9a5a0102d593173ca50ee254c', 0)
  ON CONFLICT (name) DO NOTHING;
