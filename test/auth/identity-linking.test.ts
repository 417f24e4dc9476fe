import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { ManualClock } from '../support/clock.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { settle } from '../notifications/notifications-support.js';
import { AuthService, SIGN_IN_METHOD_RECENT_SECONDS } from '../../src/modules/auth/auth.service.js';
import { SignInFailureAudit } from '../../src/modules/auth/sign-in-failure-audit.js';
import { FAILED_SIGN_IN_AUDIT_WINDOW_MS } from '../../src/modules/auth/login-throttle.service.js';

const PASSWORD = 'correct horse battery';

/**
 * Adding and removing ways to sign in (POST / DELETE /v1/auth/identities) need re-authentication, are mailed to the
 * account's address and audited; failed sign-ins are audited (rate-limited). The review's probe (r1): a stolen access
 * token linked the thief's Hub identity for good, through a password reset.
 */
describe('linking and unlinking identities; failed sign-ins audited', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  const clock = new ManualClock();
  let nextAuthSecret: string;

  const hubToken = (sub: string, email: string, extra: Record<string, unknown> = {}) =>
    jwt.sign({ sub, email, ...extra }, nextAuthSecret, { algorithm: 'HS256', expiresIn: 600 });
  const link = (auth: Record<string, string>, body: Record<string, unknown>) => t.http.post('/v1/auth/identities').set(auth).send(body);
  const unlink = (auth: Record<string, string>, provider: string, body: Record<string, unknown> = {}) =>
    t.http.delete(`/v1/auth/identities/${provider}`).set(auth).send(body);
  const identitiesOf = async (userId: string) => (await t.db.admin.query(
    'SELECT provider, subject FROM core.user_identities WHERE user_id = $1 ORDER BY provider, subject', [userId])).rows;
  const auditOf = async (orgId: string, action: string) => (await t.db.admin.query(
    'SELECT principal_type, entity_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id', [orgId, action])).rows;
  /** The mails sent since `from` to `to`: subject and text. */
  const mailsTo = async (to: string, from: number) => {
    await settle(t);
    return smtp.messages.slice(from).filter((m) => m.to.includes(to)).map((m) => ({ subject: m.subject, text: m.text }));
  };
  const verifiedUser = async (prefix: string): Promise<TestUser> => verifyEmailOf(t, await registerUser(t, prefix, PASSWORD));

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    // jobs in this process (settle runs the mail job); the login counters then too
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined }, { clock });
    nextAuthSecret = t.config.auth.nextAuthSecret!;
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('the probe: an access token of an older sign-in links nothing without the password; with it, the owner is mailed and removes the link', async () => {
    const victim = await verifiedUser('victim');
    const attackerSub = `attacker-hub-${victim.id}`;
    const attackerHub = hubToken(attackerSub, uniqueEmail('attacker'));
    clock.advance((SIGN_IN_METHOD_RECENT_SECONDS + 60) * 1000); // the token is still valid; its sign-in is no longer recent

    const stale = await link(victim.auth, { token: attackerHub }).expect(403);
    expect(stale.body.error).toMatchObject({ code: 'auth.recent_sign_in_required' });
    const wrong = await link(victim.auth, { token: attackerHub, password: 'not the password' }).expect(403);
    expect(wrong.body.error).toMatchObject({ code: 'auth.password_incorrect' });
    expect(await identitiesOf(victim.id)).toEqual([{ provider: 'password', subject: victim.id }]);
    expect(await auditOf(victim.personalOrgId, 'auth.identity_linked')).toEqual([]);
    // the thief's Hub sign-in is a stranger to the account: a new account of its own
    const strangers = await t.http.post('/v1/auth/exchange').send({ token: attackerHub }).expect(200);
    expect(strangers.body.user.id).not.toBe(victim.id);
    await t.db.admin.query('DELETE FROM core.user_identities WHERE subject = $1', [attackerSub]); // the owner's own Hub sign-in below

    // the owner, with the password: linked, audited, and mailed to the account's address
    await settle(t); // the verification mail of the registration is not this test's
    const from = smtp.messages.length;
    const ownHub = hubToken(attackerSub, uniqueEmail('own-hub'));
    const linked = await link(victim.auth, { token: ownHub, password: PASSWORD }).expect(201);
    expect(linked.body.map((i: { provider: string }) => i.provider).sort()).toEqual(['nextauth', 'password']);
    expect(await identitiesOf(victim.id)).toEqual([{ provider: 'nextauth', subject: attackerSub }, { provider: 'password', subject: victim.id }]);
    expect(await auditOf(victim.personalOrgId, 'auth.identity_linked')).toEqual([expect.objectContaining({
      principal_type: 'user', after: expect.objectContaining({ provider: 'nextauth', by: 'signed_in_user', reauthenticated: 'password', added: true }),
    })]);
    const added = await mailsTo(victim.email, from);
    expect(added).toEqual([expect.objectContaining({ subject: 'A new way to sign in to your OmniZen account' })]);
    expect(added[0].text).toMatch(/A Hub sign-in .* was added to your OmniZen account/);

    // removing it asks the same; then the Hub sign-in no longer reaches the account
    expect((await unlink(victim.auth, 'nextauth').expect(403)).body.error.code).toBe('auth.recent_sign_in_required');
    expect(await identitiesOf(victim.id)).toHaveLength(2);
    const removed = await unlink(victim.auth, 'nextauth', { password: PASSWORD }).expect(200);
    expect(removed.body.map((i: { provider: string }) => i.provider)).toEqual(['password']);
    expect(await identitiesOf(victim.id)).toEqual([{ provider: 'password', subject: victim.id }]);
    expect(await auditOf(victim.personalOrgId, 'auth.identity_unlinked')).toEqual([expect.objectContaining({
      principal_type: 'user', before: expect.objectContaining({ provider: 'nextauth' }), after: { reauthenticated: 'password' },
    })]);
    expect((await mailsTo(victim.email, from)).map((m) => m.subject)).toEqual([
      'A new way to sign in to your OmniZen account', 'A way to sign in to your OmniZen account was removed',
    ]);
    const after = await t.http.post('/v1/auth/exchange').send({ token: ownHub }).expect(200);
    expect(after.body.user.id).not.toBe(victim.id);
  });

  it('a recent sign-in links without the password; a token refreshed after the window does not', async () => {
    const user = await verifiedUser('recent');
    const linked = await link(user.auth, { token: hubToken(`recent-${user.id}`, uniqueEmail('recent-hub')) }).expect(201);
    expect(linked.body).toHaveLength(2);
    expect(await auditOf(user.personalOrgId, 'auth.identity_linked')).toEqual([
      expect.objectContaining({ after: expect.objectContaining({ reauthenticated: 'recent_sign_in', added: true }) }),
    ]);
    clock.advance((SIGN_IN_METHOD_RECENT_SECONDS + 1) * 1000);
    const refreshed = await t.http.post('/v1/auth/refresh').send({ refreshToken: user.refreshToken }).expect(200);
    const res = await link({ Authorization: `Bearer ${refreshed.body.accessToken}` }, { token: hubToken(`recent2-${user.id}`, uniqueEmail('r2')) }).expect(403);
    expect(res.body.error.code).toBe('auth.recent_sign_in_required');
    expect((await identitiesOf(user.id)).map((i) => i.provider)).toEqual(['nextauth', 'password']);
  });

  it('a session that ends while the provider token is checked links nothing (401)', async () => {
    const user = await verifiedUser('toctou');
    const auth = t.app.get(AuthService);
    const proof = jest.spyOn(auth as unknown as { withEmailProof: (...a: unknown[]) => Promise<unknown> }, 'withEmailProof');
    proof.mockImplementationOnce(async (identity) => {
      // the sign-out lands after the guard checked the session, before the link's transaction
      await t.db.admin.query(`UPDATE core.sessions SET revoked_at = now(), revoked_reason = 'revoked_by_user' WHERE user_id = $1`, [user.id]);
      return identity;
    });
    try {
      const res = await link(user.auth, { token: hubToken(`toctou-${user.id}`, uniqueEmail('t')), password: PASSWORD }).expect(401);
      expect(res.body.error.code).toBe('auth.unauthorized');
    } finally {
      proof.mockRestore();
    }
    expect(await identitiesOf(user.id)).toEqual([{ provider: 'password', subject: user.id }]);
    expect(await auditOf(user.personalOrgId, 'auth.identity_linked')).toEqual([]);
  });

  it('refuses to remove the last way to sign in, the only proof of the e-mail, and an identity the user does not have', async () => {
    // signed up through the Hub only: its identity is the one way in
    const hubOnly = await t.http.post('/v1/auth/exchange').send({ token: hubToken(`only-${Date.now()}`, uniqueEmail('hub-only')) }).expect(200);
    const hubAuth = { Authorization: `Bearer ${hubOnly.body.accessToken}` };
    const last = await unlink(hubAuth, 'nextauth').expect(409);
    expect(last.body.error.code).toBe('auth.last_sign_in_method');
    expect((await identitiesOf(hubOnly.body.user.id)).map((i) => i.provider)).toEqual(['nextauth']);
    expect((await unlink(hubAuth, 'supabase').expect(404)).body.error.code).toBe('auth.identity_not_found');
    expect((await unlink(hubAuth, 'github').expect(404)).body.error.code).toBe('auth.identity_not_found');

    // a password account whose e-mail only the linked Hub identity proved
    const unproven = await registerUser(t, 'unproven', PASSWORD);
    await link(unproven.auth, { token: hubToken(`proof-${unproven.id}`, unproven.email, { email_verified: true }) }).expect(201);
    const proof = await unlink(unproven.auth, 'nextauth').expect(409);
    expect(proof.body.error.code).toBe('auth.email_proof_required');
    expect((await identitiesOf(unproven.id)).map((i) => i.provider)).toEqual(['nextauth', 'password']);
    expect(await auditOf(unproven.personalOrgId, 'auth.identity_unlinked')).toEqual([]);
  });

  it('audits failed logins at most once a minute per account, lockouts too, and nothing for an address without an account', async () => {
    const user = await verifiedUser('guessed');
    const failures = t.app.get(SignInFailureAudit);
    const wrongLogin = (email: string) => t.http.post('/v1/auth/login').set('X-Forwarded-For', '198.51.100.77').send({ email, password: 'wrong guess' });
    await wrongLogin(user.email).expect(401);
    await wrongLogin(user.email).expect(401);
    await wrongLogin(uniqueEmail('nobody')).expect(401);
    await failures.settled();
    expect(await auditOf(user.personalOrgId, 'auth.login_failed')).toEqual([
      { principal_type: 'system', entity_id: user.id, before: null, after: { route: 'login' } },
    ]);
    clock.advance(FAILED_SIGN_IN_AUDIT_WINDOW_MS + 1000);
    await wrongLogin(user.email).expect(401);
    await wrongLogin(user.email).expect(401);
    await wrongLogin(user.email).expect(401); // the fifth: the limit of one account from one address (LOGIN_MAX_FAILURES)
    const locked = await wrongLogin(user.email).expect(429);
    expect(locked.body.error.code).toBe('auth.locked');
    await wrongLogin(user.email).expect(429);
    await failures.settled();
    expect(await auditOf(user.personalOrgId, 'auth.login_failed')).toHaveLength(2);
    expect(await auditOf(user.personalOrgId, 'auth.locked')).toEqual([
      { principal_type: 'system', entity_id: user.id, before: null, after: { route: 'login' } },
    ]);
    // a wrong password on a link counts too (the access token is no password oracle)
    clock.advance(FAILED_SIGN_IN_AUDIT_WINDOW_MS + 1000);
    const other = await verifiedUser('guessed-link');
    await link(other.auth, { token: hubToken(`g-${other.id}`, uniqueEmail('g')), password: 'wrong guess' }).expect(403);
    await failures.settled();
    expect(await auditOf(other.personalOrgId, 'auth.login_failed')).toEqual([expect.objectContaining({ after: { route: 'link_identity' } })]);
  });
  it('a wrong password on removing or linking is refused and counted as a login guess: 403 auth.password_incorrect, then 429 auth.locked, nothing changed', async () => {
    clock.advance(FAILED_SIGN_IN_AUDIT_WINDOW_MS + 1000);
    const user = await verifiedUser('unlink-guess');
    const sub = `ug-${user.id}`;
    await link(user.auth, { token: hubToken(sub, uniqueEmail('ug')), password: PASSWORD }).expect(201);
    for (let i = 0; i < 5; i++) {
      expect((await unlink(user.auth, 'nextauth', { password: 'wrong guess' }).expect(403)).body.error.code).toBe('auth.password_incorrect');
    }
    expect((await unlink(user.auth, 'nextauth', { password: 'wrong guess' }).expect(429)).body.error.code).toBe('auth.locked');
    expect((await link(user.auth, { token: hubToken(`ug2-${user.id}`, uniqueEmail('ug2')), password: 'wrong guess' }).expect(429)).body.error.code).toBe('auth.locked');
    expect(await identitiesOf(user.id)).toEqual([{ provider: 'nextauth', subject: sub }, { provider: 'password', subject: user.id }]);
    await t.app.get(SignInFailureAudit).settled();
    expect(await auditOf(user.personalOrgId, 'auth.locked')).toEqual([expect.objectContaining({ after: { route: 'unlink_identity' } })]);
  });
});
