import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { AuditService } from '../audit/audit.service.js';
import { workspaceRepository as workspaces } from './workspace.repository.js';
import type { WorkspaceDto } from './workspace.dto.js';
import { OrganizationsErrors } from './organizations.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';

/** A workspace name is unique in its organization. */
function uniqueName<T>(name: string, work: Promise<T>): Promise<T> {
  return translateDatabaseError(work, { '23505': () => OrganizationsErrors.error('workspace.name_taken', `a workspace named "${name}" already exists`) });
}

/**
 * The foreign key of knowledge collections to their workspace (20270203000300_knowledge_collections_keep_workspace):
 * it refuses to delete a workspace that still holds any, so nothing goes without its own audit rows and events.
 */
const COLLECTIONS_FOREIGN_KEY = 'knowledge_collections_org_id_workspace_id_fkey';

@Injectable()
export class WorkspacesService {
  constructor(private readonly audit: AuditService) {}

  list(tx: TenantTx): Promise<WorkspaceDto[]> {
    return workspaces.list(tx.db, tx.orgId);
  }

  async get(tx: TenantTx, id: string, o: { lock?: boolean } = {}): Promise<WorkspaceDto> {
    const ws = await workspaces.get(tx.db, tx.orgId, id, o);
    if (!ws) throw PlatformErrors.notFound('workspace', id);
    return ws;
  }

  async current(tx: TenantTx): Promise<WorkspaceDto> {
    const ws = await workspaces.current(tx.db);
    if (!ws) throw PlatformErrors.notFound('workspace', undefined);
    return ws;
  }

  async create(tx: TenantTx, name: string): Promise<WorkspaceDto> {
    const ws = await uniqueName(name, workspaces.create(tx.db, tx.orgId, name));
    await this.audit.record(tx, { action: 'workspace.created', entityType: 'workspace', entityId: ws.id, after: ws });
    return ws;
  }

  async rename(tx: TenantTx, id: string, name: string): Promise<WorkspaceDto> {
    const before = await this.get(tx, id, { lock: true });
    const after = await uniqueName(name, workspaces.rename(tx.db, tx.orgId, id, name));
    if (!after) throw PlatformErrors.notFound('workspace', id);
    await this.audit.record(tx, { action: 'workspace.updated', entityType: 'workspace', entityId: id, before, after });
    return after;
  }

  /**
   * Refused by the database's foreign keys while the workspace holds knowledge collections (409 workspace.not_empty) or
   * journal lines or AI agents refer to it (409 conflict.reference); a collection created meanwhile waits for the
   * deletion and then finds the workspace gone.
   */
  async delete(tx: TenantTx, id: string): Promise<void> {
    const before = await translateDatabaseError(workspaces.delete(tx.db, tx.orgId, id), {
      '23503': (e) => e.constraint === COLLECTIONS_FOREIGN_KEY
        ? OrganizationsErrors.error('workspace.not_empty', `workspace ${id} still holds knowledge collections: delete them first`)
        : PlatformErrors.error('conflict.reference', `workspace ${id} is still referred to by other records (journal lines or AI agents), so it cannot be deleted`),
    });
    if (!before) throw PlatformErrors.notFound('workspace', id);
    await this.audit.record(tx, { action: 'workspace.deleted', entityType: 'workspace', entityId: id, before });
  }
}
