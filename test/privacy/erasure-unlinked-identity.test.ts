import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { PERSONAL_DATA_CATALOG } from '../../src/modules/privacy/personal-data.catalog.js';
import { findEverywhere } from './columns.js';

const PASSWORD = 'correct horse battery';

/** Columns the catalog keeps under a legal basis (the audit trail's ip). */
const RETAINED = new Set(PERSONAL_DATA_CATALOG.flatMap((t) => Object.entries(t.columns).filter(([, tr]) => tr.kind === 'retain').map(([c]) => `${t.table}.${c}`)));

/**
 * A sign-in method removed before the erasure (DELETE /v1/auth/identities/{provider}, then DELETE /v1/me): the erasure no
 * longer knows that identity's address, so only crypto-shredding can forget the copy its audit entry holds. The review's
 * probe (r5): auth.identity_unlinked kept the removed addresses in a field `emails` that was not sealed, in the clear in
 * an append-only row that outlived the erasure.
 */
describe('an identity removed before the erasure leaves no address in the audit trail', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '' });
  });
  afterAll(async () => {
    await t?.close();
  });

  const hubToken = (sub: string, email: string) =>
    jwt.sign({ sub, email, email_verified: true, name: 'Hub Person' }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
  /** The raw audit rows (every column, as text) that contain `needle`, case-insensitive. */
  const auditRowsWith = async (needle: string) => (await t.db.admin.query(
    `SELECT a.action FROM core.audit_logs a WHERE strpos(lower(a::text), lower($1)) > 0 ORDER BY a.id`, [needle])).rows.map((r) => r.action);
  const unlinkedEntry = async (orgId: string, auth: Record<string, string>) =>
    (await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=auth.identity_unlinked`).set(auth).expect(200)).body.items;

  it('auth.identity_unlinked seals the removed addresses: readable until the erasure, "[erased]" after, never in the clear', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'unlinker', PASSWORD));
    const hubEmail = uniqueEmail('hub-own-address');
    const sub = `hub-${p.id}`;
    const linked = await t.http.post('/v1/auth/identities').set(p.auth).send({ token: hubToken(sub, hubEmail), password: PASSWORD }).expect(201);
    expect(linked.body.map((i: { provider: string }) => i.provider).sort()).toEqual(['nextauth', 'password']);
    const removed = await t.http.delete('/v1/auth/identities/nextauth').set(p.auth).send({ password: PASSWORD }).expect(200);
    expect(removed.body.map((i: { provider: string }) => i.provider)).toEqual(['password']);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.user_identities WHERE email = $1', [hubEmail])).rows).toEqual([{ n: 0 }]);

    // the API opens the entry for its person; the row holds the addresses sealed
    expect(await unlinkedEntry(p.personalOrgId, p.auth)).toEqual([expect.objectContaining({
      action: 'auth.identity_unlinked', before: { provider: 'nextauth', emails: [hubEmail] }, after: { reauthenticated: 'password' },
    })]);
    const raw = (await t.db.admin.query(`SELECT before FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.identity_unlinked'`, [p.personalOrgId])).rows;
    expect(raw).toEqual([{ before: { provider: 'nextauth', $sealed: expect.objectContaining({ fields: ['emails'] }) } }]);
    expect(await auditRowsWith(hubEmail)).toEqual([]);

    const erased = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    expect(erased.body).toMatchObject({ userId: p.id });

    // every audit row, as text: the address is nowhere; nor in any other text or JSON column (but a retained one)
    expect(await auditRowsWith(hubEmail)).toEqual([]);
    expect(await auditRowsWith(p.email)).toEqual([]);
    const found = await findEverywhere(t.db.admin, hubEmail);
    expect(found.filter((f) => !RETAINED.has(f.replace(/ \(.*$/, '')))).toEqual([]);
    // the key that sealed it is gone (the entry reads "[erased]"), and the row itself was not touched
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [`user:${p.id}`])).rows).toEqual([{ n: 0 }]);
    expect(raw).toEqual((await t.db.admin.query(`SELECT before FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.identity_unlinked'`, [p.personalOrgId])).rows);
  });
});
