import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from './notifications-support.js';

const PASSWORD = 'correct horse battery';
const VERIFY = 'Verify your e-mail address for OmniZen';
const CONFIRM = 'Confirm your new e-mail address for OmniZen';

/** A verification link of the old address after an e-mail change (as 62574af for the reset links). */
describe('account e-mails: verification links of the old address after an e-mail change', () => {
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
  const verificationTokens = async (userId: string) => (await t.db.admin.query(
    'SELECT email, used_at IS NOT NULL AS used FROM core.email_verification_tokens WHERE user_id = $1 ORDER BY created_at', [userId])).rows;
  const verifiedAudits = async (orgId: string) => (await t.db.admin.query(
    `SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'user.email_verified' ORDER BY id`, [orgId])).rows;

  /** Asks for the change to `newEmail` and confirms it with the link mailed there; `beforeConfirm` runs in between. */
  async function changeEmail(user: TestUser, newEmail: string, beforeConfirm?: () => Promise<void>): Promise<void> {
    await t.http.post('/v1/auth/email-change').set(user.auth).send({ newEmail, password: PASSWORD }).expect(202);
    await settle(t);
    await beforeConfirm?.();
    const [confirm] = mailsTo(newEmail, CONFIRM);
    const res = await t.http.post('/v1/auth/email-change/confirm').send({ token: linkToken(confirm.text, '/confirm-email-change').token }).expect(200);
    expect(res.body).toEqual({ email: newEmail });
  }

  it('a verification link mailed to the old address before the change ends with it: 400, nothing audited as verified', async () => {
    const ada = await registerUser(t, 'ada', PASSWORD);
    await settle(t);
    const [mail] = mailsTo(ada.email, VERIFY);
    const { token } = linkToken(mail.text, '/verify-email');
    const newEmail = uniqueEmail('ada-new');
    await changeEmail(ada, newEmail);

    const refused = await t.http.post('/v1/auth/verify-email').set(ada.auth).send({ token }).expect(400);
    expect(refused.body.error.code).toBe('auth.verification_invalid');
    expect(await verificationTokens(ada.id)).toEqual([{ email: ada.email, used: true }]);
    expect(await verifiedAudits(ada.personalOrgId)).toEqual([]);
    const identities = (await t.db.admin.query(`SELECT email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1`, [ada.id])).rows;
    expect(identities).toEqual([{ email: newEmail, verified: true }]);
  });

  it('a verification e-mail queued for the old address and sent after the change carries no link and mints no token', async () => {
    const bo = await registerUser(t, 'bo', PASSWORD);
    const newEmail = uniqueEmail('bo-new');
    // the registration's mail goes with the change request's; another is asked for while the address is still the
    // account's, and sent only after the change was confirmed (a late job, a retry)
    await changeEmail(bo, newEmail, async () => {
      await t.http.post('/v1/auth/email-verification').set(bo.auth).send({}).expect((res) => expect(res.status).toBeLessThan(300));
    });
    const sentBefore = mailsTo(bo.email, VERIFY).length;
    expect(sentBefore).toBe(1);
    await settle(t);

    expect(mailsTo(bo.email, VERIFY)).toHaveLength(sentBefore);
    const deliveries = (await t.db.admin.query(`SELECT to_address, status FROM core.email_deliveries WHERE user_id = $1 AND template = 'email_verification' ORDER BY created_at`, [bo.id])).rows;
    expect(deliveries).toEqual([{ to_address: bo.email, status: 'sent' }, { to_address: bo.email, status: 'failed' }]);
    // the registration's link only, ended by the change
    expect(await verificationTokens(bo.id)).toEqual([{ email: bo.email, used: true }]);
  });
});
