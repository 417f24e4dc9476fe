import type { Db } from '../../platform/database/database.service.js';

/** core.personal_data_keys: through its SECURITY DEFINER functions from requests, directly on privileged paths. */
export const personalDataKeyRepository = {
  /**
   * The subject's key: the existing one, or the candidate (its id, its wrapped key) stored now. Undefined when the
   * subject's erasure is recorded (a user's, a party's): the function makes no key for it, and deletes one made since.
   */
  async getOrCreate(db: Db, candidateId: string, subject: string, wrapped: unknown): Promise<{ id: string; wrapped: unknown } | undefined> {
    const [row] = await db.$queryRaw<{ id: string; wrapped: unknown }[]>`
      SELECT id, wrapped FROM core.personal_data_key(${candidateId}::uuid, ${subject}, ${JSON.stringify(wrapped)}::jsonb)`;
    return row;
  },

  /** The keys of these ids that still exist. */
  byId(db: Db, ids: string[]): Promise<{ id: string; subject: string; wrapped: unknown }[]> {
    return db.$queryRaw`SELECT id, subject, wrapped FROM core.personal_data_keys_by_id(${ids}::uuid[])`;
  },

  /** An organization's erasure of its party (vendor, customer): the function checks the party is the caller's. */
  async shredPartyKey(db: Db, party: string, partyId: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ shredded: boolean }[]>`SELECT core.shred_party_key(${party}, ${partyId}::uuid) AS shredded`;
    return row.shredded;
  },

  // ---------------------------------------------------------------- re-wrapping (privileged: secrets.rotate)
  /** Keys not wrapped under the active key (`kid`), unwrapped ones included. */
  async countStale(db: Db, activeKid: string): Promise<number> {
    const [r] = await db.$queryRaw<{ n: number }[]>`
      SELECT count(*)::int AS n FROM core.personal_data_keys WHERE wrapped->>'kid' IS DISTINCT FROM ${activeKid}`;
    return r.n;
  },

  /**
   * The next `limit` such keys after id `after`, locked (a key being created is skipped: it is wrapped under the
   * active key), each with the organization whose audit trail it seals (the first entry sealed with it; null when
   * none is). One scan of the audit log per batch.
   */
  lockStale(db: Db, activeKid: string, after: string, limit: number): Promise<{ id: string; wrapped: unknown; org_id: string | null }[]> {
    return db.$queryRaw`
      WITH batch AS (
        SELECT id, wrapped FROM core.personal_data_keys
        WHERE wrapped->>'kid' IS DISTINCT FROM ${activeKid} AND id > ${after}::uuid
        ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED
      ), sealing AS (
        SELECT DISTINCT ON (s.k) s.k AS id, a.org_id
        FROM core.audit_logs a CROSS JOIN LATERAL (VALUES (a.before->'$sealed'->>'k'), (a.after->'$sealed'->>'k')) s(k)
        WHERE s.k IN (SELECT id::text FROM batch)
        ORDER BY s.k, a.id
      )
      SELECT b.id, b.wrapped, s.org_id FROM batch b LEFT JOIN sealing s ON s.id = b.id::text ORDER BY b.id`;
  },

  async rewrap(db: Db, id: string, wrapped: unknown): Promise<void> {
    await db.$executeRaw`UPDATE core.personal_data_keys SET wrapped = ${JSON.stringify(wrapped)}::jsonb WHERE id = ${id}::uuid`;
  },

  /** Crypto-shredding: the keys of these subjects are deleted (privacy.erasure); answers how many there were. */
  deleteSubjects(db: Db, subjects: string[]): Promise<number> {
    return db.$executeRaw`DELETE FROM core.personal_data_keys WHERE subject = ANY(${subjects}::text[])`;
  },
};
