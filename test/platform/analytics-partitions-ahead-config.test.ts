import { afterAll, describe, expect, it } from '@jest/globals';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { ConfigError, loadConfig } from '../../src/platform/config/config.js';
import { createTestApp, type TestApp } from '../support/app.js';

/**
 * ANALYTICS_PARTITIONS_AHEAD=24 was accepted, but the maintenance job asks core.analytics_create_partitions for one
 * month more (it starts at the previous month), and the function refuses more than 24: every maintenance run failed.
 * The setting is refused at boot above 23, naming why; 23 runs.
 */
describe('ANALYTICS_PARTITIONS_AHEAD', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen', API_DATABASE_PASSWORD: 'not-the-development-one' };
  const error = (months: string): unknown => {
    try {
      loadConfig({ ...base, ANALYTICS_PARTITIONS_AHEAD: months });
    } catch (err) {
      return err;
    }
    return undefined;
  };
  let t: TestApp | undefined;
  afterAll(async () => {
    await t?.close();
  });

  it('refuses 24, naming the setting, the range and why', () => {
    const err = error('24');
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe('ANALYTICS_PARTITIONS_AHEAD must be an integer from 1 to 23, got "24": '
      + 'the partitions are made from the previous month on, 24 months at most per run (core.analytics_create_partitions)');
  });

  it('names the whole range for values that are no month count at all (0 and three said ">= 1"), and keeps 3 by default', () => {
    for (const months of ['0', '-1', '2.5', 'three']) {
      const err = error(months);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toBe(`ANALYTICS_PARTITIONS_AHEAD must be an integer from 1 to 23, got "${months}"`);
    }
    expect((error('25') as Error).message).toMatch(/^ANALYTICS_PARTITIONS_AHEAD must be an integer from 1 to 23, got "25": the partitions are made/);
    expect(loadConfig(base).analytics.partitionsAhead).toBe(3);
  });

  it('23, the most it takes, runs: the start-up maintenance makes the partitions through 23 months ahead', async () => {
    t = await createTestApp({ ANALYTICS_PARTITIONS_AHEAD: '23' });
    const job = t.app.get(AnalyticsMaintenanceJob);
    await job.booted;
    const now = Date.now();
    const result = await job.maintainPartitions(now);
    const month = (ahead: number) => {
      const d = new Date(now);
      return `analytics_events_p${new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + ahead, 1)).toISOString().slice(0, 7).replace('-', '')}`;
    };
    expect(result.created).toEqual([]); // the start-up run made them all
    const { rows } = await t.db.admin.query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'core.analytics_events'::regclass AND c.relname = ANY($1::text[]) ORDER BY 1`, [[month(-1), month(0), month(23)]]);
    expect(rows.map((r) => r.relname)).toEqual([month(-1), month(0), month(23)]);
  });
});
