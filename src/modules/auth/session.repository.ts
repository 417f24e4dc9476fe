import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import { batchOf, inBatches, PURGE_BATCH } from '../../platform/database/batches.js';

/** A session ends (and the purge deletes it) a day past its expiry, or 30 days after it was revoked. */
const ENDED = { expires_at: '1 day', revoked_at: '30 days' } as const;

export interface SessionRow {
  id: string;
  userAgent: string | null;
  ip: string | null;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
}

const now = sql<Date>`now()`;
const daysFromNow = (days: number) => sql<Date>`now() + make_interval(days => ${days}::int)`;

/** Sessions (refresh-token families) and their rotating refresh tokens. */
export const sessionRepository = {
  /**
   * `signedInAt` comes from the app's clock: the session's created_at is when its person proved a credential (a refresh
   * keeps the session), and recent sign-in checks (erasure) measure against that clock.
   */
  async create(db: Db, s: { userId: string; userAgent?: string; ip?: string; ttlDays: number; tokenHash: string; signedInAt: Date }): Promise<string> {
    const [row] = await db.run(qb.insertInto('core.sessions')
      .values({ user_id: s.userId, user_agent: s.userAgent ?? null, ip: s.ip ?? null, expires_at: daysFromNow(s.ttlDays), created_at: s.signedInAt })
      .returning('id'));
    await this.addToken(db, row.id, s.userId, s.tokenHash, s.ttlDays);
    return row.id;
  },

  async addToken(db: Db, sessionId: string, userId: string, tokenHash: string, ttlDays: number): Promise<void> {
    await db.run(qb.insertInto('core.refresh_tokens')
      .values({ token_hash: tokenHash, session_id: sessionId, user_id: userId, expires_at: daysFromNow(ttlDays) }));
  },

  /** Locks the token row and its session for a rotation decision. */
  async findTokenForRotation(db: Db, tokenHash: string) {
    const [row] = await db.run(qb.selectFrom('core.refresh_tokens as t')
      .innerJoin('core.sessions as s', 's.id', 't.session_id')
      .innerJoin('core.User as u', 'u.id', 't.user_id')
      .select((eb) => [
        't.session_id', 't.user_id', 't.used_at', eb('t.expires_at', '<', now).as('token_expired'),
        's.revoked_at', eb('s.expires_at', '<', now).as('session_expired'), 'u.email',
      ])
      .where('t.token_hash', '=', tokenHash)
      .forUpdate(['t', 's']));
    return row;
  },

  /** `at` comes from the app's clock: the refresh grace window is measured against it. */
  async markUsed(db: Db, tokenHash: string, at: Date): Promise<void> {
    await db.run(qb.updateTable('core.refresh_tokens').set({ used_at: at }).where('token_hash', '=', tokenHash));
    await db.run(qb.updateTable('core.sessions').set({ last_used_at: now })
      .where('id', '=', (eb) => eb.selectFrom('core.refresh_tokens').select('session_id').where('token_hash', '=', tokenHash)));
  },

  /** Whether an access token's session is live: not revoked, not expired (begin_request makes the same check). */
  async isLive(db: Db, sessionId: string, userId: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ live: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM core.sessions WHERE id = ${sessionId}::uuid AND user_id = ${userId} AND revoked_at IS NULL AND expires_at > now()) AS live`;
    return row.live;
  },

  /**
   * isLive for a decision that holds until the caller commits (an app token's redemption): locks the session's row FOR
   * SHARE, which a revocation's UPDATE (FOR NO KEY UPDATE) and a purge's DELETE conflict with, so a revocation under way
   * is waited for and seen, and one that starts later waits for the caller's commit. Unlocked, a redemption racing a
   * sign-out passed. Take the user's row first (userRepository.lockIfNotErased), as erasure and password reset do.
   */
  async lockIfLive(db: Db, sessionId: string, userId: string): Promise<boolean> {
    const rows = await db.$queryRaw<{ id: string }[]>`
      SELECT id FROM core.sessions WHERE id = ${sessionId}::uuid AND user_id = ${userId} AND revoked_at IS NULL AND expires_at > now() FOR SHARE`;
    return rows.length > 0;
  },

  /**
   * lockIfLive, answering when the session's person signed in (its created_at: sessionRepository.create); undefined when
   * the session is not live or not theirs. Locked until the caller's transaction ends: a sign-out or reset under way is waited for.
   */
  async lockLiveSignIn(db: Db, sessionId: string, userId: string): Promise<Date | undefined> {
    const rows = await db.$queryRaw<{ created_at: Date }[]>`
      SELECT created_at FROM core.sessions WHERE id = ${sessionId}::uuid AND user_id = ${userId} AND revoked_at IS NULL AND expires_at > now() FOR SHARE`;
    return rows[0]?.created_at;
  },

  /** Of these sessions (id and the user the token names), the ones no longer live: revoked, expired or gone. */
  async endedOf(db: Db, sessions: { id: string; userId: string }[]): Promise<string[]> {
    const rows = await db.$queryRaw<{ id: string }[]>`
      SELECT w.id FROM jsonb_to_recordset(${JSON.stringify(sessions)}::jsonb) AS w(id uuid, "userId" text)
      WHERE NOT EXISTS (SELECT 1 FROM core.sessions s WHERE s.id = w.id AND s.user_id = w."userId" AND s.revoked_at IS NULL AND s.expires_at > now())`;
    return rows.map((r) => String(r.id));
  },

  async revoke(db: Db, sessionId: string, reason: string): Promise<boolean> {
    return (await db.runCount(qb.updateTable('core.sessions').set({ revoked_at: now, revoked_reason: reason })
      .where('id', '=', sessionId).where('revoked_at', 'is', null))) > 0;
  },

  /** Whether this token was issued in this session (the successor a grace-window refresh hands out again). */
  async hasToken(db: Db, sessionId: string, tokenHash: string): Promise<boolean> {
    const [row] = await db.run(qb.selectFrom('core.refresh_tokens').select('token_hash')
      .where('token_hash', '=', tokenHash).where('session_id', '=', sessionId));
    return row !== undefined;
  },

  /** Ends every live session of a user; returns how many. */
  async revokeAllForUser(db: Db, userId: string, reason: string): Promise<number> {
    return db.runCount(qb.updateTable('core.sessions').set({ revoked_at: now, revoked_reason: reason })
      .where('user_id', '=', userId).where('revoked_at', 'is', null));
  },

  async listForUser(db: Db, userId: string): Promise<SessionRow[]> {
    return db.run(qb.selectFrom('core.sessions')
      .select(['id', 'user_agent as userAgent', 'ip', 'created_at as createdAt', 'last_used_at as lastUsedAt', 'expires_at as expiresAt'])
      .where('user_id', '=', userId).where('revoked_at', 'is', null).where('expires_at', '>', now)
      .orderBy('created_at', 'desc').limit(200));
  },

  /**
   * Deletes refresh tokens a day past expiry and sessions that ended (expired a day ago, or revoked
   * 30 days ago; their tokens go with them), and says whose sessions went. In batches of `batch` rows, each walking an
   * index (refresh_tokens_expires_idx, sessions_expires_idx, sessions_revoked_idx) from where the previous one stopped:
   * rows this transaction deleted stay in the indexes until it ends, and a batch restarting from the beginning would walk
   * them all again. now() is the transaction's start: the same cutoffs for every batch.
   */
  async purgeExpired(db: Db, batch = PURGE_BATCH): Promise<{ tokens: number; sessions: number; byUser: { userId: string; personalOrgId: string; sessions: number }[] }> {
    const tokenBatches = await inBatches(async (after: { at: string; key: string } | null) => {
      const [r]: { deleted: number; last: { at: string; key: string } | null }[] = await db.$queryRaw`
        WITH b AS (
          SELECT token_hash, expires_at FROM core.refresh_tokens
          WHERE expires_at < now() - interval '1 day'
            AND (${after === null}::boolean OR (expires_at, token_hash) > (${after?.at ?? null}::timestamptz, ${after?.key ?? null}::text))
          ORDER BY expires_at, token_hash LIMIT ${batch}::int),
        d AS (DELETE FROM core.refresh_tokens t USING b WHERE t.token_hash = b.token_hash RETURNING 1)
        SELECT (SELECT count(*)::int FROM d) AS deleted,
          (SELECT jsonb_build_object('at', b.expires_at, 'key', b.token_hash) FROM b ORDER BY b.expires_at DESC, b.token_hash DESC LIMIT 1) AS last`;
      return { rows: [r?.deleted ?? 0], next: r?.last ?? null };
    });
    const tokens = tokenBatches.reduce((n, c) => n + c, 0);
    const byUser = new Map<string, number>();
    // expired a day ago (sessions_expires_idx), then revoked 30 days ago (sessions_revoked_idx)
    for (const column of Object.keys(ENDED) as (keyof typeof ENDED)[]) {
      type Place = { at: string; id: string };
      const gone = await inBatches(async (after: Place | null) => batchOf(await db.$queryRawUnsafe<{ user_id: string | null; sessions: number; last: Place | null }[]>(`
        WITH b AS (
          SELECT id, ${column} AS at FROM core.sessions
          WHERE ${column} < now() - $1::interval AND ($2::boolean OR (${column}, id) > ($3::timestamptz, $4::uuid))
          ORDER BY ${column}, id LIMIT $5::int),
        gone AS (DELETE FROM core.sessions s USING b WHERE s.id = b.id RETURNING s.user_id)
        SELECT g.user_id, count(*)::int AS sessions, NULL::jsonb AS last FROM gone g GROUP BY g.user_id
        UNION ALL
        SELECT NULL, NULL, (SELECT jsonb_build_object('at', b.at, 'id', b.id) FROM b ORDER BY b.at DESC, b.id DESC LIMIT 1)`,
      ENDED[column], after === null, after?.at ?? null, after?.id ?? null, batch), 'user_id'));
      for (const r of gone) byUser.set(r.user_id!, (byUser.get(r.user_id!) ?? 0) + r.sessions);
    }
    const owners = byUser.size ? await db.$queryRaw<{ user_id: string; personal_org_id: string | null }[]>`
      SELECT u AS user_id, core.personal_org_id(u) AS personal_org_id FROM unnest(${[...byUser.keys()]}::text[]) u` : [];
    return {
      tokens,
      sessions: [...byUser.values()].reduce((n, c) => n + c, 0),
      byUser: owners.filter((r) => r.personal_org_id).map((r) => ({ userId: r.user_id, personalOrgId: r.personal_org_id!, sessions: byUser.get(r.user_id)! })),
    };
  },
};
