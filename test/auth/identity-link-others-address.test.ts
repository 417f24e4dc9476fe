import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { withDatabase } from '../../src/platform/database/database-url.js';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { emailSubject } from '../../src/modules/privacy/audit-sealing.js';
import { normalizeEmail } from '../../src/platform/http/email.js';
import { identityRepository } from '../../src/modules/auth/identity.repository.js';
import { SqlPool, type Db } from '../../src/platform/database/sql.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { unzip } from '../support/zip.js';

const PASSWORD = 'correct horse battery';
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const migrationSql = (name = '20270211001000_identity_email_of_another_account') => readFileSync(join(projectRoot(), 'prisma', 'migrations', name, 'migration.sql'), 'utf8');
/** The migration that replaced 20270211001000's function (review rM): run again after it, so later tests see the current rule. */
const CURRENT_RULE = '20270211001650_email_of_another_account_nfc_key_and_sigma';

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

  it('another account stored decomposed or padded (the Hub writes core."User" directly) is matched in NFC and trimmed: C\'s link asserting its address is stored unverified; C\'s export and erasure leave its invitation and key (review rF)', async () => {
    for (const form of ['decomposed', 'padded'] as const) {
      const d = await verifyEmailOf(t, await registerUser(t, `rf-${form}-d`, PASSWORD, uniqueEmail('zo\u00eb.rf-d')));
      await q('UPDATE core."User" SET email = $2 WHERE id = $1', [d.id, form === 'decomposed' ? d.email.normalize('NFD') : `  ${d.email} `]);
      const forD = await invite(d.email);
      expect(await keyOf(d.email)).toBe(1);
      const c = await verifyEmailOf(t, await registerUser(t, `rf-${form}-c`, PASSWORD));
      const sub = `hub-${randomUUID()}`;
      const linked = await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, d.email), password: PASSWORD }).expect(201);
      expect(linked.body.find((i: { provider: string }) => i.provider === 'nextauth')).toMatchObject({ email: d.email, emailVerified: false });
      expect(await hubIdentity(sub)).toEqual([{ user_id: c.id, email: d.email, verified: false }]);

      expect(await exportedInvitations(c)).not.toContain(forD.id);
      await t.http.delete('/v1/me').set(c.auth).send({ password: PASSWORD }).expect(200);
      expect(await invitation(forD.id)).toEqual([{ email: d.email, accepted: false }]);
      expect(await keyOf(d.email)).toBe(1);
    }
  });

  it('of case twins (U stored `TWIN…` by the Hub, V `twin…`), U keeps the proof its identities carry in lower case: through migration 20270211001000 and a sign-in (review rF)', async () => {
    const v = await verifyEmailOf(t, await registerUser(t, 'rf-twin-v', PASSWORD));
    const u = await verifyEmailOf(t, await registerUser(t, 'rf-twin-u', PASSWORD));
    // U as the Hub wrote it; its identities carry the address lower-cased (backfills and sign-ins lower-case it)
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [u.id, v.email.toUpperCase()]);
    await q('UPDATE core.user_identities SET email = $2 WHERE user_id = $1', [u.id, v.email]);
    const sub = `hub-${randomUUID()}`;
    await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('nextauth', $1, $2, $3, now())`, [sub, u.id, v.email]);
    const proven = async (id: string) => (await q('SELECT core.user_email_verified($1) AS v', [id])).rows[0].v;
    const identitiesOf = async (id: string) => (await q(`SELECT provider, email, email_verified_at IS NOT NULL AS verified FROM core.user_identities
      WHERE user_id = $1 ORDER BY provider`, [id])).rows;
    const bothVerified = [{ provider: 'nextauth', email: v.email, verified: true }, { provider: 'password', email: v.email, verified: true }];
    expect(await identitiesOf(u.id)).toEqual(bothVerified);
    expect(await proven(u.id)).toBe(true);

    await q(migrationSql());
    await q(migrationSql(CURRENT_RULE));
    expect(await identitiesOf(u.id)).toEqual(bothVerified);
    expect(await proven(u.id)).toBe(true);
    expect((await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'user.identity_email_unverified' AND entity_id = ANY($1)`,
      [[u.id, v.id]])).rows[0].n).toBe(0);

    // a sign-in through U's Hub identity, asserting the address lower-cased
    const signedIn = (await t.http.post('/v1/auth/exchange').send({ token: hubToken(sub, v.email) }).expect(200)).body;
    expect(signedIn.user.id).toBe(u.id);
    expect(await identitiesOf(u.id)).toEqual(bothVerified);
    expect(await proven(u.id)).toBe(true);
    const uAuth = { Authorization: `Bearer ${signedIn.accessToken}` };
    expect((await t.http.get('/v1/auth/identities').set(uAuth).expect(200)).body.map((i: { provider: string; emailVerified: boolean }) => [i.provider, i.emailVerified]))
      .toEqual([['password', true], ['nextauth', true]]);
    // V's own is V's
    expect(await proven(v.id)).toBe(true);
    expect((await t.http.get('/v1/auth/identities').set(v.auth).expect(200)).body)
      .toEqual([expect.objectContaining({ provider: 'password', email: v.email, emailVerified: true })]);
  });

  it('core.email_of_another_account, the truth table: not the user\'s own (case and padding aside), and another account\'s (case, padding and Unicode form aside, stored or asked) (reviews rF, rK, rL, rM)', async () => {
    const stored = async (p: TestUser, email: string) => { await q('UPDATE core."User" SET email = $2 WHERE id = $1', [p.id, email]); return email; };
    const a = await registerUser(t, 'rf-tt-a', PASSWORD);
    const c = await registerUser(t, 'rf-tt-c', PASSWORD);
    const b = await registerUser(t, 'rf-tt-b', PASSWORD);
    const caps = await registerUser(t, 'rf-tt-caps', PASSWORD);
    const capsStored = await stored(caps, caps.email.toUpperCase());
    const padded = await registerUser(t, 'rf-tt-padded', PASSWORD);
    await stored(padded, ` ${padded.email}  `);
    const d = await registerUser(t, 'rf-tt-d', PASSWORD, uniqueEmail('zo\u00eb.rf-tt-d'));
    const dNfd = await stored(d, d.email.normalize('NFD'));
    const e = await registerUser(t, 'rf-tt-e', PASSWORD, uniqueEmail('ren\u00e9e.rf-tt-e'));
    // case twins: U stored upper-cased, V lower-cased
    const v = await registerUser(t, 'rf-tt-twin', PASSWORD);
    const u = await registerUser(t, 'rf-tt-u', PASSWORD);
    await stored(u, v.email.toUpperCase());
    const twinForms = [v.email, v.email.toUpperCase(), v.email.charAt(0).toUpperCase() + v.email.slice(1)];
    // a pair 20270211000700 reported and left: K in NFC, L the same decomposed
    const k = await registerUser(t, 'rf-tt-k', PASSWORD, uniqueEmail('no\u00ebl.rf-tt-k'));
    const l = await registerUser(t, 'rf-tt-l', PASSWORD);
    const kNfd = await stored(l, k.email.normalize('NFD'));
    // letters upper-cased and lower-cased again become others (ſ → S → s, ı → I → i): an account registered with one is
    // no other's own (review rK: `bill.ſam@x` had `bill.sam@x`, another account's, for its own)
    const plain = await registerUser(t, 'rk-tt-plain', PASSWORD, uniqueEmail('bill.sam.rk-tt'));
    const longS = await registerUser(t, 'rk-tt-long-s', PASSWORD, plain.email.replace('bill.sam', 'bill.\u017fam'));
    const dotless = await registerUser(t, 'rk-tt-dotless', PASSWORD, plain.email.replace('bill.sam', 'b\u0131ll.sam'));
    // final sigma and sigma are two addresses to JavaScript, and can be two accounts; İ stored by the Hub lowers to i +
    // U+0307, not i (review rL: each let the user own the other account's address)
    const sigmaFinal = await registerUser(t, 'rl-tt-final', PASSWORD, `\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c2.${randomUUID().slice(0, 8)}@example.test`);
    const sigma = await registerUser(t, 'rl-tt-sigma', PASSWORD, sigmaFinal.email.replace('\u03c2.', '\u03c3.'));
    const dotted = await registerUser(t, 'rl-tt-dotted', PASSWORD);
    const dottedStored = await stored(dotted, plain.email.replace('bill.sam', 'b\u0130ll.sam'));
    const nobody = randomUUID();
    // review rM: glibc's lower() makes every Σ a σ, JavaScript's a final Σ a ς, so a Hub-stored ΟΔΥΣΣΕΑΣ@… (normalizeEmail:
    // …ας@) owned the σ form, another account's, and that account the ΟΔΥΣΣΕΑΣ form: an address with a capital Σ is
    // nobody's own now. The key upper-cased before NFC, and upper() makes U+0345 (iota subscript) a capital Ι of its own:
    // α + U+0345 had the key of α + ι, not of ᾳ, its normalizeEmail form; NFC comes first now.
    const domain = `rm-${randomUUID().slice(0, 8)}.example.test`;
    const hubSigma = await registerUser(t, 'rm-tt-hub-sigma', PASSWORD);
    const hubSigmaStored = await stored(hubSigma, `\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3@${domain.toUpperCase()}`);
    const sigmaHolder = await registerUser(t, 'rm-tt-sigma', PASSWORD, `\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3@${domain}`);
    const iotaHub = await registerUser(t, 'rm-tt-iota-hub', PASSWORD);
    const iotaHubStored = await stored(iotaHub, `\u03b1\u0345\u03b4\u03c9@${domain}`);
    const iotaNfc = await registerUser(t, 'rm-tt-iota-nfc', PASSWORD, `\u1fb3\u03b4\u03c9.2@${domain}`);

    const table: [string, string, string, boolean][] = [
      ['stored ΟΔΥΣΣΕΑΣ@ by the Hub, asks the σ form, another\'s', hubSigma.id, sigmaHolder.email, true],
      // its own address as stored, byte for byte (a mailed link copies it so into the password identity: core.prove_user_email),
      // is its own whatever it holds (review rv6): erasure and export take it as normalizeEmail has it, the ς form, its own
      ['stored ΟΔΥΣΣΕΑΣ@ by the Hub, asks exactly so: its own', hubSigma.id, hubSigmaStored, false],
      ['stored ΟΔΥΣΣΕΑΣ@ by the Hub, asks exactly so padded: its own', hubSigma.id, `\u00a0${hubSigmaStored} `, false],
      ['stored ΟΔΥΣΣΕΑΣ@ by the Hub, asks it with the domain lower-cased: its key is the σ account\'s, and a capital Σ is nobody\'s own', hubSigma.id, hubSigmaStored.replace(domain.toUpperCase(), domain), true],
      ['stored ΟΔΥΣΣΕΑΣ@ by the Hub, asks its normalizeEmail (ς) form, another\'s too', hubSigma.id, normalizeEmail(hubSigmaStored), true],
      ['registered with σ, asks ΟΔΥΣΣΕΑΣ@ (to JavaScript the ς form, the Hub-stored account\'s), another\'s', sigmaHolder.id, hubSigmaStored, true],
      ['registered with σ, asks its own', sigmaHolder.id, sigmaHolder.email, false],
      ['stored α + U+0345 by the Hub, asked for its normalizeEmail form (ᾳ), another\'s', c.id, normalizeEmail(iotaHubStored), true],
      ['stored α + U+0345 by the Hub, asked so, another\'s', c.id, iotaHubStored, true],
      ['stored α + U+0345 by the Hub, asks its normalizeEmail form: nobody else has its key', iotaHub.id, normalizeEmail(iotaHubStored), false],
      ['α + ι, two letters, is not the α + U+0345 account\'s', c.id, `\u03b1\u03b9\u03b4\u03c9@${domain}`, false],
      ['registered with ᾳ, asked decomposed, another\'s', c.id, iotaNfc.email.normalize('NFD'), true],
      ['registered with ᾳ, asked decomposed and upper-cased, another\'s', c.id, `\u0391\u0345\u0394\u03a9.2@${domain.toUpperCase()}`, true],
      ['registered with ς, asks the σ form, another\'s', sigmaFinal.id, sigma.email, true],
      ['registered with σ, asks the ς form, another\'s', sigma.id, sigmaFinal.email, true],
      ['stored with İ, asks the plain i form, another\'s', dotted.id, plain.email, true],
      ['stored with İ, asks its normalizeEmail form, its own', dotted.id, normalizeEmail(dottedStored), false],
      ['registered with ſ, asks the s form, another\'s', longS.id, plain.email, true],
      ['registered with ı, asks the i form, another\'s', dotless.id, plain.email, true],
      ['registered with ſ, asks its own', longS.id, longS.email, false],
      ['lone, own exact', a.id, a.email, false],
      ['lone, own upper-cased', a.id, a.email.toUpperCase(), false],
      ['lone, own padded', a.id, `  ${a.email} `, false],
      ['another\'s exact', c.id, b.email, true],
      ['another\'s upper-cased', c.id, b.email.toUpperCase(), true],
      ['another\'s padded', c.id, ` ${b.email}  `, true],
      ['another\'s stored upper-cased, asked lower-cased', c.id, caps.email, true],
      ['another\'s stored upper-cased, asked so', c.id, capsStored, true],
      ['another\'s stored padded', c.id, padded.email, true],
      ['another\'s stored decomposed, asked in NFC', c.id, d.email, true],
      ['another\'s stored decomposed, asked so', c.id, dNfd, true],
      ['another\'s in NFC, asked decomposed and upper-cased', c.id, e.email.normalize('NFD').toUpperCase(), true],
      ...twinForms.flatMap((form, i): [string, string, string, boolean][] => [
        [`twin U asks form ${i}`, u.id, form, false], [`twin V asks form ${i}`, v.id, form, false]]),
      ['pair: K asks its own', k.id, k.email, false],
      ['pair: K asks L\'s decomposed form', k.id, kNfd, true],
      ['pair: L asks its own', l.id, kNfd, false],
      ['pair: L asks the NFC form', l.id, k.email, true],
      ['pair: L asks its own padded', l.id, ` ${kNfd} `, false],
      ['no such user, a taken address', nobody, b.email, true],
      ['no such user, a free address', nobody, uniqueEmail('rf-tt-free'), false],
    ];
    const answered = [];
    for (const [label, userId, email] of table) {
      answered.push([label, userId, email, (await q('SELECT core.email_of_another_account($1, $2) AS r', [userId, email])).rows[0].r]);
    }
    expect(answered).toEqual(table);
  });

  it('another account stored by the Hub padded with whitespace PostgreSQL\'s trim() keeps (NBSP, newline) or upper-cased with a final sigma (PostgreSQL\'s lower() gives σ, JavaScript\'s ς): C\'s link asserting its normalizeEmail form is stored unverified; C\'s export and erasure leave its invitation and key (review rI)', async () => {
    const forms: [string, string, (e: string) => string][] = [
      ['nbsp-nl', uniqueEmail('ri-nbsp-d'), (e) => `\u00a0${e}\n`],
      ['sigma', uniqueEmail('\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c2'), (e) => e.toUpperCase()],
    ];
    for (const [form, email, storedAs] of forms) {
      const d = await verifyEmailOf(t, await registerUser(t, `ri-${form}-d`, PASSWORD, email));
      expect(d.email).toBe(normalizeEmail(storedAs(email)));
      await q('UPDATE core."User" SET email = $2 WHERE id = $1', [d.id, storedAs(d.email)]);
      const forD = await invite(d.email);
      expect(await keyOf(d.email)).toBe(1);
      const c = await verifyEmailOf(t, await registerUser(t, `ri-${form}-c`, PASSWORD));
      const sub = `hub-${randomUUID()}`;
      const linked = await t.http.post('/v1/auth/identities').set(c.auth).send({ token: hubToken(sub, d.email), password: PASSWORD }).expect(201);
      expect([form, linked.body.find((i: { provider: string }) => i.provider === 'nextauth')]).toEqual([form, expect.objectContaining({ email: d.email, emailVerified: false })]);
      expect([form, await hubIdentity(sub)]).toEqual([form, [{ user_id: c.id, email: d.email, verified: false }]]);
      // D itself, stored so, keeps its address its own
      expect((await q('SELECT core.email_of_another_account($1, $2) AS r', [d.id, d.email])).rows[0].r).toBe(false);

      expect(await exportedInvitations(c)).not.toContain(forD.id);
      await t.http.delete('/v1/me').set(c.auth).send({ password: PASSWORD }).expect(200);
      expect([form, await invitation(forD.id)]).toEqual([form, [{ email: d.email, accepted: false }]]);
      expect(await keyOf(d.email)).toBe(1);
    }
  });

  it('the key of user_email_key_idx (what core.email_of_another_account compares another account\'s address by) is one for an address and its normalizeEmail form, and the function\'s lookup probes that index (reviews rI, rM)', async () => {
    const indexKey = (await q(`SELECT pg_get_expr(i.indexprs, i.indrelid) AS e FROM pg_index i WHERE i.indexrelid = 'core.user_email_key_idx'::regclass`)).rows[0].e as string;
    // the index of the key before NFC came first (20270211000950) is gone (20270211001660), as is the function that probed it
    expect((await q(`SELECT to_regclass('core.user_email_norm_idx') AS i`)).rows[0].i).toBeNull();
    const keyIn = async (s: string) => (await q(`SELECT ${indexKey} AS k FROM (SELECT $1::text AS email) x`, [s])).rows[0].k as string;
    // JavaScript's trim() set, each alone around an address
    const whitespace = [0x9, 0xa, 0xb, 0xc, 0xd, 0x20, 0xa0, 0x1680, ...Array.from({ length: 11 }, (_, i) => 0x2000 + i), 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]
      .map((c) => String.fromCharCode(c));
    expect(whitespace.every((w) => `${w}a${w}`.trim() === 'a')).toBe(true);
    // Code points newer than the server's C library (glibc 2.36 here: the Unicode 16 letters U+1C89, U+A7CB-A7DC,
    // U+10D50-10D65, U+16EA0-16EB8) are left out: PostgreSQL's upper() and lower() do not case them, JavaScript does.
    const samples = [
      ...whitespace.map((w) => `${w}bob@example.test${w}`),
      '\u00a0\t Bob@Example.TEST\r\n\u3000\ufeff',
      '\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3@EXAMPLE.TEST', // ΟΔΥΣΣΕΑΣ: final Σ → ς in JavaScript, σ in PostgreSQL
      '\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3.1@EXAMPLE.TEST',
      '\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3@example.test', // written with a non-final σ
      '\u0130LKER@example.test', '\u0130lker@example.test', // İ: i + U+0307 in JavaScript, i in PostgreSQL
      'Stra\u00dfe@example.test', 'STRA\u1e9eE@example.test', // ß, ẞ (neither side upper-cases to SS)
      'zoe\u0308@example.test', 'ZOE\u0308@EXAMPLE.TEST', 'Zo\u00eb@example.test', 'ZO\u00cb@Example.Test', // decomposed, NFC
      'Ren\u00e9e@Example.Test'.normalize('NFD'), 'MiXeD.Case@ExAmPlE.tEsT', '\u01c5an@example.test', '\u01c4AN@example.test',
      // decomposed with U+0345 (iota subscript), and composed: upper() before NFC made U+0345 a capital Ι of its own (review rM)
      '\u03b1\u0345\u03b4\u03c9@example.test', '\u0391\u0345\u0394\u03a9@EXAMPLE.TEST', '\u03c9\u0313\u0342\u0345@example.test',
      '\u1fbc\u03b4\u03c9@example.test', '\u1fa8@example.test',
    ];
    // also as a database whose default collation is ICU's computes it (its upper() makes ß SS, and kept ẞ apart; review rM)
    const icu = (await q(`SELECT count(*)::int AS n FROM pg_collation WHERE collname = 'und-x-icu'`)).rows[0].n === 1;
    const keyInIcu = async (s: string) => (await q(`SELECT ${indexKey} AS k FROM (SELECT $1::text COLLATE "und-x-icu" AS email) x`, [s])).rows[0].k as string;
    const differing = [];
    for (const [collation, key] of [['default', keyIn], ...(icu ? [['und-x-icu', keyInIcu] as const] : [])] as const) {
      for (const s of samples) {
        const [ofStored, ofNormalized] = [await key(s), await key(normalizeEmail(s))];
        if (ofStored !== ofNormalized) differing.push([collation, s, normalizeEmail(s), ofStored, ofNormalized]);
      }
    }
    expect(differing).toEqual([]);
    // one key for the case and Unicode forms of one address; ß and ss stay two
    expect(new Set(await Promise.all(['zoe\u0308@example.test', 'ZO\u00cb@Example.Test', ' zo\u00eb@example.test\u00a0'].map(keyIn))).size).toBe(1);
    expect(new Set(await Promise.all(['\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3@x.test', '\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c2@x.test', '\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3@x.test'].map(keyIn))).size).toBe(1);
    expect(await keyIn('stra\u00dfe@x.test')).not.toBe(await keyIn('strasse@x.test'));

    // the function's lookup as it runs (its parameters bound, a generic plan): the other account by the index, not a scan
    const body = (await q(`SELECT prosrc FROM pg_proc WHERE oid = 'core.email_of_another_account(text, text)'::regprocedure`)).rows[0].prosrc as string;
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off');
      await c.query(`PREPARE ri_other (text, text) AS ${body.replace(/\bp_user\b/g, '$1').replace(/\bp_email\b/g, '$2')}`);
      const plan = (await c.query(`EXPLAIN EXECUTE ri_other ('x', ' Bob@Example.test ')`)).rows.map((r) => r['QUERY PLAN'] as string).join('\n');
      expect(plan).toContain('user_email_key_idx');
      expect(plan).not.toMatch(/Seq Scan/);
    } finally {
      await c.query('ROLLBACK');
      await c.query('DEALLOCATE ALL');
      c.release();
    }
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
    await q(migrationSql(CURRENT_RULE));
    expect(await verifiedOf()).toEqual(before.map((r) => ({ ...r, verified: r.verified && !unverified.has(r.subject) })));
    const audited = async () => (await q(`SELECT org_id, actor_id, principal_type, entity_type, entity_id, before, after FROM core.audit_logs
      WHERE action = 'user.identity_email_unverified' AND entity_id = ANY($1) ORDER BY id`, [[b.id, c.id, k.id, l.id]])).rows;
    const entry = {
      org_id: c.personalOrgId, actor_id: 'migration:20270211001000', principal_type: 'system', entity_type: 'user', entity_id: c.id,
      before: { provider: 'nextauth', emailVerified: true }, after: { provider: 'nextauth', emailVerified: false, reason: 'email_of_another_account' },
    };
    expect(await audited()).toEqual([entry, entry, entry]);

    await q(migrationSql());
    await q(migrationSql(CURRENT_RULE));
    expect(await audited()).toHaveLength(3);
    expect(await verifiedOf()).toEqual(before.map((r) => ({ ...r, verified: r.verified && !unverified.has(r.subject) })));
  });

  it('migration 20270211001650 unverifies the identities the rule before it left verified though they assert another account\'s address (a Hub-stored ΟΔΥΣΣΕΑΣ@, a Hub-stored α + U+0345; review rM), audited, and runs again harmlessly', async () => {
    const domain = `rm-m-${randomUUID().slice(0, 8)}.example.test`;
    // A stored ΟΔΥΣΣΕΑΣ@ by the Hub, B the σ form; D stored α + U+0345 (decomposed ᾳ) by the Hub; C and E unrelated
    const a = await verifyEmailOf(t, await registerUser(t, 'rm-m-a', PASSWORD));
    const b = await verifyEmailOf(t, await registerUser(t, 'rm-m-b', PASSWORD, `\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3@${domain}`));
    const d = await verifyEmailOf(t, await registerUser(t, 'rm-m-d', PASSWORD));
    const c = await verifyEmailOf(t, await registerUser(t, 'rm-m-c', PASSWORD));
    const e = await verifyEmailOf(t, await registerUser(t, 'rm-m-e', PASSWORD));
    const aStored = `\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3@${domain.toUpperCase()}`;
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [a.id, aStored]);
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [d.id, `\u03b1\u0345\u03b4\u03c9@${domain}`]);
    // identities as links stored them under the rule of 20270211001000 (each verified): A's asserting B's address and its
    // own normalizeEmail form (ς: its key is B's too, so it is no longer taken for A's own), C's asserting D's in NFC, E's
    // asserting an address nobody has
    const subs = { aB: `hub-${randomUUID()}`, aOwn: `hub-${randomUUID()}`, cD: `hub-${randomUUID()}`, eFree: `hub-${randomUUID()}` };
    for (const [sub, userId, email] of [[subs.aB, a.id, b.email], [subs.aOwn, a.id, normalizeEmail(aStored)],
      [subs.cD, c.id, `\u1fb3\u03b4\u03c9@${domain}`], [subs.eFree, e.id, uniqueEmail('rm-m-free')]]) {
      await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('nextauth', $1, $2, $3, now())`, [sub, userId, email]);
    }
    const users = [a.id, b.id, c.id, d.id, e.id];
    const verifiedOf = async () => (await q(`SELECT user_id, provider, subject, email_verified_at IS NOT NULL AS verified FROM core.user_identities
      WHERE user_id = ANY($1) ORDER BY user_id, provider, subject`, [users])).rows;
    const before = await verifiedOf();
    expect(before.every((r) => r.verified)).toBe(true);
    const unverified = new Set([subs.aB, subs.aOwn, subs.cD]);

    await q(migrationSql(CURRENT_RULE));
    expect(await verifiedOf()).toEqual(before.map((r) => ({ ...r, verified: !unverified.has(r.subject) })));
    const audited = async () => (await q(`SELECT org_id, actor_id, principal_type, entity_type, entity_id, before, after FROM core.audit_logs
      WHERE action = 'user.identity_email_unverified' AND entity_id = ANY($1) ORDER BY id`, [users])).rows;
    const entry = (p: TestUser) => ({
      org_id: p.personalOrgId, actor_id: 'migration:20270211001650', principal_type: 'system', entity_type: 'user', entity_id: p.id,
      before: { provider: 'nextauth', emailVerified: true }, after: { provider: 'nextauth', emailVerified: false, reason: 'email_of_another_account' },
    });
    expect(await audited()).toEqual(expect.arrayContaining([entry(a), entry(a), entry(c)]));
    expect(await audited()).toHaveLength(3);
    expect(JSON.stringify(await audited())).not.toContain(domain);

    await q(migrationSql(CURRENT_RULE));
    expect(await audited()).toHaveLength(3);
    expect(await verifiedOf()).toEqual(before.map((r) => ({ ...r, verified: !unverified.has(r.subject) })));
  });

  it('migration 20270211001650 leaves verified the password identity a mailed link gave a Hub-stored ΟΔΥΣΣΕΑΣ@ account (its address as stored) though another account has οδυσσεασ@ (review rv6)', async () => {
    const domain = `rv6-m-${randomUUID().slice(0, 8)}.example.test`;
    const aStored = `\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3@${domain.toUpperCase()}`;
    const a = await registerUser(t, 'rv6-m-a', PASSWORD, normalizeEmail(aStored));
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [a.id, aStored]);
    // the mailed link (POST /v1/auth/verify-email): the password identity takes the address as stored, verified
    const token = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`, [hashToken(token), a.id, aStored]);
    await t.http.post('/v1/auth/verify-email').set(a.auth).send({ token }).expect(200);
    await verifyEmailOf(t, await registerUser(t, 'rv6-m-b', PASSWORD, `\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3@${domain}`));
    const state = async () => ({
      identities: (await q('SELECT provider, email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1', [a.id])).rows,
      accountVerified: (await q('SELECT core.user_email_verified($1) AS v', [a.id])).rows[0].v,
    });
    const verified = { identities: [{ provider: 'password', email: aStored, verified: true }], accountVerified: true };
    expect(await state()).toEqual(verified);

    await q(migrationSql(CURRENT_RULE));
    expect(await state()).toEqual(verified);
    expect((await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'user.identity_email_unverified' AND entity_id = $1`, [a.id])).rows[0].n).toBe(0);
    // a verified account: it may create an organization
    await t.http.post('/v1/orgs').set(a.auth).send({ name: 'Odysseus Ltd' }).expect(201);
  });

  it('migration 20270211001650 takes no ACCESS EXCLUSIVE lock on core."User" (a sign-in holding its row deadlocked with it); 20270211001660 drops the old index (review rv6)', async () => {
    const oldIndex = migrationSql('20270211000950_user_email_norm_index').match(/CREATE INDEX user_email_norm_idx[^;]*;/)![0];
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query(oldIndex);
      await c.query(migrationSql(CURRENT_RULE));
      const locks = (await c.query(`SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation = 'core."User"'::regclass ORDER BY mode`)).rows.map((r) => r.mode);
      expect(locks).not.toContain('AccessExclusiveLock');
      expect((await c.query(`SELECT to_regclass('core.user_email_norm_idx') IS NOT NULL AS kept`)).rows[0].kept).toBe(true);
      await c.query(migrationSql('20270211001660_drop_user_email_norm_index'));
      expect((await c.query(`SELECT to_regclass('core.user_email_norm_idx') AS i`)).rows[0].i).toBeNull();
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
  });

  it('migration 20270211001650 warns under a casing the key cannot use: plain C (no casing beyond ASCII), Turkish (lower(I) is ı), Lithuanian (upper(i̇) is I); not under C.UTF-8 (reviews rv6, rv7)', async () => {
    // its first statement: the check of the database's casing
    const check = migrationSql(CURRENT_RULE).match(/DO \$\$[\s\S]*?\n\$\$;/)![0];
    const server = process.env.OMNIZEN_TEST_SERVER_URL!;
    const icu = (await q(`SELECT count(*)::int AS n FROM pg_collation WHERE collname = 'tr-TR-x-icu'`)).rows[0].n === 1;
    const cases: [string, string, boolean][] = [
      ['c-utf8', `LOCALE 'C.UTF-8'`, false],
      ['plain-c', `LOCALE 'C'`, true],
      ...(icu ? [['icu-tr', `LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR'`, true] as [string, string, boolean]] : []),
      // upper() of i with a dot above drops the dot (review rv7)
      ...(icu ? [['icu-lt', `LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'lt'`, true] as [string, string, boolean]] : []),
    ];
    const root = new pg.Client({ connectionString: server });
    await root.connect();
    const warned: [string, boolean][] = [];
    try {
      for (const [label, locale] of cases) {
        // named as the run's throwaway databases are: one left behind by a crash goes with them
        const name = `omnizen_t_${process.env.OMNIZEN_TEST_RUN}_casing_${randomBytes(4).toString('hex')}`;
        await root.query(`CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8' ${locale}`);
        try {
          const c = new pg.Client({ connectionString: withDatabase(server, name) });
          await c.connect();
          const warnings: string[] = [];
          c.on('notice', (n) => { if (n.severity === 'WARNING') warnings.push(n.message ?? ''); });
          try {
            await c.query(check);
          } finally {
            await c.end();
          }
          warned.push([label, warnings.some((w) => w.includes('Turkish') && w.includes('Lithuanian') && w.includes('core.email_of_another_account'))]);
        } finally {
          await root.query(`DROP DATABASE IF EXISTS "${name}"`);
        }
      }
    } finally {
      await root.end();
    }
    expect(warned).toEqual(cases.map(([label, , warns]) => [label, warns]));
  });

  it('a sign-in through an identity asks once whether the asserted address is another account\'s: one call of core.email_of_another_account, whichever it is', async () => {
    const c = await verifyEmailOf(t, await registerUser(t, 'touch-once-c', PASSWORD));
    const b = await registerUser(t, 'touch-once-b', PASSWORD);
    // the owner login (a superuser) counts this transaction's function calls (track_functions); rolled back at the end
    const pool = new SqlPool(t.db.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 30_000 }, 'test');
    const calls = async (db: Db) => Number((await db.$queryRaw<{ n: bigint }[]>`
      SELECT coalesce(pg_stat_get_xact_function_calls('core.email_of_another_account(text, text)'::regprocedure), 0) AS n`)[0].n);
    const seen: unknown[] = [];
    const done = new Error('rolled back');
    try {
      await expect(pool.transaction(async (db) => {
        await db.$executeRaw`SET LOCAL track_functions = 'all'`;
        // C's own address (taken), B's (kept: C's stays, verified), a new one (taken, unverified)
        for (const email of [c.email, b.email, uniqueEmail('touch-once-new')]) {
          const before = await calls(db);
          const stored = await identityRepository.touch(db, { provider: 'password', subject: c.id, email, emailVerified: false });
          seen.push({ stored, calls: (await calls(db)) - before });
        }
        throw done;
      })).rejects.toBe(done);
    } finally {
      await pool.end();
    }
    expect(seen).toEqual([
      { stored: { email: c.email, emailVerified: true }, calls: 1 },
      { stored: { email: c.email, emailVerified: true }, calls: 1 },
      { stored: { email: expect.stringContaining('touch-once-new'), emailVerified: false }, calls: 1 },
    ]);
  });
});
