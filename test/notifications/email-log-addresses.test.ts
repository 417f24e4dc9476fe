import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { EmailDeliveryService, EMAIL_JOB } from '../../src/modules/notifications/email-delivery.service.js';
import { Mailer } from '../../src/modules/notifications/mailer.service.js';
import { redactAddresses } from '../../src/modules/notifications/redact-addresses.js';
import type { AppConfig } from '../../src/platform/config/config.js';
import { Metrics } from '../../src/platform/observability/metrics.js';
import { captureLogs, settle } from './notifications-support.js';

/**
 * The mail path logged e-mail addresses: without SMTP_URL every message's recipient (and subject), and an SMTP server's
 * refusal verbatim, which quotes the recipient as often as not (`550 5.1.1 <bob@example.test>`). A log line names the
 * delivery (its row holds the recipient) and an address's domain at most.
 */
describe('notifications: no e-mail address in the log lines', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  let orgId: string;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
    const owner = await registerUser(t, 'log-owner');
    orgId = await createOrg(t, owner, 'Quiet Logs Co');
    await onEnterprisePlan(t, orgId);
    await settle(t);
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  /** a notice to a new member of the organization, queued; its id */
  const queued = async (name: string) => {
    const user = await registerUser(t, name);
    await addMember(t, orgId, user, 'member');
    await settle(t);
    const { rows: [{ id }] } = await t.db.admin.query(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
      VALUES ($1, $2, $3, 'notice', 'organization', '{"title":"Hello","body":"World"}', 'queued') RETURNING id`, [orgId, user.id, user.email]);
    return { id: id as string, email: user.email };
  };

  it('logs an SMTP refusal by the delivery\'s id, the addresses the server quoted reduced to their domain', async () => {
    const sender = t.app.get(EmailDeliveryService);
    const temporary = await queued('log-greylisted');
    const permanent = await queued('log-unknown');
    const logs = captureLogs();
    try {
      smtp.refuseNext(451, `4.7.1 <${temporary.email}>: Recipient address greylisted`);
      await sender.send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: temporary.id } });
      smtp.refuseNext(550, `5.1.1 <${permanent.email}>: Recipient address rejected: User unknown`);
      await sender.send({ id: '0', orgId, topic: EMAIL_JOB, payload: { deliveryId: permanent.id } });
    } finally {
      logs.restore();
    }
    const domain = permanent.email.split('@')[1];
    expect(logs.lines.filter((l) => l.includes(temporary.id))).toEqual([
      expect.stringMatching(new RegExp(`not accepted .*4\\.7\\.1 <\\*\\*\\*@${domain.replace(/\./g, '\\.')}>: Recipient address greylisted`)),
    ]);
    expect(logs.lines.filter((l) => l.includes(permanent.id))).toEqual([
      expect.stringMatching(new RegExp(`failed for good .*5\\.1\\.1 <\\*\\*\\*@${domain.replace(/\./g, '\\.')}>: Recipient address rejected`)),
    ]);
    expect(logs.lines.filter((l) => l.includes(temporary.email) || l.includes(permanent.email))).toEqual([]);
    // the delivery keeps the server's reply whole (the organization's own data)
    const { rows } = await t.db.admin.query(`SELECT smtp_response FROM core.email_deliveries WHERE id = $1`, [permanent.id]);
    expect(rows[0].smtp_response).toContain(permanent.email);
  });

  it('without SMTP_URL logs neither the recipient nor the subject, its domain at most', async () => {
    const metrics = new Metrics({ observability: { orgLabelLimit: 1 } } as unknown as AppConfig);
    const mailer = new Mailer({ mail: { smtpUrl: undefined, from: 'OmniZen <no-reply@omnizen.test>' } } as unknown as AppConfig, metrics);
    const logs = captureLogs();
    try {
      expect(await mailer.send('carol.private@example.test', { subject: 'Carol, your invitation to Secret Project', text: 'hi', html: '<p>hi</p>' }))
        .toEqual({ kind: 'not_sent' });
    } finally {
      logs.restore();
    }
    expect(logs.lines).toHaveLength(1);
    expect(logs.lines[0]).toContain('e-mail not sent (no SMTP_URL)');
    expect(logs.lines[0]).toContain('example.test');
    expect(logs.lines[0]).not.toContain('carol.private');
    expect(logs.lines[0]).not.toContain('Secret Project');
  });

  it('redacts every address of a text, the domain kept', () => {
    expect(redactAddresses('550 5.1.1 <bob.smith+tag@mail.example.co.uk>: unknown; also alice@x.test, and [ok] 250 2.0.0'))
      .toBe('550 5.1.1 <***@mail.example.co.uk>: unknown; also ***@x.test, and [ok] 250 2.0.0');
  });
});
