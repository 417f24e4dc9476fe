import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';

const PASSWORD = 'correct horse battery';
const CONFIRM = 'Confirm your new e-mail address for OmniZen';
const APP = 'app_securevault';

/**
 * The app's side of the Hub -> app handshake answered the e-mail address the app token was minted with: confirmed
 * since (the session stays live), the account's address had changed, and the app took the old one for the person's.
 */
describe('an app token\'s redemption answers the account\'s current address', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
  });
  afterAll(async () => { await t.close(); await smtp.close(); });

  const q = async (text: string, params: unknown[] = []) => (await t.db.admin.query(text, params)).rows;
  const mailsTo = (email: string, subject: string) => smtp.messages.filter((m) => m.to.includes(email) && m.subject === subject);

  it('an app token redeemed after the account\'s e-mail change answers the account\'s address, not the one it was minted with', async () => {
    const cy = await verifyEmailOf(t, await registerUser(t, 'cy', PASSWORD));
    const token = (await t.http.post('/v1/auth/app-token').set(cy.auth).send({ appCode: APP }).expect(201)).body.accessToken as string;
    const newEmail = uniqueEmail('cy-new');
    await t.http.post('/v1/auth/email-change').set(cy.auth).send({ newEmail, password: PASSWORD }).expect(202);
    await settle(t);
    const [confirm] = mailsTo(newEmail, CONFIRM);
    await t.http.post('/v1/auth/email-change/confirm').send({ token: linkToken(confirm.text, '/confirm-email-change').token }).expect(200);

    const res = await t.http.post('/v1/auth/app-token/redeem').send({ token, appCode: APP }).expect(200);
    expect(res.body).toEqual({ userId: cy.id, email: newEmail, orgId: cy.personalOrgId, personalOrgId: cy.personalOrgId, appCode: APP });
    expect(JSON.stringify(res.body)).not.toContain(cy.email);
    expect(await q('SELECT count(*)::int AS n FROM core.app_token_redemptions WHERE user_id = $1', [cy.id])).toEqual([{ n: 1 }]);
  });
});
