import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { EmailDeliveryService, EMAIL_JOB, EMAIL_RETRY_DELAYS_SECONDS, MAX_EMAIL_ATTEMPTS, queueEmail } from '../../src/modules/notifications/email-delivery.service.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { captureLogs, linkToken, settle } from './notifications-support.js';

const METRICS_TOKEN = 'test-metrics-token-mail-0123456789abcdef0123';

/** One series of a Prometheus text scrape (`name{labels}` as printed), 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('notifications: e-mail over SMTP', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    // jobs run in-process (settle): the Bull path is the outbox's own tests' subject
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test', METRICS_TOKEN });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Mailing Co');
    await onEnterprisePlan(t, orgId);
    await settle(t);
    smtp.messages.length = 0;
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  it('mails the invitee a link whose token (minted at send time, stored hashed) accepts the invitation; no token in the outbox, the delivery or any log line', async () => {
    const logs = captureLogs();
    try {
      const grace = await registerUser(t, 'grace');
      const before = smtp.messages.length;
      const res = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: grace.email, role: 'accountant' }).expect(201);
      await settle(t);
      const mails = smtp.messages.slice(before).filter((m) => m.to.includes(grace.email) && m.subject.startsWith('You are invited'));
      expect(mails).toHaveLength(1);
      const [mail] = mails;
      expect(mail.from).toBe('no-reply@omnizen.test');
      expect(mail.subject).toBe('You are invited to join Mailing Co on OmniZen');
      expect(mail.text).toContain('as accountant');
      const { url, token } = linkToken(mail.text, '/invitations/accept');
      expect(url.startsWith(`https://app.omnizen.test/invitations/accept?org=${orgId}&token=`)).toBe(true);
      expect(token).not.toBe(res.body.token); // its own token, not the one shown to the admin
      expect(mail.html.replace(/&#x3D;/g, '=').replace(/&amp;/g, '&')).toContain(`href="${url}"`);

      const delivery = (await t.db.admin.query(`SELECT * FROM core.email_deliveries WHERE org_id = $1 AND template = 'invitation'`, [orgId])).rows;
      expect(delivery).toEqual([expect.objectContaining({ to_address: grace.email, status: 'sent', attempts: 1, sent_at: expect.any(Date) })]);
      expect(delivery[0].smtp_response).toMatch(/^250/);
      const stored = JSON.stringify({
        delivery,
        outbox: (await t.db.admin.query('SELECT topic, payload FROM core.outbox WHERE org_id = $1', [orgId])).rows,
      });
      expect(stored).not.toContain(token);
      expect(logs.lines.join('\n')).not.toContain(token);

      const accepted = await t.http.post('/v1/invitations/accept').set(grace.auth).send({ orgId, token }).expect(200);
      expect(accepted.body).toEqual({ orgId, userId: grace.id, role: 'accountant' });
      const membership = await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, grace.id]);
      expect(membership.rows).toEqual([{ role: 'accountant' }]);
      // grace never verified her e-mail: the mailed link proved it
      const identity = await t.db.admin.query(`SELECT email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1 AND provider = 'password'`, [grace.id]);
      expect(identity.rows).toEqual([{ verified: true }]);
      // single use
      await t.http.post('/v1/invitations/accept').set(grace.auth).send({ orgId, token }).expect(404);
    } finally {
      logs.restore();
    }
  });

  it('does not mail an invitation revoked before its mail job ran', async () => {
    const before = smtp.messages.length;
    const res = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: 'late@example.test', role: 'member' }).expect(201);
    // the mail job is queued; the invitation is revoked before it runs
    await t.http.delete(`/v1/orgs/${orgId}/invitations/${res.body.id}`).set(owner.auth).expect(204);
    await settle(t);
    expect(smtp.messages.slice(before).filter((m) => m.to.includes('late@example.test'))).toEqual([]);
  });

  it('retries a refused message a bounded number of times and keeps the SMTP answer', async () => {
    const ada = await registerUser(t, 'ada');
    await addMember(t, orgId, ada, 'member'); // a notice of the organization is mailed to its members only
    await settle(t);
    await t.db.admin.query(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
      VALUES ($1, $2, $3, 'notice', 'organization', '{"title":"Hello","body":"World"}', 'queued')`, [orgId, ada.id, ada.email]);
    const [{ id }] = (await t.db.admin.query(`SELECT id FROM core.email_deliveries WHERE to_address = $1 AND template = 'notice'`, [ada.email])).rows;
    const sender = t.app.get(EmailDeliveryService);
    const job = { id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: id } };
    smtp.refuseNext(451, 'Try again later', MAX_EMAIL_ATTEMPTS + 1);
    // each refusal writes the next attempt's job, due minutes later (greylisting lasts minutes), not an outbox retry
    const retries = async () => (await t.db.admin.query(`SELECT payload, round(extract(epoch FROM available_at - now()))::int AS due_in
      FROM core.outbox WHERE topic = $1 AND payload ->> 'deliveryId' = $2 AND processed_at IS NULL ORDER BY (payload ->> 'after')::int`, [EMAIL_JOB, id])).rows;
    let next = job;
    for (let attempt = 1; attempt < MAX_EMAIL_ATTEMPTS; attempt++) {
      await sender.send(next);
      const row = (await t.db.admin.query('SELECT status, attempts, smtp_response FROM core.email_deliveries WHERE id = $1', [id])).rows[0];
      expect(row).toEqual({ status: 'queued', attempts: attempt, smtp_response: expect.stringContaining('451') });
      const due = (await retries()).at(-1);
      expect(due.payload).toEqual({ deliveryId: id, after: attempt });
      expect(due.due_in).toBeGreaterThan(EMAIL_RETRY_DELAYS_SECONDS[attempt - 1] - 10);
      expect(due.due_in).toBeLessThanOrEqual(EMAIL_RETRY_DELAYS_SECONDS[attempt - 1]);
      // the job of an attempt already made (relayed twice) sends nothing
      await sender.send(next);
      expect((await t.db.admin.query('SELECT attempts FROM core.email_deliveries WHERE id = $1', [id])).rows[0].attempts).toBe(attempt);
      next = { ...job, payload: due.payload };
    }
    expect(EMAIL_RETRY_DELAYS_SECONDS).toEqual([60, 300, 1800, 7200]);
    await sender.send(next); // the last attempt: failed for good, the job is done, no other is written
    const row = (await t.db.admin.query('SELECT status, attempts, smtp_response FROM core.email_deliveries WHERE id = $1', [id])).rows[0];
    expect(row).toEqual({ status: 'failed', attempts: MAX_EMAIL_ATTEMPTS, smtp_response: expect.stringContaining('Try again later') });
    expect(await retries()).toHaveLength(MAX_EMAIL_ATTEMPTS - 1);
    await sender.send(job); // nothing more
    expect((await t.db.admin.query('SELECT attempts FROM core.email_deliveries WHERE id = $1', [id])).rows[0].attempts).toBe(MAX_EMAIL_ATTEMPTS);
    smtp.refuseNext(250, '', 0);
  });

  it('fails a permanently refused message at once (5xx)', async () => {
    const bob = await registerUser(t, 'bob');
    await addMember(t, orgId, bob, 'member'); // a notice of the organization is mailed to its members only
    await t.db.admin.query(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
      VALUES ($1, $2, $3, 'notice', 'organization', '{"title":"Hello","body":"World"}', 'queued')`, [orgId, bob.id, bob.email]);
    const [{ id }] = (await t.db.admin.query(`SELECT id FROM core.email_deliveries WHERE to_address = $1 AND template = 'notice'`, [bob.email])).rows;
    smtp.refuseNext(550, 'No such mailbox');
    await t.app.get(EmailDeliveryService).send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: id } });
    const row = (await t.db.admin.query('SELECT status, attempts, smtp_response FROM core.email_deliveries WHERE id = $1', [id])).rows[0];
    expect(row).toEqual({ status: 'failed', attempts: 1, smtp_response: expect.stringContaining('No such mailbox') });
  });

  it('mails a notice and a digest to the address the user has when they are sent, not the one they were queued for', async () => {
    const cy = await registerUser(t, 'cy');
    await addMember(t, orgId, cy, 'member'); // a notice of the organization is mailed to its members only
    await settle(t);
    // queued while cy had the old address: a notice, and two notices of an hour's digest that is over
    await t.app.get(PrivilegedDatabase).run('notifications.deliver', (db) => queueEmail({ db, orgId }, {
      userId: cy.id, to: cy.email, template: 'notice', category: 'organization', data: { title: 'Moved on', body: 'one', eventType: 'test' } }));
    const [digest] = (await t.db.admin.query(`INSERT INTO core.email_digests (user_id, category, window_start, due_at)
      VALUES ($1, 'organization', date_trunc('hour', now()) - interval '2 hours', date_trunc('hour', now()) - interval '1 hour') RETURNING id`, [cy.id])).rows;
    for (const title of ['first', 'second']) {
      await t.db.admin.query(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
        VALUES ($1, $2, $3, 'notice', 'organization', $4, 'digest_pending')`, [orgId, cy.id, cy.email, { title, body: 'in the digest' }]);
    }
    const moved = `moved-${cy.email}`;
    await t.db.admin.query(`UPDATE core."User" SET email = $2 WHERE id = $1`, [cy.id, moved]);
    const before = smtp.messages.length;
    await t.app.get(EmailDeliveryService).flushDigests();
    await settle(t);
    const mails = smtp.messages.slice(before).filter((m) => m.to.includes(moved) || m.to.includes(cy.email));
    expect(mails.map((m) => [m.to, m.subject]).sort()).toEqual([[[moved], '2 new organization notice(s) on OmniZen'], [[moved], 'Moved on']]);
    const rows = (await t.db.admin.query(`SELECT template, to_address, status FROM core.email_deliveries WHERE user_id = $1 AND status <> 'digested' ORDER BY template`, [cy.id])).rows;
    // the verification e-mail of cy's registration stays the old address's: its link proves that address
    expect(rows).toEqual([
      { template: 'digest', to_address: moved, status: 'sent' }, { template: 'email_verification', to_address: cy.email, status: 'sent' },
      { template: 'notice', to_address: moved, status: 'sent' },
    ]);
    expect((await t.db.admin.query('SELECT sent_at IS NOT NULL AS sent FROM core.email_digests WHERE id = $1', [digest.id])).rows).toEqual([{ sent: true }]);
  });

  it('mails neither the retry of a notice nor a pending digest of a category whose e-mail the recipient switched off meanwhile', async () => {
    const dee = await registerUser(t, 'dee');
    await addMember(t, orgId, dee, 'member');
    await settle(t);
    await t.http.patch('/v1/me/notification-preferences').set(dee.auth)
      .send({ items: [{ category: 'finance', channel: 'email', enabled: true, digest: true }] }).expect(200);
    // a notice refused for now (its retry waits minutes), and two notices of a finance digest whose hour is over
    const id = await t.app.get(PrivilegedDatabase).run('notifications.deliver', (db) => queueEmail({ db, orgId }, {
      userId: dee.id, to: dee.email, template: 'notice', category: 'finance', data: { title: 'Bill submitted', body: 'one', eventType: 'test' } }));
    smtp.refuseNext(451, 'Try again later');
    const sender = t.app.get(EmailDeliveryService);
    await sender.send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: id } });
    const [digest] = (await t.db.admin.query(`INSERT INTO core.email_digests (user_id, category, window_start, due_at)
      VALUES ($1, 'finance', date_trunc('hour', now()) - interval '2 hours', date_trunc('hour', now()) - interval '1 hour') RETURNING id`, [dee.id])).rows;
    for (const title of ['first', 'second']) {
      await t.db.admin.query(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
        VALUES ($1, $2, $3, 'notice', 'finance', $4, 'digest_pending')`, [orgId, dee.id, dee.email, { title, body: 'in the digest' }]);
    }
    // dee switches finance e-mail off
    await t.http.patch('/v1/me/notification-preferences').set(dee.auth)
      .send({ items: [{ category: 'finance', channel: 'email', enabled: false, digest: false }] }).expect(200);
    const before = smtp.messages.length;
    await sender.send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: id, after: 1 } });
    await sender.flushDigests();
    await settle(t);
    expect(smtp.messages.slice(before).filter((m) => m.to.includes(dee.email))).toEqual([]);
    const rows = (await t.db.admin.query(`SELECT template, data ->> 'title' AS title, status, attempts, smtp_response FROM core.email_deliveries
      WHERE user_id = $1 AND category = 'finance' ORDER BY created_at`, [dee.id])).rows;
    const off = 'not sent: e-mail of this category was switched off by the recipient';
    expect(rows).toEqual([
      { template: 'notice', title: 'Bill submitted', status: 'not_sent', attempts: 1, smtp_response: off },
      { template: 'notice', title: 'first', status: 'not_sent', attempts: 0, smtp_response: off },
      { template: 'notice', title: 'second', status: 'not_sent', attempts: 0, smtp_response: off },
    ]);
    expect((await t.db.admin.query('SELECT sent_at IS NOT NULL AS sent FROM core.email_digests WHERE id = $1', [digest.id])).rows).toEqual([{ sent: true }]);
  });

  it('counts every message the sender hands to SMTP in omnizen_emails_total: one sent, one failed (a scrape shows both moved)', async () => {
    const scrape = async () => (await t.http.get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200)).text;
    const cy = await registerUser(t, 'cy');
    await addMember(t, orgId, cy, 'member'); // a notice of the organization is mailed to its members only
    await settle(t);
    const before = await scrape();
    const ids: string[] = [];
    for (const subject of ['counted ok', 'counted refused']) {
      const { rows } = await t.db.admin.query(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
        VALUES ($1, $2, $3, 'notice', 'organization', $4, 'queued') RETURNING id`, [orgId, cy.id, cy.email, JSON.stringify({ title: subject, body: 'x' })]);
      ids.push(rows[0].id);
    }
    const sender = t.app.get(EmailDeliveryService);
    const received = smtp.messages.length;
    await sender.send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: ids[0] } });
    smtp.refuseNext(550, 'No such mailbox');
    await sender.send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: ids[1] } });
    const after = await scrape();
    const delta = (outcome: string) => sample(after, `omnizen_emails_total{outcome="${outcome}"}`) - sample(before, `omnizen_emails_total{outcome="${outcome}"}`);
    expect({ sent: delta('sent'), failed: delta('failed'), not_sent: delta('not_sent') }).toEqual({ sent: 1, failed: 1, not_sent: 0 });
    // the counters agree with the delivery records and with what the server received
    const rows = (await t.db.admin.query('SELECT status FROM core.email_deliveries WHERE id = ANY($1::uuid[]) ORDER BY array_position($1::uuid[], id)', [ids])).rows;
    expect(rows).toEqual([{ status: 'sent' }, { status: 'failed' }]);
    expect(smtp.messages.slice(received).map((m) => m.to)).toEqual([[cy.email]]);
  });
});
