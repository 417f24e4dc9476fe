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

/**
 * The e-mail an erased account keeps (set by the privacy module's erasure; personal-data.catalog.ts writes the same in
 * SQL): unique and undeliverable. The account row stays (other apps reference its id); nobody signs in to it again.
 */
export const erasedEmail = (userId: string) => `erased+${userId}@invalid`;

/** Users, credentials and personal organizations. Only privileged paths call this (no tenant exists yet). */
const USER_COLUMNS = ['u.id', 'u.email', 'u.name', 'u.image', 'u.accountType'] as const;

export type UserWithCredentials = UserRow & { passwordHash: string | null; personalOrgId: string | null };

const withCredentials = () => qb.selectFrom('core.User as u')
  .leftJoin('core.user_credentials as c', 'c.user_id', 'u.id')
  .select([...USER_COLUMNS, 'c.password_hash as passwordHash', sql<string | null>`core.personal_org_id(u.id)::text`.as('personalOrgId')]);

/** Users and their credentials. Only privileged paths call this (no tenant exists yet). */
export const userRepository = {
  /** The user of an e-mail, with the password hash and the personal organization (core.personal_org_id: the organizations module's table). */
  async findByEmail(db: Db, email: string): Promise<UserWithCredentials | undefined> {
    const [row] = await db.run(withCredentials().where('u.email', '=', email));
    return row;
  },

  /** findByEmail, by the user's id. */
  async findWithCredentials(db: Db, id: string): Promise<UserWithCredentials | undefined> {
    const [row] = await db.run(withCredentials().where('u.id', '=', id));
    return row;
  },

  async findById(db: Db, id: string): Promise<UserRow | undefined> {
    const [row] = await db.run(qb.selectFrom('core.User as u').select(USER_COLUMNS).where('u.id', '=', id));
    return row;
  },

  async personalOrgId(db: Db, userId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ id: string | null }[]>`SELECT core.personal_org_id(${userId}) AS id`;
    return row?.id ?? undefined;
  },

  async exists(db: Db, id: string): Promise<boolean> {
    const [row] = await db.run(qb.selectFrom('core.User').select('id').where('id', '=', id));
    return row !== undefined;
  },

  /**
   * The user's e-mail if the user exists and has not been erased (else undefined), the check wherever a credential turns
   * into a sign-in (a session, a redeemed app token). Locks the row until the caller's transaction ends: an erasure under
   * way (which locks it FOR UPDATE) is waited for and seen; one that starts later waits, then revokes what the caller
   * made. FOR NO KEY UPDATE, not FOR SHARE: most callers go on to update the row (an exchange's profile, an e-mail
   * change), and two share locks each waiting to become an update deadlock (two parallel exchanges of one person);
   * sign-ins of one person queue instead. Taken before any row the erasure changes after it (the person's tokens, links,
   * sessions): in the erasure's order, or the two deadlock.
   */
  async lockIfNotErased(db: Db, id: string): Promise<{ email: string } | undefined> {
    const [row] = await db.$queryRaw<{ email: string }[]>`SELECT email FROM core."User" WHERE id = ${id} FOR NO KEY UPDATE`;
    return row !== undefined && row.email !== erasedEmail(id) ? { email: row.email } : undefined;
  },

  /**
   * syncUserToDatabase (seed 000), creating side: a new user, kept in step with auth.users (Supabase's,
   * or our compatibility table). Its personal organization is the organizations module's to create.
   * Undefined when the e-mail is taken (a concurrent registration won): the caller must not touch that account.
   */
  async create(db: Db, u: { id?: string; email: string; name?: string | null; image?: string | null }): Promise<UserRow | undefined> {
    const [row] = await db.run(qb.insertInto('core.User')
      .values({ id: u.id ?? randomUUID(), email: u.email, name: u.name ?? null, image: u.image ?? null, accountType: 'personal', createdAt: sql`now() AT TIME ZONE 'utc'`, updatedAt: sql`now() AT TIME ZONE 'utc'` })
      .onConflict((oc) => oc.doNothing())
      .returning(['id', 'email', 'name', 'image', 'accountType']));
    if (!row) return undefined;
    // through a function of ours: on Supabase, service_role has no rights in schema auth
    await db.$executeRaw`SELECT core.sync_auth_user(${row.id}::uuid, ${u.email})`;
    return row;
  },

  /** syncUserToDatabase, updating side: name and image follow the identity provider when it sends them. */
  async updateProfile(db: Db, id: string, p: { name?: string | null; image?: string | null }): Promise<UserRow> {
    const [row] = await db.run(qb.updateTable('core.User')
      .set((eb) => ({
        name: eb.fn.coalesce(eb.val(p.name ?? null), eb.ref('name')),
        image: eb.fn.coalesce(eb.val(p.image ?? null), eb.ref('image')),
        updatedAt: sql`now() AT TIME ZONE 'utc'`,
      }))
      .where('id', '=', id)
      .returning(['id', 'email', 'name', 'image', 'accountType']));
    return row;
  },

  async setPassword(db: Db, userId: string, passwordHash: string): Promise<void> {
    await db.run(qb.insertInto('core.user_credentials').values({ user_id: userId, password_hash: passwordHash })
      .onConflict((oc) => oc.column('user_id').doUpdateSet((eb) => ({ password_hash: eb.ref('excluded.password_hash'), updated_at: sql`now()` }))));
  },

  /** Stores a rehashed password (argon2id, current costs) unless the password changed meanwhile. */
  async replacePasswordHash(db: Db, userId: string, oldHash: string, newHash: string): Promise<boolean> {
    return (await db.runCount(qb.updateTable('core.user_credentials').set({ password_hash: newHash, updated_at: sql`now()` })
      .where('user_id', '=', userId).where('password_hash', '=', oldHash))) > 0;
  },
};
