-- Generated from prisma/migrations/20270210360100_provider_rows_checked/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- public.providers is writable over REST by its owner (seed 004), and what was written there was read back unchecked:
-- settings.workingHours.days as a number, whatsapp.phoneE164 as a number, workingHours as a string made the public
-- availability answer 500 and the public profile and GET /v1/me/provider answer shapes their schema does not have;
-- 500 calendars (the API takes 50, http and https only) made every anonymous availability request ask all of them;
-- a reserved slug such as `admin` could be claimed.
--
-- public.check_provider_row refuses, whoever writes the row, what PATCH /v1/me/provider refuses (ProviderSettingsDto's
-- shape rules, the publicSlug's shape and ProvidersService's reserved slugs, an IANA time zone): on INSERT the whole
-- row, on UPDATE only the slug, time zone and settings groups the statement changes. Rows written before this stay
-- readable and editable (a request that changes another group of them is not refused for an old one); the API reads
-- a malformed group as not set (provider-settings.ts). Through the API nothing changes: it checks the same first.
-- The errors name the problem and carry the API's codes in their HINT (validation_failed, provider.slug_reserved,
-- provider.working_hours_invalid).

-- An IANA zone as the API accepts one (IsIanaZone: `UTC`, or Area/Location known to the time zone database).
CREATE FUNCTION public.provider_zone_known(p_zone text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = '' AS $$
BEGIN
  IF p_zone IS NULL OR NOT (p_zone = 'UTC' OR p_zone ~ '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)+$') THEN
    RETURN false;
  END IF;
  PERFORM pg_catalog.now() AT TIME ZONE p_zone;
  RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
  RETURN false;
END
$$;

-- ProvidersService's RESERVED_SLUGS (a test keeps the two lists equal).
CREATE FUNCTION public.provider_slug_reserved(p_slug text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$
  SELECT p_slug = ANY (ARRAY[
    'about', 'account', 'admin', 'api', 'app', 'apps', 'assets', 'auth', 'billing', 'blog', 'book', 'booking', 'c', 'calendar',
    'contact', 'dashboard', 'docs', 'edit', 'help', 'home', 'login', 'logout', 'me', 'new', 'null', 'omnizen', 'privacy',
    'provider', 'providers', 'public', 'register', 'root', 'settings', 'signin', 'signup', 'static', 'status', 'support',
    'system', 'terms', 'undefined', 'user', 'users', 'www'])
$$;

-- The first problem of one settings group (NULL: none; a group that is absent or JSON null is not set).
CREATE FUNCTION public.provider_settings_group_problem(p_group text, v jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = '' AS $$
DECLARE
  k text;
  n int;
  e jsonb;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN NULL;
  END IF;
  IF p_group NOT IN ('workingHours', 'whatsapp', 'calendar') THEN
    RETURN format('settings.%s is not a settings group (workingHours, whatsapp, calendar)', p_group);
  END IF;
  IF jsonb_typeof(v) <> 'object' THEN
    RETURN format('settings.%s must be an object', p_group);
  END IF;
  SELECT x INTO k FROM jsonb_object_keys(v) x
  WHERE x <> ALL (CASE p_group WHEN 'workingHours' THEN ARRAY['timezone', 'days', 'start', 'end']
                               WHEN 'whatsapp' THEN ARRAY['enabled', 'phoneE164', 'messageTemplate']
                               ELSE ARRAY['selectedCalendarIds'] END)
  ORDER BY x LIMIT 1;
  IF k IS NOT NULL THEN
    RETURN format('settings.%s.%s is not a setting of the group', p_group, k);
  END IF;

  IF p_group = 'workingHours' THEN
    IF jsonb_typeof(v -> 'timezone') IS DISTINCT FROM 'string' OR NOT public.provider_zone_known(v ->> 'timezone') THEN
      RETURN 'settings.workingHours.timezone must be an IANA time zone such as Asia/Dubai';
    END IF;
    IF jsonb_typeof(v -> 'days') IS DISTINCT FROM 'array' THEN
      RETURN 'settings.workingHours.days must be an array of ISO weekdays (1 = Monday ... 7 = Sunday)';
    END IF;
    n := jsonb_array_length(v -> 'days');
    IF n NOT BETWEEN 1 AND 7 THEN
      RETURN 'settings.workingHours.days must hold 1 to 7 weekdays';
    END IF;
    FOR e IN SELECT d FROM jsonb_array_elements(v -> 'days') d LOOP
      IF (CASE WHEN jsonb_typeof(e) = 'number' THEN e::numeric NOT IN (1, 2, 3, 4, 5, 6, 7) ELSE true END) THEN
        RETURN 'settings.workingHours.days must be ISO weekdays, whole numbers 1 (Monday) to 7 (Sunday)';
      END IF;
    END LOOP;
    IF (SELECT count(DISTINCT d::numeric) FROM jsonb_array_elements(v -> 'days') d) <> n THEN
      RETURN 'settings.workingHours.days must not repeat a weekday';
    END IF;
    IF jsonb_typeof(v -> 'start') IS DISTINCT FROM 'string' OR (v ->> 'start') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
      RETURN 'settings.workingHours.start must be a time HH:MM';
    END IF;
    IF jsonb_typeof(v -> 'end') IS DISTINCT FROM 'string' OR (v ->> 'end') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
      RETURN 'settings.workingHours.end must be a time HH:MM';
    END IF;
  ELSIF p_group = 'whatsapp' THEN
    IF jsonb_typeof(v -> 'enabled') IS DISTINCT FROM 'boolean' THEN
      RETURN 'settings.whatsapp.enabled must be true or false';
    END IF;
    IF (v -> 'enabled' = 'true'::jsonb OR v ? 'phoneE164')
       AND (jsonb_typeof(v -> 'phoneE164') IS DISTINCT FROM 'string' OR (v ->> 'phoneE164') !~ '^\+[1-9][0-9]{6,14}$') THEN
      RETURN 'settings.whatsapp.phoneE164 must be a phone number in E.164 form, e.g. +971500000000';
    END IF;
    IF (v -> 'enabled' = 'true'::jsonb OR v ? 'messageTemplate')
       AND (jsonb_typeof(v -> 'messageTemplate') IS DISTINCT FROM 'string' OR length(v ->> 'messageTemplate') > 500
            OR strpos(v ->> 'messageTemplate', '{date}') = 0 OR strpos(v ->> 'messageTemplate', '{time}') = 0) THEN
      RETURN 'settings.whatsapp.messageTemplate must be a text of at most 500 characters containing {date} and {time}';
    END IF;
  ELSE
    IF jsonb_typeof(v -> 'selectedCalendarIds') IS DISTINCT FROM 'array' THEN
      RETURN 'settings.calendar.selectedCalendarIds must be an array of calendar URLs';
    END IF;
    n := jsonb_array_length(v -> 'selectedCalendarIds');
    IF n > 50 THEN
      RETURN format('settings.calendar.selectedCalendarIds holds %s calendars, more than 50', n);
    END IF;
    FOR e IN SELECT c FROM jsonb_array_elements(v -> 'selectedCalendarIds') c LOOP
      IF jsonb_typeof(e) <> 'string' OR length(e #>> '{}') > 2048 OR (e #>> '{}') !~* '^https?://[^[:space:]/?#]+([/?#][^[:space:]]*)?$' THEN
        RETURN 'each settings.calendar.selectedCalendarIds entry must be an http or https calendar URL of at most 2048 characters';
      END IF;
    END LOOP;
    IF (SELECT count(DISTINCT c) FROM jsonb_array_elements(v -> 'selectedCalendarIds') c) <> n THEN
      RETURN 'settings.calendar.selectedCalendarIds must not repeat a calendar';
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- SECURITY DEFINER for the helpers' EXECUTE only: it reads nothing but NEW and OLD
CREATE FUNCTION public.check_provider_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  k text;
  problem text;
  old_settings jsonb := CASE WHEN TG_OP = 'UPDATE' THEN OLD.settings END;
BEGIN
  IF NEW.public_slug IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.public_slug IS DISTINCT FROM OLD.public_slug) THEN
    IF length(NEW.public_slug) NOT BETWEEN 3 AND 63 OR NEW.public_slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' THEN
      RAISE EXCEPTION 'publicSlug must be 3-63 lowercase letters, digits and single dashes (not at the ends)'
        USING ERRCODE = '23514', HINT = 'validation_failed';
    END IF;
    IF public.provider_slug_reserved(NEW.public_slug) THEN
      RAISE EXCEPTION 'publicSlug "%" is reserved; choose another', NEW.public_slug
        USING ERRCODE = '23514', HINT = 'provider.slug_reserved';
    END IF;
  END IF;
  IF (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone) AND NOT public.provider_zone_known(NEW.timezone) THEN
    RAISE EXCEPTION 'timezone must be an IANA time zone such as Asia/Dubai' USING ERRCODE = '23514', HINT = 'validation_failed';
  END IF;
  IF NEW.settings IS DISTINCT FROM old_settings THEN
    IF jsonb_typeof(NEW.settings) <> 'object' THEN
      RAISE EXCEPTION 'settings must be an object of settings groups' USING ERRCODE = '23514', HINT = 'validation_failed';
    END IF;
    FOR k IN SELECT x FROM jsonb_object_keys(NEW.settings) x ORDER BY x LOOP
      CONTINUE WHEN jsonb_typeof(old_settings) = 'object' AND (NEW.settings -> k) IS NOT DISTINCT FROM (old_settings -> k);
      problem := public.provider_settings_group_problem(k, NEW.settings -> k);
      IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = '23514', HINT = 'validation_failed';
      END IF;
      IF k = 'workingHours' AND jsonb_typeof(NEW.settings -> k) = 'object'
         AND (NEW.settings #>> '{workingHours,start}') COLLATE "C" >= (NEW.settings #>> '{workingHours,end}') COLLATE "C" THEN
        RAISE EXCEPTION 'settings.workingHours.start must be before settings.workingHours.end'
          USING ERRCODE = '23514', HINT = 'provider.working_hours_invalid';
      END IF;
    END LOOP;
  END IF;
  RETURN NEW;
END
$$;
-- the helpers are the trigger's only: no role but the owner executes them (the trigger runs them as its owner)
REVOKE ALL ON FUNCTION public.check_provider_row(), public.provider_settings_group_problem(text, jsonb), public.provider_zone_known(text),
  public.provider_slug_reserved(text) FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER providers_check BEFORE INSERT OR UPDATE ON public.providers
  FOR EACH ROW EXECUTE FUNCTION public.check_provider_row();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210360100_provider_rows_checked', 'cdcd1a0e12a8419d9c2491d890e8d63111d02d7bfe968f1ccb2b97aff3e916e8', 0)
  ON CONFLICT (name) DO NOTHING;
