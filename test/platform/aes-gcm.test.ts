import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { Db } from '../../src/platform/database/database.service.js';
import { AesGcmOpenError, openAesGcm, sealAesGcm } from '../../src/platform/crypto/aes-gcm.js';
import { SecretBox, SecretOpenError } from '../../src/modules/integrations/secret-box.js';
import { AuditSealer } from '../../src/modules/privacy/audit-sealing.js';

/**
 * The one AES-256-GCM helper behind the secret box and the audit log's sealed snapshots, and the stored shapes of both
 * callers: values sealed before the two shared it (fixtures below, made by the code of commit 701770ca with the key
 * below) must still open, and what they seal now has the same shape.
 */
const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const OWNER = { integrationId: '6F1B0A52-3C1D-4E8A-9B7C-2D4E6F8A0B1C', userId: '0b8e5f4a-1c2d-4e3f-8a9b-7c6d5e4f3a2b' };

// sealed by the old SecretBox (new SecretBox({ k2026: KEY }, 'k2026')): integration_secrets.secret and another row's secret
const OLD_SECRET = { ciphertext: 'OhC2gvLrwpuanI3zSzqBoYHMXe5YE58GnSRTeyxQPi7uLVbMZhyCWugDbg==', iv: '7x3jqWKp8iwj5Fl/', tag: 'BvnIYDIBR/n6uAHchRcWtQ==', kid: 'k2026' };
const OLD_SECRET_FOR = { ciphertext: '0wv5arCxPaWsI3RFgNM=', iv: 'fzma4ximtal+otls', tag: '3wqGMFVtw9CpSyk4cKT0pw==', kid: 'k2026' };
// sealed by the old AuditSealer with that box: a person's key as core.personal_data_keys stores it, and a provider entry's snapshot
const ORG = 'a1b2c3d4-0000-4000-8000-000000000001';
const ENTRY = { entityType: 'provider', entityId: 'a1b2c3d4-0000-4000-8000-000000000002', actorUserId: 'a1b2c3d4-0000-4000-8000-000000000003' };
const OLD_KEY_ROW = {
  id: 'df95ed4a-8ffc-44a5-b230-76396db761b3',
  subject: `user:${ENTRY.actorUserId}`,
  wrapped: { ciphertext: 'Dp9JHmUILLKkQZ6PvoOpud2w8lUzfsaExNv+sgcvTCcispVxU+jh9yijBH2ZrA==', iv: 'wZw7cfvNh+CCD36f', tag: 'w9LlaYDP6k3y/7paORiy1A==', kid: 'k2026' },
};
const OLD_SNAPSHOT = {
  isPublic: true,
  $sealed: {
    k: 'df95ed4a-8ffc-44a5-b230-76396db761b3',
    iv: '9cmfp1PH+0pPF6Fu',
    ct: 'bKv1Zsk8mLrAZvsLyKOqpNZTid1hnhuZIPTramfJ7sdIrrFvtPHJn8eymb9UXf5bY02A8S/26N55IRdfsUsj8VwyghA=',
    tag: 'nc77Vx2mvOk5uDZ6nr7tFA==',
    fields: ['publicSlug', 'settings'],
  },
};

/** TEST DOUBLE of core.personal_data_key() / personal_data_keys_by_id(): answers the one row it was given. */
const keyTable = (row: { id: string; subject: string; wrapped: unknown }) =>
  ({ $queryRaw: async () => [row] }) as unknown as Db;

