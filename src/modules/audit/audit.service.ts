import { Injectable } from '@nestjs/common';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { actorOf, type Principal } from '../../platform/auth/principal.js';
import { auditRepository, type AuditFilter, type AuditLog } from './audit.repository.js';

export interface AuditEntry {
  action: string;
  entityType: string;
  entityId?: string | null;
  before?: unknown;
  after?: unknown;
  /** defaults to the transaction's organization */
  orgId?: string;
}

/** Writes audit rows in the caller's transaction: the row commits or rolls back with the change. */
@Injectable()
export class AuditService {
  record(tx: TenantTx, entry: AuditEntry): Promise<void> {
    return this.write(tx.db, entry.orgId ?? tx.orgId, tx.principal, entry, tx.meta);
  }

  /** For privileged paths (login, webhooks, jobs): the actor is named explicitly. */
  recordPrivileged(db: Db, orgId: string, actor: Principal | 'system', entry: AuditEntry, meta?: { requestId?: string; ip?: string }): Promise<void> {
    return this.write(db, orgId, actor, entry, meta);
  }

  /** The organization's audit log, newest first; `afterId` is the (decoded) cursor: the last id of the previous page. */
  list(tx: TenantTx, filter: Omit<AuditFilter, 'beforeId'>, afterId?: string): Promise<AuditLog[]> {
    return auditRepository.list(tx.db, tx.orgId, { ...filter, beforeId: afterId });
  }

  private async write(db: Db, orgId: string, actor: Principal | 'system', e: AuditEntry, meta?: { requestId?: string; ip?: string }): Promise<void> {
    const { actorId, principalType } = actor === 'system' ? { actorId: null, principalType: 'system' as const } : actorOf(actor);
    // sent now, settled with COMMIT: a rejected row (policy, constraint) rolls the whole change back
    auditRepository.insert(db, {
      orgId, actorId, principalType, action: e.action, entityType: e.entityType, entityId: e.entityId ?? null,
      before: e.before, after: e.after, requestId: meta?.requestId ?? null, ip: meta?.ip ?? null,
    });
  }
}
