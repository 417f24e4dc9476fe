import { Injectable } from '@nestjs/common';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { actorOf, type Principal } from '../../platform/auth/principal.js';

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

  private async write(db: Db, orgId: string, actor: Principal | 'system', e: AuditEntry, meta?: { requestId?: string; ip?: string }): Promise<void> {
    const { actorId, principalType } = actor === 'system' ? { actorId: null, principalType: 'system' as const } : actorOf(actor);
    await db.$executeRaw`
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
      VALUES (${orgId}::uuid, ${actorId}, ${principalType}, ${e.action}, ${e.entityType}, ${e.entityId ?? null},
              ${e.before === undefined ? null : JSON.stringify(e.before)}::jsonb, ${e.after === undefined ? null : JSON.stringify(e.after)}::jsonb,
              ${meta?.requestId ?? null}, ${meta?.ip ?? null})`;
  }
}
