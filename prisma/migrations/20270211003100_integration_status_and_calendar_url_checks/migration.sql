-- Two ways the owner's REST writes (seed 004: public.integrations and public.providers are writable by their owner)
-- reached what the API promises:
--
-- 1. public.integrations.status had no check: a status written over REST (`paused`) was answered by GET
--    /v1/me/integrations outside the enum its schema documents (active, disabled, error). A CHECK now holds the three.
--    Rows holding another status are first set to disabled: only `active` integrations were ever read (their calendars
--    block slots), so such a row was kept but not used, which is what disabled says; error would claim a failure
--    nobody saw.
-- 2. public.check_provider_row (20270210360100) let settings.calendar.selectedCalendarIds hold a URL with a user part
--    (https://user:password@host/...), as CalendarSettingsDto did: the password then sat in the settings in the clear,
--    and the HTTP client refused the URL with a message quoting it, logged at every anonymous availability request.
--    provider_settings_group_problem refuses such a URL now, as the API does (a 400 naming the field); as before only
--    the groups a statement changes are checked: a row written before keeps its group, which the API now reads as
--    malformed (not set; its page's availability answers 503 until the owner saves the calendars again).
--    Such stored URLs lose their user part here (the rest of each URL kept, a URL then repeated kept once, first place),
--    so no password stays in the settings; the owner's credentials belong in the integration's secret.
--
-- Both data fixes change rows of users, not of an organization (core.audit_logs.org_id is NOT NULL): each says how many
-- rows it changed in a NOTICE instead of an audit entry.

DO $$
DECLARE
  n int;
BEGIN
  UPDATE public.integrations SET status = 'disabled' WHERE status NOT IN ('active', 'disabled', 'error');
  GET DIAGNOSTICS n = ROW_COUNT;
  RAISE NOTICE '20270211003100: % integrations of a status outside active, disabled, error set to disabled', n;
END
$$;
ALTER TABLE public.integrations ADD CONSTRAINT integrations_status_check CHECK (status IN ('active', 'disabled', 'error'));

-- as in 20270210360100, with the user part refused (its privileges stay: the owner's only, for check_provider_row)
CREATE OR REPLACE FUNCTION public.provider_settings_group_problem(p_group text, v jsonb) RETURNS text
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
      -- a user part (user:password@) as the HTTP client reads one: its host begins after any slashes and backslashes and
      -- ends at the first / ? # or backslash
      IF (e #>> '{}') ~* '^https?:[/\\]*[^/?#\\]*@' THEN
        RETURN 'each settings.calendar.selectedCalendarIds entry must be a calendar URL without a user name or password (the credentials go in the integration''s secret)';
      END IF;
    END LOOP;
    IF (SELECT count(DISTINCT c) FROM jsonb_array_elements(v -> 'selectedCalendarIds') c) <> n THEN
      RETURN 'settings.calendar.selectedCalendarIds must not repeat a calendar';
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- the stored calendar URLs with a user part, without it: the settings' check (providers_check) is off meanwhile, as the
-- rest of such a group may be one it refuses now (it is then read as malformed, as before); only the URLs change
ALTER TABLE public.providers DISABLE TRIGGER providers_check;
DO $$
DECLARE
  n int;
BEGIN
  WITH fixed AS (
    SELECT p.id, (
      SELECT jsonb_agg(d.c ORDER BY d.first)
      FROM (
        SELECT x.c, min(x.ord) AS first
        FROM (
          SELECT CASE WHEN jsonb_typeof(e) = 'string'
                      THEN to_jsonb(regexp_replace(e #>> '{}', '^(https?:[/\\]*)[^/?#\\]*@', '\1', 'i'))
                      ELSE e END AS c, ord
          FROM jsonb_array_elements(p.settings #> '{calendar,selectedCalendarIds}') WITH ORDINALITY AS a(e, ord)
        ) x
        GROUP BY x.c
      ) d
    ) AS ids
    FROM public.providers p
    WHERE jsonb_typeof(p.settings #> '{calendar,selectedCalendarIds}') = 'array'
      AND EXISTS (SELECT 1 FROM jsonb_array_elements(p.settings #> '{calendar,selectedCalendarIds}') e
                  WHERE jsonb_typeof(e) = 'string' AND (e #>> '{}') ~* '^https?:[/\\]*[^/?#\\]*@')
  )
  UPDATE public.providers p SET settings = jsonb_set(p.settings, '{calendar,selectedCalendarIds}', f.ids)
  FROM fixed f WHERE p.id = f.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RAISE NOTICE '20270211003100: % providers'' calendar URLs stripped of their user name and password', n;
END
$$;
ALTER TABLE public.providers ENABLE TRIGGER providers_check;
