import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { JobRegistry } from '../../src/platform/queue/jobs.js';
import { EmailDeliveryService, EMAIL_JOB } from '../../src/modules/notifications/email-delivery.service.js';
import { settle } from '../notifications/notifications-support.js';

/**
 * An invitation made shortly before its organization is deleted is not mailed afterwards (the mail would name an
 * organization that no longer exists), nor accepted (review r1): deleting the organization revokes its pending
 * invitations, audited; and the invitation e-mail's job and its link skip an organization deleted since, however it
 * was deleted (a member's erasure deletes their organizations without the owner's DELETE).
 */
describe('invitations of a deleted organization', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  let owner: TestUser;

  const invite = async (orgId: string, email: string, by = owner) =>
    (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(by.auth).send({ email, role: 'member' }).expect(201)).body as { id: string; token: string };
  const deliveries = async (orgId: string) =>
    (await t.db.admin.query(`SELECT to_address, status, smtp_response FROM core.email_deliveries WHERE org_id = $1 AND template = 'invitation'`, [orgId])).rows;
  const invitationsMailedTo = (email: string) => smtp.messages.filter((m) => m.to.includes(email) && m.subject.startsWith('You are invited'));
  const newOrg = async (name: string, by = owner) => {
    const orgId = await createOrg(t, by, name);
    await onEnterprisePlan(t, orgId);
    await settle(t);
    return orgId;
  };
  /** the person erased (DELETE /v1/me): their organizations with no other member are deleted with them, nothing revoked */
  const erase = (who: TestUser) => t.http.delete('/v1/me').set(who.auth).send({ password: 'correct horse battery' }).expect(200);
  const deleted = async (orgId: string) => (await t.db.admin.query('SELECT deleted_at IS NOT NULL AS d FROM core.organizations WHERE id = $1', [orgId])).rows[0].d;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
    owner = await registerUser(t, 'owner');
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('the owner deletes the organization before the mail job ran: no e-mail, the invitation revoked (audited) and no longer accepted', async () => {
    const orgId = await newOrg('Short Lived Ltd');
    const invitee = await verifyEmailOf(t, await registerUser(t, 'invitee'));
    const invitation = await invite(orgId, invitee.email);
    await t.http.delete(`/v1/orgs/${orgId}`).set(owner.auth).expect(204);
    await settle(t);

    expect(await deliveries(orgId)).toEqual([]);
    expect(invitationsMailedTo(invitee.email)).toEqual([]);
    const row = (await t.db.admin.query('SELECT revoked_at, accepted_at FROM core.invitations WHERE org_id = $1 AND id = $2', [orgId, invitation.id])).rows[0];
    expect(row).toEqual({ revoked_at: expect.any(Date), accepted_at: null });
    const audit = (await t.db.admin.query(
      `SELECT actor_id, before->>'status' AS before, after->>'status' AS status, after->>'reason' AS reason FROM core.audit_logs
       WHERE org_id = $1 AND action = 'invitation.revoked' AND entity_id = $2`, [orgId, invitation.id])).rows;
    expect(audit).toEqual([{ actor_id: owner.id, before: 'pending', status: 'revoked', reason: 'organization_deleted' }]);
    // the token shown to the admin does not make a member of an organization that is gone
    await t.http.post('/v1/invitations/accept').set(invitee.auth).send({ orgId, token: invitation.token }).expect(404);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, invitee.id])).rows[0].n).toBe(0);
  });

  it('an organization deleted with its only member\'s erasure (nothing revoked): the mail job queues nothing', async () => {
    const solo = await registerUser(t, 'solo');
    const orgId = await newOrg('Erased With Its Owner Ltd', solo);
    const email = uniqueEmail('late');
    await invite(orgId, email, solo);
    await erase(solo);
    expect(await deleted(orgId)).toBe(true);
    await settle(t);
    expect(await deliveries(orgId)).toEqual([]);
    expect(invitationsMailedTo(email)).toEqual([]);
  });

  it('a mail queued before the organization was deleted: its link is not minted, the e-mail not sent', async () => {
    const solo = await registerUser(t, 'solo');
    const orgId = await newOrg('Gone Before Sending Ltd', solo);
    const email = uniqueEmail('queued');
    const invitation = await invite(orgId, email, solo);
    // the invitation's job ran (the e-mail is queued), the e-mail's own job not yet
    const [job] = (await t.db.admin.query(`SELECT id, payload FROM core.outbox WHERE org_id = $1 AND topic = 'invitation.created'`, [orgId])).rows;
    await t.app.get(JobRegistry).run({ id: String(job.id), orgId, topic: 'invitation.created', payload: job.payload });
    const [queued] = (await t.db.admin.query(`SELECT id, status FROM core.email_deliveries WHERE org_id = $1 AND template = 'invitation'`, [orgId])).rows;
    expect(queued.status).toBe('queued');
    await erase(solo);
    expect(await deleted(orgId)).toBe(true);

    await t.app.get(EmailDeliveryService).send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: queued.id } });
    expect(await deliveries(orgId)).toEqual([{ to_address: email, status: 'failed', smtp_response: expect.stringMatching(/^not sent: the link can no longer be made/) }]);
    expect(invitationsMailedTo(email)).toEqual([]);
    const row = (await t.db.admin.query('SELECT mailed_token_hash FROM core.invitations WHERE org_id = $1 AND id = $2', [orgId, invitation.id])).rows[0];
    expect(row.mailed_token_hash).toBeNull();
  });
});
