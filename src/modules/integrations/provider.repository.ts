import type { Db } from '../../platform/database/database.service.js';
import type { ProviderDto } from './provider.dto.js';

const toProvider = (r: any): ProviderDto => ({
  id: r.id, publicSlug: r.public_slug, isPublic: r.is_public, timezone: r.timezone, settings: r.settings ?? {},
  createdAt: r.created_at, updatedAt: r.updated_at,
});

export interface PublicProviderRow {
  public_slug: string;
  timezone: string;
  working_hours: any;
  whatsapp: any;
}

/** The signed-in user's provider row (policies: auth.uid() = owner_user_id), and the public read for anon. */
export const providerRepository = {
  async mine(db: Db): Promise<ProviderDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`SELECT * FROM public.providers WHERE owner_user_id = auth.uid()`;
    return row && toProvider(row);
  },

  /** Creates the row on first save; `settings` groups given replace those groups (jsonb ||). */
  async upsert(db: Db, userId: string, v: { publicSlug?: string | null; isPublic?: boolean; timezone?: string; settings?: Record<string, unknown> }): Promise<ProviderDto> {
    const settings = JSON.stringify(v.settings ?? {});
    const [row] = await db.$queryRaw<any[]>`
      INSERT INTO public.providers AS p (owner_user_id, public_slug, is_public, timezone, settings)
      VALUES (${userId}::uuid, ${v.publicSlug ?? null}, ${v.isPublic ?? false}, coalesce(${v.timezone ?? null}, 'Asia/Dubai'), ${settings}::jsonb)
      ON CONFLICT (owner_user_id) DO UPDATE SET
        public_slug = CASE WHEN ${v.publicSlug !== undefined} THEN EXCLUDED.public_slug ELSE p.public_slug END,
        is_public = coalesce(${v.isPublic ?? null}, p.is_public),
        timezone = coalesce(${v.timezone ?? null}, p.timezone),
        settings = p.settings || EXCLUDED.settings
      RETURNING *`;
    return toProvider(row);
  },

  /** Anonymous read: only public_provider_profile() is granted to anon. */
  async publicProfile(db: Db, slug: string): Promise<PublicProviderRow | undefined> {
    const [row] = await db.$queryRaw<PublicProviderRow[]>`SELECT * FROM public.public_provider_profile(${slug})`;
    return row;
  },
};
