import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { EmailTemplate } from '../notifications/email-templates.js';

/** How many of something happened in the last hour, and in how many seconds the oldest of them leaves it (at least 1). */
export interface RecentCount { count: number; retryAfterSeconds: number }

/** Password-reset tokens and e-mail change requests (privileged auth path only); tokens only as SHA-256. */
export const accountTokenRepository = {
  /**
   * A new reset token replaces the user's unused ones: only the latest mailed link works. The caller has locked the
   * user's row (userRepository.lockIfNotErased; the mail job, before the delivery's), as the erasure does before it
   * deletes the tokens: the update and the insert (which key-share locks the user's row) waited for it the other way.
   */
  async addResetToken(db: Db, userId: string, tokenHash: string, ttlMinutes: number): Promise<void> {
    await db.run(qb.updateTable('core.password_reset_tokens').set({ used_at: sql`now()` }).where('user_id', '=', userId).where('used_at', 'is', null));
    await db.run(qb.insertInto('core.password_reset_tokens').values({
      token_hash: tokenHash, user_id: userId, expires_at: sql`now() + make_interval(mins => ${ttlMinutes})`,
    }));
  },

  /**
   * The user a usable reset token belongs to (unknown, used, expired: undefined), read without locking the token: the
   * caller locks the user's row first and then consumes it, in the order an erasure takes (the account's row, then its
   * links). Consumed first, the token's lock and the erasure's were taken in opposite orders and deadlocked.
   */
  async resetTokenUser(db: Db, tokenHash: string): Promise<string | undefined> {
    const [row] = await db.run(qb.selectFrom('core.password_reset_tokens').select('user_id')
      .where('token_hash', '=', tokenHash).where('used_at', 'is', null).where('expires_at', '>', sql<Date>`now()`));
    return row?.user_id;
  },

  /** Uses a reset token of `userId` once (after resetTokenUser and the user's lock); false when it is no longer usable. */
  async consumeResetToken(db: Db, tokenHash: string, userId: string): Promise<boolean> {
    return (await db.runCount(qb.updateTable('core.password_reset_tokens').set({ used_at: sql`now()` })
      .where('token_hash', '=', tokenHash).where('user_id', '=', userId).where('used_at', 'is', null).where('expires_at', '>', sql<Date>`now()`))) > 0;
  },

  /**
   * The account e-mails of `template` queued for the user within the last hour, and in how many seconds the oldest of
   * them leaves the hour (the per-account hourly limits against mail bombing: account-mail.service.ts).
   */
  async recentMails(db: Db, userId: string, template: EmailTemplate): Promise<RecentCount> {
    const [row] = await db.run(qb.selectFrom('core.email_deliveries')
      .select([(eb) => eb.fn.countAll<string>().as('n'), sql<number>`${retryAfter(sql.ref('created_at'))}`.as('retryAfterSeconds')])
      .where('user_id', '=', userId).where('template', '=', template).where('created_at', '>', sql<Date>`now() - interval '1 hour'`));
    return { count: Number(row.n), retryAfterSeconds: row.retryAfterSeconds };
  },

  /**
   * The e-mail changes the user asked for within the last hour, as audited (auth.email_change_requested, in their personal
   * organization): a request for an address another account uses mails nothing and stores no request, yet counts alike,
   * or the limit's 429 would tell which addresses have accounts.
   */
  async recentEmailChangeRequests(db: Db, personalOrgId: string, userId: string): Promise<RecentCount> {
    const [row] = await db.run(qb.selectFrom('core.audit_logs')
      .select([(eb) => eb.fn.countAll<string>().as('n'), sql<number>`${retryAfter(sql.ref('occurred_at'))}`.as('retryAfterSeconds')])
      .where('org_id', '=', personalOrgId).where('action', '=', 'auth.email_change_requested').where('entity_type', '=', 'user')
      .where('entity_id', '=', userId).where('occurred_at', '>', sql<Date>`now() - interval '1 hour'`));
    return { count: Number(row.n), retryAfterSeconds: row.retryAfterSeconds };
  },

  /**
   * One pending change at a time: a new request ends the earlier one's link (whatever address it names). Answers how many
   * ended. `skipLocked`: requests another transaction holds are left to it (a reset or an erasure ending them too, a
   * confirmation), for a caller that holds a session's row, which those lock after the requests: waiting, it deadlocked.
   */
  async endPendingEmailChanges(db: Db, userId: string, { skipLocked = false }: { skipLocked?: boolean } = {}): Promise<number> {
    const pending = qb.updateTable('core.email_change_requests').set({ expires_at: sql`now()` })
      .where('user_id', '=', userId).where('confirmed_at', 'is', null).where('expires_at', '>', sql<Date>`now()`);
    return db.runCount(skipLocked
      ? pending.where('id', 'in', qb.selectFrom('core.email_change_requests').select('id')
        .where('user_id', '=', userId).where('confirmed_at', 'is', null).where('expires_at', '>', sql<Date>`now()`).forUpdate().skipLocked())
      : pending);
  },

  async addEmailChange(db: Db, r: { userId: string; oldEmail: string; newEmail: string; ttlHours: number }): Promise<string> {
    const [row] = await db.run(qb.insertInto('core.email_change_requests').values({
      user_id: r.userId, old_email: r.oldEmail, new_email: r.newEmail, expires_at: sql`now() + make_interval(hours => ${r.ttlHours})`,
    }).returning('id'));
    return row.id;
  },

  /** The mail job sets the link's token; false when the request is no longer pending. */
  async setEmailChangeToken(db: Db, id: string, tokenHash: string): Promise<boolean> {
    const n = await db.runCount(qb.updateTable('core.email_change_requests').set({ token_hash: tokenHash })
      .where('id', '=', id).where('confirmed_at', 'is', null).where('expires_at', '>', sql<Date>`now()`));
    return n > 0;
  },

  /** The user of a pending change's token, read without locking the request (see resetTokenUser: the user's row first). */
  async emailChangeUser(db: Db, tokenHash: string): Promise<string | undefined> {
    const [row] = await db.run(qb.selectFrom('core.email_change_requests').select('user_id')
      .where('token_hash', '=', tokenHash).where('confirmed_at', 'is', null).where('expires_at', '>', sql<Date>`now()`));
    return row?.user_id;
  },

  /**
   * Confirms a pending change of `userId` (after emailChangeUser and the user's lock; before the account's identities
   * take the new address) and records whether an identity of the user had verified the old address then: erasure and
   * export count that address as the person's only so. The new address is kept in NFC, the form the account takes (a
   * row of before migration 20270211000700 may hold another: review rn).
   */
  async consumeEmailChange(db: Db, tokenHash: string, userId: string) {
    const [row] = await db.run(qb.updateTable('core.email_change_requests as r').set({
      confirmed_at: sql`now()`,
      new_email: sql<string>`normalize(r.new_email, NFC)`,
      old_email_verified: sql<boolean>`EXISTS (SELECT 1 FROM core.user_identities i
        WHERE i.user_id = r.user_id AND lower(i.email) = lower(r.old_email) AND i.email_verified_at IS NOT NULL)`,
    })
      .where('token_hash', '=', tokenHash).where('user_id', '=', userId).where('confirmed_at', 'is', null).where('expires_at', '>', sql<Date>`now()`)
      .returning(['id', 'user_id', 'old_email', 'new_email']));
    return row;
  },

  /**
   * Drops password-reset links and e-mail change requests a day after they were used or expired (the purge job): the
   * audit log keeps what happened. The per-hour limits on sending them count only the last hour. A confirmed change
   * whose old address was verified is kept: it is the proof that address was the person's (erasure and export).
   */
  async purgeExpired(db: Db): Promise<number> {
    const dayAgo = sql<Date>`now() - interval '1 day'`;
    const resets = await db.runCount(qb.deleteFrom('core.password_reset_tokens')
      .where((eb) => eb.or([eb('expires_at', '<', dayAgo), eb('used_at', '<', dayAgo)])));
    const changes = await db.runCount(qb.deleteFrom('core.email_change_requests')
      .where((eb) => eb.or([eb('expires_at', '<', dayAgo).and('confirmed_at', 'is', null), eb('confirmed_at', '<', dayAgo).and('old_email_verified', '=', false)])));
    return resets + changes;
  },

  /**
   * The account's e-mail and its password identity's, verified (the link proved the mailbox). An account without a
   * password identity (a Hub or Supabase one that set its password by a reset: the change asked for that password) gets
   * one: verification lives in the identities (hasVerifiedEmail), and with none of the new address the account would
   * count as unverified, its next reset or verified sign-in clearing it as a claim. Unused reset links end: they went to
   * the old mailbox, which a person often leaves because they lost it; unused verification links of other addresses too.
   * The caller has locked the user's row.
   */
  async changeEmail(db: Db, userId: string, newEmail: string): Promise<void> {
    await db.run(qb.updateTable('core.User').set({ email: newEmail, updatedAt: sql`now() AT TIME ZONE 'utc'` }).where('id', '=', userId));
    // the password identity takes the new address, verified, or the account gets one (identityRepository.proveUserEmail;
    // not imported: that module imports this one)
    await db.$executeRaw`SELECT core.prove_user_email(${userId})`;
    await db.run(qb.updateTable('core.password_reset_tokens').set({ used_at: sql`now()` }).where('user_id', '=', userId).where('used_at', 'is', null));
    // and unused verification links of other addresses: one of the old address still answered "verified" (and audited
    // user.email_verified for it) though the account no longer has that address; the new one is verified just above
    await db.run(qb.updateTable('core.email_verification_tokens').set({ used_at: sql`now()` }).where('user_id', '=', userId).where('used_at', 'is', null)
      .where(sql`lower(email)`, '<>', newEmail.toLowerCase()));
    // auth.users' copy (the seed tables' foreign keys) follows, so the old address is free there too
    await db.$executeRaw`SELECT core.sync_auth_user(${userId}::uuid, ${newEmail})`;
  },
};

/** Seconds until the oldest of the hour's rows (by `at`) leaves the hour; at least 1 (0 without rows). */
function retryAfter(at: ReturnType<typeof sql.ref>) {
  return sql<number>`coalesce(greatest(1, ceil(extract(epoch FROM min(${at}) + interval '1 hour' - now())))::int, 0)`;
}
