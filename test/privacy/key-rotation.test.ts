import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { SecretBox, SecretOpenError } from '../../src/modules/integrations/secret-box.js';
import { rewrapPersonalDataKeys } from '../../src/modules/privacy/personal-data-key-rotation.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

// npm run secrets:rotate re-wraps the per-person keys that seal personal fields of audit snapshots, so the old
// SECRETS_KEYS entry can be removed as the command says without making any sealed snapshot unreadable.
describe('secrets:rotate: personal data keys', () => {
  let t: TestApp;
  const k1 = testKeys('k1');
  const k2 = randomBytes(32); // the key the first rotation moves to

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: k1.env, REDIS_URL: '' });
  });
  afterAll(() => t.close());

  const keyOf = async (userId: string) =>
    (await t.db.admin.query<{ id: string; wrapped: Record<string, unknown> }>('SELECT id, wrapped FROM core.personal_data_keys WHERE subject = $1', [`user:${userId}`])).rows[0];
  const context = (id: string) => `personal_data_key:${id}`;

  it('re-wraps every key not under the active key (wrapped under the old one, or stored unwrapped), audited, the keys themselves unchanged; again: nothing to do', async () => {
    const [a, b, c] = [await registerUser(t, 'rot-a'), await registerUser(t, 'rot-b'), await registerUser(t, 'rot-c')];
    const before = await keyOf(a.id);
    expect(before.wrapped.kid).toBe('k1'); // registration sealed the e-mail with a's key, wrapped under k1
    const oldBox = new SecretBox(k1.keys, 'k1');
    const raw = new Map<string, string>();
    for (const u of [a, b, c]) {
      const k = await keyOf(u.id);
      raw.set(u.id, oldBox.openFor<string>(k.wrapped, context(k.id)));
    }
    // c's key as a deployment without SECRETS_KEYS stored it
    const cKey = await keyOf(c.id);
    await t.db.admin.query('UPDATE core.personal_data_keys SET wrapped = $2 WHERE id = $1', [cKey.id, { unwrapped: raw.get(c.id) }]);

    const both = new SecretBox({ ...k1.keys, k2 }, 'k2');
    const result = await rewrapPersonalDataKeys(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService), 2);
    expect(result).toEqual({ total: expect.any(Number), rewrapped: result.total, failed: [], remaining: 0 });
    expect(result.total).toBeGreaterThanOrEqual(3);

    // only k2 is needed now, and it opens the very keys the snapshots were sealed with
    const onlyK2 = new SecretBox({ k2 }, 'k2');
    for (const u of [a, b, c]) {
      const k = await keyOf(u.id);
      expect([u.id, k.wrapped.kid]).toEqual([u.id, 'k2']);
      expect(onlyK2.openFor<string>(k.wrapped, context(k.id))).toBe(raw.get(u.id));
      expect(() => onlyK2.openFor(k.wrapped, context(a.id === u.id ? b.id : a.id))).toThrow(SecretOpenError); // bound to its row
    }
    // audited where the key seals entries: the person's own organization
    const audited = await t.db.admin.query(
      `SELECT org_id, principal_type, entity_id, before, after FROM core.audit_logs WHERE action = 'privacy.personal_data_key_rewrapped' AND entity_id = ANY($1) ORDER BY entity_id`,
      [[before.id, cKey.id]]);
    expect(audited.rows).toEqual([
      { org_id: a.personalOrgId, principal_type: 'system', entity_id: before.id, before: { keyId: 'k1' }, after: { keyId: 'k2' } },
      { org_id: c.personalOrgId, principal_type: 'system', entity_id: cKey.id, before: { keyId: null }, after: { keyId: 'k2' } },
    ].sort((x, y) => x.entity_id.localeCompare(y.entity_id)));

    const again = await rewrapPersonalDataKeys(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService));
    expect(again).toEqual({ total: 0, rewrapped: 0, failed: [], remaining: 0 });
  });

  it('reports a key no configured key opens and leaves it as it was; the others move on', async () => {
    const d = await registerUser(t, 'rot-d');
    const k = await keyOf(d.id);
    const foreign = new SecretBox({ k0: randomBytes(32) }, 'k0').sealFor(randomBytes(32).toString('base64'), context(k.id));
    await t.db.admin.query('UPDATE core.personal_data_keys SET wrapped = $2 WHERE id = $1', [k.id, foreign]);
    const k3 = randomBytes(32);
    const result = await rewrapPersonalDataKeys(t.app.get(PrivilegedDatabase), new SecretBox({ ...k1.keys, k2, k3 }, 'k3'), t.app.get(AuditService));
    expect(result.failed).toEqual([k.id]);
    expect(result.remaining).toBe(1);
    expect((await keyOf(d.id)).wrapped).toEqual(foreign);
  });
});
