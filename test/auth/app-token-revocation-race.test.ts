import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from './lock-order.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';

const APP = 'app_notes';

/**
 * The handshake (POST /v1/auth/app-token/redeem) checks that the session that minted the app token is live. The check
 * read the session row without a lock: a redemption next to a sign-out of that session read past the sign-out under way
 * (not yet committed) and handed the app the person's identity after the session had ended. The row is now locked FOR
 * SHARE: a sign-out under way is waited for and seen, and one that starts during a redemption waits for it.
 */
describe('an app token redeemed next to the sign-out of its session', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '' });
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t.close());

  type Response = { status: number; body: any };
  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;
  const mint = async (u: TestUser) => (await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: APP }).expect(201)).body.accessToken as string;
  const redeem = (token: string) => t.http.post('/v1/auth/app-token/redeem').send({ token, appCode: APP }).then((r): Response => r);
  const logout = (u: TestUser) => t.http.post('/v1/auth/logout').set(u.auth).send({}).then((r): Response => r);
  const recorded = async (u: TestUser) => ({
    redemptions: (await q('SELECT count(*)::int AS n FROM core.app_token_redemptions WHERE user_id = $1', [u.id]))[0].n,
    audits: (await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.app_token_redeemed'`, [u.personalOrgId]))[0].n,
  });
  const sessions = async (u: TestUser) => q('SELECT revoked_reason FROM core.sessions WHERE user_id = $1', [u.id]);

  it('a sign-out under way (its revocation written, not committed) is waited for: the redemption then sees it and is refused (401), nothing recorded', async () => {
    const u = await registerUser(t, 'redeemlate');
    const token = await mint(u);
    // the sign-out has revoked the session in its transaction and is writing its audit row
    const paused = pauseNext(t.app.get(AuditService), 'record');
    const signOut = logout(u);
    await paused.reached;

    const redemption = redeem(token);
    expect(await waitsForLockOrAnswers(t.db.admin, redemption)).toBe('waiting');
    paused.release();
    expect((await signOut).status).toBe(204);
    const res = await redemption;
    expect([res.status, res.body]).toEqual([401, { error: { code: 'auth.unauthorized', message: 'the session that made this app token has ended' }, requestId: expect.any(String) }]);
    expect(JSON.stringify(res.body)).not.toContain(u.email);
    expect(await recorded(u)).toEqual({ redemptions: 0, audits: 0 });
    expect(await sessions(u)).toEqual([{ revoked_reason: 'revoked_by_user' }]);
  });

  it('a sign-out that starts while the redemption holds the live session waits for it: the redemption completes (200), then the session ends (204)', async () => {
    const u = await registerUser(t, 'redeemfirst');
    const token = await mint(u);
    // the redemption has checked the session and recorded the token's use, and is writing its audit row
    const paused = pauseNext(t.app.get(AuditService), 'recordPrivileged');
    const redemption = redeem(token);
    await paused.reached;

    const signOut = logout(u);
    expect(await waitsForLockOrAnswers(t.db.admin, signOut)).toBe('waiting');
    expect(await sessions(u)).toEqual([{ revoked_reason: null }]);
    paused.release();
    const res = await redemption;
    expect([res.status, res.body]).toEqual([200, { userId: u.id, email: u.email, orgId: u.personalOrgId, personalOrgId: u.personalOrgId, appCode: APP }]);
    expect((await signOut).status).toBe(204);
    expect(await recorded(u)).toEqual({ redemptions: 1, audits: 1 });
    expect(await sessions(u)).toEqual([{ revoked_reason: 'revoked_by_user' }]);
    // the token is used up, and the ended session mints no other
    expect((await redeem(token)).status).toBe(401);
    expect((await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: APP })).status).toBe(401);
  });
});
