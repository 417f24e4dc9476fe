import type { Db } from '../../platform/database/database.service.js';

export interface SessionRow {
  id: string;
  userAgent: string | null;
  ip: string | null;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

const toSession = (r: any): SessionRow => ({
  id: r.id, userAgent: r.user_agent, ip: r.ip, createdAt: r.created_at, lastUsedAt: r.last_used_at, expiresAt: r.expires_at, revokedAt: r.revoked_at,
});

/** Sessions (refresh-token families) and their rotating refresh tokens. */
export const sessionRepository = {
  async create(db: Db, s: { userId: string; userAgent?: string; ip?: string; ttlDays: number; tokenHash: string }): Promise<string> {
    const [row] = await db.$queryRaw<{ id: string }[]>`
      INSERT INTO core.sessions (user_id, user_agent, ip, expires_at)
      VALUES (${s.userId}, ${s.userAgent ?? null}, ${s.ip ?? null}, now() + make_interval(days => ${s.ttlDays}))
      RETURNING id`;
    await this.addToken(db, row.id, s.userId, s.tokenHash, s.ttlDays);
    return row.id;
  },

  async addToken(db: Db, sessionId: string, userId: string, tokenHash: string, ttlDays: number): Promise<void> {
    await db.$executeRaw`
      INSERT INTO core.refresh_tokens (token_hash, session_id, user_id, expires_at)
      VALUES (${tokenHash}, ${sessionId}::uuid, ${userId}, now() + make_interval(days => ${ttlDays}))`;
  },

  /** Locks the token row and its session for a rotation decision. */
  async findTokenForRotation(db: Db, tokenHash: string) {
    const [row] = await db.$queryRaw<any[]>`
      SELECT t.session_id, t.user_id, t.used_at, t.expires_at < now() AS token_expired,
             s.revoked_at, s.expires_at < now() AS session_expired, u.email
      FROM core.refresh_tokens t
      JOIN core.sessions s ON s.id = t.session_id
      JOIN core."User" u ON u.id = t.user_id
      WHERE t.token_hash = ${tokenHash}
      FOR UPDATE OF t, s`;
    return row as
      | { session_id: string; user_id: string; used_at: Date | null; token_expired: boolean; revoked_at: Date | null; session_expired: boolean; email: string }
      | undefined;
  },

  /** `at` comes from the app's clock: the refresh grace window is measured against it. */
  async markUsed(db: Db, tokenHash: string, at: Date): Promise<void> {
    await db.$executeRaw`UPDATE core.refresh_tokens SET used_at = ${at} WHERE token_hash = ${tokenHash}`;
    await db.$executeRaw`UPDATE core.sessions SET last_used_at = now() WHERE id = (SELECT session_id FROM core.refresh_tokens WHERE token_hash = ${tokenHash})`;
  },

  async revoke(db: Db, sessionId: string, reason: string): Promise<boolean> {
    const n = await db.$executeRaw`
      UPDATE core.sessions SET revoked_at = now(), revoked_reason = ${reason} WHERE id = ${sessionId}::uuid AND revoked_at IS NULL`;
    return n > 0;
  },

  /** Whether this token was issued in this session (the successor a grace-window refresh hands out again). */
  async hasToken(db: Db, sessionId: string, tokenHash: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ found: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM core.refresh_tokens WHERE token_hash = ${tokenHash} AND session_id = ${sessionId}::uuid) AS found`;
    return row.found;
  },

  /** Ends every live session of a user; returns how many. */
  async revokeAllForUser(db: Db, userId: string, reason: string): Promise<number> {
    return db.$executeRaw`
      UPDATE core.sessions SET revoked_at = now(), revoked_reason = ${reason} WHERE user_id = ${userId} AND revoked_at IS NULL`;
  },

  async listForUser(db: Db, userId: string): Promise<SessionRow[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT id, user_agent, ip, created_at, last_used_at, expires_at, revoked_at FROM core.sessions
      WHERE user_id = ${userId} AND revoked_at IS NULL AND expires_at > now() ORDER BY created_at DESC LIMIT 200`;
    return rows.map(toSession);
  },

  /**
   * Deletes refresh tokens a day past expiry and sessions that ended (expired a day ago, or revoked
   * 30 days ago; their tokens go with them), and says whose sessions went.
   */
  async purgeExpired(db: Db): Promise<{ tokens: number; sessions: number; byUser: { userId: string; personalOrgId: string; sessions: number }[] }> {
    const tokens = await db.$executeRaw`DELETE FROM core.refresh_tokens WHERE expires_at < now() - interval '1 day'`;
    const rows = await db.$queryRaw<{ user_id: string; personal_org_id: string | null; sessions: number }[]>`
      WITH gone AS (
        DELETE FROM core.sessions
        WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '30 days'
        RETURNING user_id)
      SELECT g.user_id, core.personal_org_id(g.user_id) AS personal_org_id, count(*)::int AS sessions
      FROM gone g
      GROUP BY g.user_id`;
    return {
      tokens,
      sessions: rows.reduce((n, r) => n + r.sessions, 0),
      byUser: rows.filter((r) => r.personal_org_id).map((r) => ({ userId: r.user_id, personalOrgId: r.personal_org_id!, sessions: r.sessions })),
    };
  },
};
