import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { RESET_REQUESTED } from '../../src/modules/auth/account-mail.service.js';
import { userRepository } from '../../src/modules/auth/user.repository.js';
import { linkToken, settle } from './notifications-support.js';

const PASSWORD = 'correct horse battery';
const RESET = 'Reset your OmniZen password';
const CONFIRM = 'Confirm your new e-mail address for OmniZen';

describe('account e-mails: a password reset after an e-mail change, and the reset request\'s statements', () => {
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

  /** Asks for the change to `newEmail` (with the password) and confirms it with the link mailed there. */
  async function changeEmail(user: TestUser, newEmail: string, password = PASSWORD, afterRequest?: () => Promise<void>): Promise<void> {
    await t.http.post('/v1/auth/email-change').set(user.auth).send({ newEmail, password }).expect(202);
    await settle(t);
    await afterRequest?.();
    const [confirm] = mailsTo(newEmail, CONFIRM);
    const res = await t.http.post('/v1/auth/email-change/confirm').send({ token: linkToken(confirm.text, '/confirm-email-change').token }).expect(200);
    expect(res.body).toEqual({ email: newEmail });
  }

  it('a reset link mailed to the old address before an e-mail change stops working with the change', async () => {
    const ada = await verifyEmailOf(t, await registerUser(t, 'ada', PASSWORD));
    await t.http.post('/v1/auth/password-reset').send({ email: ada.email }).expect(202);
    await settle(t);
    const [mail] = mailsTo(ada.email, RESET);
    const { token } = linkToken(mail.text, '/reset-password');

    const newEmail = uniqueEmail('ada-new');
    await changeEmail(ada, newEmail);

    const refused = await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: 'the old mailbox chose this' }).expect(400);
    expect(refused.body.error.code).toBe('auth.reset_invalid');
    const links = (await t.db.admin.query('SELECT used_at IS NOT NULL AS used FROM core.password_reset_tokens WHERE user_id = $1', [ada.id])).rows;
    expect(links).toEqual([{ used: true }]);
    await t.http.post('/v1/auth/login').send({ email: newEmail, password: 'the old mailbox chose this' }).expect(401);
    await t.http.post('/v1/auth/login').send({ email: newEmail, password: PASSWORD }).expect(200);
    const reset = (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.password_reset'`, [ada.personalOrgId])).rows;
    expect(reset).toEqual([{ n: 0 }]);
  });

  it('a reset e-mail queued for the old address and sent after the change carries no link and mints no token', async () => {
    const bo = await verifyEmailOf(t, await registerUser(t, 'bo', PASSWORD));
    const newEmail = uniqueEmail('bo-new');
    // queued while the address is still the account's, sent only after the change was confirmed (a late job, a retry)
    await changeEmail(bo, newEmail, PASSWORD, async () => {
      await t.http.post('/v1/auth/password-reset').send({ email: bo.email }).expect(202);
    });
    await settle(t);

    expect(mailsTo(bo.email, RESET)).toEqual([]);
    const delivery = (await t.db.admin.query(`SELECT to_address, status FROM core.email_deliveries WHERE user_id = $1 AND template = 'password_reset'`, [bo.id])).rows;
    expect(delivery).toEqual([{ to_address: bo.email, status: 'failed' }]);
    const links = (await t.db.admin.query('SELECT count(*)::int AS n FROM core.password_reset_tokens WHERE user_id = $1', [bo.id])).rows;
    expect(links).toEqual([{ n: 0 }]);
    // a reset asked for at the new address still works
    await t.http.post('/v1/auth/password-reset').send({ email: newEmail }).expect(202);
    await settle(t);
    const [mail] = mailsTo(newEmail, RESET);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(mail.text, '/reset-password').token, password: 'a brand new password' }).expect(204);
    await t.http.post('/v1/auth/login').send({ email: newEmail, password: 'a brand new password' }).expect(200);
  });

  it('a Hub account that set its password by a reset and then changed its e-mail stays verified: the next reset claims nothing', async () => {
    const oldEmail = uniqueEmail('hub-old');
    const newEmail = uniqueEmail('hub-new');
    const hubToken = jwt.sign({ sub: `hub-${oldEmail}`, email: oldEmail, email_verified: true }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
    const signedIn = await t.http.post('/v1/auth/exchange').send({ token: hubToken, provider: 'nextauth' }).expect(200);
    const userId: string = signedIn.body.user.id;
    const personalOrgId: string = signedIn.body.personalOrgId;

    // a password through a reset of the Hub account's (verified) address
    await t.http.post('/v1/auth/password-reset').send({ email: oldEmail }).expect(202);
    await settle(t);
    const [first] = mailsTo(oldEmail, RESET);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(first.text, '/reset-password').token, password: 'set by a reset 1' }).expect(204);
    const login = await t.http.post('/v1/auth/login').send({ email: oldEmail, password: 'set by a reset 1' }).expect(200);
    await changeEmail({ id: userId, email: oldEmail, token: login.body.accessToken, refreshToken: login.body.refreshToken, personalOrgId,
      auth: { Authorization: `Bearer ${login.body.accessToken}` } }, newEmail, 'set by a reset 1');

    const identities = async () => (await t.db.admin.query(`SELECT provider, email, email_verified_at IS NOT NULL AS verified
      FROM core.user_identities WHERE user_id = $1 ORDER BY provider`, [userId])).rows;
    const afterChange = [{ provider: 'nextauth', email: oldEmail, verified: true }, { provider: 'password', email: newEmail, verified: true }];
    expect(await identities()).toEqual(afterChange);

    // the owner resets again, at the new address: a reset of a verified account, nothing set up before goes
    await t.http.post('/v1/auth/password-reset').send({ email: newEmail }).expect(202);
    await settle(t);
    const [second] = mailsTo(newEmail, RESET);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(second.text, '/reset-password').token, password: 'another password 22' }).expect(204);
    expect(await identities()).toEqual(afterChange);
    const audits = (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.password_reset' ORDER BY id`, [personalOrgId])).rows;
    expect(audits).toHaveLength(2);
    expect(audits[1].after).toEqual({ sessionsRevoked: expect.any(Number) });
    // the same Hub sign-in still reaches the same account (no second one)
    const again = await t.http.post('/v1/auth/exchange').send({ token: hubToken, provider: 'nextauth' }).expect(200);
    expect(again.body.user.id).toBe(userId);
    const accounts = (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.user_identities WHERE provider = 'nextauth' AND subject = $1`, [`hub-${oldEmail}`])).rows;
    expect(accounts).toEqual([{ n: 1 }]);
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [userId])).rows).toEqual([{ email: newEmail }]);
  });

  it('a reset request runs the same statements for a known and an unknown address: the stand-in is made for both and the transaction commits for both', async () => {
    const cy = await registerUser(t, 'cy', PASSWORD);
    const creates = jest.spyOn(userRepository, 'create');
    const originalQuery = pg.Client.prototype.query;
    // the texts each connection sends, to compare one request's transaction with the other's
    const sent = new Map<unknown, string[]>();
    const query = jest.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      if (text !== undefined) sent.set(this, [...(sent.get(this) ?? []), text]);
      return originalQuery.apply(this, args as never);
    } as never);
    const transactions = async (email: string) => {
      sent.clear();
      const res = await t.http.post('/v1/auth/password-reset').send({ email }).expect(202);
      expect(res.body).toEqual(RESET_REQUESTED);
      // the request's transaction: the one that queued the mail (kept or rolled back to its savepoint)
      const [texts = []] = [...sent.values()].filter((s) => s.some((q) => q.includes('email_deliveries')));
      return texts.map((q) => q.replace(/RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT/, 'END SAVEPOINT'));
    };
    try {
      const known = await transactions(cy.email); // under the hour's limit: kept
      for (let i = 0; i < 3; i++) await transactions(cy.email);
      const pastLimit = await transactions(cy.email); // rolled back
      const unknown = await transactions(uniqueEmail('nobody')); // rolled back
      expect(creates).toHaveBeenCalledTimes(6);
      expect(pastLimit).toEqual(unknown);
      expect(known).toEqual(unknown);
      // committed either way (a rollback answers sooner): what is not to be sent is undone to the request's savepoint
      expect(unknown.filter((q) => /SAVEPOINT|COMMIT|ROLLBACK/.test(q))).toEqual(['SAVEPOINT password_reset_request', 'SAVEPOINT password_reset_stand_in',
        'END SAVEPOINT password_reset_stand_in', 'END SAVEPOINT password_reset_request', 'COMMIT']);
    } finally {
      query.mockRestore();
      creates.mockRestore();
    }
    const kept = (await t.db.admin.query(`SELECT (SELECT count(*)::int FROM core.email_deliveries WHERE template = 'password_reset' AND user_id = $1) AS mine,
      (SELECT count(*)::int FROM core."User" WHERE email LIKE '%@password-reset.invalid') AS "standIns",
      (SELECT count(*)::int FROM core.organizations WHERE name LIKE '%@password-reset.invalid') AS "standInOrgs"`, [cy.id])).rows;
    expect(kept).toEqual([{ mine: 3, standIns: 0, standInOrgs: 0 }]);
  });
});
