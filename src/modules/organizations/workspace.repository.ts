import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { WorkspaceDto } from './workspace.dto.js';

const COLUMNS = ['id', 'org_id as orgId', 'name', 'created_at as createdAt', 'updated_at as updatedAt'] as const;
const workspaces = () => qb.selectFrom('core.workspaces').select(COLUMNS);

/** core.workspaces: members read, admins write (policies). */
export const workspaceRepository = {
  /** How many workspaces the organization has (the plan's counted limit `workspaces`). */
  async count(db: Db, orgId: string): Promise<number> {
    const [row] = await db.run(qb.selectFrom('core.workspaces').select((eb) => eb.fn.countAll<bigint>().as('n')).where('org_id', '=', orgId));
    return Number(row.n);
  },

  async list(db: Db, orgId: string): Promise<WorkspaceDto[]> {
    return db.run(workspaces().where('org_id', '=', orgId).orderBy('name').orderBy('id'));
  },

  /** `lock`: the row stays locked until commit as the rename that follows locks it (FOR NO KEY UPDATE), so the before the caller audits is what it replaces. */
  async get(db: Db, orgId: string, id: string, o: { lock?: boolean } = {}): Promise<WorkspaceDto | undefined> {
    const q = workspaces().where('org_id', '=', orgId).where('id', '=', id);
    const [row] = await db.run(o.lock ? q.forNoKeyUpdate() : q);
    return row;
  },

  /** The workspace the request acts in, as the database sees it (auth_workspace_id(), from X-Workspace-Id). */
  async current(db: Db): Promise<WorkspaceDto | undefined> {
    const [row] = await db.run(workspaces().where('org_id', '=', sql<string>`public.auth_org_id()`).where('id', '=', sql<string>`public.auth_workspace_id()`));
    return row;
  },

  async create(db: Db, orgId: string, name: string): Promise<WorkspaceDto> {
    const [row] = await db.run(qb.insertInto('core.workspaces').values({ org_id: orgId, name }).returning(COLUMNS));
    return row;
  },

  async rename(db: Db, orgId: string, id: string, name: string): Promise<WorkspaceDto | undefined> {
    const [row] = await db.run(qb.updateTable('core.workspaces').set({ name, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(COLUMNS));
    return row;
  },

  /** The deleted workspace as it was, or undefined when there is none. */
  async delete(db: Db, orgId: string, id: string): Promise<WorkspaceDto | undefined> {
    const [row] = await db.run(qb.deleteFrom('core.workspaces').where('org_id', '=', orgId).where('id', '=', id).returning(COLUMNS));
    return row;
  },
};
