import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../src/platform/config/config.js';

/**
 * ANALYTICS_RETENTION_MONTHS=1 kept only the current month's partition while apps may send events dated up to 28 days
 * back: every batch holding one dated last month was refused (no partition). The setting is refused at boot instead.
 */
describe('ANALYTICS_RETENTION_MONTHS', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen', API_DATABASE_PASSWORD: 'not-the-development-one' };
  const error = (months: string): unknown => {
    try {
      loadConfig({ ...base, ANALYTICS_RETENTION_MONTHS: months });
    } catch (err) {
      return err;
    }
    return undefined;
  };

  it('refuses 1, naming the setting and why', () => {
    const err = error('1');
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe('ANALYTICS_RETENTION_MONTHS must be at least 2, got "1": '
      + 'events may be dated up to 28 days back, into the previous month, whose partition 1 would drop');
  });

  it('accepts 2 (the current and the previous month), and keeps 13 by default', () => {
    expect(loadConfig({ ...base, ANALYTICS_RETENTION_MONTHS: '2' }).analytics.retentionMonths).toBe(2);
    expect(loadConfig(base).analytics.retentionMonths).toBe(13);
  });

  it('still names values that are no month count at all', () => {
    for (const months of ['0', '121', 'twelve']) {
      const err = error(months);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^ANALYTICS_RETENTION_MONTHS must be/);
    }
  });
});
