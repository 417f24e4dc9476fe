import type { Db } from '../../platform/database/database.service.js';

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
   * id is selected as bigint: ORDER BY on a text alias would sort "2" after "18".
   */
  async list(db: Db, orgId: string, f: AuditFilter): Promise<AuditLog[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT id, occurred_at, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip
      FROM core.audit_logs
      WHERE org_id = ${orgId}::uuid
        AND (${f.beforeId ?? null}::bigint IS NULL OR id < ${f.beforeId ?? null}::bigint)
        AND (${f.action ?? null}::text IS NULL OR action = ${f.action ?? null})
        AND (${f.entityType ?? null}::text IS NULL OR entity_type = ${f.entityType ?? null})
        AND (${f.entityId ?? null}::text IS NULL OR entity_id = ${f.entityId ?? null})
        AND (${f.actorId ?? null}::text IS NULL OR actor_id = ${f.actorId ?? null})
        AND (${f.from ?? null}::timestamptz IS NULL OR occurred_at >= ${f.from ?? null}::timestamptz)
        AND (${f.to ?? null}::timestamptz IS NULL OR occurred_at < ${f.to ?? null}::timestamptz)
      ORDER BY id DESC LIMIT ${f.limit}`;
    return rows.map((r) => ({
      id: String(r.id), occurredAt: r.occurred_at, actorId: r.actor_id, principalType: r.principal_type, action: r.action,
      entityType: r.entity_type, entityId: r.entity_id, before: r.before, after: r.after, requestId: r.request_id, ip: r.ip,
    }));
  },
};
