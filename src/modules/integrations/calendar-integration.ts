import type { Db } from '../../platform/database/database.service.js';

/** Integration types whose secret is CalDAV credentials. */
export const CALDAV_TYPES = ['icloud', 'caldav'];

export interface CalendarIntegrationRow {
  integration_id: string;
  user_id: string;
  secret: unknown;
  calendar_ids: string[] | null;
}

/**
 * The active CalDAV integrations (with a secret) of a PUBLIC provider, and its selected calendars.
 * Runs on the privileged path integrations.busy_times: anon cannot read the tables, and the
 * sealed secret leaves this query only to be opened by the busy-time source.
 */
export async function calendarIntegrationsOfPublicProvider(db: Db, slug: string): Promise<CalendarIntegrationRow[]> {
  return db.$queryRaw<CalendarIntegrationRow[]>`
    SELECT i.id AS integration_id, i.user_id, s.secret,
           ARRAY(SELECT jsonb_array_elements_text(coalesce(p.settings #> '{calendar,selectedCalendarIds}', '[]'::jsonb))) AS calendar_ids
    FROM public.providers p
    JOIN public.integrations i ON i.user_id = p.owner_user_id AND i.status = 'active' AND i.integration_type = ANY (${CALDAV_TYPES})
    JOIN public.integration_secrets s ON s.integration_id = i.id
    WHERE p.public_slug = ${slug} AND p.is_public
    ORDER BY i.created_at, i.id`;
}
