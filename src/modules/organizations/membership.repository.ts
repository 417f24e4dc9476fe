import type { Db } from '../../platform/database/database.service.js';
import type { OrgRole } from '../../platform/auth/principal.js';
import type { MemberDto } from './membership.dto.js';

const toMember = (r: any): MemberDto => ({
  userId: r.user_id, email: r.email, name: r.name, role: r.role, createdAt: r.created_at, updatedAt: r.updated_at,
});

/** core.memberships joined with core."User" (the user policy lets members see co-members). */
export const membershipRepository = {
  /** Keyset page ordered by (created_at, user_id); `key` is each row's position at full (microsecond) precision. */
  async list(db: Db, orgId: string, limit: number, after?: [string, string]): Promise<{ member: MemberDto; key: [string, string] }[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at,
             to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position
      FROM core.memberships m JOIN core."User" u ON u.id = m.user_id
      WHERE m.org_id = ${orgId}::uuid
        AND (${after?.[0] ?? null}::timestamptz IS NULL OR (m.created_at, m.user_id) > (${after?.[0] ?? null}::timestamptz, ${after?.[1] ?? null}::text))
      ORDER BY m.created_at, m.user_id LIMIT ${limit}`;
    return rows.map((r) => ({ member: toMember(r), key: [r.position, r.user_id] }));
  },

  async get(db: Db, orgId: string, userId: string): Promise<MemberDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      SELECT m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at
      FROM core.memberships m JOIN core."User" u ON u.id = m.user_id
      WHERE m.org_id = ${orgId}::uuid AND m.user_id = ${userId}`;
    return row && toMember(row);
  },

  async findByEmail(db: Db, orgId: string, email: string): Promise<MemberDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      SELECT m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at
      FROM core.memberships m JOIN core."User" u ON u.id = m.user_id
      WHERE m.org_id = ${orgId}::uuid AND lower(u.email) = lower(${email})`;
    return row && toMember(row);
  },

  async setRole(db: Db, orgId: string, userId: string, role: OrgRole): Promise<boolean> {
    return (await db.$executeRaw`
      UPDATE core.memberships SET role = ${role}, updated_at = now()
      WHERE org_id = ${orgId}::uuid AND user_id = ${userId}`) > 0;
  },

  async remove(db: Db, orgId: string, userId: string): Promise<boolean> {
    return (await db.$executeRaw`DELETE FROM core.memberships WHERE org_id = ${orgId}::uuid AND user_id = ${userId}`) > 0;
  },
};
