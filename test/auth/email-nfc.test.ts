import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { emailSubject } from '../../src/modules/privacy/audit-sealing.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createOrg, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';

const NFC = 'jos\u00e9.nfc@example.test';
const NFD = 'jose\u0301.nfc@example.test';
/** The subject an address's key had before migration 20270211000700 (audit-sealing.ts then: trimmed, lower-cased). */
const subjectOf = (email: string) => `email:${createHash('sha256').update(email.trim().toLowerCase()).digest('hex')}`;

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
      const [invNfc, invNfd, invLone] = [await invite(orgA, NFC), await invite(orgA, NFD), await invite(orgB, NFD)];
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
      ]);
      const invitations = (await q(`SELECT id, email FROM core.invitations WHERE id = ANY($1::uuid[]) ORDER BY id`, [[invNfc, invNfd, invLone]])).rows;
      expect(invitations).toEqual([{ id: invNfc, email: NFC }, { id: invNfd, email: NFD }, { id: invLone, email: NFC }].sort((a, b) => a.id.localeCompare(b.id)));
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
});
