import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { exactInstant, qb } from '../../platform/database/query-builder.js';
import type { OrgRole } from '../../platform/auth/principal.js';
import type { MemberDto } from './membership.dto.js';

/** core.memberships with the member's user (the user policy lets members see co-members). */
const members = () => qb.selectFrom('core.memberships as m')
  .innerJoin('core.User as u', 'u.id', 'm.user_id')
  .select(['m.user_id as userId', 'u.email', 'u.name', 'm.role', 'm.created_at as createdAt', 'm.updated_at as updatedAt'])
  .$narrowType<{ role: OrgRole }>();

export const membershipRepository = {
  /** Keyset page ordered by (created_at, user_id); `key` is each row's position at full (microsecond) precision. */
  async list(db: Db, orgId: string, limit: number, after?: [string, string]): Promise<{ member: MemberDto; key: [string, string] }[]> {
    let query = members()
      .select(exactInstant('m.created_at').as('position'))
      .where('m.org_id', '=', orgId).orderBy('m.created_at').orderBy('m.user_id').limit(limit);
    if (after) query = query.where(sql`(m.created_at, m.user_id)`, '>', sql`(${after[0]}::timestamptz, ${after[1]}::text)`);
    const rows = await db.run(query);
    return rows.map(({ position, ...member }) => ({ member, key: [position, member.userId] }));
  },

  /**
   * `lock`: the membership (not its user) stays locked until commit (FOR UPDATE: the caller changes or removes it), so
   * what the caller compares with and audits as before is what it replaces; a removal committed meanwhile leaves nothing.
   */
  async get(db: Db, orgId: string, userId: string, o: { lock?: boolean } = {}): Promise<MemberDto | undefined> {
    const q = members().where('m.org_id', '=', orgId).where('m.user_id', '=', userId);
    const [row] = await db.run(o.lock ? q.forUpdate('m') : q);
    return row;
  },

  async findByEmail(db: Db, orgId: string, email: string): Promise<MemberDto | undefined> {
    const [row] = await db.run(members().where('m.org_id', '=', orgId).where(sql`lower(u.email)`, '=', sql`lower(${email})`));
    return row;
  },

  async setRole(db: Db, orgId: string, userId: string, role: OrgRole): Promise<boolean> {
    return (await db.runCount(qb.updateTable('core.memberships').set({ role, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('user_id', '=', userId))) > 0;
  },

  async remove(db: Db, orgId: string, userId: string): Promise<boolean> {
    return (await db.runCount(qb.deleteFrom('core.memberships').where('org_id', '=', orgId).where('user_id', '=', userId))) > 0;
  },
};
