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
 * Records another module keeps in a workspace, which deleting the workspace would delete with it (its foreign key
 * cascades): the knowledge base's collections. That module registers a count of them; a workspace that holds any is
 * not deleted, so nothing goes without its own audit rows and events.
 */
export interface WorkspaceContents {
  /** what one of them is called in the refusal: 'knowledge collection' */
  noun: string;
  /** how many the workspace holds, in the deleting transaction (read by an owner or admin, who see them all) */
  count(tx: TenantTx, workspaceId: string): Promise<number>;
}

@Injectable()
export class WorkspacesService {
  private readonly contents: WorkspaceContents[] = [];

  constructor(private readonly audit: AuditService) {}

  registerContents(contents: WorkspaceContents): void {
    this.contents.push(contents);
  }

  list(tx: TenantTx): Promise<WorkspaceDto[]> {
    return workspaces.list(tx.db, tx.orgId);
  }

  async get(tx: TenantTx, id: string, forUpdate = false): Promise<WorkspaceDto> {
    const ws = await workspaces.get(tx.db, tx.orgId, id, forUpdate);
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
    const before = await this.get(tx, id);
    const after = await uniqueName(name, workspaces.rename(tx.db, tx.orgId, id, name));
    if (!after) throw PlatformErrors.notFound('workspace', id);
    await this.audit.record(tx, { action: 'workspace.updated', entityType: 'workspace', entityId: id, before, after });
    return after;
  }

  /** Refused while the workspace holds other modules' records (409 workspace.not_empty) or is referred to (409 conflict.reference). */
  async delete(tx: TenantTx, id: string): Promise<void> {
    // locked before counting: a record added to the workspace meanwhile waits for this (its foreign key check shares the
    // row's lock) and then finds the workspace gone; one added before is committed by then and counted
    const before = await this.get(tx, id, true);
    for (const contents of this.contents) {
      const n = await contents.count(tx, id);
      const noun = contents.noun;
      if (n > 0) {
        throw OrganizationsErrors.error('workspace.not_empty',
          `workspace ${id} still holds ${n} ${noun}${n === 1 ? '' : 's'}, which would be deleted with it: delete ${n === 1 ? 'it' : 'them'} first`);
      }
    }
    const deleted = await translateDatabaseError(workspaces.delete(tx.db, tx.orgId, id), {
      '23503': () => PlatformErrors.error('conflict.reference', `workspace ${id} is still referred to by other records (journal lines or AI agents), so it cannot be deleted`),
    });
    if (!deleted) throw PlatformErrors.notFound('workspace', id);
    await this.audit.record(tx, { action: 'workspace.deleted', entityType: 'workspace', entityId: id, before });
  }
}
