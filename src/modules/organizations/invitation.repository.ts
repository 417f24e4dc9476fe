import type { Db } from '../../platform/database/database.service.js';
import type { InvitationDto, InvitationStatus } from './invitation.dto.js';

// Status is derived, so the list filter and the DTO agree on one definition.
const STATUS_SQL = `CASE WHEN accepted_at IS NOT NULL THEN 'accepted' WHEN revoked_at IS NOT NULL THEN 'revoked'
  WHEN expires_at <= now() THEN 'expired' ELSE 'pending' END`;

const toInvitation = (r: any): InvitationDto => ({
  id: r.id, orgId: r.org_id, email: r.email, role: r.role, status: r.status, invitedBy: r.invited_by, expiresAt: r.expires_at,
  acceptedAt: r.accepted_at, acceptedBy: r.accepted_by, revokedAt: r.revoked_at, createdAt: r.created_at,
});

const COLUMNS = `id, org_id, email, role, invited_by, expires_at, accepted_at, accepted_by, revoked_at, created_at, ${STATUS_SQL} AS status`;

/** core.invitations (admins only, by policy) and core.accept_invitation (the invitee, not yet a member). */
export const invitationRepository = {
  async create(db: Db, i: { orgId: string; email: string; role: string; tokenHash: string; invitedBy: string | null; ttlDays: number }): Promise<InvitationDto> {
    const [row] = await db.$queryRawUnsafe<any[]>(
      `INSERT INTO core.invitations (org_id, email, role, token_hash, invited_by, expires_at)
       VALUES ($1::uuid, $2, $3, $4, $5, now() + make_interval(days => $6::int)) RETURNING ${COLUMNS}`,
      i.orgId, i.email, i.role, i.tokenHash, i.invitedBy, i.ttlDays,
    );
    return toInvitation(row);
  },

  /** An expired, never-answered invitation still holds the "one pending per email" index; a new one replaces it. */
  /** Deletes the expired, never-used invitations of `email`; returns their ids. */
  async deleteExpiredFor(db: Db, orgId: string, email: string): Promise<string[]> {
    const rows = await db.$queryRaw<{ id: string }[]>`
      DELETE FROM core.invitations
      WHERE org_id = ${orgId}::uuid AND lower(email) = lower(${email})
        AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= now()
      RETURNING id::text`;
    return rows.map((r) => r.id);
  },

  async get(db: Db, orgId: string, id: string): Promise<InvitationDto | undefined> {
    const [row] = await db.$queryRawUnsafe<any[]>(`SELECT ${COLUMNS} FROM core.invitations WHERE org_id = $1::uuid AND id = $2::uuid`, orgId, id);
    return row && toInvitation(row);
  },

  /** Newest first, keyset on (created_at, id); `key` is each row's position at full (microsecond) precision. */
  async list(db: Db, orgId: string, limit: number, status?: InvitationStatus, after?: [string, string]): Promise<{ invitation: InvitationDto; key: [string, string] }[]> {
    const rows = await db.$queryRawUnsafe<any[]>(
      `SELECT * FROM (SELECT ${COLUMNS}, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position
                      FROM core.invitations WHERE org_id = $1::uuid) i
       WHERE ($2::text IS NULL OR status = $2)
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
       ORDER BY created_at DESC, id DESC LIMIT $5`,
      orgId, status ?? null, after?.[0] ?? null, after?.[1] ?? null, limit,
    );
    return rows.map((r) => ({ invitation: toInvitation(r), key: [r.position, r.id] }));
  },

  async revoke(db: Db, orgId: string, id: string): Promise<InvitationDto | undefined> {
    const [row] = await db.$queryRawUnsafe<any[]>(
      `UPDATE core.invitations SET revoked_at = now()
       WHERE org_id = $1::uuid AND id = $2::uuid AND accepted_at IS NULL AND revoked_at IS NULL RETURNING ${COLUMNS}`,
      orgId, id,
    );
    return row && toInvitation(row);
  },

  /** The database checks the hash, single use, expiry and the caller's email (SECURITY DEFINER). */
  async accept(db: Db, orgId: string, tokenHash: string): Promise<{ orgId: string; userId: string; role: string }> {
    const [row] = await db.$queryRaw<any[]>`SELECT org_id, user_id, role FROM core.accept_invitation(${orgId}::uuid, ${tokenHash})`;
    return { orgId: row.org_id, userId: row.user_id, role: row.role };
  },

  /**
   * Privileged (jobs.purge): deletes invitations that expired unanswered more than `retentionDays`
   * ago, and reports how many per organization for the audit trail.
   */
  async purgeExpired(db: Db, retentionDays: number): Promise<{ orgId: string; count: number }[]> {
    const rows = await db.$queryRaw<{ org_id: string; count: bigint }[]>`
      WITH gone AS (
        DELETE FROM core.invitations
        WHERE accepted_at IS NULL AND expires_at < now() - make_interval(days => ${retentionDays}::int)
        RETURNING org_id)
      SELECT org_id, count(*) AS count FROM gone GROUP BY org_id ORDER BY org_id`;
    return rows.map((r) => ({ orgId: r.org_id, count: Number(r.count) }));
  },
};
