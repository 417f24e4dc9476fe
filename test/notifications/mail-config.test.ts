import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../src/platform/config/config.js';

const BASE = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres' };

describe('mail configuration (SMTP_URL, MAIL_FROM)', () => {
  it('is optional: without SMTP_URL messages are logged and kept as not_sent', () => {
    const config = loadConfig(BASE);
    expect(config.mail).toEqual({ smtpUrl: undefined, from: 'OmniZen <no-reply@omnizen.localhost>', digestCron: '0 * * * * *' });
  });

  it('takes smtp:// and smtps:// URLs and a From address with or without a name', () => {
    expect(loadConfig({ ...BASE, SMTP_URL: 'smtps://user:secret@mail.example.com:465', MAIL_FROM: 'billing@example.com' }).mail)
      .toMatchObject({ smtpUrl: 'smtps://user:secret@mail.example.com:465', from: 'billing@example.com' });
    expect(loadConfig({ ...BASE, MAIL_FROM: 'Acme Books <books@acme.example>' }).mail.from).toBe('Acme Books <books@acme.example>');
  });

  it('refuses anything else at boot, naming the variable', () => {
    expect(() => loadConfig({ ...BASE, SMTP_URL: 'http://mail.example.com' })).toThrow(new ConfigError('SMTP_URL must use smtp: or smtps:, got http:'));
    expect(() => loadConfig({ ...BASE, SMTP_URL: 'not a url' })).toThrow('SMTP_URL is not a valid URL');
    expect(() => loadConfig({ ...BASE, MAIL_FROM: 'no address' })).toThrow(/^MAIL_FROM must be an e-mail address/);
    expect(() => loadConfig({ ...BASE, MAIL_FROM: 'Evil <a@b.example>\r\nBcc: x@y.example' })).toThrow(/^MAIL_FROM/);
    expect(() => loadConfig({ ...BASE, MAIL_DIGEST_CRON: 'hourly' })).toThrow(/^MAIL_DIGEST_CRON "hourly" is not a valid cron expression/);
  });
});
