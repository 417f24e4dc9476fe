import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { emailSubject } from '../../src/modules/privacy/audit-sealing.js';
import { hashToken } from '../../src/modules/auth/token.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createOrg, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';

const NFC = 'jos\u00e9.nfc@example.test';
const NFD = 'jose\u0301.nfc@example.test';
/** The subject an address's key had before migration 20270211000700 (audit-sealing.ts then: trimmed, lower-cased). */
const subjectOf = (email: string) => `email:${createHash('sha256').update(email.trim().toLowerCase()).digest('hex')}`;
const migrationSql = () => readFileSync(join(projectRoot(), 'prisma', 'migrations', '20270211000700_emails_nfc', 'migration.sql'), 'utf8');

/**
 * An e-mail address is one address whatever its Unicode form: "josé" typed precomposed (NFC) and decomposed (NFD,
 * e + U+0301) is one account, one pending invitation, one sign-in (platform/http/email.ts); and migration
 * 20270211000700 brings stored addresses to NFC, reporting rather than merging those that would collide.
 */
describe('e-mail addresses in Unicode NFC', () => {
  describe('through the API', () => {
    let t: TestApp;
    let owner: TestUser;

    beforeAll(async () => {
      t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
      owner = await registerUser(t, 'nfc-owner');
    });
    afterAll(() => t.close());

    const users = async () => (await t.db.admin.query(
      `SELECT email, length(email) AS len FROM core."User" WHERE email LIKE 'jos%.nfc@example.test' ORDER BY email`)).rows;

    it('registering the NFD form of a registered NFC address makes no second account; signing in with either form works', async () => {
      await t.http.post('/v1/auth/register').send({ email: NFC, password: 'correct horse battery', name: 'A' }).expect(202);
      await t.http.post('/v1/auth/register').send({ email: NFD, password: 'other horse battery x', name: 'B' }).expect(202);
      expect(await users()).toEqual([{ email: NFC, len: NFC.length }]);
      const identities = (await t.db.admin.query(`SELECT email FROM core.user_identities WHERE email LIKE 'jos%.nfc@example.test'`)).rows;
      expect(identities).toEqual([{ email: NFC }]);
      const login = await t.http.post('/v1/auth/login').send({ email: NFD, password: 'correct horse battery' });
      expect(login.status).toBe(200);
    });

    it('an address registered in NFD is stored in NFC', async () => {
      const nfd = 'rene\u0301.nfd-only@example.test';
      await t.http.post('/v1/auth/register').send({ email: nfd, password: 'correct horse battery', name: 'R' }).expect(202);
      const { rows } = await t.db.admin.query(`SELECT email FROM core."User" WHERE email LIKE 'ren%.nfd-only@example.test'`);
      expect(rows).toEqual([{ email: nfd.normalize('NFC') }]);
    });

    it('inviting the NFD form of an address with a pending NFC invitation is a 409 invitation.pending_exists', async () => {
      const orgId = await createOrg(t, owner, 'NFC Ltd');
      const first = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: NFC, role: 'member' });
      expect(first.status).toBe(201);
      const second = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: NFD, role: 'member' });
      expect(second.status).toBe(409);
      expect(second.body.error.code).toBe('invitation.pending_exists');
      const { rows } = await t.db.admin.query(`SELECT email FROM core.invitations WHERE org_id = $1`, [orgId]);
      expect(rows).toEqual([{ email: NFC }]);
    });

    it('the audit entries sealed for a decomposed address before migration 20270211000700 are erased with its NFC account after it (review r8)', async () => {
      const nfc = 'in\u00e8s.sealed@example.test';
      const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
      await verifyEmailOf(t, owner);
      const orgId = await createOrg(t, owner, 'Sealed Ltd');
      const invitationId = (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: nfc, role: 'member' }).expect(201)).body.id;
      // as it was before the migration: the invitation stored decomposed, its entries sealed under that form's key
      const [{ id: keyId }] = (await q(`UPDATE core.personal_data_keys SET subject = $2 WHERE subject = $1 RETURNING id`,
        [emailSubject(nfc), subjectOf(nfc.normalize('NFD'))])).rows;
      await q(`UPDATE core.invitations SET email = $2 WHERE id = $1`, [invitationId, nfc.normalize('NFD')]);
      const sealed = async () => (await q(`SELECT DISTINCT coalesce(after->'$sealed'->>'k', before->'$sealed'->>'k') AS k FROM core.audit_logs
        WHERE entity_type = 'invitation' AND entity_id = $1 AND action = 'invitation.created'`, [invitationId])).rows;
      expect(await sealed()).toEqual([{ k: keyId }]);
      await q(readFileSync(join(projectRoot(), 'prisma', 'migrations', '20270211000700_emails_nfc', 'migration.sql'), 'utf8'));
      expect((await q(`SELECT email FROM core.invitations WHERE id = $1`, [invitationId])).rows).toEqual([{ email: nfc }]);

      // the invitee registers (decomposed, as typed), proves the address and erases their account
      const p = await verifyEmailOf(t, await registerUser(t, 'ines', 'correct horse battery', nfc.normalize('NFD')));
      await t.http.delete('/v1/me').set(p.auth).send({ password: 'correct horse battery' }).expect(200);
      // the key is shredded with them (the entries read "[erased]"), the invitation gone
      expect((await q(`SELECT subject FROM core.personal_data_keys WHERE id = $1`, [keyId])).rows).toEqual([]);
      expect((await q(`SELECT id FROM core.invitations WHERE id = $1`, [invitationId])).rows).toEqual([]);
      expect(await sealed()).toEqual([{ k: keyId }]);
    });

    it('the invitations of a reported pair\'s decomposed account stay its own: its erasure takes them and their key (review rn)', async () => {
      const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
      const nfc = 'andr\u00e9.rn-pair@example.test';
      const nfd = nfc.normalize('NFD');
      const kept = await verifyEmailOf(t, await registerUser(t, 'andre-kept', 'correct horse battery', nfc));
      const left = await verifyEmailOf(t, await registerUser(t, 'andre-left'));
      // as before the migration: the second account registered decomposed (a pair the migration reports and leaves)
      await q(`UPDATE core."User" SET email = $2 WHERE id = $1`, [left.id, nfd]);
      await q(`UPDATE core.user_identities SET email = $2 WHERE user_id = $1`, [left.id, nfd]);
      const [orgX, orgY] = [await createOrg(t, owner, 'Pair X'), await createOrg(t, owner, 'Pair Y')];
      // A: accepted by the decomposed account; B: pending, sealed under the decomposed form's key and mailed there
      const a = (await q(`INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at, accepted_at, accepted_by)
        VALUES ($1, $2, 'member', $3, now() + interval '7 days', now(), $4) RETURNING id`, [orgX, nfd, randomUUID(), left.id])).rows[0].id as string;
      const b = (await t.http.post(`/v1/orgs/${orgY}/invitations`).set(owner.auth).send({ email: nfc, role: 'member' }).expect(201)).body.id as string;
      const [{ id: keyId }] = (await q(`UPDATE core.personal_data_keys SET subject = $2 WHERE subject = $1 RETURNING id`, [emailSubject(nfc), subjectOf(nfd)])).rows;
      await q(`UPDATE core.invitations SET email = $2 WHERE id = $1`, [b, nfd]);
      expect((await q(`UPDATE core.email_deliveries SET to_address = $2 WHERE to_address = $1`, [nfc, nfd])).rowCount).toBe(1);
      await q(readFileSync(join(projectRoot(), 'prisma', 'migrations', '20270211000700_emails_nfc', 'migration.sql'), 'utf8'));

      const invitations = async () => (await q(`SELECT id, email FROM core.invitations WHERE id = ANY($1::uuid[]) ORDER BY id`, [[a, b]])).rows;
      // left as they were, with their key and mail: not turned into the kept account's address
      expect(await invitations()).toEqual([{ id: a, email: nfd }, { id: b, email: nfd }].sort((x, y) => x.id.localeCompare(y.id)));
      expect((await q(`SELECT subject FROM core.personal_data_keys WHERE id = $1`, [keyId])).rows).toEqual([{ subject: subjectOf(nfd) }]);
      expect((await q(`SELECT count(*)::int AS n FROM core.email_deliveries WHERE to_address = $1`, [nfd])).rows[0].n).toBe(1);

      // the decomposed account's erasure finds both and shreds the key; the kept account is untouched
      await t.http.delete('/v1/me').set(left.auth).send({ password: 'correct horse battery' }).expect(200);
      expect(await invitations()).toEqual([]);
      expect((await q(`SELECT id FROM core.personal_data_keys WHERE id = $1`, [keyId])).rows).toEqual([]);
      expect((await q(`SELECT email FROM core."User" WHERE id = $1`, [kept.id])).rows).toEqual([{ email: nfc }]);
    });

    it('confirming a change whose stored new address is decomposed takes it in NFC: one taken in NFC is a 409 auth.email_taken (review rn)', async () => {
      const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
      const taken = 'zo\u00e9.rn-taken@example.test';
      const free = 'l\u00e9a.rn-free@example.test';
      await registerUser(t, 'zoe', 'correct horse battery', taken);
      const p = await registerUser(t, 'rn-changer');
      const [{ email: before }] = (await q(`SELECT email FROM core."User" WHERE id = $1`, [p.id])).rows;
      // a request row of before the migration, its new address decomposed
      const request = async (newEmail: string) => {
        const token = randomUUID();
        await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, token_hash)
          VALUES ($1, $2, $3, now() + interval '1 day', $4)`, [p.id, before, newEmail, hashToken(token)]);
        return token;
      };
      const res = await t.http.post('/v1/auth/email-change/confirm').send({ token: await request(taken.normalize('NFD')) });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('auth.email_taken');
      expect((await q(`SELECT email FROM core."User" WHERE email LIKE 'zo%.rn-taken@example.test'`)).rows).toEqual([{ email: taken }]);
      expect((await q(`SELECT email FROM core."User" WHERE id = $1`, [p.id])).rows).toEqual([{ email: before }]);
      expect((await q(`SELECT count(*)::int AS n FROM core.email_change_requests WHERE user_id = $1 AND confirmed_at IS NOT NULL`, [p.id])).rows[0].n).toBe(0);

      // a free one is taken, in NFC, and so is the proof the confirmed request keeps (erasure's proven addresses)
      const ok = await t.http.post('/v1/auth/email-change/confirm').send({ token: await request(free.normalize('NFD')) }).expect(200);
      expect(ok.body.email).toBe(free);
      expect((await q(`SELECT email FROM core."User" WHERE id = $1`, [p.id])).rows).toEqual([{ email: free }]);
      expect((await q(`SELECT new_email FROM core.email_change_requests WHERE user_id = $1 AND confirmed_at IS NOT NULL`, [p.id])).rows).toEqual([{ new_email: free }]);
    });

    it('an invitation to a former address of a reported pair\'s decomposed account stays its own: its erasure takes it and its key (review ro)', async () => {
      const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
      const nfc = 'chlo\u00eb.ro-pair@example.test';
      const nfd = nfc.normalize('NFD');
      const former = 'no\u00e9mie.ro-former@example.test';
      const formerNfd = former.normalize('NFD');
      await verifyEmailOf(t, await registerUser(t, 'chloe-kept', 'correct horse battery', nfc));
      const left = await verifyEmailOf(t, await registerUser(t, 'chloe-left'));
      // as before the migration: the second account registered decomposed, having moved there from another decomposed
      // address (a confirmed change proves that one was its own)
      await q(`UPDATE core."User" SET email = $2 WHERE id = $1`, [left.id, nfd]);
      await q(`UPDATE core.user_identities SET email = $2 WHERE user_id = $1`, [left.id, nfd]);
      await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, confirmed_at, old_email_verified, token_hash)
        VALUES ($1, $2, $3, now() + interval '1 day', now(), true, $4)`, [left.id, formerNfd, nfd, randomUUID()]);
      // an invitation to the former address, decomposed, sealed under that form's key
      const orgId = await createOrg(t, owner, 'Former Ltd');
      const invitationId = (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: former, role: 'member' }).expect(201)).body.id as string;
      const [{ id: keyId }] = (await q(`UPDATE core.personal_data_keys SET subject = $2 WHERE subject = $1 RETURNING id`, [emailSubject(former), subjectOf(formerNfd)])).rows;
      await q(`UPDATE core.invitations SET email = $2 WHERE id = $1`, [invitationId, formerNfd]);
      await q(migrationSql());

      // left with its key: not turned into an address nobody proves
      expect({
        invitation: (await q(`SELECT email FROM core.invitations WHERE id = $1`, [invitationId])).rows,
        key: (await q(`SELECT subject FROM core.personal_data_keys WHERE id = $1`, [keyId])).rows,
      }).toEqual({ invitation: [{ email: formerNfd }], key: [{ subject: subjectOf(formerNfd) }] });
      // the decomposed account's erasure finds it and shreds its key
      await t.http.delete('/v1/me').set(left.auth).send({ password: 'correct horse battery' }).expect(200);
      expect({
        invitation: (await q(`SELECT email FROM core.invitations WHERE id = $1`, [invitationId])).rows,
        key: (await q(`SELECT subject FROM core.personal_data_keys WHERE id = $1`, [keyId])).rows,
      }).toEqual({ invitation: [], key: [] });
    });

    it('a Hub sign-in asserting another account\'s address (in NFC) leaves the identity\'s stored address and proof as they were (review ro)', async () => {
      const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
      const nfc = 'l\u00e9o.ro-hub@example.test';
      const nfd = nfc.normalize('NFD');
      const kept = await verifyEmailOf(t, await registerUser(t, 'leo-kept', 'correct horse battery', nfc));
      const left = await verifyEmailOf(t, await registerUser(t, 'leo-left'));
      await q(`UPDATE core."User" SET email = $2 WHERE id = $1`, [left.id, nfd]);
      await q(`UPDATE core.user_identities SET email = $2 WHERE user_id = $1`, [left.id, nfd]);
      const u8 = await verifyEmailOf(t, await registerUser(t, 'ro-u8'));
      // as the migration leaves them: another account's Hub identity (reported) and the decomposed account's own carry
      // the decomposed address, verified
      const [s8, sLeft] = [`hub-${randomUUID()}`, `hub-${randomUUID()}`];
      for (const [subject, userId] of [[s8, u8.id], [sLeft, left.id]]) {
        await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('nextauth', $1, $2, $3, now())`, [subject, userId, nfd]);
      }
      const hubToken = (sub: string) => jwt.sign({ sub, email: nfd, email_verified: true, name: 'L\u00e9o' }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
      for (const [subject, userId] of [[s8, u8.id], [sLeft, left.id]]) {
        const res = await t.http.post('/v1/auth/exchange').send({ token: hubToken(subject) });
        expect([res.status, res.body.user?.id]).toEqual([200, userId]);
      }
      expect({
        hub: (await q(`SELECT user_id, email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE provider = 'nextauth' AND subject = ANY($1) ORDER BY user_id`, [[s8, sLeft]])).rows,
        // the kept account's address is proven by its own identity only (erasure and export go by the proven addresses)
        provers: (await q(`SELECT DISTINCT user_id FROM core.user_identities WHERE lower(email) = $1 AND email_verified_at IS NOT NULL`, [nfc])).rows,
      }).toEqual({
        hub: [{ user_id: u8.id, email: nfd, verified: true }, { user_id: left.id, email: nfd, verified: true }].sort((x, y) => (x.user_id < y.user_id ? -1 : 1)),
        provers: [{ user_id: kept.id }],
      });
    });

    it('confirming a change of before the migration whose new address, in NFC, is the current one uses the link up and changes nothing but proving the address (review ro, rf1)', async () => {
      const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
      const current = 'ma\u00eblle.ro-same@example.test';
      // an account whose address nobody proved yet: the link, mailed to that address, proves it (as any change's link does)
      const p = await registerUser(t, 'maelle', 'correct horse battery', current);
      const proved = async () => (await q(`SELECT provider, email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1`, [p.id])).rows;
      expect(await proved()).toEqual([{ provider: 'password', email: current, verified: false }]);
      const token = randomUUID();
      await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, token_hash)
        VALUES ($1, $2, $3, now() + interval '1 day', $4)`, [p.id, current, current.normalize('NFD'), hashToken(token)]);
      await q(`INSERT INTO core.password_reset_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')`, [hashToken(randomUUID()), p.id]);
      const res = await t.http.post('/v1/auth/email-change/confirm').send({ token });
      expect([res.status, res.body]).toEqual([200, { email: current }]);
      expect({
        user: (await q(`SELECT email FROM core."User" WHERE id = $1`, [p.id])).rows,
        confirmed: (await q(`SELECT count(*)::int AS n FROM core.email_change_requests WHERE user_id = $1 AND confirmed_at IS NOT NULL`, [p.id])).rows[0].n,
        unusedResets: (await q(`SELECT count(*)::int AS n FROM core.password_reset_tokens WHERE user_id = $1 AND used_at IS NULL`, [p.id])).rows[0].n,
        changedAudits: (await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE entity_id = $1 AND action = 'auth.email_changed'`, [p.id])).rows[0].n,
        notices: (await q(`SELECT count(*)::int AS n FROM core.email_deliveries WHERE lower(to_address) = $1 AND template = 'email_change_notice'`, [current])).rows[0].n,
        identities: await proved(),
        verifiedAudits: (await q(`SELECT principal_type, after FROM core.audit_logs WHERE entity_id = $1 AND action = 'user.email_verified'`, [p.id])).rows,
      }).toEqual({
        user: [{ email: current }], confirmed: 1, unusedResets: 1, changedAudits: 0, notices: 0,
        identities: [{ provider: 'password', email: current, verified: true }],
        verifiedAudits: [{ principal_type: 'system', after: expect.objectContaining({ by: 'email_change_confirm' }) }],
      });
      const again = await t.http.post('/v1/auth/email-change/confirm').send({ token });
      expect([again.status, again.body.error?.code]).toEqual([400, 'auth.email_change_invalid']);
    });
  });

  describe('migration 20270211000700', () => {
    const MIGRATION = '20270211000700_emails_nfc';
    const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;
    let db: TestDatabase;
    const [lone, pairNfc, pairNfd] = [randomUUID(), randomUUID(), randomUUID()];
    const notices: string[] = [];

    beforeAll(async () => {
      db = await createTestDatabase({ template: null });
      await migrate(db.url, { until: before, log: () => undefined });
    });
    afterAll(() => db.drop());

    it('normalizes the addresses that collide with none, and reports (never merges) the accounts that would', async () => {
      const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
      const loneNfd = 'rene\u0301.lone@example.test';
      for (const [id, email] of [[lone, loneNfd], [pairNfc, NFC], [pairNfd, NFD]]) {
        await q(`INSERT INTO core."User" (id, email, "createdAt", "updatedAt") VALUES ($1, $2, now(), now())`, [id, email]);
        await q(`INSERT INTO core.user_identities (provider, subject, user_id, email) VALUES ('password', $1, $1, $2)`, [id, email]);
      }
      const [orgA, orgB] = [randomUUID(), randomUUID()];
      for (const org of [orgA, orgB]) await q(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Org', $2)`, [org, lone]);
      const invite = async (org: string, email: string) => (await q(
        `INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at) VALUES ($1, $2, 'member', $3, now() + interval '7 days') RETURNING id`,
        [org, email, randomUUID()])).rows[0].id as string;
      // invPair: another organization's invitation to the pair's address (review rn: left and reported, not turned into the
      // kept account's); invLone: to an address no pair has
      const [invNfc, invNfd, invPair, invLone] = [await invite(orgA, NFC), await invite(orgA, NFD), await invite(orgB, NFD), await invite(orgB, loneNfd)];
      const applied = await migrate(db.url, { log: (m: string) => notices.push(m) });
      expect(applied).toContain(MIGRATION);

      const users = (await q(`SELECT id, email FROM core."User" ORDER BY id`)).rows;
      expect(users).toEqual([
        { id: lone, email: loneNfd.normalize('NFC') }, { id: pairNfc, email: NFC }, { id: pairNfd, email: NFD },
      ].sort((a, b) => a.id.localeCompare(b.id)));
      const identity = (await q(`SELECT email FROM core.user_identities WHERE user_id = $1`, [lone])).rows;
      expect(identity).toEqual([{ email: loneNfd.normalize('NFC') }]);
      const notNfc = (await q(`SELECT count(*)::int AS n FROM core."User" WHERE email IS NOT NFC NORMALIZED`)).rows[0].n;
      expect(notNfc).toBe(1); // the colliding one, left for a person
      expect(notices.filter((n) => n.includes('e-mail NFC'))).toEqual([
        `${MIGRATION}: NOTICE: e-mail NFC: user ${pairNfd} has an address whose NFC form is user ${pairNfc}'s; neither is changed (resolve by hand)`,
        `${MIGRATION}: NOTICE: e-mail NFC: pending invitation ${invNfd} of organization ${orgA} has an address whose NFC form is pending invitation ${invNfc}'s; neither is changed (revoke one)`,
        ...[[orgA, invNfd], [orgB, invPair]].sort((x, y) => (x[0] === y[0] ? (x[1] < y[1] ? -1 : 1) : x[0] < y[0] ? -1 : 1)).map(([org, inv]) =>
          `${MIGRATION}: NOTICE: e-mail NFC: invitation ${inv} of organization ${org} is for the address of a reported pair of users (or was accepted by its decomposed one); it is not changed (resolve with the pair)`),
      ]);
      const invitations = (await q(`SELECT id, email FROM core.invitations WHERE id = ANY($1::uuid[]) ORDER BY id`, [[invNfc, invNfd, invPair, invLone]])).rows;
      expect(invitations).toEqual([{ id: invNfc, email: NFC }, { id: invNfd, email: NFD }, { id: invPair, email: NFD }, { id: invLone, email: loneNfd.normalize('NFC') }]
        .sort((a, b) => a.id.localeCompare(b.id)));
      const audit = (await q(`SELECT org_id, action, entity_id, before, after FROM core.audit_logs WHERE actor_id = 'migration:20270211000700'`)).rows;
      expect(audit).toEqual([{ org_id: orgB, action: 'invitation.email_normalized', entity_id: invLone, before: { emailForm: 'not NFC' }, after: { emailForm: 'NFC' } }]);
    });
  });

  describe('migration 20270211000700: what follows an address (review r8)', () => {
    const MIGRATION = '20270211000700_emails_nfc';
    const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase({ template: null });
      await migrate(db.url, { until: before, log: () => undefined });
    });
    afterAll(() => db.drop());

    it('a kept pair keeps its proofs and keys; a normalized address takes its keys and mails along; a key clash is reported', async () => {
      const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
      const [A, B, C, D] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const cNfd = 'rene\u0301.r8b@example.test';
      const dNfd = 'zoe\u0301.r8b@example.test';
      for (const [id, email] of [[A, NFC], [B, NFD], [C, cNfd], [D, dNfd]]) {
        await q(`INSERT INTO core."User" (id, email, "createdAt", "updatedAt") VALUES ($1, $2, now(), now())`, [id, email]);
        await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('password', $1, $1, $2, now())`, [id, email]);
      }
      // B's pending proofs of its own (decomposed) address
      await q(`INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`, [randomUUID(), B, NFD]);
      await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, confirmed_at, old_email_verified)
        VALUES ($1, $2, 'b.new@example.test', now() + interval '1 day', now(), true)`, [B, NFD]);
      const org = randomUUID();
      await q(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Org', $2)`, [org, A]);
      // C was invited decomposed (the invitation's audit entries sealed under that form's key) and mailed there
      await q(`INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at) VALUES ($1, $2, 'member', $3, now() + interval '7 days')`, [org, cNfd, randomUUID()]);
      await q(`INSERT INTO core.email_deliveries (org_id, to_address, template, category, status) VALUES ($1, $2, 'invitation', 'organization', 'sent')`, [org, cNfd]);
      const key = async (subject: string) => (await q(
        `INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES ($1, $2, $3) RETURNING id`,
        [randomUUID(), subject, { unwrapped: `${'A'.repeat(43)}=` }])).rows[0].id as string;
      const [keyA, keyB, keyC, keyDNfd, keyDNfc] = [
        await key(subjectOf(NFC)), await key(subjectOf(NFD)), await key(subjectOf(cNfd)), await key(subjectOf(dNfd)), await key(subjectOf(dNfd.normalize('NFC'))),
      ];
      const verified = async () => (await q(`SELECT core.user_email_verified($1) AS a, core.user_email_verified($2) AS b`, [A, B])).rows[0];
      // as erasure and export list a person's proven addresses (erasure.repository.ts provenEmails)
      const proven = async (u: string) => (await q(`
        SELECT lower(email) AS email FROM core.user_identities WHERE user_id = $1 AND email_verified_at IS NOT NULL
        UNION SELECT lower(new_email) FROM core.email_change_requests WHERE user_id = $1 AND confirmed_at IS NOT NULL
        UNION SELECT lower(old_email) FROM core.email_change_requests WHERE user_id = $1 AND old_email_verified ORDER BY 1`, [u])).rows.map((r) => r.email as string);
      expect(await verified()).toEqual({ a: true, b: true });

      const notices: string[] = [];
      await migrate(db.url, { log: (m: string) => notices.push(m) });

      // B, left decomposed, keeps its proofs: its rows are not turned into A's address
      expect(await verified()).toEqual({ a: true, b: true });
      expect(await proven(B)).toEqual(['b.new@example.test', NFD]);
      expect((await q(`SELECT email FROM core.email_verification_tokens WHERE user_id = $1`, [B])).rows).toEqual([{ email: NFD }]);
      expect(await proven(A)).toEqual([NFC]);
      // the keys erasure and export compute from the proven addresses (emailSubject) are the ones the entries were sealed with
      const subjects = async () => Object.fromEntries((await q(`SELECT id, subject FROM core.personal_data_keys`)).rows.map((r) => [r.id, r.subject]));
      const [provenC] = await proven(C);
      expect(provenC).toBe(cNfd.normalize('NFC'));
      expect(await subjects()).toEqual({
        [keyA]: emailSubject(NFC),
        [keyB]: emailSubject(NFD), // B's own, not A's
        [keyC]: emailSubject(provenC),
        [keyDNfd]: subjectOf(dNfd), // clash: left, reported
        [keyDNfc]: emailSubject(dNfd.normalize('NFC')),
      });
      expect(emailSubject(NFD)).not.toBe(emailSubject(NFC));
      expect(notices.filter((n) => n.includes('personal data key'))).toEqual([
        `${MIGRATION}: NOTICE: e-mail NFC: personal data key ${keyDNfd} is for an address whose NFC form has a key of its own; it is left under its subject (the audit entries sealed with it are not erased or exported with the address)`,
      ]);
      expect((await q(`SELECT to_address FROM core.email_deliveries WHERE org_id = $1`, [org])).rows).toEqual([{ to_address: cNfd.normalize('NFC') }]);
      expect((await q(`SELECT email FROM core.invitations WHERE org_id = $1`, [org])).rows).toEqual([{ email: cNfd.normalize('NFC') }]);
    });
  });

  describe('migration 20270211000700: what a reported pair\'s address is still on (review rn)', () => {
    const MIGRATION = '20270211000700_emails_nfc';
    const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase({ template: null });
      await migrate(db.url, { until: before, log: () => undefined });
    });
    afterAll(() => db.drop());

    it('its invitations and another account\'s identity stay decomposed with their key and mails (reported); pending new addresses and mails of purged rows become NFC', async () => {
      const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
      const [U1, U2, U8, U9] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const zoe = 'zo\u00e9.rn@example.test';
      const agnesNfd = 'agne\u0300s.rn-purged@example.test';
      for (const [id, email] of [[U1, NFC], [U2, NFD], [U8, 'u8.rn@example.test'], [U9, zoe]]) {
        await q(`INSERT INTO core."User" (id, email, "createdAt", "updatedAt") VALUES ($1, $2, now(), now())`, [id, email]);
        await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('password', $1, $1, $2, now())`, [id, email]);
      }
      // U8's other identity carries the decomposed account's address
      await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('supabase', $1, $2, $3, now())`, [randomUUID(), U8, NFD]);
      // U2 asked to move to Zoé's address, typed decomposed (a request of before the API normalized)
      await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, token_hash) VALUES ($1, $2, $3, now() + interval '1 day', $4)`,
        [U2, NFD, zoe.normalize('NFD'), randomUUID()]);
      const [orgX, orgY] = [randomUUID(), randomUUID()];
      for (const org of [orgX, orgY]) await q(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Org', $2)`, [org, U9]);
      // A accepted by U2; B pending in another organization, mailed decomposed, sealed under that form's key
      const a = (await q(`INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at, accepted_at, accepted_by)
        VALUES ($1, $2, 'member', $3, now() + interval '7 days', now(), $4) RETURNING id`, [orgX, NFD, randomUUID(), U2])).rows[0].id as string;
      const b = (await q(`INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at) VALUES ($1, $2, 'member', $3, now() + interval '7 days') RETURNING id`,
        [orgY, NFD, randomUUID()])).rows[0].id as string;
      const deliver = (org: string, to: string) => q(`INSERT INTO core.email_deliveries (org_id, to_address, template, category, status) VALUES ($1, $2, 'invitation', 'organization', 'sent')`, [org, to]);
      await deliver(orgY, NFD);
      // an invitation to Agnès (decomposed) purged since: only its mail and key remain
      await deliver(orgX, agnesNfd);
      const key = async (subject: string) => (await q(`INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES ($1, $2, $3) RETURNING id`,
        [randomUUID(), subject, { unwrapped: `${'A'.repeat(43)}=` }])).rows[0].id as string;
      const [keyB, keyAgnes] = [await key(subjectOf(NFD)), await key(subjectOf(agnesNfd))];

      const notices: string[] = [];
      await migrate(db.url, { log: (m: string) => notices.push(m) });

      const invitationNotice = (org: string, inv: string) =>
        `${MIGRATION}: NOTICE: e-mail NFC: invitation ${inv} of organization ${org} is for the address of a reported pair of users (or was accepted by its decomposed one); it is not changed (resolve with the pair)`;
      // the whole state in one comparison, so that each difference shows
      const byId = (x: { id: string }, y: { id: string }) => (x.id < y.id ? -1 : 1);
      expect({
        invitations: (await q(`SELECT id, email FROM core.invitations ORDER BY id`)).rows,
        keys: Object.fromEntries((await q(`SELECT id, subject FROM core.personal_data_keys`)).rows.map((r) => [r.id, r.subject])),
        mails: (await q(`SELECT org_id, to_address FROM core.email_deliveries ORDER BY org_id`)).rows,
        u8Identities: (await q(`SELECT email FROM core.user_identities WHERE user_id = $1 ORDER BY provider`, [U8])).rows,
        u2Request: (await q(`SELECT old_email, new_email FROM core.email_change_requests WHERE user_id = $1`, [U2])).rows,
        notices: notices.filter((n) => n.includes('e-mail NFC')),
      }).toEqual({
        // F1: both invitations stay the decomposed account's, with their key and mail
        invitations: [{ id: a, email: NFD }, { id: b, email: NFD }].sort(byId),
        // F3: the purged invitation's key and mail follow its address to NFC
        keys: { [keyB]: subjectOf(NFD), [keyAgnes]: emailSubject(agnesNfd.normalize('NFC')) },
        mails: [{ org_id: orgX, to_address: agnesNfd.normalize('NFC') }, { org_id: orgY, to_address: NFD }].sort((x, y) => (x.org_id < y.org_id ? -1 : 1)),
        // U8's identity does not come to prove U1's address
        u8Identities: [{ email: 'u8.rn@example.test' }, { email: NFD }],
        // F2: the pending new address is NFC (its confirmation then meets Zoé's account), the old one stays U2's
        u2Request: [{ old_email: NFD, new_email: zoe }],
        notices: [
          `${MIGRATION}: NOTICE: e-mail NFC: user ${U2} has an address whose NFC form is user ${U1}'s; neither is changed (resolve by hand)`,
          ...[[orgX, a], [orgY, b]].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([org, inv]) => invitationNotice(org, inv)),
          `${MIGRATION}: NOTICE: e-mail NFC: the supabase identity of user ${U8} is for the address of a reported pair of users; it is not changed (resolve with the pair)`,
        ],
      });
    });
  });

  describe('migration 20270211000700: every address a reported pair\'s decomposed account keeps (review ro)', () => {
    const MIGRATION = '20270211000700_emails_nfc';
    const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase({ template: null });
      await migrate(db.url, { until: before, log: () => undefined });
    });
    afterAll(() => db.drop());

    it('invitations to the addresses its identities and proofs keep stay decomposed with their keys, and a reported pending pair; another organization\'s invitation to that pair\'s address is normalized (review rf1); another account\'s identity of them stays', async () => {
      const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
      const [U1, U2, U8, U9] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const hubNfd = 'no\u0308el.ro-hub@example.test'.normalize('NFD');
      const formerNfd = 'chloe\u0308.ro-former@example.test';
      const pendingNfd = 'lou\u0308.ro-pending@example.test';
      for (const [id, email] of [[U1, NFC], [U2, NFD], [U8, 'u8.ro@example.test'], [U9, 'u9.ro@example.test']]) {
        await q(`INSERT INTO core."User" (id, email, "createdAt", "updatedAt") VALUES ($1, $2, now(), now())`, [id, email]);
        await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('password', $1, $1, $2, now())`, [id, email]);
      }
      // U2 (left decomposed): its Hub identity asserts another decomposed address; a confirmed change proves a former one
      await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('nextauth', $1, $2, $3, now())`, [randomUUID(), U2, hubNfd]);
      await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, confirmed_at, old_email_verified, token_hash)
        VALUES ($1, $2, $3, now() + interval '1 day', now(), true, $4)`, [U2, formerNfd, NFD, randomUUID()]);
      // U8's Supabase identity carries U2's former address
      await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('supabase', $1, $2, $3, now())`, [randomUUID(), U8, formerNfd]);
      const [orgX, orgY] = [randomUUID(), randomUUID()].sort();
      for (const org of [orgX, orgY]) await q(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Org', $2)`, [org, U9]);
      const invite = async (org: string, email: string) => (await q(
        `INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at) VALUES ($1, $2, 'member', $3, now() + interval '7 days') RETURNING id`,
        [org, email, randomUUID()])).rows[0].id as string;
      // orgX: to U2's Hub address, to its former one, and a pending pair (NFC, NFD); orgY: to the pending pair's address
      const [toHub, toFormer, pairNfc, pairNfd, toPending] = [
        await invite(orgX, hubNfd), await invite(orgX, formerNfd), await invite(orgX, pendingNfd.normalize('NFC')), await invite(orgX, pendingNfd), await invite(orgY, pendingNfd),
      ];
      const key = async (subject: string) => (await q(`INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES ($1, $2, $3) RETURNING id`,
        [randomUUID(), subject, { unwrapped: `${'A'.repeat(43)}=` }])).rows[0].id as string;
      const [keyHub, keyFormer, keyPending] = [await key(subjectOf(hubNfd)), await key(subjectOf(formerNfd)), await key(subjectOf(pendingNfd))];

      const notices: string[] = [];
      await migrate(db.url, { log: (m: string) => notices.push(m) });

      const invitationNotice = (org: string, inv: string, of: string) =>
        `${MIGRATION}: NOTICE: e-mail NFC: invitation ${inv} of organization ${org} is for the address of a reported pair of ${of}; it is not changed (resolve with the pair)`;
      const byId = (x: { id: string }, y: { id: string }) => (x.id < y.id ? -1 : 1);
      expect({
        invitations: (await q(`SELECT id, email FROM core.invitations ORDER BY id`)).rows,
        keys: Object.fromEntries((await q(`SELECT id, subject FROM core.personal_data_keys`)).rows.map((r) => [r.id, r.subject])),
        u8Identities: (await q(`SELECT email FROM core.user_identities WHERE user_id = $1 ORDER BY provider`, [U8])).rows,
        notices: notices.filter((n) => n.includes('e-mail NFC')),
      }).toEqual({
        invitations: [
          { id: toHub, email: hubNfd }, { id: toFormer, email: formerNfd }, { id: pairNfc, email: pendingNfd.normalize('NFC') },
          { id: pairNfd, email: pendingNfd }, { id: toPending, email: pendingNfd.normalize('NFC') },
        ].sort(byId),
        keys: { [keyHub]: subjectOf(hubNfd), [keyFormer]: subjectOf(formerNfd), [keyPending]: subjectOf(pendingNfd) },
        u8Identities: [{ email: 'u8.ro@example.test' }, { email: formerNfd }],
        notices: [
          `${MIGRATION}: NOTICE: e-mail NFC: user ${U2} has an address whose NFC form is user ${U1}'s; neither is changed (resolve by hand)`,
          `${MIGRATION}: NOTICE: e-mail NFC: pending invitation ${pairNfd} of organization ${orgX} has an address whose NFC form is pending invitation ${pairNfc}'s; neither is changed (revoke one)`,
          ...[toHub, toFormer].sort().map((inv) => invitationNotice(orgX, inv, 'users (or was accepted by its decomposed one)')),
          `${MIGRATION}: NOTICE: e-mail NFC: the supabase identity of user ${U8} is for the address of a reported pair of users; it is not changed (resolve with the pair)`,
        ],
      });
    });
  });
});
