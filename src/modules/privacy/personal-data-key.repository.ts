import type { Db } from '../../platform/database/database.service.js';

/** core.personal_data_keys: through its SECURITY DEFINER functions from requests, directly on privileged paths. */
export const personalDataKeyRepository = {
  /** The subject's key: the existing one, or the candidate (its id, its wrapped key) stored now. */
  async getOrCreate(db: Db, candidateId: string, subject: string, wrapped: unknown): Promise<{ id: string; wrapped: unknown }> {
    const [row] = await db.$queryRaw<{ id: string; wrapped: unknown }[]>`
      SELECT id, wrapped FROM core.personal_data_key(${candidateId}::uuid, ${subject}, ${JSON.stringify(wrapped)}::jsonb)`;
    if (!row) throw new Error('no personal data key came back'); // the function inserts or finds one
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

  /** Crypto-shredding: the keys of these subjects are deleted (privacy.erasure); answers how many there were. */
  deleteSubjects(db: Db, subjects: string[]): Promise<number> {
    return db.$executeRaw`DELETE FROM core.personal_data_keys WHERE subject = ANY(${subjects}::text[])`;
  },
};
