import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { emailSubject } from '../../src/modules/privacy/audit-sealing.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { unzip } from '../support/zip.js';

const PASSWORD = 'correct horse battery';

/**
 * The addresses erasure and export take for the person's own (erasureRepository.provenEmails) are their stored addresses
 * as normalizeEmail has them, the form of the invitations and key subjects the app writes (review rv6). They were SQL's
 * lower() of the stored ones: a mailed link copies the account's address into its password identity as the Hub stored it
 * (core.prove_user_email), and for `ΟΔΥΣΣΕΑΣ@x` lower() gives `οδυσσεασ@x` (every Σ a σ), another person's address, where
 * the app's is `οδυσσεας@x` (a final Σ is ς); for a decomposed `ZOE\u0308@x` it kept the decomposed form, where the app's is
 * `zoë@x` in NFC. So the erasure left the person's own invitation and key, and took an outsider's.
 */
describe('erasure and export find the person\'s rows by their proven addresses as the app normalizes them', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-'));
  const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '', RATE_LIMITS_ENABLED: 'false' });
    owner = await verifyEmailOf(t, await registerUser(t, 'rv6-owner', PASSWORD));
    orgId = await createOrg(t, owner, 'Invites Greeks Ltd');
    await onPlan(t, orgId, 'enterprise');
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const invite = async (email: string) =>
    (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email, role: 'member' }).expect(201)).body as { id: string };
  const invitationExists = async (id: string) => (await q('SELECT count(*)::int AS n FROM core.invitations WHERE id = $1', [id])).rows[0].n === 1;
  const keyOf = async (email: string) => (await q('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [emailSubject(email)])).rows[0].n;
  /** The account as the Hub stored it (it writes core."User" directly), its address then proven by the mailed link (POST /v1/auth/verify-email). */
  const hubStoredAndProven = async (p: TestUser, stored: string) => {
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [p.id, stored]);
    const token = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`,
      [createHash('sha256').update(token).digest('hex'), p.id, stored]);
    await t.http.post('/v1/auth/verify-email').set(p.auth).send({ token }).expect(200);
    // the password identity holds the address as stored, verified
    expect((await q(`SELECT email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1`, [p.id])).rows)
      .toEqual([{ email: stored, verified: true }]);
  };
  /** The invitations in the person's export (POST /v1/me/data-export, the job drained, the archive read). */
  const exportedInvitations = async (p: TestUser) => {
    const started = (await t.http.post('/v1/me/data-export').set(p.auth).expect(202)).body.id;
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started}`).set(p.auth).expect(200)).body;
    expect(status.status).toBe('ready');
    const zip = await t.http.get(status.downloadUrl).buffer(true)
      .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); })
      .expect(200);
    const files = await unzip(zip.body as Buffer);
    return (JSON.parse(files['core.invitations.json']) as { id: string }[]).map((i) => i.id);
  };

  it('a Hub-stored ΟΔΥΣΣΕΑΣ@ proven by a mailed link: its own invitation (ς) and key are exported and erased; an outsider\'s (σ) are neither', async () => {
    const domain = `rv6-s2-${randomUUID().slice(0, 8)}.example.test`;
    const own = `\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c2@${domain}`; // οδυσσεας@: normalizeEmail of ΟΔΥΣΣΕΑΣ@
    const outsider = `\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3@${domain}`; // οδυσσεασ@: nobody's account, somebody's mailbox
    const a = await registerUser(t, 'rv6-s2', PASSWORD, own);
    await hubStoredAndProven(a, `\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3@${domain.toUpperCase()}`);
    const forA = await invite(own);
    const forOutsider = await invite(outsider);
    expect([await keyOf(own), await keyOf(outsider)]).toEqual([1, 1]);

    const exported = await exportedInvitations(a);
    expect([exported.includes(forA.id), exported.includes(forOutsider.id)]).toEqual([true, false]);

    await t.http.delete('/v1/me').set(a.auth).send({ password: PASSWORD }).expect(200);
    expect({ own: await invitationExists(forA.id), ownKey: await keyOf(own), outsider: await invitationExists(forOutsider.id), outsiderKey: await keyOf(outsider) })
      .toEqual({ own: false, ownKey: 0, outsider: true, outsiderKey: 1 });
  });

  it('a Hub-stored decomposed ZOE + U+0308 proven by a mailed link: its own invitation (zoë in NFC) and key are exported and erased', async () => {
    const domain = `rv6-s5-${randomUUID().slice(0, 8)}.example.test`;
    const own = `zo\u00eb@${domain}`;
    const a = await registerUser(t, 'rv6-s5', PASSWORD, own);
    await hubStoredAndProven(a, `ZOE\u0308@${domain}`);
    const forA = await invite(own);
    expect(await keyOf(own)).toBe(1);

    expect(await exportedInvitations(a)).toContain(forA.id);

    await t.http.delete('/v1/me').set(a.auth).send({ password: PASSWORD }).expect(200);
    expect({ own: await invitationExists(forA.id), ownKey: await keyOf(own) }).toEqual({ own: false, ownKey: 0 });
  });

  it('a reported pair (K in NFC, L the same address decomposed, as migration 20270211000700 left it): L\'s proven address taken in NFC would be K\'s, so L\'s erasure and export leave K\'s invitation and key', async () => {
    const domain = `rv6-pair-${randomUUID().slice(0, 8)}.example.test`;
    const nfc = `no\u00ebl@${domain}`;
    const k = await verifyEmailOf(t, await registerUser(t, 'rv6-pair-k', PASSWORD, nfc));
    const l = await registerUser(t, 'rv6-pair-l', PASSWORD);
    await hubStoredAndProven(l, nfc.normalize('NFD'));
    const forK = await invite(nfc);
    expect(await keyOf(nfc)).toBe(1);

    expect(await exportedInvitations(l)).not.toContain(forK.id);
    await t.http.delete('/v1/me').set(l.auth).send({ password: PASSWORD }).expect(200);
    expect({ k: await invitationExists(forK.id), kKey: await keyOf(nfc) }).toEqual({ k: true, kKey: 1 });
    expect(k.id).not.toBe(l.id);
  });
});
