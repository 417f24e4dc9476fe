import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

const NFC = 'jos\u00e9.nfc@example.test';
const NFD = 'jose\u0301.nfc@example.test';

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
});
