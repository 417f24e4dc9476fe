import { sql, type ExpressionBuilder } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb, type DB } from '../../platform/database/query-builder.js';
import type { IntegrationDto } from './integration.dto.js';
import type { SealedSecret } from './secret-box.js';


/** Integration types whose secret is CalDAV credentials. */
export const CALDAV_TYPES = ['icloud', 'caldav'];

export interface CalendarIntegrationRow {
  integration_id: string;
  integration_type: string;
  user_id: string;
  secret: unknown;
  /** the provider's settings.calendar as stored (checked by the reader) */
  calendar: unknown;
}

export interface StaleSecretRow {
  integration_id: string;
  user_id: string;
  secret: unknown;
  org_id: string | null;
}

const COLUMNS = [
  'i.id', 'i.integration_type as integrationType', 'i.label', 'i.status', 'i.external_username as externalUsername',
  'i.external_email as externalEmail', 'i.created_at as createdAt', 'i.updated_at as updatedAt',
] as const;

/** Whether integration `i` has a secret. */
const hasSecret = (eb: ExpressionBuilder<DB & { i: DB['integrations'] }, 'i'>) =>
  eb.exists(eb.selectFrom('integration_secrets as s').select('s.integration_id').whereRef('s.integration_id', '=', 'i.id')).$castTo<boolean>().as('hasSecret');

/** The integrations with whether each has a secret (the secret itself never leaves through these). */
const integrations = () => qb.selectFrom('integrations as i')
  .select((eb) => [...COLUMNS, hasSecret(eb)]);

/**
 * The user's integrations and their secrets. Runs inside the request transaction as the user:
 * the seed's policies (auth.uid() = user_id) decide what is visible, so no query names a user
 * for reading. Secret reads return the sealed form only; opening it is the caller's business.
 */
export const integrationRepository = {
  async list(db: Db): Promise<IntegrationDto[]> {
    return db.run(integrations().orderBy('i.created_at').orderBy('i.id'));
  },

  /**
   * `lock`: the row stays locked until commit, as the statement that follows locks it (FOR NO KEY UPDATE before an
   * update, FOR UPDATE before a delete), so what the caller audits as before is what it changes: a concurrent change
   * of the row is waited for, and read.
   */
  async get(db: Db, id: string, o: { lock?: 'update' | 'delete' } = {}): Promise<IntegrationDto | undefined> {
    const q = integrations().where('i.id', '=', id);
    const [row] = await db.run(o.lock === 'update' ? q.forNoKeyUpdate('i') : o.lock === 'delete' ? q.forUpdate('i') : q);
    return row;
  },

  /** undefined when the user already has an integration of this type (integrations_user_type_uq) */
  async create(db: Db, userId: string, v: { integrationType: string; label?: string; externalUsername?: string; externalEmail?: string }): Promise<IntegrationDto | undefined> {
    const [row] = await db.run(qb.insertInto('integrations')
      .values({ user_id: userId, integration_type: v.integrationType, label: v.label ?? null, external_username: v.externalUsername ?? null, external_email: v.externalEmail ?? null })
      .onConflict((oc) => oc.constraint('integrations_user_type_uq').doNothing())
      .returning([
        'id', 'integration_type as integrationType', 'label', 'status', 'external_username as externalUsername', 'external_email as externalEmail',
        'created_at as createdAt', 'updated_at as updatedAt', sql<boolean>`false`.as('hasSecret'),
      ]));
    return row;
  },

  async update(db: Db, id: string, patch: { label?: string | null; status?: string }): Promise<IntegrationDto | undefined> {
    const [row] = await db.run(qb.updateTable('integrations as i')
      .set((eb) => ({
        label: patch.label !== undefined ? patch.label : eb.ref('i.label'),
        status: patch.status ?? eb.ref('i.status'),
      }))
      .where('i.id', '=', id)
      .returning((eb) => [...COLUMNS, hasSecret(eb)]));
    return row;
  },

  /** The secret goes with it (ON DELETE CASCADE). */
  async delete(db: Db, id: string): Promise<boolean> {
    return (await db.runCount(qb.deleteFrom('integrations').where('id', '=', id))) > 0;
  },

  /** Sets or replaces the sealed secret; user_id is filled from the integration by enforce_integration_owner(). */
  async putSecret(db: Db, integrationId: string, sealed: SealedSecret): Promise<{ replaced: boolean }> {
    // user_id NULL: the trigger fills in the integration's owner (NOT NULL is checked after it)
    const [row] = await db.run(qb.insertInto('integration_secrets')
      .values({ integration_id: integrationId, user_id: sql<string>`NULL`, secret: JSON.stringify(sealed) })
      .onConflict((oc) => oc.column('integration_id').doUpdateSet((eb) => ({ secret: eb.ref('excluded.secret') })))
      .returning(sql<boolean>`(xmax = 0)`.as('inserted')));
    return { replaced: !row.inserted };
  },

  async deleteSecret(db: Db, integrationId: string): Promise<boolean> {
    return (await db.runCount(qb.deleteFrom('integration_secrets').where('integration_id', '=', integrationId))) > 0;
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
   * The active CalDAV integrations (with a secret) of a PUBLIC provider, and its calendar settings group.
   * Runs on the privileged path integrations.busy_times: anon cannot read the tables, and the
   * sealed secret leaves this query only to be opened by the busy-time source.
   */
  async calendarIntegrationsOfPublicProvider(db: Db, slug: string): Promise<CalendarIntegrationRow[]> {
    return db.$queryRaw<CalendarIntegrationRow[]>`
      SELECT i.id AS integration_id, i.integration_type, i.user_id, s.secret, p.settings -> 'calendar' AS calendar
      FROM public.providers p
      JOIN public.integrations i ON i.user_id = p.owner_user_id AND i.status = 'active' AND i.integration_type = ANY (${CALDAV_TYPES})
      JOIN public.integration_secrets s ON s.integration_id = i.id
      WHERE p.public_slug = ${slug} AND p.is_public
      ORDER BY i.created_at, i.id`;
  },
};
