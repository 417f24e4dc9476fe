import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { beforeVerificationWasNeeded, createOrg, onEnterprisePlan, registerUser, uniqueEmail } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { RESET_REQUESTED } from '../../src/modules/auth/account-mail.service.js';
import { captureLogs, linkToken, settle } from './notifications-support.js';
import { notificationRepository } from '../../src/modules/notifications/notification.repository.js';
import { auditRepository } from '../../src/modules/audit/audit.repository.js';
import { accountTokenRepository } from '../../src/modules/auth/account-token.repository.js';
import { hashToken } from '../../src/modules/auth/token.service.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';

const PASSWORD = 'correct horse battery';

describe('account e-mails: password reset, e-mail change, sign-in from an unknown device', () => {
  let t: TestApp;
  let smtp: SmtpDouble;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  const mailsTo = (email: string, subject: string) => smtp.messages.filter((m) => m.to.includes(email) && m.subject === subject);

  it('password reset end to end: same answer for unknown addresses; a single-use 30-minute link; the reset ends every session; no token in any log line', async () => {
    const logs = captureLogs();
    try {
      const ada = await registerUser(t, 'ada', PASSWORD);
      const other = await t.http.post('/v1/auth/login').send({ email: ada.email, password: PASSWORD }).expect(200);
      // ada's address is unverified: the reset proves it and claims the account, whose API keys go (only their creator saw them;
      // made before a key needed a verified e-mail)
      const { orgId, key } = await beforeVerificationWasNeeded(t, ada, async () => {
        const orgId = await createOrg(t, ada, 'Ada Co');
        await onEnterprisePlan(t, orgId);
        return { orgId, key: (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(ada.auth).send({ name: 'pre-claim', scopes: ['org:read'] }).expect(201)).body };
      });

      const known = await t.http.post('/v1/auth/password-reset').send({ email: ada.email }).expect(202);
      const unknown = await t.http.post('/v1/auth/password-reset').send({ email: uniqueEmail('nobody') }).expect(202);
      expect(known.body).toEqual(RESET_REQUESTED);
      expect(unknown.body).toEqual(known.body);
      await settle(t);

      const mails = mailsTo(ada.email, 'Reset your OmniZen password');
      expect(mails).toHaveLength(1);
      const { url, token } = linkToken(mails[0].text, '/reset-password');
      expect(url.startsWith('https://app.omnizen.test/reset-password?token=')).toBe(true);
      expect(mails[0].text).toContain('within 30 minutes');
      const stored = (await t.db.admin.query('SELECT token_hash, expires_at - created_at AS ttl, used_at FROM core.password_reset_tokens WHERE user_id = $1', [ada.id])).rows;
      expect(stored).toHaveLength(1);
      expect(stored[0].token_hash).not.toBe(token);
      expect(stored[0].ttl).toEqual({ minutes: 30 });
      const delivery = (await t.db.admin.query(`SELECT status, data FROM core.email_deliveries WHERE user_id = $1 AND template = 'password_reset'`, [ada.id])).rows;
      expect(delivery).toEqual([{ status: 'sent', data: { ttlMinutes: 30 } }]);

      await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: 'a brand new password' }).expect(204);
      // every session ended: the refresh tokens and the access tokens stop working
      await t.http.post('/v1/auth/refresh').send({ refreshToken: ada.refreshToken }).expect(401);
      await t.http.post('/v1/auth/refresh').send({ refreshToken: other.body.refreshToken }).expect(401);
      await t.http.get('/v1/auth/sessions').set(ada.auth).expect(401);
      const again = await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: 'yet another password' }).expect(400);
      expect(again.body.error.code).toBe('auth.reset_invalid');
      await t.http.post('/v1/auth/login').send({ email: ada.email, password: PASSWORD }).expect(401);
      await t.http.post('/v1/auth/login').send({ email: ada.email, password: 'a brand new password' }).expect(200);
      const audit = (await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'auth.password_reset%' ORDER BY id`, [ada.personalOrgId])).rows;
      expect(audit.map((a) => a.action)).toEqual(['auth.password_reset_requested', 'auth.password_reset']);
      const refused = await t.http.get(`/v1/orgs/${orgId}`).set({ Authorization: `Bearer ${key.secret}` }).expect(401);
      expect(refused.body.error).toMatchObject({ code: 'auth.unauthorized', message: 'the API key has been revoked' });
      const revoked = (await t.db.admin.query(`SELECT k.revoked_at IS NOT NULL AS revoked, a.principal_type, a.after->>'reason' AS reason
        FROM core.api_keys k JOIN core.audit_logs a ON a.org_id = k.org_id AND a.action = 'api_key.revoked' AND a.entity_id = k.id::text WHERE k.id = $1`, [key.id])).rows;
      expect(revoked).toEqual([{ revoked: true, principal_type: 'system', reason: 'creator_account_claimed' }]);
      const reset = (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.password_reset'`, [ada.personalOrgId])).rows;
      const organizations = [{ orgId: ada.personalOrgId, role: 'owner' }, { orgId, role: 'owner' }].sort((a, b) => (a.orgId < b.orgId ? -1 : 1));
      expect(reset).toEqual([{ after: expect.objectContaining({ emailVerified: true, apiKeysRevoked: 1, organizations }) }]);

      expect(logs.lines.join('\n')).not.toContain(token);
    } finally {
      logs.restore();
    }
  });

  it('refuses an unknown token and sends at most 3 reset e-mails per account per hour (answering alike)', async () => {
    const bad = await t.http.post('/v1/auth/password-reset/confirm').send({ token: 'x'.repeat(43), password: 'a brand new password' }).expect(400);
    expect(bad.body.error.code).toBe('auth.reset_invalid');
    const bo = await registerUser(t, 'bo', PASSWORD);
    // past the limit, and for an unknown address, the same statements run (the answer's time tells nothing), rolled back
    const deliveries = jest.spyOn(notificationRepository, 'insertDelivery');
    const audits = jest.spyOn(auditRepository, 'insert');
    try {
      for (let i = 0; i < 5; i++) await t.http.post('/v1/auth/password-reset').send({ email: bo.email }).expect(202);
      await t.http.post('/v1/auth/password-reset').send({ email: uniqueEmail('nobody') }).expect(202);
      expect([deliveries.mock.calls.length, audits.mock.calls.length]).toEqual([6, 6]);
    } finally {
      deliveries.mockRestore();
      audits.mockRestore();
    }
    const kept = await t.db.admin.query(`SELECT (SELECT count(*)::int FROM core.email_deliveries WHERE template = 'password_reset' AND user_id = $1) AS mine,
      (SELECT count(*)::int FROM core."User" WHERE email LIKE '%@password-reset.invalid') AS "standIns",
      (SELECT count(*)::int FROM core.audit_logs a WHERE a.action = 'auth.password_reset_requested'
        AND NOT EXISTS (SELECT 1 FROM core."User" u WHERE u.id = a.entity_id)) AS "standInAudits"`, [bo.id]);
    expect(kept.rows).toEqual([{ mine: 3, standIns: 0, standInAudits: 0 }]);
    await settle(t);
    const mails = mailsTo(bo.email, 'Reset your OmniZen password');
    expect(mails).toHaveLength(3);
    // only the latest link works
    const tokens = mails.map((m) => linkToken(m.text, '/reset-password').token);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: tokens[0], password: 'a brand new password' }).expect(400);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: tokens[2], password: 'a brand new password' }).expect(204);
  });

  it('an expired reset link (past its 30 minutes) sets no password: 400 auth.reset_invalid, the old password still signs in, nothing audited', async () => {
    const dee = await registerUser(t, 'dee', PASSWORD);
    await t.http.post('/v1/auth/password-reset').send({ email: dee.email }).expect(202);
    await settle(t);
    const [mail] = mailsTo(dee.email, 'Reset your OmniZen password');
    const { token } = linkToken(mail.text, '/reset-password');
    // the link's 30 minutes are over (no waiting: its expiry moves back)
    const moved = await t.db.admin.query(`UPDATE core.password_reset_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1 AND used_at IS NULL`, [dee.id]);
    expect(moved.rowCount).toBe(1);

    const refused = await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: 'set by an expired link' }).expect(400);
    expect(refused.body.error).toEqual({ code: 'auth.reset_invalid', message: 'this reset link is unknown, already used or expired; ask for a new one' });
    // both queries of the confirmation refuse it on their own (the lookup, and the update that uses the link up)
    const [found, consumed] = await t.app.get(PrivilegedDatabase).run('auth.credentials', async (db) =>
      [await accountTokenRepository.resetTokenUser(db, hashToken(token)), await accountTokenRepository.consumeResetToken(db, hashToken(token), dee.id)]);
    expect([found, consumed]).toEqual([undefined, false]);

    expect((await t.db.admin.query('SELECT used_at FROM core.password_reset_tokens WHERE user_id = $1', [dee.id])).rows).toEqual([{ used_at: null }]);
    await t.http.post('/v1/auth/login').send({ email: dee.email, password: 'set by an expired link' }).expect(401);
    await t.http.post('/v1/auth/login').send({ email: dee.email, password: PASSWORD }).expect(200);
    // the session of before goes on (a reset ends them all), and the address stays unproven
    await t.http.get('/v1/auth/sessions').set(dee.auth).expect(200);
    const audit = (await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'auth.password_reset%' ORDER BY id`, [dee.personalOrgId])).rows;
    expect(audit.map((a) => a.action)).toEqual(['auth.password_reset_requested']);
    expect((await t.db.admin.query('SELECT email_verified_at FROM core.user_identities WHERE user_id = $1', [dee.id])).rows).toEqual([{ email_verified_at: null }]);
  });

  it('e-mail change: confirmed from the new address, the old one is told, the new one is verified', async () => {
    const cy = await registerUser(t, 'cy', PASSWORD);
    const newEmail = uniqueEmail('cy-new');
    const wrong = await t.http.post('/v1/auth/email-change').set(cy.auth).send({ newEmail, password: 'not the password' }).expect(403);
    expect(wrong.body.error.code).toBe('auth.password_incorrect');
    await t.http.post('/v1/auth/email-change').set(cy.auth).send({ newEmail, password: PASSWORD }).expect(202);
    await settle(t);
    const [confirm] = mailsTo(newEmail, 'Confirm your new e-mail address for OmniZen');
    const { token } = linkToken(confirm.text, '/confirm-email-change');
    // nothing changed yet
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [cy.id])).rows).toEqual([{ email: cy.email }]);

    const res = await t.http.post('/v1/auth/email-change/confirm').send({ token }).expect(200);
    expect(res.body).toEqual({ email: newEmail });
    await settle(t);
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [cy.id])).rows).toEqual([{ email: newEmail }]);
    const identity = (await t.db.admin.query(`SELECT email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1 AND provider = 'password'`, [cy.id])).rows;
    expect(identity).toEqual([{ email: newEmail, verified: true }]);
    const notice = mailsTo(cy.email, 'Your OmniZen e-mail address was changed');
    expect(notice).toHaveLength(1);
    expect(notice[0].text).toContain(newEmail);
    await t.http.post('/v1/auth/email-change/confirm').send({ token }).expect(400);
    await t.http.post('/v1/auth/login').send({ email: newEmail, password: PASSWORD }).expect(200);
    // auth.users' copy follows: the old address is free there, and a new account with it gets its own row
    expect((await t.db.admin.query('SELECT email FROM auth.users WHERE id = $1', [cy.id])).rows).toEqual([{ email: newEmail }]);
    const next = await registerUser(t, 'cy-next', PASSWORD, cy.email);
    expect((await t.db.admin.query('SELECT email FROM auth.users WHERE id = $1', [next.id])).rows).toEqual([{ email: cy.email }]);
  });

  it('a password reset proves the address: an earlier registration\'s pending e-mail change dies with it', async () => {
    // someone registered the address first (no link ever clicked) and asked to move the account to theirs
    const victimEmail = uniqueEmail('pre-registered');
    const squatter = await registerUser(t, 'squatter', 'squatter password', victimEmail);
    const theirs = uniqueEmail('squatter-own');
    await t.http.post('/v1/auth/email-change').set(squatter.auth).send({ newEmail: theirs, password: 'squatter password' }).expect(202);
    // the owner of the address resets the password through the link mailed to it
    await t.http.post('/v1/auth/password-reset').send({ email: victimEmail }).expect(202);
    await settle(t);
    const [reset] = mailsTo(victimEmail, 'Reset your OmniZen password');
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(reset.text, '/reset-password').token, password: 'the owner password' }).expect(204);
    // the squatter's link to their own address no longer moves the account
    const [confirm] = mailsTo(theirs, 'Confirm your new e-mail address for OmniZen');
    const dead = await t.http.post('/v1/auth/email-change/confirm').send({ token: linkToken(confirm.text, '/confirm-email-change').token }).expect(400);
    expect(dead.body.error.code).toBe('auth.email_change_invalid');
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [squatter.id])).rows).toEqual([{ email: victimEmail }]);
    // the address counts as proved now
    const identity = (await t.db.admin.query(`SELECT email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1`, [squatter.id])).rows;
    expect(identity).toEqual([{ verified: true }]);
    await t.http.post('/v1/auth/login').send({ email: victimEmail, password: 'the owner password' }).expect(200);
  });

  it('the e-mail change\'s password check counts like a login: wrong guesses end in 429 auth.locked', async () => {
    const dee = await registerUser(t, 'dee', PASSWORD);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await t.http.post('/v1/auth/email-change').set(dee.auth).send({ newEmail: uniqueEmail('dee-new'), password: `guess ${i}` })).status);
    expect(statuses).toEqual([403, 403, 403, 403, 403, 429]);
    const locked = await t.http.post('/v1/auth/email-change').set(dee.auth).send({ newEmail: uniqueEmail('dee-new'), password: PASSWORD }).expect(429);
    expect(locked.body.error.code).toBe('auth.locked');
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.email_change_requests WHERE user_id = $1', [dee.id])).rows[0].n).toBe(0);
  });

  it('an address another account uses gets no mail, and the answer is the same', async () => {
    const di = await registerUser(t, 'di', PASSWORD);
    const taken = await registerUser(t, 'taken', PASSWORD);
    await settle(t);
    const before = smtp.messages.length;
    await t.http.post('/v1/auth/email-change').set(di.auth).send({ newEmail: taken.email, password: PASSWORD }).expect(202);
    await settle(t);
    expect(smtp.messages.slice(before)).toEqual([]);
  });

  it('a sign-in from an unknown device (user agent + network) sends a security e-mail and notice; a known one does not', async () => {
    const eve = await registerUser(t, 'eve', PASSWORD); // first device: nothing to compare with
    await t.http.post('/v1/auth/login').send({ email: eve.email, password: PASSWORD }).expect(200); // same device
    await settle(t);
    expect(mailsTo(eve.email, 'New sign-in from an unknown device')).toHaveLength(0);

    await t.http.post('/v1/auth/login').set('User-Agent', 'Evil Browser/1.0').set('X-Forwarded-For', '203.0.113.9')
      .send({ email: eve.email, password: PASSWORD }).expect(200);
    await settle(t);
    const mails = mailsTo(eve.email, 'New sign-in from an unknown device');
    expect(mails).toHaveLength(1);
    expect(mails[0].text).toContain('Evil Browser/1.0');
    const inbox = await t.http.get('/v1/me/notifications').set(eve.auth).expect(200);
    expect(inbox.body.items).toEqual([expect.objectContaining({ eventType: 'session.started_from_unknown_device', category: 'security', readAt: null })]);
    // the same device again is known now
    await t.http.post('/v1/auth/login').set('User-Agent', 'Evil Browser/1.0').set('X-Forwarded-For', '203.0.113.77')
      .send({ email: eve.email, password: PASSWORD }).expect(200);
    await settle(t);
    expect(mailsTo(eve.email, 'New sign-in from an unknown device')).toHaveLength(1);
  });
});
