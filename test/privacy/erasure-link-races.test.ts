import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, type TestUser } from '../support/factories.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { hashToken } from '../../src/modules/auth/token.service.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { DataExportService } from '../../src/modules/privacy/data-export.service.js';

const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'a password set while erasing';

/**
 * An erasure (DELETE /v1/me) next to a password reset or an e-mail change confirmation of the same person. The link's
 * row used to be consumed (locked) before the account's row, while the erasure locks the account's row and then deletes
 * the links: the two waited for each other, and PostgreSQL's deadlock detector rolled one back (409 conflict.retry,
 * 40P01). Both now take the account's row first: whichever gets it first finishes, then the other runs.
 */
describe('erasure next to a reset or e-mail change link of the same person', () => {
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
  const erase = (u: TestUser) => t.http.delete('/v1/me').set(u.auth).send({}).then((r): Response => r);
  const confirmChange = (token: string) => t.http.post('/v1/auth/email-change/confirm').send({ token }).then((r): Response => r);
  const resetPassword = (token: string) => t.http.post('/v1/auth/password-reset/confirm').send({ token, password: NEW_PASSWORD }).then((r): Response => r);
  const answer = (r: Response) => [r.status, r.body?.error?.code ?? r.body];

  async function pendingChange(u: TestUser, newEmail: string): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, token_hash, expires_at) VALUES ($1, $2, $3, $4, now() + interval '1 day')`,
      [u.id, u.email, newEmail, hashToken(token)]);
    return token;
  }
  async function resetLink(u: TestUser): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.password_reset_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '30 minutes')`, [hashToken(token), u.id]);
    return token;
  }

  /** The erased account: pseudonymous, no way in, no link of it left. */
  const state = async (userId: string) => (await q(
    `SELECT u.email,
            (SELECT count(*)::int FROM core.user_credentials WHERE user_id = u.id) AS credentials,
            (SELECT count(*)::int FROM core.user_identities WHERE user_id = u.id) AS identities,
            (SELECT count(*)::int FROM core.sessions WHERE user_id = u.id AND revoked_at IS NULL) AS live_sessions,
            (SELECT count(*)::int FROM core.password_reset_tokens WHERE user_id = u.id) AS reset_links,
            (SELECT count(*)::int FROM core.email_change_requests WHERE user_id = u.id) AS change_requests
     FROM core."User" u WHERE u.id = $1`, [userId]))[0];
  const erased = (userId: string) => ({ email: `erased+${userId}@invalid`, credentials: 0, identities: 0, live_sessions: 0, reset_links: 0, change_requests: 0 });
  const audited = async (userId: string, action: string) =>
    (await q('SELECT count(*)::int AS n FROM core.audit_logs WHERE entity_id = $1 AND action = $2', [userId, action]))[0].n;
  const erasedRows = async (userId: string) =>
    (await q(`SELECT after->'rowsByTable' AS rows FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [userId]))[0].rows;

  /**
   * The erasure holds the person's row (locked, their sessions revoked, not committed) when `request` starts; once the
   * request waits for a lock, the erasure goes on. Both answers.
   */
  async function duringErasure(u: TestUser, request: () => Promise<Response>) {
    const paused = pauseNext(t.app.get(DataExportService), 'expireOfPerson');
    const erasure = erase(u);
    await paused.reached;
    const during = request();
    expect(await waitsForLockOrAnswers(t.db.admin, during)).toBe('waiting');
    paused.release();
    return { erasure: await erasure, during: await during };
  }

  /** `request` holds the person's row (its audit row comes last, uncommitted) when the erasure starts; once that waits, it goes on. */
  async function beforeErasure(u: TestUser, request: () => Promise<Response>) {
    const paused = pauseNext(t.app.get(AuditService), 'recordPrivileged');
    const before = request();
    await paused.reached;
    const erasure = erase(u);
    expect(await waitsForLockOrAnswers(t.db.admin, erasure)).toBe('waiting');
    paused.release();
    return { before: await before, erasure: await erasure };
  }

  it('an e-mail change confirmed while the erasure holds the account: refused (400 auth.email_change_invalid), the erasure completes; it used to deadlock (409)', async () => {
    const u = await registerUser(t, 'racechange', PASSWORD);
    const newEmail = uniqueEmail('racechangenew');
    const token = await pendingChange(u, newEmail);

    const race = await duringErasure(u, () => confirmChange(token));
    expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
    expect(race.during.status).toBe(400);
    expect(race.during.body.error).toEqual({ code: 'auth.email_change_invalid', message: 'this confirmation link is unknown, already used or expired; ask for the change again' });
    expect(await state(u.id)).toEqual(erased(u.id));
    expect(await erasedRows(u.id)).toMatchObject({ 'core.email_change_requests': 1 });
    expect(await audited(u.id, 'auth.email_changed')).toBe(0);
    expect(await q('SELECT count(*)::int AS n FROM core.email_deliveries WHERE to_address = $1', [newEmail])).toEqual([{ n: 0 }]);
    // the link is no use afterwards either
    expect(answer(await confirmChange(token))).toEqual([400, 'auth.email_change_invalid']);
  });

  it('an e-mail change confirmed before the erasure takes the account: the change completes (200), then the erasure erases the new address too', async () => {
    const u = await registerUser(t, 'changefirst', PASSWORD);
    const newEmail = uniqueEmail('changefirstnew');
    const token = await pendingChange(u, newEmail);

    const race = await beforeErasure(u, () => confirmChange(token));
    expect(answer(race.before)).toEqual([200, { email: newEmail }]);
    expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
    expect(await state(u.id)).toEqual(erased(u.id));
    expect(await audited(u.id, 'auth.email_changed')).toBe(1);
    expect(await erasedRows(u.id)).toMatchObject({ 'core.email_change_requests': 1 });
    // no account keeps the new address, and the notice the change mailed to the old one goes with the person
    expect(await q('SELECT count(*)::int AS n FROM core."User" WHERE lower(email) = lower($1)', [newEmail])).toEqual([{ n: 0 }]);
    expect(await q('SELECT count(*)::int AS n FROM core.email_deliveries WHERE user_id = $1 OR to_address = ANY($2)', [u.id, [u.email, newEmail]])).toEqual([{ n: 0 }]);
  });

  it('an e-mail change requested (an earlier request pending) while the erasure holds the account: refused (401), no request or mail left; it used to deadlock (409)', async () => {
    const u = await registerUser(t, 'racerequest', PASSWORD);
    await pendingChange(u, uniqueEmail('racerequestearlier'));
    const newEmail = uniqueEmail('racerequestnew');

    const race = await duringErasure(u, () => t.http.post('/v1/auth/email-change').set(u.auth).send({ newEmail, password: PASSWORD }).then((r): Response => r));
    expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
    expect([race.during.status, race.during.body]).toEqual([401, { error: { code: 'auth.unauthorized', message: 'this account has been erased' }, requestId: expect.any(String) }]);
    expect(await state(u.id)).toEqual(erased(u.id));
    expect(await erasedRows(u.id)).toMatchObject({ 'core.email_change_requests': 1 });
    expect(await audited(u.id, 'auth.email_change_requested')).toBe(0);
    expect(await q('SELECT count(*)::int AS n FROM core.email_deliveries WHERE to_address = $1', [newEmail])).toEqual([{ n: 0 }]);
  });

  it('a password reset while the erasure holds the account: refused (400 auth.reset_invalid), no password set, the erasure completes; it used to deadlock (409)', async () => {
    const u = await registerUser(t, 'racereset', PASSWORD);
    const token = await resetLink(u);

    const race = await duringErasure(u, () => resetPassword(token));
    expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
    expect(race.during.status).toBe(400);
    expect(race.during.body.error).toEqual({ code: 'auth.reset_invalid', message: 'this reset link is unknown, already used or expired; ask for a new one' });
    expect(await state(u.id)).toEqual(erased(u.id));
    expect(await erasedRows(u.id)).toMatchObject({ 'core.password_reset_tokens': 1 });
    expect(await audited(u.id, 'auth.password_reset')).toBe(0);
    expect(answer(await t.http.post('/v1/auth/login').send({ email: u.email, password: NEW_PASSWORD }).then((r): Response => r))).toEqual([401, 'auth.unauthorized']);
  });

  it('a password reset before the erasure takes the account: the reset completes (204), then the erasure erases (the new password goes with it)', async () => {
    const u = await registerUser(t, 'resetfirst', PASSWORD);
    const token = await resetLink(u);

    const race = await beforeErasure(u, () => resetPassword(token));
    expect(race.before.status).toBe(204);
    expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
    expect(await state(u.id)).toEqual(erased(u.id));
    expect(await audited(u.id, 'auth.password_reset')).toBe(1);
    expect(await q('SELECT revoked_reason FROM core.sessions WHERE user_id = $1', [u.id])).toEqual([{ revoked_reason: 'password_reset' }]);
    expect(answer(await t.http.post('/v1/auth/login').send({ email: u.email, password: NEW_PASSWORD }).then((r): Response => r))).toEqual([401, 'auth.unauthorized']);
  });
});
