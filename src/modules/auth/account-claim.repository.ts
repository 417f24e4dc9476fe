import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { OrgRole } from '../../platform/auth/principal.js';

/** A live organization a claimed account belongs to, with its owner and member counts. */
export interface ClaimedMembership {
  orgId: string;
  role: OrgRole;
  accountType: 'personal' | 'business';
  owners: number;
  members: number;
}

/** The roles from the most to the least trusted: who takes over an organization its only owner leaves. */
const SENIORITY = sql<number>`array_position(ARRAY['owner', 'admin', 'accountant', 'member', 'viewer']::text[], m.role)`;

/** The statements of an account's claim (account-claim.service.ts), on the privileged path auth.credentials. */
export const accountClaimRepository = {
  /**
   * Locks the live organizations the account belongs to, in id order, FOR NO KEY UPDATE, as the erasure does
   * (erasureRepository.lockOrganizations, after the account's row): an invitation's acceptance (core.accept_invitation
   * takes the row FOR SHARE) and another member's erasure wait for the claim, and then see its result.
   */
  async lockOrganizations(db: Db, userId: string): Promise<void> {
    await db.$queryRaw`
      SELECT o.id FROM core.organizations o
      WHERE o.id IN (SELECT m.org_id FROM core.memberships m WHERE m.user_id = ${userId}) AND o.deleted_at IS NULL
      ORDER BY o.id FOR NO KEY UPDATE OF o`;
  },

  /** Every live organization the account belongs to, in id order. */
  async memberships(db: Db, userId: string): Promise<ClaimedMembership[]> {
    const rows = await db.$queryRaw<{ org_id: string; role: OrgRole; account_type: 'personal' | 'business'; owners: number; members: number }[]>`
      SELECT m.org_id, m.role, o.account_type,
             (SELECT count(*)::int FROM core.memberships x WHERE x.org_id = m.org_id AND x.role = 'owner') AS owners,
             (SELECT count(*)::int FROM core.memberships x WHERE x.org_id = m.org_id) AS members
      FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id AND o.deleted_at IS NULL
      WHERE m.user_id = ${userId}
      ORDER BY m.org_id`;
    return rows.map((r) => ({ orgId: r.org_id, role: r.role, accountType: r.account_type, owners: r.owners, members: r.members }));
  },

  /** The member of `orgId` other than `userId` with the highest role, the earliest of them: who becomes its owner. */
  async successor(db: Db, orgId: string, userId: string): Promise<{ userId: string; role: OrgRole } | undefined> {
    const [row] = await db.run(qb.selectFrom('core.memberships as m').select(['m.user_id as userId', 'm.role'])
      .where('m.org_id', '=', orgId).where('m.user_id', '<>', userId)
      .orderBy(SENIORITY).orderBy('m.created_at').orderBy('m.user_id').limit(1));
    return row && { userId: row.userId, role: row.role as OrgRole };
  },
};
