import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser } from '../support/factories.js';
import { ManualClock } from '../support/clock.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { until } from '../support/throwaway-servers.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { JobRegistry } from '../../src/platform/queue/jobs.js';
import { EMAIL_JOB, EMAIL_SENDING_LEASE_MS, EmailDeliveryService, MAX_EMAIL_ATTEMPTS, queueEmail } from '../../src/modules/notifications/email-delivery.service.js';
import { Mailer } from '../../src/modules/notifications/mailer.service.js';
import { settle } from './notifications-support.js';

const CLAIM_MS = 60_000;

/**
 * Two instances relaying the same outbox in-process (no Redis) while the SMTP server is slow: the first one's batch
 * outlives its claim, the second claims the same rows. Each e-mail is still sent exactly once.
 */
describe('notifications: an e-mail is sent once when a slow batch outlives its outbox claim', () => {
  let smtp: SmtpDouble;
  let a: TestApp;
  let b: NestFastifyApplication;
  const clockA = new ManualClock();
  let orgId: string;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    a = await createTestApp({ ...smtp.env, REDIS_URL: undefined, JOBS_CLAIM_TIMEOUT_MS: String(CLAIM_MS) }, { clock: clockA });
    // the second instance: the same databases and settings, the real clock
    b = (await startApp(a.config)).app;
    const owner = await registerUser(a, 'sent-once');
    orgId = await createOrg(a, owner, 'Sent Once Co');
    await settle(a);
  });
  afterAll(async () => {
    smtp.release();
    await b?.close();
    await a?.close();
    await smtp.close();
  });

  it('the first relay stops at its claim, the second leaves a live attempt alone: one message per delivery', async () => {
    const addresses = ['one@sent-once.test', 'two@sent-once.test', 'three@sent-once.test'];
    const deliveries: string[] = [];
    await a.app.get(PrivilegedDatabase).run('notifications.deliver', async (db) => {
      for (const to of addresses) {
        deliveries.push(await queueEmail({ db, orgId }, { userId: null, to, template: 'notice', category: 'organization', data: { title: `for ${to}`, body: 'hello', eventType: 'test' } }));
      }
    });
    smtp.messages.length = 0;
    const sentByA = jest.spyOn(a.app.get(EmailDeliveryService), 'send');
    const sentByB = jest.spyOn(b.get(EmailDeliveryService), 'send');

    // A claims all three and starts the first; the SMTP server holds it
    smtp.hold();
    let drainB: Promise<unknown> = Promise.resolve();
    const drainA = a.app.get(OutboxRelay).drain();
    try {
      await until('A is sending the first e-mail', () => smtp.held === 1);
      // A's claim runs out: on its clock, and in the database (where B claims)
      clockA.advance(CLAIM_MS + 1);
      await a.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND processed_at IS NULL`, [EMAIL_JOB]);
      // B claims the three: the first is still being sent by A (left alone, retried later), the second B sends (held)
      drainB = b.get(OutboxRelay).drain();
      await until('B is sending an e-mail', () => smtp.held === 2);
    } finally {
      smtp.release();
    }
    await Promise.all([drainA, drainB]);
    const ranByA = sentByA.mock.calls.map(([job]) => job.payload.deliveryId);
    const ranByB = sentByB.mock.calls.map(([job]) => job.payload.deliveryId);
    // B's retry of the first (recorded as a failure with a backoff) finds it sent: nothing left
    await a.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND processed_at IS NULL`, [EMAIL_JOB]);
    await settle(a);

    expect(addresses.map((to) => smtp.messages.filter((m) => m.to.includes(to)).length)).toEqual([1, 1, 1]);
    // A ran only the job it started before its claim ran short, and gave the others back
    expect(ranByA).toEqual([deliveries[0]]);
    expect(ranByB).toEqual(deliveries);
    const rows = (await a.db.admin.query(`SELECT id, status, attempts, sending_since FROM core.email_deliveries WHERE id = ANY($1::uuid[])`, [deliveries])).rows;
    expect(deliveries.map((id) => rows.find((r) => r.id === id))).toEqual(deliveries.map((id) => ({ id, status: 'sent', attempts: 1, sending_since: expect.any(Date) })));
    const outbox = (await a.db.admin.query(`SELECT payload->>'deliveryId' AS delivery, processed_at FROM core.outbox WHERE topic = $1`, [EMAIL_JOB])).rows;
    expect(outbox.filter((r) => deliveries.includes(r.delivery)).map((r) => r.processed_at)).toEqual([expect.any(Date), expect.any(Date), expect.any(Date)]);
  });

  it('an attempt cut off by a crash (its row left sending) is resumed only after its lease', async () => {
    const to = 'crashed@sent-once.test';
    const deliveryId = await a.app.get(PrivilegedDatabase).run('notifications.deliver', (db) =>
      queueEmail({ db, orgId }, { userId: null, to, template: 'notice', category: 'organization', data: { title: 'after a crash', body: 'hello', eventType: 'test' } }));
    // the process that began the first attempt died while sending (on A's clock, just now)
    await a.db.admin.query(`UPDATE core.email_deliveries SET status = 'sending', attempts = 1, sending_since = to_timestamp($2::double precision / 1000) WHERE id = $1`,
      [deliveryId, clockA.now()]);
    const run = () => a.app.get(JobRegistry).run({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId } });
    await expect(run()).rejects.toThrow(/is being sent by another run/);
    expect(smtp.messages.filter((m) => m.to.includes(to))).toHaveLength(0);
    clockA.advance(EMAIL_SENDING_LEASE_MS);
    // the attempt that resumes it is cut off too (the process dies again while talking to the SMTP server)
    const mailer = jest.spyOn(a.app.get(Mailer), 'send').mockRejectedValueOnce(new Error('the process died mid-send'));
    try {
      await expect(run()).rejects.toThrow('the process died mid-send');
    } finally {
      mailer.mockRestore();
    }
    const state = async () => (await a.db.admin.query(`SELECT status, attempts FROM core.email_deliveries WHERE id = $1`, [deliveryId])).rows;
    expect(await state()).toEqual([{ status: 'sending', attempts: 2 }]);
    await expect(run()).rejects.toThrow(/is being sent by another run/);
    clockA.advance(EMAIL_SENDING_LEASE_MS);
    await run();
    expect(smtp.messages.filter((m) => m.to.includes(to)).map((m) => m.subject)).toEqual(['after a crash']);
    // each cut-off attempt counts as one (as it did before leases)
    expect(await state()).toEqual([{ status: 'sent', attempts: 3 }]);
    // the last of MAX_EMAIL_ATTEMPTS cut off: failed, not sent again, and said so
    const last = await a.app.get(PrivilegedDatabase).run('notifications.deliver', (db) =>
      queueEmail({ db, orgId }, { userId: null, to: 'cut-off@sent-once.test', template: 'notice', category: 'organization', data: { title: 'cut off', body: 'hello', eventType: 'test' } }));
    await a.db.admin.query(`UPDATE core.email_deliveries SET status = 'sending', attempts = $2, sending_since = to_timestamp($3::double precision / 1000) WHERE id = $1`,
      [last, MAX_EMAIL_ATTEMPTS, clockA.now() - EMAIL_SENDING_LEASE_MS]);
    await a.app.get(JobRegistry).run({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: last, after: MAX_EMAIL_ATTEMPTS - 1 } });
    expect(smtp.messages.filter((m) => m.to.includes('cut-off@sent-once.test'))).toHaveLength(0);
    const { rows } = await a.db.admin.query(`SELECT status, attempts, smtp_response FROM core.email_deliveries WHERE id = $1`, [last]);
    expect(rows).toEqual([{ status: 'failed', attempts: MAX_EMAIL_ATTEMPTS, smtp_response: expect.stringMatching(new RegExp(`last attempt \\(${MAX_EMAIL_ATTEMPTS} of ${MAX_EMAIL_ATTEMPTS}\\) was cut off`)) }]);
  });
});
