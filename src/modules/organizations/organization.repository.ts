import type { Db } from '../../platform/database/database.service.js';
import type { OrganizationDto } from './organization.dto.js';

const toOrg = (r: any): OrganizationDto => ({
  id: r.id, name: r.name, accountType: r.account_type, domain: r.domain, ownerUserId: r.owner_user_id,
  role: r.role ?? undefined, createdAt: r.created_at, updatedAt: r.updated_at,
});

export const organizationRepository = {
  async create(db: Db, name: string): Promise<OrganizationDto> {
    const [row] = await db.$queryRaw<any[]>`SELECT * FROM core.create_organization(${name}, 'business')`;
    return { ...toOrg(row), role: 'owner' };
  },

  async listForUser(db: Db, userId: string): Promise<OrganizationDto[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT o.*, m.role FROM core.organizations o
      JOIN core.memberships m ON m.org_id = o.id AND m.user_id = ${userId}
      WHERE o.deleted_at IS NULL
      ORDER BY o.account_type DESC, o.created_at, o.id`;
    return rows.map(toOrg);
  },

  async get(db: Db, orgId: string): Promise<OrganizationDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`SELECT o.*, public.auth_role() AS role FROM core.organizations o WHERE o.id = ${orgId}::uuid`;
    return row && toOrg(row);
  },

  /** An absent field keeps its value; `domain: null` clears the domain. */
  async update(db: Db, orgId: string, patch: { name?: string; domain?: string | null }): Promise<OrganizationDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      UPDATE core.organizations SET
        name = coalesce(${patch.name ?? null}, name),
        domain = CASE WHEN ${patch.domain === undefined} THEN domain ELSE ${patch.domain ?? null} END,
        updated_at = now()
      WHERE id = ${orgId}::uuid RETURNING *, public.auth_role() AS role`;
    return row && toOrg(row);
  },

  /** Soft delete: the row (and the organization's books and audit trail) stays; nobody can act in it. */
  async delete(db: Db, orgId: string): Promise<boolean> {
    return (await db.$executeRaw`UPDATE core.organizations SET deleted_at = now(), updated_at = now() WHERE id = ${orgId}::uuid AND deleted_at IS NULL`) > 0;
  },
};
