import { randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { hashToken } from '../../src/modules/auth/token.service.js';

const PASSWORD = 'correct horse battery';
const APP = 'app_securevault';

/**
 * An app token (the Hub -> app handshake) names the session it was minted in, and the handshake refuses it once that
 * session has ended. It used to carry no session: signing out, revoking the session from another device or resetting
 * the password left a token minted just before redeemable for the rest of its 120 s, and the app learnt who the user was.
 */
describe('an app token does not outlive the session that minted it', () => {
  let t: TestApp;
  let secret: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '' });
    secret = t.config.auth.supabaseJwtSecret;
  });
  afterAll(() => t.close());

  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const mint = async (auth: { Authorization: string }) =>
    (await t.http.post('/v1/auth/app-token').set(auth).send({ appCode: APP }).expect(201)).body.accessToken as string;
  const redeem = (token: string) => t.http.post('/v1/auth/app-token/redeem').send({ token, appCode: APP });
  const sessionOf = (accessToken: string) => (jwt.decode(accessToken) as jwt.JwtPayload).session_id as string;
  /** What a redemption leaves behind: its single-use row and its audit row. */
  const recorded = async (u: TestUser) => ({
    redemptions: (await q('SELECT count(*)::int AS n FROM core.app_token_redemptions WHERE user_id = $1', [u.id]))[0].n,
    audits: (await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.app_token_redeemed'`, [u.personalOrgId]))[0].n,
  });
  const ENDED = { error: { code: 'auth.unauthorized', message: 'the session that made this app token has ended' }, requestId: expect.any(String) };

  /** The refused redemption: 401, nothing recorded, and the token still refused (no row means it was not used up). */
  async function expectRefused(u: TestUser, token: string) {
    const res = await redeem(token).expect(401);
    expect(res.body).toEqual(ENDED);
    expect(JSON.stringify(res.body)).not.toContain(u.email);
    expect(await recorded(u)).toEqual({ redemptions: 0, audits: 0 });
    expect((await redeem(token).expect(401)).body).toEqual(ENDED);
  }

  it('carries the minting session, and redeems as before while that session is live (row and audit written)', async () => {
    const u = await registerUser(t, 'live');
    const token = await mint(u.auth);
    expect((jwt.decode(token) as jwt.JwtPayload).session_id).toBe(sessionOf(u.token));
    const res = await redeem(token).expect(200);
    expect(res.body).toEqual({ userId: u.id, email: u.email, orgId: u.personalOrgId, personalOrgId: u.personalOrgId, appCode: APP });
    expect(await recorded(u)).toEqual({ redemptions: 1, audits: 1 });
  });

  it('logout of the minting session: the token minted just before is refused (401), nothing recorded', async () => {
    const u = await registerUser(t, 'logout');
    const token = await mint(u.auth);
    await t.http.post('/v1/auth/logout').set(u.auth).send({}).expect(204);
    expect(await q('SELECT revoked_reason FROM core.sessions WHERE id = $1', [sessionOf(u.token)])).toEqual([{ revoked_reason: 'revoked_by_user' }]);
    await expectRefused(u, token);
  });

  it('the minting session revoked from another device (DELETE /v1/auth/sessions/:id): refused; a token of the other, live session still redeems', async () => {
    const u = await registerUser(t, 'revoke');
    const other = await t.http.post('/v1/auth/login').send({ email: u.email, password: PASSWORD }).expect(200);
    const token = await mint(u.auth);
    const fromOther = await mint(bearer(other.body.accessToken));
    await t.http.delete(`/v1/auth/sessions/${sessionOf(u.token)}`).set(bearer(other.body.accessToken)).expect(204);
    await expectRefused(u, token);
    await redeem(fromOther).expect(200);
    expect(await recorded(u)).toEqual({ redemptions: 1, audits: 1 });
  });

  it('a password reset (which ends every session of the account): refused', async () => {
    const u = await registerUser(t, 'reset');
    const token = await mint(u.auth);
    const link = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.password_reset_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '30 minutes')`, [hashToken(link), u.id]);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: link, password: 'a brand new passphrase' }).expect(204);
    expect(await q('SELECT revoked_reason FROM core.sessions WHERE user_id = $1', [u.id])).toEqual([{ revoked_reason: 'password_reset' }]);
    await expectRefused(u, token);
  });

  it('an expired minting session: refused', async () => {
    const u = await registerUser(t, 'expired');
    const token = await mint(u.auth);
    await q(`UPDATE core.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, [sessionOf(u.token)]);
    await expectRefused(u, token);
  });

  it('a session of another user named in the token is no live session of its user: refused', async () => {
    const u = await registerUser(t, 'owner');
    const v = await registerUser(t, 'stranger');
    const token = jwt.sign({ sub: u.id, userId: u.id, email: u.email, orgId: u.personalOrgId, personal_org_id: u.personalOrgId, appCode: APP, session_id: sessionOf(v.token) },
      secret, { algorithm: 'HS256', audience: `app:${APP}`, issuer: 'omnizen', expiresIn: 120, jwtid: randomUUID() });
    await expectRefused(u, token);
  });

  it('an expired app token, its session live: 401 "the app token has expired", nothing recorded, no session or refresh token made', async () => {
    const u = await registerUser(t, 'late');
    const sessions = async () => (await q(`SELECT (SELECT count(*)::int FROM core.sessions WHERE user_id = $1) AS sessions,
      (SELECT count(*)::int FROM core.refresh_tokens WHERE user_id = $1) AS "refreshTokens"`, [u.id]))[0];
    const before = await sessions();
    // as the API mints it (its session, a jti), but its exp a minute ago: expired, though nothing else is wrong with it
    const token = jwt.sign({ sub: u.id, email: u.email, orgId: u.personalOrgId, personal_org_id: u.personalOrgId, appCode: APP, session_id: sessionOf(u.token),
      exp: Math.floor(Date.now() / 1000) - 60 }, secret, { algorithm: 'HS256', audience: `app:${APP}`, issuer: 'omnizen', jwtid: randomUUID() });
    const res = await redeem(token).expect(401);
    expect(res.body).toEqual({ error: { code: 'auth.unauthorized', message: 'the app token has expired' }, requestId: expect.any(String) });
    expect(await recorded(u)).toEqual({ redemptions: 0, audits: 0 });
    expect(await sessions()).toEqual(before);
    expect(await q('SELECT revoked_at FROM core.sessions WHERE id = $1', [sessionOf(u.token)])).toEqual([{ revoked_at: null }]);
  });

  it('a malformed session claim (or jti) is no valid app token: 401, never a 500, nothing recorded', async () => {
    const u = await registerUser(t, 'malformed');
    const claims = { sub: u.id, email: u.email, orgId: u.personalOrgId, personal_org_id: u.personalOrgId, appCode: APP };
    const sign = (extra: Record<string, unknown>, jwtid: string) =>
      jwt.sign({ ...claims, ...extra }, secret, { algorithm: 'HS256', audience: `app:${APP}`, issuer: 'omnizen', expiresIn: 120, jwtid });
    for (const token of [
      sign({ session_id: 'not-a-uuid' }, randomUUID()),
      sign({ session_id: 42 }, randomUUID()),
      sign({ session_id: null }, randomUUID()),
      sign({ session_id: sessionOf(u.token) }, 'not-a-uuid'),
    ]) {
      const res = await redeem(token).expect(401);
      expect(res.body).toEqual({ error: { code: 'auth.unauthorized', message: `this is not a valid app token for ${APP}` }, requestId: expect.any(String) });
    }
    expect(await recorded(u)).toEqual({ redemptions: 0, audits: 0 });
  });

  it('an access token without a session (none of ours lacks one; only a hand-signed token can) mints a token without one, which redeems as before', async () => {
    const u = await registerUser(t, 'sessionless');
    const access = jwt.sign({ sub: u.id, role: 'authenticated', email: u.email, personal_org_id: u.personalOrgId },
      secret, { algorithm: 'HS256', audience: 'authenticated', issuer: 'omnizen', expiresIn: 600 });
    const token = await mint(bearer(access));
    expect(jwt.decode(token)).not.toHaveProperty('session_id');
    await t.http.post('/v1/auth/logout').set(u.auth).send({}).expect(204); // ends the user's one real session: not this token's
    await redeem(token).expect(200);
    expect(await recorded(u)).toEqual({ redemptions: 1, audits: 1 });
  });

  it('documents the rule on both operations', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    expect(doc.paths['/v1/auth/app-token'].post.description).toMatch(/session it was made in ends/);
    expect(doc.paths['/v1/auth/app-token/redeem'].post.description).toMatch(/the session that made this app token has ended/);
  });
});
