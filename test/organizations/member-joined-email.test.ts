import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';

const PASSWORD = 'correct horse battery';
const CONFIRM = 'Confirm your new e-mail address for OmniZen';

/**
 * member.joined named the address of the access token the invitee accepted with: minted before an e-mail change that
 * was confirmed since (the session stays live), it named the old address, which the invitation was not sent to and
 * the account no longer has. It names the address core.accept_invitation checked: the account's.
 */
describe('member.joined names the account\'s address, not the access token\'s', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
  });
  afterAll(async () => { await t.close(); await smtp.close(); });

  const q = async (text: string, params: unknown[] = []) => (await t.db.admin.query(text, params)).rows;

  it('accepted with an access token minted before the invitee\'s e-mail change: the event names the new address', async () => {
    const owner = await verifyEmailOf(t, await registerUser(t, 'boss', PASSWORD));
    const orgId = await createOrg(t, owner, 'Corp');
    const bo = await verifyEmailOf(t, await registerUser(t, 'bo', PASSWORD));
    const newEmail = uniqueEmail('bo-new');
    await t.http.post('/v1/auth/email-change').set(bo.auth).send({ newEmail, password: PASSWORD }).expect(202);
    await settle(t);
    const confirm = smtp.messages.find((m) => m.to.includes(newEmail) && m.subject === CONFIRM)!;
    await t.http.post('/v1/auth/email-change/confirm').send({ token: linkToken(confirm.text, '/confirm-email-change').token }).expect(200);
    const inv = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: newEmail, role: 'member' }).expect(201);

    // bo.auth is the token of before the change (its claims name bo.email)
    const res = await t.http.post('/v1/invitations/accept').set(bo.auth).send({ orgId, token: inv.body.token }).expect(200);
    expect(res.body).toEqual({ orgId, userId: bo.id, role: 'member' });
    const events = await q(`SELECT payload -> 'payload' AS payload FROM core.outbox
      WHERE org_id = $1 AND topic = 'domain_event' AND payload ->> 'type' = 'member.joined'`, [orgId]);
    expect(events).toEqual([{ payload: { userId: bo.id, email: newEmail, role: 'member' } }]);
    expect(JSON.stringify(events)).not.toContain(bo.email);
    expect(await q('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, bo.id])).toEqual([{ role: 'member' }]);
  });
});
