import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { ProviderDto } from './provider.dto.js';
import { settingsOf } from './provider-settings.js';

const COLUMNS = [
  'id', 'public_slug as publicSlug', 'is_public as isPublic', 'timezone', 'settings', 'created_at as createdAt', 'updated_at as updatedAt',
] as const;

/** Only the well-formed settings groups: the row may have been written over REST. */
const toProvider = ({ settings, ...r }: Omit<ProviderDto, 'settings'> & { settings: unknown }): ProviderDto => ({ ...r, settings: settingsOf(settings) });

export interface PublicProviderRow {
  public_slug: string;
  timezone: string;
  /** as stored: read through workingHoursOf / whatsappOf */
  working_hours: unknown;
  whatsapp: unknown;
}

/** The signed-in user's provider row (policies: auth.uid() = owner_user_id), and the public read for anon. */
export const providerRepository = {
  /** `lock`: the row stays locked until commit (FOR NO KEY UPDATE, as the update that follows), so what the caller checks and audits as before is what it replaces. */
  async mine(db: Db, o: { lock?: boolean } = {}): Promise<ProviderDto | undefined> {
    const q = qb.selectFrom('providers').select(COLUMNS).where('owner_user_id', '=', sql<string>`auth.uid()`);
    const [row] = await db.run(o.lock ? q.forNoKeyUpdate() : q);
    return row && toProvider(row);
  },

  /**
   * The user's row with the defaults when they have none yet; true when this call made it. A first save made
   * concurrently is waited for (the user's row is unique): then false, and the caller reads and locks that one.
   */
  async createIfMissing(db: Db, userId: string): Promise<boolean> {
    const rows = await db.run(qb.insertInto('providers')
      .values({ owner_user_id: userId }) // the columns' defaults: not public, no slug, Asia/Dubai, no settings
      .onConflict((oc) => oc.column('owner_user_id').doNothing())
      .returning('id'));
    return rows.length > 0;
  },

  /** Creates the row on first save; `settings` groups given replace those groups (jsonb ||). */
  async upsert(db: Db, userId: string, v: { publicSlug?: string | null; isPublic?: boolean; timezone?: string; settings?: Record<string, unknown> }): Promise<ProviderDto> {
    const [row] = await db.run(qb.insertInto('providers')
      .values({
        owner_user_id: userId, public_slug: v.publicSlug ?? null, is_public: v.isPublic ?? false,
        timezone: v.timezone ?? 'Asia/Dubai', settings: JSON.stringify(v.settings ?? {}),
      })
      .onConflict((oc) => oc.column('owner_user_id').doUpdateSet((eb) => ({
        ...(v.publicSlug !== undefined && { public_slug: eb.ref('excluded.public_slug') }),
        ...(v.isPublic !== undefined && { is_public: eb.ref('excluded.is_public') }),
        ...(v.timezone !== undefined && { timezone: eb.ref('excluded.timezone') }),
        // the groups given over the stored ones; a row written over REST before the database checked it may hold a
        // non-object (its groups read as not set): replaced, not merged into an array the check refuses. No settings given:
        // the stored ones stay as they are (the check passes unchanged settings), whatever they hold
        settings: v.settings === undefined ? sql`providers.settings`
          : sql`CASE WHEN jsonb_typeof(providers.settings) = 'object' THEN providers.settings ELSE '{}'::jsonb END || excluded.settings`,
      })))
      .returning(COLUMNS));
    return toProvider(row);
  },

  /** Anonymous read: only public_provider_profile() is granted to anon. */
  async publicProfile(db: Db, slug: string): Promise<PublicProviderRow | undefined> {
    const [row] = await db.$queryRaw<PublicProviderRow[]>`SELECT * FROM public.public_provider_profile(${slug})`;
    return row;
  },
};
