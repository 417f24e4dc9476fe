import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser } from '../support/factories.js';
import { RetentionJob } from '../../src/modules/privacy/retention.job.js';

const DAY = 86_400_000;

describe('retention job', () => {
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ RETENTION_WEBHOOK_DELIVERY_DAYS: '30', RETENTION_OUTBOX_DAYS: '14' }, { clock });
  });
  afterAll(() => t.close());

  it('purges finished webhook deliveries and processed jobs past their retention, measured by the injected clock; keeps the rest', async () => {
    const owner = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, 'Retained Ltd');
    const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
    const [endpoint] = (await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.test/x', '{}') RETURNING id`, [orgId])).rows;
    const message = async (status: string, ageDays: number, lastAttemptDaysAgo: number | null = null) => (await q(
      `INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at, last_attempt_at)
       VALUES ($1, $2, (random() * 1e12)::bigint, 'test.event', '{}', $3, CASE WHEN $3 = 'pending' THEN now() END, now() - make_interval(days => $4::int),
               CASE WHEN $5::int IS NOT NULL THEN now() - make_interval(days => $5::int) END) RETURNING id`,
      [orgId, endpoint.id, status, ageDays, lastAttemptDaysAgo])).rows[0].id;
    const oldDelivered = await message('succeeded', 20);
    const oldFailed = await message('failed', 25);
    const oldPending = await message('pending', 40);
    const recent = await message('succeeded', 1);
    // created long ago, replayed by hand yesterday: its retention counts from that last attempt
    const replayed = await message('succeeded', 40, 1);
    const job = async (processedDaysAgo: number | null) => (await q(
      `INSERT INTO core.outbox (org_id, topic, payload, processed_at) VALUES ($1, 'test.job', '{}', CASE WHEN $2::int IS NULL THEN NULL ELSE now() - make_interval(days => $2::int) END) RETURNING id`,
      [orgId, processedDaysAgo])).rows[0].id;
    const oldJob = await job(10);
    const freshJob = await job(1);
    const pendingJob = await job(null);

    const retention = t.app.get(RetentionJob);
    // nothing is old enough yet
    expect(await retention.run()).toEqual({ webhookDeliveries: 0, processedJobs: 0, dataExports: 0 });
    clock.advance(10 * DAY); // delivered 30, failed 35, pending 50 days ago; jobs processed 20 and 11 days ago
    expect(await retention.run()).toEqual({ webhookDeliveries: 2, processedJobs: 1, dataExports: 0 });

    const messages = (await q('SELECT id FROM core.webhook_messages WHERE org_id = $1', [orgId])).rows.map((r) => r.id).sort();
    expect(messages).toEqual([oldPending, recent, replayed].sort());
    expect(messages).not.toContain(oldDelivered);
    expect(messages).not.toContain(oldFailed);
    const jobs = (await q(`SELECT id FROM core.outbox WHERE org_id = $1 AND topic = 'test.job'`, [orgId])).rows.map((r) => String(r.id)).sort();
    expect(jobs).toEqual([String(freshJob), String(pendingJob)].sort());
    expect(jobs).not.toContain(String(oldJob));
  });

  it('refuses a retention of zero days at boot (config is validated)', async () => {
    await expect(createTestApp({ RETENTION_OUTBOX_DAYS: '0' })).rejects.toThrow(/RETENTION_OUTBOX_DAYS/);
  });
});
