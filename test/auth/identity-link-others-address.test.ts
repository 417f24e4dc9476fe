import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { emailSubject } from '../../src/modules/privacy/audit-sealing.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { unzip } from '../support/zip.js';

const PASSWORD = 'correct horse battery';
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const migrationSql = () => readFileSync(join(projectRoot(), 'prisma', 'migrations', '20270211001000_identity_email_of_another_account', 'migration.sql'), 'utf8');

/**
 * An identity linked while signed in (POST /v1/auth/identities) whose provider asserts another account's address, verified
 * (review rf1): it was stored verified, so the linking account's erasure took the other account's invitation (and its
 * e-mail key), and its export read it. Now stored unverified (identityRepository.add, core.email_of_another_account), not
 * counted as the linking account's proven address whatever the row holds (erasureRepository.provenEmails), and the rows
 * linked so before are unverified by migration 20270211001000.
 */
describe('linking an identity that asserts another account\'s address', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-'));
  const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);

  beforeAll(async () => {
    // jobs in this process (the test drains the relay for the export)
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '', RATE_LIMITS_ENABLED: 'false' });
    owner = await verifyEmailOf(t, await registerUser(t, 'rf1-owner', PASSWORD));
    orgId = await createOrg(t, owner, 'Invites Others Ltd');
    await onPlan(t, orgId, 'enterprise'); // invitations past the trial's seats
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const hubToken = (sub: string, email: string) =>
    jwt.sign({ sub, email, email_verified: true, name: 'Hub Person' }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
  const invite = async (email: string) =>
    (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email, role: 'member' }).expect(201)).body as { id: string; token: string };
  const invitation = async (id: string) => (await q(`SELECT email, accepted_at IS NOT NULL AS accepted FROM core.invitations WHERE id = $1`, [id])).rows;
  const keyOf = async (email: string) => (await q(`SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1`, [emailSubject(email)])).rows[0].n;
  const hubIdentity = async (sub: string) => (await q(
    `SELECT user_id, email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE provider = 'nextauth' AND subject = $1`, [sub])).rows;
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

  it('the probe: C links a Hub identity asserting B\'s address (any case, any Unicode form): stored unverified; C cannot accept B\'s invitation; C\'s export and erasure leave it', async () => {
    const b = await verifyEmailOf(t, await registerUser(t, 'rf1-b', PASSWORD, uniqueEmail('ren\u00e9e.rf1-b')));
    const forB = await invite(b.email);
    expect(await keyOf(b.email)).toBe(1);
    // as asserted: B's address itself, upper-cased, and upper-cased and decomposed (the exchange's normalization makes each B's)
    const asserted = [b.email, b.email.toUpperCase(), b.email.normalize('NFD').toUpperCase()];
    const linkers: { c: TestUser; sub: string }[] = [];
    for (const email of asserted) {
      const c = await verifyEmailOf(t, await registerUser(t, 'rf1-c', PASSWORD));
      const sub = `hub-${randomUUID()}`;
      const linked = await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, email), password: PASSWORD }).expect(201);
      expect(linked.body.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: b.email, emailVerified: false });
      expect(await hubIdentity(sub)).toEqual([{ user_id: c.id, email: b.email, verified: false }]);
      expect((await q(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.identity_linked'`, [c.personalOrgId])).rows)
        .toEqual([{ after: expect.objectContaining({ provider: 'nextauth', emailVerified: false, added: true }) }]);
      // a sign-in through it keeps it so
      const signedIn = await t.http.post('/v1/auth/exchange').send({ token: hubToken(sub, email) }).expect(200);
      expect(signedIn.body.user.id).toBe(c.id);
      expect(await hubIdentity(sub)).toEqual([{ user_id: c.id, email: b.email, verified: false }]);
      linkers.push({ c, sub });
    }

    // C cannot accept B's invitation (acceptance goes by the account's own address)
    const { c } = linkers[0];
    const accepted = await t.http.post('/v1/invitations/accept').set(c.auth).send({ orgId, token: forB.token });
    expect([accepted.status, accepted.body.error?.code]).toEqual([403, 'invitation.email_mismatch']);
    expect(await invitation(forB.id)).toEqual([{ email: b.email, accepted: false }]);
    expect((await q(`SELECT count(*)::int AS n FROM core.memberships WHERE org_id = $1 AND user_id = $2`, [orgId, c.id])).rows[0].n).toBe(0);

    // nor is it in C's export, nor taken (or its key shredded) by C's erasure
    expect(await exportedInvitations(c)).not.toContain(forB.id);
    for (const { c: linker } of linkers) await t.http.delete('/v1/me').set(linker.auth).send({ password: PASSWORD }).expect(200);
    expect(await invitation(forB.id)).toEqual([{ email: b.email, accepted: false }]);
    expect(await keyOf(b.email)).toBe(1);
  });

  it('an address an identity verified that becomes another account\'s is no longer its user\'s: listed unverified, left by its erasure and export', async () => {
    const c = await verifyEmailOf(t, await registerUser(t, 'rf1-early', PASSWORD));
    const x = uniqueEmail('rf1-x');
    const sub = `hub-${randomUUID()}`;
    const linked = await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, x), password: PASSWORD }).expect(201);
    expect(linked.body.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: x, emailVerified: true });
    // then someone registers that address, and is invited to it
    const b = await registerUser(t, 'rf1-late', PASSWORD, x);
    const forB = await invite(x);
    expect(await hubIdentity(sub)).toEqual([{ user_id: c.id, email: x, verified: true }]); // the row as it was
    const listed = (await t.http.get('/v1/auth/identities').set(c.auth).expect(200)).body;
    expect(listed.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: x, emailVerified: false });

    expect(await exportedInvitations(c)).not.toContain(forB.id);
    await t.http.delete('/v1/me').set(c.auth).send({ password: PASSWORD }).expect(200);
    expect(await invitation(forB.id)).toEqual([{ email: x, accepted: false }]);
    expect(await keyOf(x)).toBe(1);
    expect(b.id).not.toBe(c.id);
  });

  it('a former address of the account, proven by a confirmed change, that another account took since is not its own: left by its export and erasure (review rB)', async () => {
    const a = uniqueEmail('rb-former');
    const c = await verifyEmailOf(t, await registerUser(t, 'rb-c', PASSWORD, a));
    // C changes away from A through the API (the link's token set here: no mail job runs): A, verified, stays a proven
    // address of C's (old_email_verified)
    const moved = uniqueEmail('rb-moved');
    await t.http.post('/v1/auth/email-change').set(c.auth).send({ newEmail: moved, password: PASSWORD }).expect(202);
    const token = randomBytes(32).toString('base64url');
    await q('UPDATE core.email_change_requests SET token_hash = $2 WHERE user_id = $1 AND confirmed_at IS NULL', [c.id, hashToken(token)]);
    expect((await t.http.post('/v1/auth/email-change/confirm').send({ token }).expect(200)).body).toEqual({ email: moved });
    expect((await q('SELECT old_email, new_email, old_email_verified FROM core.email_change_requests WHERE user_id = $1', [c.id])).rows)
      .toEqual([{ old_email: a, new_email: moved, old_email_verified: true }]);
    // A is free: D registers it, proves it, and is invited to it
    const d = await verifyEmailOf(t, await registerUser(t, 'rb-d', PASSWORD, a));
    const forD = await invite(a);
    expect(await keyOf(a)).toBe(1);
    const signedIn = (await t.http.post('/v1/auth/login').send({ email: moved, password: PASSWORD }).expect(200)).body;
    const cNow: TestUser = { ...c, email: moved, token: signedIn.accessToken, auth: { Authorization: `Bearer ${signedIn.accessToken}` } };

    expect(await exportedInvitations(cNow)).not.toContain(forD.id);
    await t.http.delete('/v1/me').set(cNow.auth).send({ password: PASSWORD }).expect(200);
    expect(await invitation(forD.id)).toEqual([{ email: a, accepted: false }]);
    expect(await keyOf(a)).toBe(1);
    // D's address and invitation are D's: D accepts it
    await t.http.post('/v1/invitations/accept').set(d.auth).send({ orgId, token: forD.token }).expect(200);
    expect(await invitation(forD.id)).toEqual([{ email: a, accepted: true }]);
  });

  it('another account stored with capitals (the Hub writes core."User" directly) is matched case-insensitively (review rB)', async () => {
    // B as the Hub wrote it, with capitals; invitations are stored lower-cased
    const b = await verifyEmailOf(t, await registerUser(t, 'rb-mixed-b', PASSWORD));
    const capitalized = b.email.replace(/^r/, 'R').replace('@example.test', '@Example.Test');
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [b.id, capitalized]);
    const forB = await invite(capitalized);
    expect(await invitation(forB.id)).toEqual([{ email: b.email, accepted: false }]);
    const c = await verifyEmailOf(t, await registerUser(t, 'rb-mixed-c', PASSWORD));
    const sub = `hub-${randomUUID()}`;
    const linked = await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, capitalized), password: PASSWORD }).expect(201);
    expect(linked.body.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: b.email, emailVerified: false });
    expect(await hubIdentity(sub)).toEqual([{ user_id: c.id, email: b.email, verified: false }]);
    // B's own identity, lower-cased, is still B's
    const listedB = (await t.http.get('/v1/auth/identities').set(b.auth).expect(200)).body;
    expect(listedB).toEqual([expect.objectContaining({ provider: 'password', email: b.email, emailVerified: true })]);

    expect(await exportedInvitations(c)).not.toContain(forB.id);
    await t.http.delete('/v1/me').set(c.auth).send({ password: PASSWORD }).expect(200);
    expect(await invitation(forB.id)).toEqual([{ email: b.email, accepted: false }]);
    expect(await keyOf(b.email)).toBe(1);
  });

  it('of case twins (two accounts, one address in two cases), the address as asserted is the one it equals exactly; each keeps its own (review rB)', async () => {
    // case twins: M stored `Twin…@Example.Test` by the Hub, N registered `twin…@example.test` in the app; an invitation to
    // the lower-cased address is N's (exactly its address), not M's (its own only case-insensitively)
    const n = await verifyEmailOf(t, await registerUser(t, 'twin', PASSWORD));
    const m = await verifyEmailOf(t, await registerUser(t, 'rb-twin-m', PASSWORD));
    const twinOfN = n.email.replace(/^t/, 'T').replace('@example.test', '@Example.Test');
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [m.id, twinOfN]);
    await q('UPDATE core.user_identities SET email = $2 WHERE user_id = $1', [m.id, twinOfN]);
    const forN = await invite(n.email);
    const mSub = `hub-${randomUUID()}`;
    const mLinked = await t.http.post('/v1/auth/identities').set(m.auth).send({ token: hubToken(mSub, n.email), password: PASSWORD }).expect(201);
    expect(mLinked.body.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: n.email, emailVerified: false });
    // each keeps its own address (M's password identity, as stored with capitals, still verified)
    expect(mLinked.body.find((i: { provider: string }) => i.provider === 'password')).toMatchObject({ email: twinOfN, emailVerified: true });
    expect((await t.http.get('/v1/auth/identities').set(n.auth).expect(200)).body)
      .toEqual([expect.objectContaining({ provider: 'password', email: n.email, emailVerified: true })]);

    expect(await exportedInvitations(m)).not.toContain(forN.id);
    await t.http.delete('/v1/me').set(m.auth).send({ password: PASSWORD }).expect(200);
    expect(await invitation(forN.id)).toEqual([{ email: n.email, accepted: false }]);
    expect(await keyOf(n.email)).toBe(1);
  });

  it('re-linking an identity of the caller\'s with a token asserting another account\'s address keeps the stored address, and audits and answers that (review rB)', async () => {
    const b = await verifyEmailOf(t, await registerUser(t, 'rb-relink-b', PASSWORD));
    const c = await verifyEmailOf(t, await registerUser(t, 'rb-relink-c', PASSWORD));
    const x = uniqueEmail('rb-relink-x');
    const sub = `hub-${randomUUID()}`;
    await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, x), password: PASSWORD }).expect(201);
    const again = await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, b.email), password: PASSWORD }).expect(201);
    expect(again.body.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: x, emailVerified: true });
    expect(await hubIdentity(sub)).toEqual([{ user_id: c.id, email: x, verified: true }]);
    // the e-mail is sealed in the row; the audit route opens it
    const audited = (await t.http.get(`/v1/orgs/${c.personalOrgId}/audit-logs?action=auth.identity_linked`).set(c.auth).expect(200)).body.items;
    expect(audited.map((e: { after: unknown }) => e.after)).toEqual(expect.arrayContaining([
      expect.objectContaining({ provider: 'nextauth', email: x, emailVerified: true, added: true }),
      expect.objectContaining({ provider: 'nextauth', email: x, emailVerified: true, added: false }),
    ]));
    expect(audited).toHaveLength(2);
    expect(JSON.stringify(audited)).not.toContain(b.email);
  });

  it('migration 20270211001000 unverifies the identities linked so before (audited, no address in the entry), leaves each account\'s own, and runs again harmlessly', async () => {
    const b = await verifyEmailOf(t, await registerUser(t, 'rf1-mb', PASSWORD, uniqueEmail('chlo\u00eb.rf1-mb')));
    const c = await verifyEmailOf(t, await registerUser(t, 'rf1-mc', PASSWORD));
    // a reported pair of migration 20270211000700: K's address in NFC, L's the same decomposed; each has its own identity
    const k = await verifyEmailOf(t, await registerUser(t, 'rf1-k', PASSWORD, uniqueEmail('no\u00e9l.rf1-k')));
    const l = await verifyEmailOf(t, await registerUser(t, 'rf1-l', PASSWORD));
    const kNfd = k.email.normalize('NFD');
    await q(`UPDATE core."User" SET email = $2 WHERE id = $1`, [l.id, kNfd]);
    await q(`UPDATE core.user_identities SET email = $2 WHERE user_id = $1`, [l.id, kNfd]);
    // C's identities as links stored them before: B's address as asserted (and a decomposed, upper-cased form of it), K's
    // address, and one of an address nobody has
    const subs = { b: `hub-${randomUUID()}`, bForm: `hub-${randomUUID()}`, k: `hub-${randomUUID()}`, free: `hub-${randomUUID()}` };
    const free = uniqueEmail('rf1-free');
    for (const [sub, email] of [[subs.b, b.email], [subs.bForm, b.email.normalize('NFD').toUpperCase()], [subs.k, k.email], [subs.free, free]]) {
      await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('nextauth', $1, $2, $3, now())`, [sub, c.id, email]);
    }
    const verifiedOf = async () => (await q(`SELECT user_id, provider, subject, email_verified_at IS NOT NULL AS verified FROM core.user_identities
      WHERE user_id = ANY($1) ORDER BY user_id, provider, subject`, [[b.id, c.id, k.id, l.id]])).rows;
    const before = await verifiedOf();
    const unverified = new Set([subs.b, subs.bForm, subs.k]);

    await q(migrationSql());
    expect(await verifiedOf()).toEqual(before.map((r) => ({ ...r, verified: r.verified && !unverified.has(r.subject) })));
    const audited = async () => (await q(`SELECT org_id, actor_id, principal_type, entity_type, entity_id, before, after FROM core.audit_logs
      WHERE action = 'user.identity_email_unverified' AND entity_id = ANY($1) ORDER BY id`, [[b.id, c.id, k.id, l.id]])).rows;
    const entry = {
      org_id: c.personalOrgId, actor_id: 'migration:20270211001000', principal_type: 'system', entity_type: 'user', entity_id: c.id,
      before: { provider: 'nextauth', emailVerified: true }, after: { provider: 'nextauth', emailVerified: false, reason: 'email_of_another_account' },
    };
    expect(await audited()).toEqual([entry, entry, entry]);

    await q(migrationSql());
    expect(await audited()).toHaveLength(3);
    expect(await verifiedOf()).toEqual(before.map((r) => ({ ...r, verified: r.verified && !unverified.has(r.subject) })));
  });
});
