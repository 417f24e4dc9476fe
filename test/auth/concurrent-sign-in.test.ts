import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { hashToken } from '../../src/modules/auth/token.service.js';

const PASSWORD = 'correct horse battery';

/**
 * Sign-ins of one person at the same time (several tabs, an app and the Hub). Each locks the account's row against an
 * erasure under way, then updates it (an exchange's profile, an e-mail change): with that lock taken FOR SHARE, two of
 * them each waited for the other's to become an update and PostgreSQL's deadlock detector rolled one back (409
 * conflict.retry). They queue on the row instead, and every one of them signs in.
 */
describe('concurrent sign-ins of one person', () => {
  let t: TestApp;
  let nextAuthSecret: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '' });
    nextAuthSecret = t.config.auth.nextAuthSecret!;
  });
  afterAll(() => t.close());

  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;
  const hubToken = (sub: string, email: string, name: string) =>
    jwt.sign({ sub, email, email_verified: true, name }, nextAuthSecret, { algorithm: 'HS256', expiresIn: 600 });
  const exchange = (token: string) => t.http.post('/v1/auth/exchange').send({ token });
  const liveSessions = async (userId: string) =>
    (await q('SELECT count(*)::int AS n FROM core.sessions WHERE user_id = $1 AND revoked_at IS NULL', [userId]))[0].n;
  const audited = async (userId: string, action: string) =>
    (await q('SELECT count(*)::int AS n FROM core.audit_logs WHERE entity_id = $1 AND action = $2', [userId, action]))[0].n;
  const statuses = (res: { status: number; body: unknown }[]) => res.map((r) => (r.status === 200 ? 200 : `${r.status} ${JSON.stringify(r.body)}`));

  it('parallel Hub exchanges of one known identity all sign in (200), each with its own session', async () => {
    const sub = `hub-parallel-${randomBytes(6).toString('hex')}`;
    const email = uniqueEmail('parallel');
    const first = await exchange(hubToken(sub, email, 'Round 0')).expect(200);
    const userId: string = first.body.user.id;

    for (let round = 1; round <= 3; round++) {
      const res = await Promise.all(Array.from({ length: 8 }, () => exchange(hubToken(sub, email, `Round ${round}`))));
      expect(statuses(res)).toEqual(Array(8).fill(200));
      for (const r of res) expect(r.body).toMatchObject({ user: { id: userId, email, name: `Round ${round}` }, personalOrgId: first.body.personalOrgId });
      expect(new Set(res.map((r) => r.body.refreshToken)).size).toBe(8);
    }
    expect(await liveSessions(userId)).toBe(1 + 3 * 8);
    expect(await audited(userId, 'auth.exchanged')).toBe(3 * 8);
    expect(await q('SELECT name FROM core."User" WHERE id = $1', [userId])).toEqual([{ name: 'Round 3' }]);
  });

  it('a password login next to Hub exchanges of the same account: all sign in (200)', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'both', PASSWORD));
    const sub = `hub-both-${randomBytes(6).toString('hex')}`;
    // the Hub identity joins the account by its verified e-mail
    const linked = await exchange(hubToken(sub, p.email, 'Both Ways')).expect(200);
    expect(linked.body.user.id).toBe(p.id);
    const before = await liveSessions(p.id);

    const res = await Promise.all([
      t.http.post('/v1/auth/login').send({ email: p.email, password: PASSWORD }),
      exchange(hubToken(sub, p.email, 'Both Ways')),
      exchange(hubToken(sub, p.email, 'Both Ways')),
      exchange(hubToken(sub, p.email, 'Both Ways')),
    ]);
    expect(statuses(res)).toEqual([200, 200, 200, 200]);
    for (const r of res) expect(r.body).toMatchObject({ user: { id: p.id, email: p.email }, personalOrgId: p.personalOrgId });
    expect(await liveSessions(p.id)).toBe(before + 4);
    expect(await audited(p.id, 'auth.login')).toBe(2); // registerUser's and this one
    expect(await audited(p.id, 'auth.exchanged')).toBe(3);
    expect(await q('SELECT count(*)::int AS n FROM core.user_credentials WHERE user_id = $1', [p.id])).toEqual([{ n: 1 }]);
  });

  it('an e-mail change confirmed next to Hub exchanges of the same account: the change and the sign-ins all succeed', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'mover', PASSWORD));
    const sub = `hub-mover-${randomBytes(6).toString('hex')}`;
    await exchange(hubToken(sub, p.email, 'Mover')).expect(200);
    // the link's token as the mail job would have sent it (its request made by the route in account-mail.test.ts)
    const token = randomBytes(32).toString('base64url');
    const newEmail = uniqueEmail('moved');
    await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, token_hash, expires_at) VALUES ($1, $2, $3, $4, now() + interval '1 day')`,
      [p.id, p.email, newEmail, hashToken(token)]);
    const before = await liveSessions(p.id);

    const [confirmed, ...exchanged] = await Promise.all([
      t.http.post('/v1/auth/email-change/confirm').send({ token }),
      exchange(hubToken(sub, p.email, 'Mover')),
      exchange(hubToken(sub, p.email, 'Mover')),
      exchange(hubToken(sub, p.email, 'Mover')),
    ]);
    expect(statuses([confirmed, ...exchanged])).toEqual([200, 200, 200, 200]);
    expect(confirmed.body).toEqual({ email: newEmail });
    for (const r of exchanged) expect(r.body).toMatchObject({ user: { id: p.id, name: 'Mover' } });
    expect(await q('SELECT email, name FROM core."User" WHERE id = $1', [p.id])).toEqual([{ email: newEmail, name: 'Mover' }]);
    expect(await q('SELECT confirmed_at IS NOT NULL AS confirmed FROM core.email_change_requests WHERE user_id = $1', [p.id])).toEqual([{ confirmed: true }]);
    expect(await liveSessions(p.id)).toBe(before + 3);
    expect(await audited(p.id, 'auth.email_changed')).toBe(1);
  });
});
