import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { DOMAIN_EVENT_TOPIC } from '../../src/platform/events/events.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { settle } from './notifications-support.js';

/**
 * An immediate e-mail of an organization's notice, queued before its recipient was removed from the organization, is
 * not sent when its job runs after the removal: the job asks again whether the recipient may read the notice (as the
 * inbox's policy and the digest do), and records the delivery not_sent (dropped), not failed. A notice addressed to the
 * person (their removal) is still mailed to them, and a current member still gets the organization's notice.
 */
describe('notifications: an e-mail queued before its recipient left the organization', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  const clock = new ManualClock();
  let owner: TestUser;
  let leaver: TestUser;
  let stayer: TestUser;
  let orgId: string;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined }, { clock });
    owner = await registerUser(t, 'owner');
    leaver = await registerUser(t, 'leaver');
    stayer = await registerUser(t, 'stayer');
    orgId = await createOrg(t, owner, 'Quietly Removed Co');
    await onEnterprisePlan(t, orgId);
    await addMember(t, orgId, leaver, 'admin');
    await addMember(t, orgId, stayer, 'admin');
    await settle(t);
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  const mailsTo = (email: string) => smtp.messages.filter((m) => m.to.includes(email));
  const deliveries = async (user: TestUser) => (await t.db.admin.query(
    `SELECT data->>'eventType' AS type, status, attempts, smtp_response, sent_at IS NOT NULL AS sent
     FROM core.email_deliveries WHERE org_id = $1 AND user_id = $2 AND template = 'notice' ORDER BY created_at, id`, [orgId, user.id])).rows;

  it('the job of an e-mail queued before the removal drops it (not_sent); the removal notice and a member\'s copy are sent', async () => {
    for (const user of [leaver, stayer]) {
      await t.http.patch('/v1/me/notification-preferences').set(user.auth)
        .send({ items: [{ category: 'organization', channel: 'email', enabled: true, digest: false }] }).expect(200);
    }
    // a member.invited event (routed to owners and admins), handled up to its queued e-mails, whose jobs have not run
    const payload = JSON.stringify({ type: 'member.invited', version: 1, occurredAt: new Date(clock.now()).toISOString(), payload: { email: 'board-seat@example.com', role: 'admin', invitedBy: owner.id } });
    await t.db.admin.query('INSERT INTO core.outbox (org_id, topic, payload) SELECT $1, $2, $3::jsonb', [orgId, DOMAIN_EVENT_TOPIC, payload]);
    const relay = t.app.get(OutboxRelay);
    for (let pass = 0; pass < 5 && (await deliveries(leaver)).length === 0; pass++) await relay.drain();
    expect(await deliveries(leaver)).toEqual([{ type: 'member.invited', status: 'queued', attempts: 0, smtp_response: null, sent: false }]);
    expect(await deliveries(stayer)).toEqual([{ type: 'member.invited', status: 'queued', attempts: 0, smtp_response: null, sent: false }]);
    const title = 'board-seat@example.com was invited to Quietly Removed Co';
    expect(smtp.messages.filter((m) => m.subject.includes(title))).toEqual([]);

    // the owner removes the admin before the e-mail's job runs; then every job runs
    await t.http.delete(`/v1/orgs/${orgId}/members/${leaver.id}`).set(owner.auth).expect(204);
    await settle(t);

    expect(mailsTo(leaver.email).map((m) => `${m.subject}\n${m.text}`).join('\n')).not.toContain('board-seat@example.com');
    expect(mailsTo(leaver.email).map((m) => m.text).join('\n')).toContain('Your membership (admin) was removed.');
    expect(mailsTo(stayer.email).filter((m) => m.subject.includes(title))).toHaveLength(1);
    expect(await deliveries(leaver)).toEqual([
      { type: 'member.invited', status: 'not_sent', attempts: 0, smtp_response: 'not sent: the recipient no longer belongs to the organization', sent: false },
      { type: 'member.removed', status: 'sent', attempts: 1, smtp_response: expect.any(String), sent: true },
    ]);
    expect((await deliveries(stayer)).filter((d) => d.type === 'member.invited')).toEqual([
      { type: 'member.invited', status: 'sent', attempts: 1, smtp_response: expect.any(String), sent: true },
    ]);
  });
});
