import { Injectable, Optional } from '@nestjs/common';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { actorOf, type Principal } from '../../platform/auth/principal.js';
import { auditRepository, type AuditFilter, type AuditLog, type AuditRow } from './audit.repository.js';
import { AuditSealer } from '../privacy/audit-sealing.js';

export interface AuditEntry {
  action: string;
  entityType: string;
  entityId?: string | null;
  before?: unknown;
  after?: unknown;
  /** defaults to the transaction's organization */
  orgId?: string;
}

/**
 * Writes audit rows in the caller's transaction: the row commits or rolls back with the change. The personal fields
 * of before/after are sealed with their person's key (privacy/audit-sealing.ts: erasure deletes the key).
 */
@Injectable()
export class AuditService {
  /** without a sealer (scripts that audit no personal data) snapshots are written as given */
  constructor(@Optional() private readonly sealer?: AuditSealer) {}

  record(tx: TenantTx, entry: AuditEntry): Promise<void> {
    return this.write(tx.db, entry.orgId ?? tx.orgId, tx.principal, entry, tx.meta);
  }

  /** For privileged paths (login, webhooks, jobs): the actor is named explicitly. */
  recordPrivileged(db: Db, orgId: string, actor: Principal | 'system', entry: AuditEntry, meta?: { requestId?: string; ip?: string }): Promise<void> {
    return this.write(db, orgId, actor, entry, meta);
  }

  /** The organization's audit log, newest first; `afterId` is the (decoded) cursor: the last id of the previous page. */
  async list(tx: TenantTx, filter: Omit<AuditFilter, 'beforeId'>, afterId?: string): Promise<AuditLog[]> {
    const rows = await auditRepository.list(tx.db, tx.orgId, { ...filter, beforeId: afterId });
    if (!this.sealer) return rows;
    const keys = await this.sealer.openKeys(tx.db, this.sealer.keyIds(rows.flatMap((r) => [r.before, r.after])));
    return rows.map((r) => ({ ...r, before: this.sealer!.open(r.before, tx.orgId, r, keys), after: this.sealer!.open(r.after, tx.orgId, r, keys) }));
  }

  /**
   * The row `record` writes (snapshots sealed), for a statement that writes it itself together with a value only the
   * database knows yet (an invoice's number, taken in the same statement).
   */
  row(tx: TenantTx, entry: AuditEntry): Promise<AuditRow> {
    return this.rowOf(tx.db, entry.orgId ?? tx.orgId, tx.principal, entry, tx.meta);
  }

  private async write(db: Db, orgId: string, actor: Principal | 'system', e: AuditEntry, meta?: { requestId?: string; ip?: string }): Promise<void> {
    // sent now, settled with COMMIT: a rejected row (policy, constraint) rolls the whole change back
    auditRepository.insert(db, await this.rowOf(db, orgId, actor, e, meta));
  }

  private async rowOf(db: Db, orgId: string, actor: Principal | 'system', e: AuditEntry, meta?: { requestId?: string; ip?: string }): Promise<AuditRow> {
    const { actorId, principalType } = actor === 'system' ? { actorId: null, principalType: 'system' as const } : actorOf(actor);
    const facts = { entityType: e.entityType, entityId: e.entityId ?? null, actorUserId: actor !== 'system' && actor.kind === 'user' ? actor.userId : null };
    const before = this.sealer ? await this.sealer.seal(db, orgId, facts, e.before) : e.before;
    const after = this.sealer ? await this.sealer.seal(db, orgId, facts, e.after) : e.after;
    return {
      orgId, actorId, principalType, action: e.action, entityType: e.entityType, entityId: e.entityId ?? null,
      before, after, requestId: meta?.requestId ?? null, ip: meta?.ip ?? null,
    };
  }
}
