import type { Db } from '../../platform/database/database.service.js';
import type { IntegrationDto } from './integration.dto.js';
import type { SealedSecret } from './secret-box.js';

const toIntegration = (r: any): IntegrationDto => ({
  id: r.id, integrationType: r.integration_type, label: r.label, status: r.status,
  externalUsername: r.external_username, externalEmail: r.external_email, hasSecret: Boolean(r.has_secret),
  createdAt: r.created_at, updatedAt: r.updated_at,
});

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
};
