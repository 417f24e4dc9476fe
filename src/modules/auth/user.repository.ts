import { randomUUID } from 'node:crypto';
import type { Db } from '../../platform/database/database.service.js';

export interface UserRow {
  id: string;
  email: string;
  name: string | null;
  image: string | null;
  accountType: string | null;
}

/** Users, credentials and personal organizations. Only privileged paths call this (no tenant exists yet). */
export const userRepository = {
  async findByEmail(db: Db, email: string): Promise<(UserRow & { passwordHash: string | null; personalOrgId: string | null }) | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      SELECT u.id, u.email, u.name, u.image, u."accountType", c.password_hash, o.id AS personal_org_id
      FROM core."User" u
      LEFT JOIN core.user_credentials c ON c.user_id = u.id
      LEFT JOIN core.organizations o ON o.owner_user_id = u.id AND o.account_type = 'personal'
      WHERE u.email = ${email}`;
    return row && { id: row.id, email: row.email, name: row.name, image: row.image, accountType: row.accountType, passwordHash: row.password_hash, personalOrgId: row.personal_org_id };
  },

  async personalOrgId(db: Db, userId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ id: string | null }[]>`SELECT core.personal_org_id(${userId}) AS id`;
    return row?.id ?? undefined;
  },

  /**
   * syncUserToDatabase (seed 000): create the user, or update name/image of an existing one.
   * Also keeps auth.users in step (Supabase's, or our compatibility table) and gives every new
   * user a personal organization. Returns the user and whether it was created.
   */
  async upsert(db: Db, u: { id?: string; email: string; name?: string | null; image?: string | null }): Promise<{ user: UserRow; personalOrgId: string; created: boolean }> {
    const id = u.id ?? randomUUID();
    // through a function of ours: on Supabase, service_role has no rights in schema auth
    await db.$executeRaw`SELECT core.sync_auth_user(${id}::uuid, ${u.email})`;
    const [row] = await db.$queryRaw<any[]>`
      INSERT INTO core."User" (id, email, name, image, "accountType", "createdAt", "updatedAt")
      VALUES (${id}, ${u.email}, ${u.name ?? null}, ${u.image ?? null}, 'personal', now(), now())
      ON CONFLICT (email) DO UPDATE SET
        name = coalesce(EXCLUDED.name, core."User".name),
        image = coalesce(EXCLUDED.image, core."User".image),
        "updatedAt" = now()
      RETURNING id, email, name, image, "accountType", (xmax = 0) AS created`;
    let personalOrgId = await this.personalOrgId(db, row.id);
    if (!personalOrgId) {
      const [org] = await db.$queryRaw<{ id: string }[]>`
        INSERT INTO core.organizations (name, account_type, owner_user_id)
        VALUES (${u.name ? `${u.name}` : u.email}, 'personal', ${row.id}) RETURNING id`;
      await db.$executeRaw`INSERT INTO core.memberships (org_id, user_id, role) VALUES (${org.id}::uuid, ${row.id}, 'owner')`;
      personalOrgId = org.id;
    }
    return { user: { id: row.id, email: row.email, name: row.name, image: row.image, accountType: row.accountType }, personalOrgId, created: row.created };
  },

  async setPassword(db: Db, userId: string, passwordHash: string): Promise<void> {
    await db.$executeRaw`
      INSERT INTO core.user_credentials (user_id, password_hash) VALUES (${userId}, ${passwordHash})
      ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()`;
  },
};
