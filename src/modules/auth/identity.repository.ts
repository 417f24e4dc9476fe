import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { UserRow } from './user.repository.js';
import { accountTokenRepository } from './account-token.repository.js';
import { apiKeyRepository } from '../api-keys/api-key.repository.js';

export type IdentityProvider = 'password' | 'nextauth' | 'supabase';

export interface IdentityInput {
  provider: IdentityProvider;
  subject: string;
  email: string;
  emailVerified: boolean;
}

/** An identity's e-mail as stored by add() or touch(): another account's address is not taken as asserted. */
export interface StoredIdentityEmail {
  email: string;
  emailVerified: boolean;
}

/** Identities (provider, subject) of users, e-mail verification tokens, redeemed app tokens. Privileged paths only. */
export const identityRepository = {
  /** The user an identity belongs to, with their personal organization. */
  async findUser(db: Db, provider: IdentityProvider, subject: string): Promise<(UserRow & { personalOrgId: string | null }) | undefined> {
    const [row] = await db.run(qb.selectFrom('core.user_identities as i')
      .innerJoin('core.User as u', 'u.id', 'i.user_id')
      .select(['u.id', 'u.email', 'u.name', 'u.image', 'u.accountType', sql<string | null>`core.personal_org_id(u.id)`.as('personalOrgId')])
      .where('i.provider', '=', provider).where('i.subject', '=', subject));
    return row;
  },

  /**
   * Adds an identity to a user. Undefined when the identity already exists (it belongs to someone: the caller decides
   * what that means), else the e-mail stored and whether verified. An e-mail that is another account's address
   * (core.email_of_another_account, 20270211001000) is stored unverified whatever the provider says, as touch() keeps it
   * (review rf1): verified, it was a proven address of this user, and this user's erasure took that account's
   * invitations, mails and key, and its export read them (erasureRepository.provenEmails).
   */
  async add(db: Db, userId: string, i: IdentityInput): Promise<StoredIdentityEmail | undefined> {
    const [row] = await db.run(qb.insertInto('core.user_identities')
      .values({
        provider: i.provider, subject: i.subject, user_id: userId, email: i.email,
        email_verified_at: i.emailVerified ? sql<Date | null>`CASE WHEN core.email_of_another_account(${userId}, ${i.email}) THEN NULL ELSE now() END` : null,
      })
      .onConflict((c) => c.columns(['provider', 'subject']).doNothing())
      .returning(['email', 'email_verified_at']));
    return row ? { email: row.email, emailVerified: row.email_verified_at !== null } : undefined;
  },

  /**
   * A sign-in through this identity: the e-mail it now asserts. Verified once the provider says so;
   * a verified e-mail stays verified until the identity asserts another one. An e-mail that is another account's address
   * is not taken (review ro): the identity keeps what it had (a reported pair's decomposed address that migration
   * 20270211000700 left, whose NFC form is the kept account's), else it would prove that account's address to its own.
   * Another account's address as add() tells it (core.email_of_another_account). Answers the identity's e-mail as stored
   * now and whether it is verified (undefined: no such identity): not the asserted one when it was kept (review rB).
   * Whether it is another account's is asked once (a materialized CTE: inlined, each CASE arm would call the function).
   */
  async touch(db: Db, i: IdentityInput): Promise<StoredIdentityEmail | undefined> {
    const [row] = await db.run(qb
      .with((cte) => cte('asserted').materialized(), (w) => w.selectFrom('core.user_identities')
        .select(['provider', 'subject', sql<boolean>`core.email_of_another_account(user_id, ${i.email})`.as('others')])
        .where('provider', '=', i.provider).where('subject', '=', i.subject))
      .updateTable('core.user_identities as i').from('asserted as a')
      .set({
        email: sql<string>`CASE WHEN a.others THEN i.email ELSE ${i.email} END`,
        last_used_at: sql`now()`,
        email_verified_at: sql`CASE WHEN a.others THEN i.email_verified_at ELSE ${i.emailVerified
          ? sql`coalesce(i.email_verified_at, now())`
          : sql`CASE WHEN lower(i.email) = lower(${i.email}) THEN i.email_verified_at END`} END`,
      })
      .whereRef('i.provider', '=', 'a.provider').whereRef('i.subject', '=', 'a.subject')
      .returning(['i.email', 'i.email_verified_at']));
    return row ? { email: row.email, emailVerified: row.email_verified_at !== null } : undefined;
  },

  /** Marks the password identity of `email` verified (the demo seed: its addresses are no real mailboxes). */
  async markEmailVerified(db: Db, email: string): Promise<void> {
    await db.run(qb.updateTable('core.user_identities').set({ email_verified_at: sql`coalesce(email_verified_at, now())` })
      .where('provider', '=', 'password').where(sql`lower(email)`, '=', email.toLowerCase()));
  },

  /** Whether any identity of the user has proven this e-mail. */
  async hasVerifiedEmail(db: Db, userId: string, email: string): Promise<boolean> {
    const rows = await db.run(qb.selectFrom('core.user_identities').select('provider')
      .where('user_id', '=', userId).where(sql`lower(email)`, '=', email.toLowerCase()).where('email_verified_at', 'is not', null)
      .limit(1));
    return rows.length > 0;
  },

  /**
   * Someone proves the e-mail of an account nobody had proved it of (a verified sign-in claims it, a password-reset link
   * is used): every way in set up before goes, since whoever pre-registered the address may have set it up. That is
   * every identity linked so far (one linked while signed in carries its own verified e-mail, not the account's),
   * every pending e-mail change, with `password` the password, and every API key the account created (audited, reason
   * creator_account_claimed: only its creator ever saw a key's secret). Says what went. The rest of a claim (invitations,
   * shared organizations) is AccountClaim's (account-claim.service.ts), which calls this.
   */
  async removeUnverifiedAccess(db: Db, userId: string, opts: { password: boolean; meta?: { requestId?: string; ip?: string } }): Promise<{
    password: boolean; identities: string[]; emailChanges: number; apiKeys: number;
  }> {
    const password = opts.password && (await db.runCount(qb.deleteFrom('core.user_credentials').where('user_id', '=', userId))) > 0;
    const gone = await db.run(qb.deleteFrom('core.user_identities').where('user_id', '=', userId).returning('provider'));
    const emailChanges = await accountTokenRepository.endPendingEmailChanges(db, userId);
    const apiKeys = await apiKeyRepository.revokeAllOfCreator(db, userId, 'creator_account_claimed', opts.meta);
    return { password, identities: gone.map((r) => r.provider).sort(), emailChanges, apiKeys };
  },

  /**
   * The ways the user signs in, with the e-mail each asserted. The password identity only when the account has a
   * password: an account made by a Hub or Supabase exchange gets one when a mailed link proves its address
   * (proveUserEmail), which is no password to sign in with. An e-mail that is another account's address now reads
   * unverified, whatever the row holds (one verified before that account took it): it proves nothing of it to this user
   * (erasureRepository.provenEmails).
   */
  async listForUser(db: Db, userId: string): Promise<{ provider: string; email: string; emailVerified: boolean; createdAt: Date; lastUsedAt: Date }[]> {
    const rows = await db.run(qb.selectFrom('core.user_identities')
      .select(['provider', 'email', 'created_at', 'last_used_at',
        sql<boolean>`email_verified_at IS NOT NULL AND NOT core.email_of_another_account(user_id, email)`.as('verified')])
      .where('user_id', '=', userId)
      .where((eb) => eb.or([
        eb('provider', '<>', 'password'),
        eb.exists(eb.selectFrom('core.user_credentials as c').select(sql`1`.as('one')).whereRef('c.user_id', '=', 'core.user_identities.user_id')),
      ]))
      .orderBy('created_at'));
    return rows.map((r) => ({
      provider: r.provider, email: r.email, emailVerified: r.verified,
      createdAt: r.created_at as Date, lastUsedAt: r.last_used_at as Date,
    }));
  },

  /** Removes the user's identities of `provider` (unlinking); says what went. */
  async removeProvider(db: Db, userId: string, provider: IdentityProvider): Promise<{ subject: string; email: string; emailVerified: boolean }[]> {
    const rows = await db.run(qb.deleteFrom('core.user_identities').where('user_id', '=', userId).where('provider', '=', provider)
      .returning(['subject', 'email', 'email_verified_at']));
    return rows.map((r) => ({ subject: r.subject, email: r.email, emailVerified: r.email_verified_at !== null }));
  },

  /** The ways the user can sign in now: a password (core.user_credentials), and how many identities of other issuers. */
  async signInMethods(db: Db, userId: string): Promise<{ password: boolean; identities: number }> {
    const [row] = await db.run(qb.selectNoFrom([
      sql<boolean>`EXISTS (SELECT 1 FROM core.user_credentials WHERE user_id = ${userId})`.as('password'),
      sql<number>`(SELECT count(*)::int FROM core.user_identities WHERE user_id = ${userId} AND provider <> 'password')`.as('identities'),
    ]));
    return { password: row.password, identities: Number(row.identities) };
  },

  /** A verification link's token; the mail job has locked the user's row first (see accountTokenRepository.addResetToken). */
  async addVerificationToken(db: Db, v: { tokenHash: string; userId: string; email: string; ttlHours: number }): Promise<void> {
    await db.run(qb.insertInto('core.email_verification_tokens').values({
      token_hash: v.tokenHash, user_id: v.userId, email: v.email, expires_at: sql`now() + make_interval(hours => ${v.ttlHours})`,
    }));
  },

  /**
   * Uses a verification token of `userId` once: marks it used, and the account's e-mail proved (proveUserEmail).
   * Undefined (nothing changed) when the token is unknown, used, expired, another user's or for an address the account
   * no longer has (the mail job mints links only for the current one, and an e-mail change ends the others). Take the
   * user's row first (userRepository.lockIfNotErased), as the erasure does before it deletes the identities and then the
   * tokens.
   */
  async consumeVerificationToken(db: Db, tokenHash: string, userId: string): Promise<{ userId: string; email: string } | undefined> {
    const [row] = await db.run(qb.updateTable('core.email_verification_tokens')
      .set({ used_at: sql`now()` })
      .where('token_hash', '=', tokenHash).where('user_id', '=', userId)
      .where('used_at', 'is', null).where('expires_at', '>', sql<Date>`now()`)
      .where(sql`lower(email)`, '=', sql<string>`(SELECT lower(u.email) FROM core."User" u WHERE u.id = ${userId})`)
      .returning(['user_id as userId', 'email']));
    if (!row) return undefined;
    await identityRepository.proveUserEmail(db, row.userId);
    return row;
  },

  /**
   * A link mailed to the account's current address was used (a verification link, a password reset claiming the account,
   * an e-mail change; an invitation's mailed link does the same in core.accept_invitation): the account's password
   * identity (subject = its id) takes that address, verified, and an account without one (made by a Hub or Supabase
   * exchange) gets one. Verification lives in the identities (hasVerifiedEmail, core.user_email_verified). This is no
   * way to sign in: a login needs core.user_credentials, and signInMethods and listForUser go by it. The caller has
   * locked the user's row. One definition, in the database: core.prove_user_email (20270210830100).
   */
  async proveUserEmail(db: Db, userId: string): Promise<void> {
    await db.$executeRaw`SELECT core.prove_user_email(${userId})`;
  },

  /** Records an app token's redemption; false when it was redeemed before (single use). */
  async redeemAppToken(db: Db, r: { jti: string; userId: string; appCode: string; expiresAt: Date }): Promise<boolean> {
    const n = await db.runCount(qb.insertInto('core.app_token_redemptions')
      .values({ jti: r.jti, user_id: r.userId, app_code: r.appCode, expires_at: r.expiresAt })
      .onConflict((c) => c.column('jti').doNothing()));
    return n > 0;
  },

  /** Drops used or expired verification tokens and redemptions of expired app tokens (a day after). */
  async purgeExpired(db: Db): Promise<number> {
    const dayAgo = sql<Date>`now() - interval '1 day'`;
    const tokens = await db.runCount(qb.deleteFrom('core.email_verification_tokens')
      .where((eb) => eb.or([eb('expires_at', '<', dayAgo), eb('used_at', '<', dayAgo)])));
    const redemptions = await db.runCount(qb.deleteFrom('core.app_token_redemptions').where('expires_at', '<', dayAgo));
    return tokens + redemptions;
  },
};
