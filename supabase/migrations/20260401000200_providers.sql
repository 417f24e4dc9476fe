-- Generated from prisma/migrations/20260401000200_providers/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Seed 004, second step: providers (the provider's business identity; today 1:1 with a user),
-- then the seed's data movement: one providers row per integrations.user_id, with any
-- integrations.selected_calendar_ids copied into settings.calendar.selectedCalendarIds, and the
-- column dropped.

CREATE TABLE public.providers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  public_slug text, -- unique identifier for public pages; may be null initially
  is_public boolean NOT NULL DEFAULT false,
  timezone text NOT NULL DEFAULT 'Asia/Dubai',
  settings jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.providers ADD CONSTRAINT providers_owner_user_id_uq UNIQUE (owner_user_id);
ALTER TABLE public.providers ADD CONSTRAINT providers_public_slug_uq UNIQUE (public_slug);
CREATE TRIGGER providers_touch BEFORE UPDATE ON public.providers
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

ALTER TABLE public.providers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY providers_select ON public.providers FOR SELECT TO authenticated USING (auth.uid() = owner_user_id);
CREATE POLICY providers_insert ON public.providers FOR INSERT TO authenticated WITH CHECK (auth.uid() = owner_user_id);
CREATE POLICY providers_update ON public.providers FOR UPDATE TO authenticated
  USING (auth.uid() = owner_user_id) WITH CHECK (auth.uid() = owner_user_id);
CREATE POLICY providers_delete ON public.providers FOR DELETE TO authenticated USING (auth.uid() = owner_user_id);
REVOKE ALL ON public.providers FROM PUBLIC, anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.providers TO authenticated, service_role;

-- Backfill: a provider for every user with an integration. A user's calendar selections may sit
-- on several integrations (one per type): they are merged, in a stable order, without duplicates.
INSERT INTO public.providers (owner_user_id, settings)
SELECT u.user_id,
       CASE WHEN u.calendar_ids IS NULL THEN '{}'::jsonb
            ELSE jsonb_build_object('calendar', jsonb_build_object('selectedCalendarIds', to_jsonb(u.calendar_ids)))
       END
FROM (
  SELECT i.user_id,
         (SELECT array_agg(DISTINCT c ORDER BY c)
            FROM public.integrations j, unnest(j.selected_calendar_ids) AS c
           WHERE j.user_id = i.user_id) AS calendar_ids
  FROM public.integrations i
  GROUP BY i.user_id
) u
ON CONFLICT (owner_user_id) DO NOTHING;

ALTER TABLE public.integrations DROP COLUMN selected_calendar_ids;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260401000200_providers', 'b2ae00566d9477b8b809c4da288ec1e140e1e554a7483bc3aff3b3100bab19f6', 0)
  ON CONFLICT (name) DO NOTHING;
