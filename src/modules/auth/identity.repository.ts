import type { Db } from '../../platform/database/database.service.js';
import type { UserRow } from './user.repository.js';

export type IdentityProvider = 'password' | 'nextauth' | 'supabase';

export interface IdentityInput {
  provider: IdentityProvider;
  subject: string;
  email: string;
  emailVerified: boolean;
}

/** Identities (provider, subject) of users, e-mail verification tokens, redeemed app tokens. Privileged paths only. */
export const identityRepository = {
  /** The user an identity belongs to, with their personal organization. */
  async findUser(db: Db, provider: IdentityProvider, subject: string): Promise<(UserRow & { personalOrgId: string | null }) | undefined> {
    const [row] = await db.$queryRaw<any[]>`
      SELECT u.id, u.email, u.name, u.image, u."accountType", core.personal_org_id(u.id) AS personal_org_id
      FROM core.user_identities i JOIN core."User" u ON u.id = i.user_id
      WHERE i.provider = ${provider} AND i.subject = ${subject}`;
    return row && { id: row.id, email: row.email, name: row.name, image: row.image, accountType: row.accountType, personalOrgId: row.personal_org_id };
  },

  /**
   * Adds an identity to a user. Returns false when the identity already exists (it belongs to
   * someone: the caller decides what that means), true when added.
   */
  async add(db: Db, userId: string, i: IdentityInput): Promise<boolean> {
    const n = await db.$executeRaw`
      INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at)
      VALUES (${i.provider}, ${i.subject}, ${userId}, ${i.email}, ${i.emailVerified ? new Date() : null})
      ON CONFLICT (provider, subject) DO NOTHING`;
    return n > 0;
  },

  /**
   * A sign-in through this identity: the e-mail it now asserts. Verified once the provider says so;
   * a verified e-mail stays verified until the identity asserts another one.
   */
  async touch(db: Db, i: IdentityInput): Promise<void> {
    await db.$executeRaw`
      UPDATE core.user_identities
      SET email = ${i.email}, last_used_at = now(),
          email_verified_at = CASE
            WHEN ${i.emailVerified} THEN coalesce(email_verified_at, now())
            WHEN lower(email) = lower(${i.email}) THEN email_verified_at
            ELSE NULL END
      WHERE provider = ${i.provider} AND subject = ${i.subject}`;
  },

  /** Whether any identity of the user has proven this e-mail. */
  async hasVerifiedEmail(db: Db, userId: string, email: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ verified: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM core.user_identities
        WHERE user_id = ${userId} AND lower(email) = lower(${email}) AND email_verified_at IS NOT NULL) AS verified`;
    return row.verified;
  },

  /**
   * A verified identity claims an account nobody proved the e-mail of: its password and its
   * unverified identities go (whoever pre-registered it loses every way in). Says what went.
   */
  async removeUnverifiedAccess(db: Db, userId: string): Promise<{ password: boolean; identities: string[] }> {
    const password = (await db.$executeRaw`DELETE FROM core.user_credentials WHERE user_id = ${userId}`) > 0;
    const gone = await db.$queryRaw<{ provider: string }[]>`
      DELETE FROM core.user_identities WHERE user_id = ${userId} AND email_verified_at IS NULL RETURNING provider`;
    return { password, identities: gone.map((r) => r.provider) };
  },

  async listForUser(db: Db, userId: string): Promise<{ provider: string; email: string; emailVerified: boolean; createdAt: Date; lastUsedAt: Date }[]> {
    const rows = await db.$queryRaw<any[]>`
      SELECT provider, email, email_verified_at IS NOT NULL AS verified, created_at, last_used_at
      FROM core.user_identities WHERE user_id = ${userId} ORDER BY created_at`;
    return rows.map((r) => ({ provider: r.provider, email: r.email, emailVerified: r.verified, createdAt: r.created_at, lastUsedAt: r.last_used_at }));
  },

  async addVerificationToken(db: Db, v: { tokenHash: string; userId: string; email: string; ttlHours: number }): Promise<void> {
    await db.$executeRaw`
      INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at)
      VALUES (${v.tokenHash}, ${v.userId}, ${v.email}, now() + make_interval(hours => ${v.ttlHours}))`;
  },

  /**
   * Uses a verification token once: marks it used and the user's password identity for that
   * e-mail verified. Undefined when the token is unknown, used or expired.
   */
  async consumeVerificationToken(db: Db, tokenHash: string): Promise<{ userId: string; email: string } | undefined> {
    const [row] = await db.$queryRaw<{ user_id: string; email: string }[]>`
      UPDATE core.email_verification_tokens SET used_at = now()
      WHERE token_hash = ${tokenHash} AND used_at IS NULL AND expires_at > now()
      RETURNING user_id, email`;
    if (!row) return undefined;
    await db.$executeRaw`
      UPDATE core.user_identities SET email_verified_at = coalesce(email_verified_at, now())
      WHERE provider = 'password' AND user_id = ${row.user_id} AND lower(email) = lower(${row.email})`;
    return { userId: row.user_id, email: row.email };
  },

  /** Records an app token's redemption; false when it was redeemed before (single use). */
  async redeemAppToken(db: Db, r: { jti: string; userId: string; appCode: string; expiresAt: Date }): Promise<boolean> {
    const n = await db.$executeRaw`
      INSERT INTO core.app_token_redemptions (jti, user_id, app_code, expires_at)
      VALUES (${r.jti}::uuid, ${r.userId}, ${r.appCode}, ${r.expiresAt})
      ON CONFLICT (jti) DO NOTHING`;
    return n > 0;
  },

  /** Drops used or expired verification tokens and redemptions of expired app tokens (a day after). */
  async purgeExpired(db: Db): Promise<number> {
    const tokens = await db.$executeRaw`
      DELETE FROM core.email_verification_tokens WHERE expires_at < now() - interval '1 day' OR used_at < now() - interval '1 day'`;
    const redemptions = await db.$executeRaw`DELETE FROM core.app_token_redemptions WHERE expires_at < now() - interval '1 day'`;
    return tokens + redemptions;
  },
};
