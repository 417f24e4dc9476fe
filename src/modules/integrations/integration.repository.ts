import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { IntegrationDto } from './integration.dto.js';
import type { SealedSecret } from './secret-box.js';

const toIntegration = (r: any): IntegrationDto => ({
  id: r.id, integrationType: r.integration_type, label: r.label, status: r.status,
  externalUsername: r.external_username, externalEmail: r.external_email, hasSecret: Boolean(r.has_secret),
  createdAt: r.created_at, updatedAt: r.updated_at,
});

/** Integration types whose secret is CalDAV credentials. */
export const CALDAV_TYPES = ['icloud', 'caldav'];

export interface CalendarIntegrationRow {
  integration_id: string;
  user_id: string;
  secret: unknown;
  calendar_ids: string[] | null;
}

export interface StaleSecretRow {
  integration_id: string;
  user_id: string;
  secret: unknown;
  org_id: string | null;
}

const COLUMNS = `i.id, i.integration_type, i.label, i.status, i.external_username, i.external_email, i.created_at, i.updated_at`;

/**
 * The user's integrations and their secrets. Runs inside the request transaction as the user:
 * the seed's policies (auth.uid() = user_id) decide what is visible, so no query names a user
 * for reading. Secret reads return the sealed form only; opening it is the caller's business.
 */
export const integrationRepository = {
  async list(db: Db): Promise<IntegrationDto[]> {
    const rows = await db.$queryRawUnsafe<any[]>(`
      SELECT ${COLUMNS}, (s.integration_id IS NOT NULL) AS has_secret
      FROM public.integrations i LEFT JOIN public.integration_secrets s ON s.integration_id = i.id
      ORDER BY i.created_at, i.id`);
    return rows.map(toIntegration);
  },

  async get(db: Db, id: string): Promise<IntegrationDto | undefined> {
    const [row] = await db.$queryRawUnsafe<any[]>(`
      SELECT ${COLUMNS}, (s.integration_id IS NOT NULL) AS has_secret
      FROM public.integrations i LEFT JOIN public.integration_secrets s ON s.integration_id = i.id
      WHERE i.id = $1::uuid`, id);
    return row && toIntegration(row);
  },

  /** undefined when the user already has an integration of this type (integrations_user_type_uq) */
  async create(db: Db, userId: string, v: { integrationType: string; label?: string; externalUsername?: string; externalEmail?: string }): Promise<IntegrationDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      INSERT INTO public.integrations (user_id, integration_type, label, external_username, external_email)
      VALUES (${userId}::uuid, ${v.integrationType}, ${v.label ?? null}, ${v.externalUsername ?? null}, ${v.externalEmail ?? null})
      ON CONFLICT ON CONSTRAINT integrations_user_type_uq DO NOTHING
      RETURNING id, integration_type, label, status, external_username, external_email, created_at, updated_at, false AS has_secret`;
    return row && toIntegration(row);
  },

  async update(db: Db, id: string, patch: { label?: string | null; status?: string }): Promise<IntegrationDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      UPDATE public.integrations i SET
        label = CASE WHEN ${patch.label !== undefined} THEN ${patch.label ?? null} ELSE i.label END,
        status = coalesce(${patch.status ?? null}, i.status)
      WHERE i.id = ${id}::uuid
      RETURNING i.id, i.integration_type, i.label, i.status, i.external_username, i.external_email, i.created_at, i.updated_at,
        EXISTS (SELECT 1 FROM public.integration_secrets s WHERE s.integration_id = i.id) AS has_secret`;
    return row && toIntegration(row);
  },

  /** The secret goes with it (ON DELETE CASCADE). */
  async delete(db: Db, id: string): Promise<boolean> {
    return (await db.$executeRaw`DELETE FROM public.integrations WHERE id = ${id}::uuid`) > 0;
  },

  /** Sets or replaces the sealed secret; user_id is filled from the integration by enforce_integration_owner(). */
  async putSecret(db: Db, integrationId: string, sealed: SealedSecret): Promise<{ replaced: boolean }> {
    const [row] = await db.$queryRaw<{ inserted: boolean }[]>`
      INSERT INTO public.integration_secrets (integration_id, secret)
      VALUES (${integrationId}::uuid, ${JSON.stringify(sealed)}::jsonb)
      ON CONFLICT (integration_id) DO UPDATE SET secret = EXCLUDED.secret
      RETURNING (xmax = 0) AS inserted`;
    return { replaced: !row.inserted };
  },

  async deleteSecret(db: Db, integrationId: string): Promise<boolean> {
    return (await db.$executeRaw`DELETE FROM public.integration_secrets WHERE integration_id = ${integrationId}::uuid`) > 0;
  },

  // ---- the privileged paths' queries (secrets.rotate, integrations.busy_times): not under the user's policies

  /** Secrets not sealed under the active key. */
  async countStaleSecrets(db: Db, activeKeyId: string): Promise<number> {
    const [row] = await db.run(qb.selectFrom('integration_secrets').select((eb) => eb.fn.countAll<bigint>().as('n'))
      .where(sql`secret ->> 'kid'`, 'is distinct from', activeKeyId));
    return Number(row.n);
  },

  /** The next batch of secrets not under the active key after `afterId`, locked (rows a request holds are skipped). */
  async lockStaleSecrets(db: Db, activeKeyId: string, afterId: string, limit: number): Promise<StaleSecretRow[]> {
    return db.run(qb.selectFrom('integration_secrets as s')
      .select(['s.integration_id', 's.user_id', 's.secret', sql<string | null>`core.personal_org_id(s.user_id::text)::text`.as('org_id')])
      .where('s.integration_id', '>', afterId).where(sql`s.secret ->> 'kid'`, 'is distinct from', activeKeyId)
      .orderBy('s.integration_id').limit(limit).forUpdate('s').skipLocked());
  },

  async resealSecret(db: Db, integrationId: string, sealed: SealedSecret): Promise<void> {
    await db.run(qb.updateTable('integration_secrets').set({ secret: JSON.stringify(sealed) }).where('integration_id', '=', integrationId));
  },

  /**
   * The active CalDAV integrations (with a secret) of a PUBLIC provider, and its selected calendars.
   * Runs on the privileged path integrations.busy_times: anon cannot read the tables, and the
   * sealed secret leaves this query only to be opened by the busy-time source.
   */
  async calendarIntegrationsOfPublicProvider(db: Db, slug: string): Promise<CalendarIntegrationRow[]> {
    return db.$queryRaw<CalendarIntegrationRow[]>`
      SELECT i.id AS integration_id, i.user_id, s.secret,
             ARRAY(SELECT jsonb_array_elements_text(coalesce(p.settings #> '{calendar,selectedCalendarIds}', '[]'::jsonb))) AS calendar_ids
      FROM public.providers p
      JOIN public.integrations i ON i.user_id = p.owner_user_id AND i.status = 'active' AND i.integration_type = ANY (${CALDAV_TYPES})
      JOIN public.integration_secrets s ON s.integration_id = i.id
      WHERE p.public_slug = ${slug} AND p.is_public
      ORDER BY i.created_at, i.id`;
  },
};
