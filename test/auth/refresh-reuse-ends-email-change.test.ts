import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';

const PASSWORD = 'correct horse battery';
const CONFIRM = 'Confirm your new e-mail address for OmniZen';

/**
 * A refresh token used again after its grace window means someone else holds the session: the session (the token
 * family) is revoked. The pending e-mail change asked for from it stayed confirmable, where a password reset ends it:
 * confirmed from the other person's mailbox, it gives them the address and the next reset's link. Reuse now ends the
 * account's pending e-mail changes too, audited on auth.refresh_token_reused as the reset audits them (emailChangesCanceled).
 */
describe('a detected refresh-token reuse ends the account\'s pending e-mail changes', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  const clock = new ManualClock();
  const pastGrace = () => clock.advance((t.config.auth.refreshGraceSeconds + 1) * 1000);

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, AUTH_COOKIES: 'false', APP_URL: 'https://app.omnizen.test' }, { clock });
  });
  afterAll(async () => { await t.close(); await smtp.close(); });

  const q = async (text: string, params: unknown[] = []) => (await t.db.admin.query(text, params)).rows;
  const refresh = (refreshToken: string) => t.http.post('/v1/auth/refresh').send({ refreshToken });
  const reuseAudits = (u: TestUser) => q(`SELECT principal_type, after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.refresh_token_reused' ORDER BY id`, [u.personalOrgId]);
  const changes = (u: TestUser) => q('SELECT new_email, confirmed_at, expires_at <= now() AS ended FROM core.email_change_requests WHERE user_id = $1', [u.id]);

  /** An e-mail change to a new address asked for with `u`'s session, and its mailed link's token. */
  async function pendingChange(u: TestUser): Promise<{ to: string; token: string }> {
    const to = uniqueEmail('takeover');
    await t.http.post('/v1/auth/email-change').set(u.auth).send({ newEmail: to, password: PASSWORD }).expect(202);
    await settle(t);
    const [mail] = smtp.messages.filter((m) => m.to.includes(to) && m.subject === CONFIRM);
    return { to, token: linkToken(mail.text, '/confirm-email-change').token };
  }

  it('ends the pending change (its link refused afterwards, 400), audited with emailChangesCanceled; the address stays', async () => {
    const ada = await verifyEmailOf(t, await registerUser(t, 'ada', PASSWORD));
    const change = await pendingChange(ada);
    await refresh(ada.refreshToken).expect(200);
    pastGrace();
    expect((await refresh(ada.refreshToken).expect(401)).body.error.message).toMatch(/already used; the session has been revoked/);

    expect(await changes(ada)).toEqual([{ new_email: change.to, confirmed_at: null, ended: true }]);
    expect(await reuseAudits(ada)).toEqual([{ principal_type: 'system', after: { emailChangesCanceled: 1 } }]);
    const res = await t.http.post('/v1/auth/email-change/confirm').send({ token: change.token }).expect(400);
    expect(res.body.error).toEqual({ code: 'auth.email_change_invalid', message: expect.stringContaining('unknown, already used or expired') });
    expect(await q('SELECT email FROM core."User" WHERE id = $1', [ada.id])).toEqual([{ email: ada.email }]);
    await t.http.post('/v1/auth/login').send({ email: change.to, password: PASSWORD }).expect(401);
  });

  it('within the grace window (two tabs) nothing ends; with nothing pending the reuse audits as before (no after)', async () => {
    const bea = await verifyEmailOf(t, await registerUser(t, 'bea', PASSWORD));
    const change = await pendingChange(bea);
    await refresh(bea.refreshToken).expect(200);
    await refresh(bea.refreshToken).expect(200); // the same successor again: no reuse
    expect(await changes(bea)).toEqual([{ new_email: change.to, confirmed_at: null, ended: false }]);
    expect(await reuseAudits(bea)).toEqual([]);

    const cal = await verifyEmailOf(t, await registerUser(t, 'cal', PASSWORD));
    await refresh(cal.refreshToken).expect(200);
    pastGrace();
    await refresh(cal.refreshToken).expect(401);
    expect(await reuseAudits(cal)).toEqual([{ principal_type: 'system', after: null }]);
  });
});
