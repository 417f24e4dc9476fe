import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { Db } from '../../src/platform/database/database.service.js';
import { AuditSealer, ERASED, type OpenKey } from '../../src/modules/privacy/audit-sealing.js';

/**
 * A sealed audit part opens only with GCM's whole 16-byte tag, as seal makes it: GCM checks only as many bytes as it is
 * given, so a part whose tag was cut to 4 bytes (forged in about 2^32 tries) reads as erased, not as its fields.
 */
describe('AuditSealer.open and the authentication tag', () => {
  it('refuses a truncated or longer tag (the fields read as erased); the whole one opens', async () => {
    // TEST DOUBLE of core.personal_data_key(): the candidate key is the person's key (what the first use stores)
    const stored = new Map<string, unknown>();
    const db = {
      $queryRaw: async (_sql: TemplateStringsArray, id: string, _subject: string, wrapped: string) => {
        stored.set(id, JSON.parse(wrapped));
        return [{ id, wrapped: JSON.parse(wrapped) }];
      },
    } as unknown as Db;
    const sealer = new AuditSealer(undefined);
    const orgId = randomUUID();
    const actor = randomUUID();
    const entry = { entityType: 'provider', entityId: randomUUID(), actorUserId: actor };
    const sealed = await sealer.seal(db, orgId, entry, { publicSlug: 'ada', isPublic: true }) as unknown as { isPublic: boolean; $sealed: { k: string; tag: string } };
    expect(Buffer.from(sealed.$sealed.tag, 'base64')).toHaveLength(16);
    const [[keyId, wrapped]] = [...stored];
    const keys = new Map<string, OpenKey>([[keyId, { id: keyId, subject: `user:${actor}`, key: Buffer.from((wrapped as { unwrapped: string }).unwrapped, 'base64') }]]);
    const withTag = (tag: Buffer) => ({ ...sealed, $sealed: { ...sealed.$sealed, tag: tag.toString('base64') } });
    const tag = Buffer.from(sealed.$sealed.tag, 'base64');

    for (const n of [4, 8, 12, 15]) {
      expect(sealer.open(withTag(tag.subarray(0, n)), orgId, entry, keys)).toEqual({ isPublic: true, publicSlug: ERASED });
    }
    expect(sealer.open(withTag(Buffer.concat([tag, Buffer.alloc(1)])), orgId, entry, keys)).toEqual({ isPublic: true, publicSlug: ERASED });
    expect(sealer.open(sealed, orgId, entry, keys)).toEqual({ isPublic: true, publicSlug: 'ada' });
  });
});
