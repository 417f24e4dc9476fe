import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { prepare, qb } from '../../platform/database/query-builder.js';
import type { OrganizationDto } from './organization.dto.js';

const COLUMNS = [
  'o.id', 'o.name', 'o.account_type as accountType', 'o.domain', 'o.owner_user_id as ownerUserId', 'o.created_at as createdAt', 'o.updated_at as updatedAt',
] as const;

/** The caller's role in the organization, as the database decides it for this request. */
const callerRole = sql<string | null>`public.auth_role()`.as('role');

const toOrg = ({ role, ...r }: Omit<OrganizationDto, 'role'> & { role: string | null }): OrganizationDto => ({ ...r, role: role ?? undefined });

/** One organization with the caller's role: every organization route reads it (prepared: compiled once). */
const byId = prepare((p: { orgId: string }) => qb.selectFrom('core.organizations as o').select([...COLUMNS, callerRole]).where('o.id', '=', p.orgId));

/**
 * Whether organization `orgId` is deleted (or gone), as committed when this statement starts: what the jobs and privileged
 * paths of other modules (agents, knowledge, data exports) ask before they write into, or serve, an organization. `lock`:
 * its row is held FOR SHARE until the transaction ends, so a deletion (an UPDATE of its row) committing meanwhile is
 * waited for and seen, or waits for this transaction.
 */
export async function organizationDeleted(db: Db, orgId: string, lock = false): Promise<boolean> {
  let q = qb.selectFrom('core.organizations').select('deleted_at').where('id', '=', orgId);
  if (lock) q = q.forShare();
  const [r] = await db.run(q);
  return !r || r.deleted_at !== null;
}

export const organizationRepository = {
  async create(db: Db, name: string): Promise<OrganizationDto> {
    const [row] = await db.$queryRaw<{ id: string; name: string; account_type: string; domain: string | null; owner_user_id: string; created_at: Date; updated_at: Date }[]>`
      SELECT * FROM core.create_organization(${name}, 'business')`;
    return {
      id: row.id, name: row.name, accountType: row.account_type, domain: row.domain, ownerUserId: row.owner_user_id, role: 'owner',
      createdAt: row.created_at, updatedAt: row.updated_at,
    };
  },

  /**
   * A new user's personal organization, with the user as its owner (the account's creation, on a
   * privileged connection: no tenant exists yet). Returns its id.
   */
  async createPersonal(db: Db, ownerUserId: string, name: string): Promise<string> {
    const [org] = await db.run(qb.insertInto('core.organizations')
      .values({ name, account_type: 'personal', owner_user_id: ownerUserId }).returning('id'));
    await db.run(qb.insertInto('core.memberships').values({ org_id: org.id, user_id: ownerUserId, role: 'owner' }));
    return org.id;
  },

  async listForUser(db: Db, userId: string): Promise<OrganizationDto[]> {
    const rows = await db.run(qb.selectFrom('core.organizations as o')
      .innerJoin('core.memberships as m', (j) => j.onRef('m.org_id', '=', 'o.id').on('m.user_id', '=', userId))
      .select([...COLUMNS, 'm.role'])
      .where('o.deleted_at', 'is', null)
      .orderBy('o.account_type', 'desc').orderBy('o.created_at').orderBy('o.id'));
    return rows.map(toOrg);
  },

  /**
   * `lock`: the live organization, its row locked until commit as the update that follows locks it (FOR NO KEY UPDATE:
   * inserts referring to it go on), so the before the caller audits is what it replaces; a deletion committed meanwhile
   * is waited for and answers none.
   */
  async get(db: Db, orgId: string, o: { lock?: boolean } = {}): Promise<OrganizationDto | undefined> {
    const [row] = await db.run(o.lock
      ? qb.selectFrom('core.organizations as o').select([...COLUMNS, callerRole]).where('o.id', '=', orgId).where('o.deleted_at', 'is', null).forNoKeyUpdate('o')
      : byId({ orgId }));
    return row && toOrg(row);
  },

  /** An absent field keeps its value; `domain: null` clears the domain. */
  async update(db: Db, orgId: string, patch: { name?: string; domain?: string | null }): Promise<OrganizationDto | undefined> {
    const [row] = await db.run(qb.updateTable('core.organizations as o')
      .set({ ...(patch.name !== undefined && { name: patch.name }), ...(patch.domain !== undefined && { domain: patch.domain }), updated_at: sql`now()` })
      .where('o.id', '=', orgId)
      .returning([...COLUMNS, callerRole]));
    return row && toOrg(row);
  },

  /**
   * Locks the live organizations `userId` belongs to, in id order, FOR NO KEY UPDATE (after the person's row: the
   * erasure and an account claim both take them so): an invitation's acceptance (core.accept_invitation takes the row
   * FOR SHARE) and another member's erasure wait until this transaction ends, and then see its result; the inserts in
   * flight there (their foreign keys' KEY SHARE) do not conflict.
   */
  async lockLiveOfMember(db: Db, userId: string): Promise<void> {
    await db.$queryRaw`
      SELECT o.id FROM core.organizations o
      WHERE o.id IN (SELECT m.org_id FROM core.memberships m WHERE m.user_id = ${userId}) AND o.deleted_at IS NULL
      ORDER BY o.id FOR NO KEY UPDATE OF o`;
  },

  /**
   * Locks the live organization being deleted, FOR NO KEY UPDATE (as its soft delete does), before its deletion locks
   * anything else: a member's erasure locks their organizations, then their runs (ErasureService.eraseMe), so a deletion
   * that locked the organization's runs first and the organization last closed a cycle with it (40P01). Each now waits
   * for the other. False: deleted meanwhile (or not the caller's to delete).
   */
  async lockForDeletion(db: Db, orgId: string): Promise<boolean> {
    return (await db.run(qb.selectFrom('core.organizations').select('id')
      .where('id', '=', orgId).where('deleted_at', 'is', null).forNoKeyUpdate())).length > 0;
  },

  /** Soft delete: the row (and the organization's books and audit trail) stays; nobody can act in it. */
  async delete(db: Db, orgId: string): Promise<boolean> {
    return (await db.runCount(qb.updateTable('core.organizations').set({ deleted_at: sql`now()`, updated_at: sql`now()` })
      .where('id', '=', orgId).where('deleted_at', 'is', null))) > 0;
  },
};
