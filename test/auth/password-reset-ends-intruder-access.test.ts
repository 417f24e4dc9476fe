import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';

const PASSWORD = 'correct horse battery';
const RESET = 'Reset your OmniZen password';
const CONFIRM = 'Confirm your new e-mail address for OmniZen';

/**
 * A password reset is how the owner takes the account back from someone who had its password or one of its sessions.
 * It ended the sessions only: the intruder's pending e-mail change stayed confirmable for its 24 hours (confirmed, it gave
 * them the address and the next reset's link: the account), and the invitations they sent with the stolen session stayed
 * acceptable. Both now end with the reset, audited.
 */
describe('a password reset ends what an intruder set going from the account', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
  });
  afterAll(async () => { await t.close(); await smtp.close(); });

  const q = async (text: string, params: unknown[] = []) => (await t.db.admin.query(text, params)).rows;
  const mailsTo = (email: string, subject: string) => smtp.messages.filter((m) => m.to.includes(email) && m.subject === subject);
  const resetAudits = (u: TestUser) => q(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.password_reset' ORDER BY id`, [u.personalOrgId]);

  /** The owner's recovery: a reset link mailed to the account's address, used. */
  async function ownerResets(u: TestUser, password: string): Promise<void> {
    const before = mailsTo(u.email, RESET).length;
    await t.http.post('/v1/auth/password-reset').send({ email: u.email }).expect(202);
    await settle(t);
    const mails = mailsTo(u.email, RESET);
    expect(mails).toHaveLength(before + 1);
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(mails[before].text, '/reset-password').token, password }).expect(204);
  }

  it('the intruder\'s pending e-mail change: ended by the reset, its link refused afterwards (400), the address stays; audited', async () => {
    const ada = await verifyEmailOf(t, await registerUser(t, 'ada', PASSWORD));
    const evil = uniqueEmail('intruder');
    // the intruder knows the password and has a session
    await t.http.post('/v1/auth/email-change').set(ada.auth).send({ newEmail: evil, password: PASSWORD }).expect(202);
    await settle(t);
    const [confirm] = mailsTo(evil, CONFIRM);
    const changeToken = linkToken(confirm.text, '/confirm-email-change').token;

    await ownerResets(ada, 'owner recovered 123');
    expect(await q('SELECT new_email, confirmed_at, expires_at <= now() AS ended FROM core.email_change_requests WHERE user_id = $1', [ada.id]))
      .toEqual([{ new_email: evil, confirmed_at: null, ended: true }]);
    expect(await resetAudits(ada)).toEqual([{ after: { sessionsRevoked: 1, emailChangesCanceled: 1 } }]);

    const res = await t.http.post('/v1/auth/email-change/confirm').send({ token: changeToken }).expect(400);
    expect(res.body.error).toEqual({ code: 'auth.email_change_invalid', message: expect.stringContaining('unknown, already used or expired') });
    expect(await q('SELECT email FROM core."User" WHERE id = $1', [ada.id])).toEqual([{ email: ada.email }]);
    expect(await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.email_changed'`, [ada.personalOrgId])).toEqual([{ n: 0 }]);
    // the intruder's address has no account to reset; the owner signs in with the new password at the old address
    await t.http.post('/v1/auth/login').send({ email: evil, password: 'owner recovered 123' }).expect(401);
    await t.http.post('/v1/auth/login').send({ email: ada.email, password: 'owner recovered 123' }).expect(200);
  });

  it('a reset with nothing pending audits as before (the sessions only)', async () => {
    const bea = await verifyEmailOf(t, await registerUser(t, 'bea', PASSWORD));
    await ownerResets(bea, 'bea recovered 123');
    expect(await resetAudits(bea)).toEqual([{ after: { sessionsRevoked: 1 } }]);
  });

  it('the invitations sent with the stolen session: revoked by the reset (audited with the reason), the invitee\'s acceptance refused (404); another admin\'s stays', async () => {
    const owner = await verifyEmailOf(t, await registerUser(t, 'boss', PASSWORD));
    const orgId = await createOrg(t, owner, 'Corp');
    const colleague = await verifyEmailOf(t, await registerUser(t, 'colleague', PASSWORD));
    const colleagueInv = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: colleague.email, role: 'admin' }).expect(201);
    await t.http.post('/v1/invitations/accept').set(colleague.auth).send({ orgId, token: colleagueInv.body.token }).expect(200);
    const guest = uniqueEmail('guest');
    const kept = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(colleague.auth).send({ email: guest, role: 'member' }).expect(201);
    // the intruder, with the owner's access token only, invites their own account as admin
    const mallory = await verifyEmailOf(t, await registerUser(t, 'mallory', 'mallory pass 123'));
    const inv = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: mallory.email, role: 'admin' }).expect(201);

    await ownerResets(owner, 'owner recovered 123');
    await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).expect(401);
    expect(await q('SELECT id, revoked_at IS NOT NULL AS revoked FROM core.invitations WHERE org_id = $1 AND accepted_at IS NULL ORDER BY email = $2', [orgId, guest]))
      .toEqual([{ id: inv.body.id, revoked: true }, { id: kept.body.id, revoked: false }]);
    expect(await q(`SELECT entity_id, after ->> 'reason' AS reason, after ->> 'status' AS status, after ->> 'role' AS role FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.revoked'`, [orgId]))
      .toEqual([{ entity_id: inv.body.id, reason: 'inviter_password_reset', status: 'revoked', role: 'admin' }]);
    expect(await resetAudits(owner)).toEqual([{ after: { sessionsRevoked: 1, invitationsRevoked: 1 } }]);

    const acc = await t.http.post('/v1/invitations/accept').set(mallory.auth).send({ orgId, token: inv.body.token }).expect(404);
    expect(acc.body.error.code).toBe('invitation.not_found');
    expect(await q('SELECT user_id FROM core.memberships WHERE org_id = $1 ORDER BY user_id', [orgId]))
      .toEqual([owner.id, colleague.id].sort().map((user_id) => ({ user_id })));
  });
});
