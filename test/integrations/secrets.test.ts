import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/platform/config/config.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { SECRET_BOX, SecretBox, SecretOpenError } from '../../src/modules/integrations/secret-box.js';
import { rotateSecrets } from '../../src/modules/integrations/secret-rotation.js';
import { secretBoxFromConfig } from '../../src/modules/integrations/integrations.module.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from './keys.js';

const A = { integrationId: '11111111-1111-4111-8111-111111111111', userId: '22222222-2222-4222-8222-222222222222' };
const B = { integrationId: '33333333-3333-4333-8333-333333333333', userId: A.userId };

describe('SecretBox', () => {
  const { keys } = testKeys('k1', 'k2');
  const box = new SecretBox(keys, 'k1');

  it('seals with a fresh IV every time and opens for the same row', () => {
    const one = box.seal({ password: 'hunter2-secret' }, A);
    const two = box.seal({ password: 'hunter2-secret' }, A);
    expect(one.iv).not.toBe(two.iv);
    expect(one.ciphertext).not.toBe(two.ciphertext);
    expect(one.kid).toBe('k1');
    expect(JSON.stringify(one)).not.toContain('hunter2');
    expect(box.open(one, A)).toEqual({ password: 'hunter2-secret' });
  });

  it('refuses a ciphertext moved to another row, a tampered one, and an unknown key, without saying what was inside', () => {
    const sealed = box.seal({ password: 'hunter2-secret' }, A);
    for (const [value, owner] of [
      [sealed, B],
      [sealed, { ...A, userId: B.integrationId }],
      [{ ...sealed, tag: Buffer.alloc(16).toString('base64') }, A],
      [{ ...sealed, ciphertext: Buffer.from('x').toString('base64') }, A],
      [{ ...sealed, kid: 'k9' }, A],
      [{ ciphertext: 'only' }, A],
    ] as const) {
      let error: unknown;
      try {
        box.open(value, owner);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(SecretOpenError);
      expect(String((error as Error).message)).not.toContain('hunter2');
    }
  });

  it('refuses a truncated authentication tag (GCM would check only the bytes it is given), for integrations and other rows alike', () => {
    const sealed = box.seal({ password: 'hunter2-secret' }, A);
    const other = box.sealFor({ secret: 'whsec-hunter2' }, 'webhook_endpoint:org:1');
    const cut = (s: typeof sealed, n: number) => ({ ...s, tag: Buffer.from(s.tag, 'base64').subarray(0, n).toString('base64') });
    expect(Buffer.from(sealed.tag, 'base64')).toHaveLength(16);
    for (const n of [4, 8, 12, 15]) {
      expect(() => box.open(cut(sealed, n), A)).toThrow(new SecretOpenError('the authentication tag is not 16 bytes'));
      expect(() => box.openFor(cut(other, n), 'webhook_endpoint:org:1')).toThrow(new SecretOpenError('the authentication tag is not 16 bytes'));
    }
    // a longer one neither; the whole one opens
    const longer = { ...sealed, tag: Buffer.concat([Buffer.from(sealed.tag, 'base64'), Buffer.alloc(1)]).toString('base64') };
    expect(() => box.open(longer, A)).toThrow(SecretOpenError);
    expect(box.open(sealed, A)).toEqual({ password: 'hunter2-secret' });
    expect(box.openFor(other, 'webhook_endpoint:org:1')).toEqual({ secret: 'whsec-hunter2' });
  });

  it('opens what an older key sealed while it is configured, and seals new writes under the active key', () => {
    const old = box.seal({ v: 1 }, A);
    const rotated = new SecretBox(keys, 'k2');
    expect(rotated.open(old, A)).toEqual({ v: 1 });
    expect(rotated.isStale(old)).toBe(true);
    expect(rotated.seal({ v: 1 }, A).kid).toBe('k2');
    expect(() => new SecretBox({ k2: keys.k2 }, 'k2').open(old, A)).toThrow(SecretOpenError);
  });
});

describe('secrets in the database and their rotation', () => {
  const keys = testKeys('k1', 'k2', 'k3');
  const env = (ids: string[], active: string) => ({
    SECRETS_KEYS: ids.map((id) => `${id}:${keys.keys[id].toString('base64')}`).join(','),
    SECRETS_ACTIVE_KEY: active,
  });
  let t: TestApp;
  let users: TestUser[];
  const secretOf = (i: number) => `pw-${i}-never-shown-7f3a`;

  beforeAll(async () => {
    t = await createTestApp(env(['k1', 'k2', 'k3'], 'k1'));
    users = [await registerUser(t, 'ada'), await registerUser(t, 'bob')];
    // five secrets under k1: ada has three integrations, bob two
    let n = 0;
    for (const [u, types] of [[users[0], ['icloud', 'stripe', 'zoom']], [users[1], ['icloud', 'stripe']]] as const) {
      for (const integrationType of types) {
        const { body } = await t.http.post('/v1/me/integrations').set(u.auth).send({ integrationType }).expect(201);
        const credentials = integrationType === 'icloud' ? { username: u.email, password: secretOf(n++) } : { token: secretOf(n++) };
        await t.http.put(`/v1/me/integrations/${body.id}/secret`).set(u.auth).send({ credentials }).expect(200);
      }
    }
  });
  afterAll(() => t.close());

  const rows = async () =>
    (await t.db.admin.query('SELECT integration_id, user_id, secret FROM public.integration_secrets ORDER BY integration_id')).rows;

  it('fails to open a secret copied onto another row', async () => {
    const box = t.app.get<SecretBox>(SECRET_BOX);
    const [first, second] = await rows();
    expect(box.open(first.secret, { integrationId: first.integration_id, userId: first.user_id })).toBeDefined();
    await t.db.admin.query('UPDATE public.integration_secrets SET secret = $1 WHERE integration_id = $2', [first.secret, second.integration_id]);
    expect(() => box.open(first.secret, { integrationId: second.integration_id, userId: second.user_id })).toThrow(SecretOpenError);
    await t.db.admin.query('UPDATE public.integration_secrets SET secret = $1 WHERE integration_id = $2', [second.secret, second.integration_id]);
  });

  it('re-seals everything under the new key in batches, resumes after an interruption, and audits each re-seal', async () => {
    const privileged = t.app.get(PrivilegedDatabase);
    const box = new SecretBox(keys.keys, 'k2');
    const before = await rows();
    expect(before.every((r) => r.secret.kid === 'k1')).toBe(true);
    // interrupted after the first batch of two
    await expect(rotateSecrets(privileged, box, new AuditService(), {
      batchSize: 2, onProgress: () => { throw new Error('interrupted'); },
    })).rejects.toThrow('interrupted');
    expect((await rows()).filter((r) => r.secret.kid === 'k2')).toHaveLength(2);
    // the next run skips what is done
    const seen: number[] = [];
    const result = await rotateSecrets(privileged, box, new AuditService(), { batchSize: 2, onStart: (total) => seen.push(total) });
    expect(seen).toEqual([3]);
    expect(result).toMatchObject({ total: 3, resealed: 3, failed: [], remaining: 0 });
    const after = await rows();
    expect(after.every((r) => r.secret.kid === 'k2')).toBe(true);
    after.forEach((r, i) => expect(r.secret.iv).not.toBe(before[i].secret.iv));
    const again = await rotateSecrets(privileged, box, new AuditService());
    expect(again).toMatchObject({ total: 0, resealed: 0, remaining: 0 });
    const { rows: audit } = await t.db.admin.query(
      `SELECT org_id, principal_type, before, after FROM core.audit_logs WHERE action = 'integration.secret_resealed' ORDER BY id`);
    expect(audit).toHaveLength(5);
    expect(audit[0]).toMatchObject({ principal_type: 'system', before: { keyId: 'k1' }, after: { keyId: 'k2' } });
    expect(new Set(audit.map((a) => a.org_id))).toEqual(new Set(users.map((u) => u.personalOrgId)));
  });

  it('then lets the old keys be retired: the key set built from a configuration with only the new key opens every secret', async () => {
    const config = loadConfig({ ...process.env, NODE_ENV: 'test', DATABASE_URL: t.db.url, ...env(['k2'], 'k2') });
    const box = secretBoxFromConfig(config); // what IntegrationsModule provides as SECRET_BOX
    const opened = (await rows()).map((r) => box.open<Record<string, string>>(r.secret, { integrationId: r.integration_id, userId: r.user_id }));
    expect(opened.map((c) => c.password ?? c.token).sort()).toEqual([0, 1, 2, 3, 4].map(secretOf).sort());
  });

  it('npm run secrets:rotate re-seals under the next key with a progress bar and never prints a secret', async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', './scripts/register-ts.mjs', 'scripts/secrets-rotate.ts', '--batch-size', '2'], {
      // k1 still listed: the integration secrets left it above, the per-person audit keys (registration) not yet
      env: { ...process.env, NODE_OPTIONS: '', NODE_ENV: 'test', DATABASE_URL: t.db.url, ...env(['k1', 'k2', 'k3'], 'k3') },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/re-sealed 5 of 5; 0 not under the active key remain/);
    expect(stdout).toMatch(/personal data keys: re-wrapped ([1-9]\d*) of \1; 0 not under the active key remain/);
    // no job with a sealed payload waits here (a PostHog erasure's: test/privacy/key-rotation.test.ts)
    expect(stdout).toMatch(/sealed job payloads: re-sealed 0 of 0; 0 not under the active key remain/);
    expect(stdout + stderr).toMatch(/secrets:rotate \[/); // cli-progress bar
    for (let i = 0; i < 5; i++) expect(stdout + stderr).not.toContain(secretOf(i));
    expect((await rows()).every((r) => r.secret.kid === 'k3')).toBe(true);
  });
});
