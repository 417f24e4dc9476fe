import { qb } from '../../platform/database/query-builder.js';
import type { Db } from '../../platform/database/database.service.js';
import type { WorkspaceDto } from './workspace.dto.js';

const toWorkspace = (r: any): WorkspaceDto => ({ id: r.id, orgId: r.org_id, name: r.name, createdAt: r.created_at, updatedAt: r.updated_at });

/** core.workspaces: members read, admins write (policies). */
export const workspaceRepository = {
  /** How many workspaces the organization has (the plan's counted limit `workspaces`). */
  async count(db: Db, orgId: string): Promise<number> {
    const [row] = await db.run(qb.selectFrom('core.workspaces').select((eb) => eb.fn.countAll<bigint>().as('n')).where('org_id', '=', orgId));
    return Number(row.n);
  },

  async list(db: Db, orgId: string): Promise<WorkspaceDto[]> {
    const rows = await db.$queryRaw<any[]>`SELECT * FROM core.workspaces WHERE org_id = ${orgId}::uuid ORDER BY name, id`;
    return rows.map(toWorkspace);
  },

  async get(db: Db, orgId: string, id: string): Promise<WorkspaceDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`SELECT * FROM core.workspaces WHERE org_id = ${orgId}::uuid AND id = ${id}::uuid`;
    return row && toWorkspace(row);
  },

  /** The workspace the request acts in, as the database sees it (auth_workspace_id(), from X-Workspace-Id). */
  async current(db: Db): Promise<WorkspaceDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      SELECT * FROM core.workspaces WHERE org_id = public.auth_org_id() AND id = public.auth_workspace_id()`;
    return row && toWorkspace(row);
  },

  async create(db: Db, orgId: string, name: string): Promise<WorkspaceDto> {
    const [row] = await db.$queryRaw<any[]>`INSERT INTO core.workspaces (org_id, name) VALUES (${orgId}::uuid, ${name}) RETURNING *`;
    return toWorkspace(row);
  },

  async rename(db: Db, orgId: string, id: string, name: string): Promise<WorkspaceDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      UPDATE core.workspaces SET name = ${name}, updated_at = now() WHERE org_id = ${orgId}::uuid AND id = ${id}::uuid RETURNING *`;
    return row && toWorkspace(row);
  },

  async delete(db: Db, orgId: string, id: string): Promise<boolean> {
    return (await db.$executeRaw`DELETE FROM core.workspaces WHERE org_id = ${orgId}::uuid AND id = ${id}::uuid`) > 0;
  },
};
