import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';

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

  async findById(db: Db, id: string): Promise<UserRow | undefined> {
    const [row] = await db.$queryRaw<UserRow[]>`SELECT id, email, name, image, "accountType" FROM core."User" WHERE id = ${id}`;
    return row;
  },

  async personalOrgId(db: Db, userId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ id: string | null }[]>`SELECT core.personal_org_id(${userId}) AS id`;
    return row?.id ?? undefined;
  },

  async exists(db: Db, id: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ found: boolean }[]>`SELECT EXISTS (SELECT 1 FROM core."User" WHERE id = ${id}) AS found`;
    return row.found;
  },

  /**
   * syncUserToDatabase (seed 000), creating side: a new user with a personal organization, kept in
   * step with auth.users (Supabase's, or our compatibility table). Undefined when the e-mail is
   * taken (a concurrent registration won): the caller must not touch that account.
   */
  async create(db: Db, u: { id?: string; email: string; name?: string | null; image?: string | null }): Promise<{ user: UserRow; personalOrgId: string } | undefined> {
    const id = u.id ?? randomUUID();
    const [row] = await db.$queryRaw<any[]>`
      INSERT INTO core."User" (id, email, name, image, "accountType", "createdAt", "updatedAt")
      VALUES (${id}, ${u.email}, ${u.name ?? null}, ${u.image ?? null}, 'personal', now(), now())
      ON CONFLICT DO NOTHING
      RETURNING id, email, name, image, "accountType"`;
    if (!row) return undefined;
    // through a function of ours: on Supabase, service_role has no rights in schema auth
    await db.$executeRaw`SELECT core.sync_auth_user(${id}::uuid, ${u.email})`;
    const [org] = await db.$queryRaw<{ id: string }[]>`
      INSERT INTO core.organizations (name, account_type, owner_user_id)
      VALUES (${u.name ? `${u.name}` : u.email}, 'personal', ${row.id}) RETURNING id`;
    await db.$executeRaw`INSERT INTO core.memberships (org_id, user_id, role) VALUES (${org.id}::uuid, ${row.id}, 'owner')`;
    return { user: { id: row.id, email: row.email, name: row.name, image: row.image, accountType: row.accountType }, personalOrgId: org.id };
  },

  /** syncUserToDatabase, updating side: name and image follow the identity provider when it sends them. */
  async updateProfile(db: Db, id: string, p: { name?: string | null; image?: string | null }): Promise<UserRow> {
    const [row] = await db.run(qb.updateTable('core.User')
      .set((eb) => ({
        name: eb.fn.coalesce(eb.val(p.name ?? null), eb.ref('name')),
        image: eb.fn.coalesce(eb.val(p.image ?? null), eb.ref('image')),
        updatedAt: sql`now()`,
      }))
      .where('id', '=', id)
      .returning(['id', 'email', 'name', 'image', 'accountType']));
    return row;
  },

  async setPassword(db: Db, userId: string, passwordHash: string): Promise<void> {
    await db.$executeRaw`
      INSERT INTO core.user_credentials (user_id, password_hash) VALUES (${userId}, ${passwordHash})
      ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()`;
  },

  /** Stores a rehashed password (argon2id, current costs) unless the password changed meanwhile. */
  async replacePasswordHash(db: Db, userId: string, oldHash: string, newHash: string): Promise<boolean> {
    const n = await db.$executeRaw`
      UPDATE core.user_credentials SET password_hash = ${newHash}, updated_at = now()
      WHERE user_id = ${userId} AND password_hash = ${oldHash}`;
    return n > 0;
  },
};