describe('sealAesGcm / openAesGcm', () => {
  const aad = Buffer.from('omnizen.test:1');

  it('seals with a fresh 12-byte IV and a 16-byte tag, and opens with the same associated data only', () => {
    const one = sealAesGcm(KEY, 'plain', aad);
    const two = sealAesGcm(KEY, Buffer.from('plain'), aad);
    expect(one.iv).toHaveLength(12);
    expect(one.tag).toHaveLength(16);
    expect(one.iv.equals(two.iv)).toBe(false);
    expect(openAesGcm(KEY, one, aad).toString()).toBe('plain');
    expect(openAesGcm(KEY, two, aad).toString()).toBe('plain');
    expect(() => openAesGcm(KEY, one, Buffer.from('omnizen.test:2'))).toThrow(new AesGcmOpenError('authentication failed'));
    expect(() => openAesGcm(randomBytes(32), one, aad)).toThrow(new AesGcmOpenError('authentication failed'));
    expect(() => openAesGcm(KEY, { ...one, ciphertext: Buffer.from('x') }, aad)).toThrow(new AesGcmOpenError('authentication failed'));
  });

  it('refuses a tag that is not the whole 16 bytes and an IV that is not 12', () => {
    const sealed = sealAesGcm(KEY, 'plain', aad);
    for (const n of [0, 4, 8, 12, 15]) {
      expect(() => openAesGcm(KEY, { ...sealed, tag: sealed.tag.subarray(0, n) }, aad)).toThrow(new AesGcmOpenError('the authentication tag is not 16 bytes'));
    }
    expect(() => openAesGcm(KEY, { ...sealed, tag: Buffer.concat([sealed.tag, Buffer.alloc(1)]) }, aad))
      .toThrow(new AesGcmOpenError('the authentication tag is not 16 bytes'));
    for (const iv of [sealed.iv.subarray(0, 8), Buffer.concat([sealed.iv, Buffer.alloc(4)])]) {
      expect(() => openAesGcm(KEY, { ...sealed, iv }, aad)).toThrow(new AesGcmOpenError('the IV is not 12 bytes'));
    }
  });
});

describe('stored formats sealed before the shared helper', () => {
  const box = new SecretBox({ k2026: KEY }, 'k2026');

  it('the secret box opens an integration secret and another row\'s secret sealed by the old code, and seals the same shape', () => {
    expect(box.open(OLD_SECRET, OWNER)).toEqual({ username: 'ada', password: 'pä55 wörd' });
    expect(box.openFor(OLD_SECRET_FOR, 'webhook_endpoint:org:1')).toBe('whsec_abc123');
    // bound to its row as before
    expect(() => box.open(OLD_SECRET, { ...OWNER, userId: OWNER.integrationId })).toThrow(new SecretOpenError('authentication failed'));
    expect(() => box.openFor(OLD_SECRET_FOR, 'webhook_endpoint:org:2')).toThrow(new SecretOpenError('authentication failed'));

    const fresh = box.seal({ username: 'ada', password: 'pä55 wörd' }, OWNER);
    expect(Object.keys(fresh)).toEqual(Object.keys(OLD_SECRET));
    expect(fresh.kid).toBe('k2026');
    // same plaintext, same key: the same lengths as the old value (base64 of a 12-byte IV and a 16-byte tag)
    expect([fresh.ciphertext.length, fresh.iv.length, fresh.tag.length]).toEqual([OLD_SECRET.ciphertext.length, 16, 24]);
    expect(box.open(fresh, OWNER)).toEqual({ username: 'ada', password: 'pä55 wörd' });
  });

  it('the audit sealer opens a snapshot and unwraps a person\'s key sealed by the old code, and seals the same shape', async () => {
    const sealer = new AuditSealer(box);
    const keys = await sealer.openKeys(keyTable(OLD_KEY_ROW), [OLD_KEY_ROW.id]);
    expect(sealer.open(OLD_SNAPSHOT, ORG, ENTRY, keys))
      .toEqual({ isPublic: true, publicSlug: 'ada-lovelace', settings: { whatsapp: '+49 151 0000' } });
    // copied to another entry, it does not open
    expect(sealer.open(OLD_SNAPSHOT, ORG, { ...ENTRY, entityId: ENTRY.actorUserId }, keys))
      .toEqual({ isPublic: true, publicSlug: '[erased]', settings: '[erased]' });

    // sealed now with the same (existing) key: the old shape, and it opens
    const fresh = await sealer.seal(keyTable(OLD_KEY_ROW), ORG, ENTRY, { publicSlug: 'ada-lovelace', settings: { whatsapp: '+49 151 0000' }, isPublic: true });
    const part = (fresh as unknown as typeof OLD_SNAPSHOT).$sealed;
    expect(Object.keys(fresh)).toEqual(Object.keys(OLD_SNAPSHOT));
    expect(Object.keys(part)).toEqual(Object.keys(OLD_SNAPSHOT.$sealed));
    expect([part.k, part.ct.length, part.iv.length, part.tag.length, part.fields])
      .toEqual([OLD_KEY_ROW.id, OLD_SNAPSHOT.$sealed.ct.length, 16, 24, ['publicSlug', 'settings']]);
    expect(sealer.open(fresh, ORG, ENTRY, keys)).toEqual({ isPublic: true, publicSlug: 'ada-lovelace', settings: { whatsapp: '+49 151 0000' } });
  });
});
