import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';

export interface AuditRow {
  orgId: string;
  actorId: string | null;
  principalType: 'user' | 'service' | 'system' | 'anonymous';
  action: string;
  entityType: string;
  entityId: string | null;
  before: unknown;
  after: unknown;
  requestId: string | null;
  ip: string | null;
}

export interface AuditFilter {
  action?: string;
  entityType?: string;
  entityId?: string;
  actorId?: string;
  from?: string;
  to?: string;
  /** keyset: only rows with an id below this one */
  beforeId?: string;
  limit: number;
}

export interface AuditLog {
  id: string;
  occurredAt: Date;
  actorId: string | null;
  principalType: string;
  action: string;
  entityType: string;
  entityId: string | null;
  before: unknown;
  after: unknown;
  requestId: string | null;
  ip: string | null;
}

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));

/** core.audit_logs: insert and read only (the table is append-only for every role). */
export const auditRepository = {
  /** Sent with the transaction's COMMIT (one round trip for both): nothing in a request reads its own audit row. */
  insert(db: Db, r: AuditRow): void {
    db.$executeRawAtCommit`
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
      VALUES (${r.orgId}::uuid, ${r.actorId}, ${r.principalType}, ${r.action}, ${r.entityType}, ${r.entityId},
              ${json(r.before)}::jsonb, ${json(r.after)}::jsonb, ${r.requestId}, ${r.ip})`;
  },

  /**
   * Newest first; the policy limits rows to the request's organization and its admins.
   * id is read as bigint and ordered as one (a text id would sort "2" after "18").
   */
  async list(db: Db, orgId: string, f: AuditFilter): Promise<AuditLog[]> {
    let query = qb.selectFrom('core.audit_logs')
      .select([
        'id', 'occurred_at as occurredAt', 'actor_id as actorId', 'principal_type as principalType', 'action', 'entity_type as entityType',
        'entity_id as entityId', 'before', 'after', 'request_id as requestId', 'ip',
      ])
      .where('org_id', '=', orgId)
      .orderBy('id', 'desc').limit(f.limit);
    if (f.beforeId !== undefined) query = query.where('id', '<', BigInt(f.beforeId));
    if (f.action !== undefined) query = query.where('action', '=', f.action);
    if (f.entityType !== undefined) query = query.where('entity_type', '=', f.entityType);
    if (f.entityId !== undefined) query = query.where('entity_id', '=', f.entityId);
    if (f.actorId !== undefined) query = query.where('actor_id', '=', f.actorId);
    if (f.from !== undefined) query = query.where('occurred_at', '>=', sql<Date>`${f.from}::timestamptz`);
    if (f.to !== undefined) query = query.where('occurred_at', '<', sql<Date>`${f.to}::timestamptz`);
    const rows = await db.run(query);
    return rows.map((r) => ({ ...r, id: String(r.id) }));
  },
};
