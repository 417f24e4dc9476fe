import type { Db } from '../../platform/database/database.service.js';

/**
 * Accounts the Hub made through the token exchange before identities existed (migration 20270210960100): the exchange of
 * that time kept no Hub subject, so nothing names their Hub sign-in. Privileged path auth.credentials only.
 */
export const legacyHubAccountRepository = {
  /**
   * Consumes the account's record (the first Hub sign-in of its e-mail does, whatever follows). 'join' only when the
   * account is still as the migration left it: no password, no identity at all (a password reset, a verified sign-in or
   * a link since made it someone's); 'spent' when it has a record but is no longer so (the caller audits the record's
   * end, and the sign-in goes the ordinary way); null without a record. The caller has locked the account's row
   * (userRepository.lockIfNotErased), as a claim does first.
   */
  async take(db: Db, userId: string): Promise<'join' | 'spent' | null> {
    const [row] = await db.$queryRaw<{ taken: boolean; usable: boolean }[]>`
      WITH taken AS (DELETE FROM core.legacy_hub_accounts WHERE user_id = ${userId} RETURNING user_id)
      SELECT EXISTS (SELECT 1 FROM taken) AS taken,
        NOT EXISTS (SELECT 1 FROM core.user_credentials c WHERE c.user_id = ${userId})
        AND NOT EXISTS (SELECT 1 FROM core.user_identities i WHERE i.user_id = ${userId}) AS usable`;
    if (!row?.taken) return null;
    return row.usable ? 'join' : 'spent';
  },
};
