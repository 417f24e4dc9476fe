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
    t = await createTestApp({ RETENTION_WEBHOOK_DELIVERY_DAYS: '30', RETENTION_OUTBOX_DAYS: '14', RETENTION_EMAIL_DELIVERY_DAYS: '30' }, { clock });
  });
  afterAll(() => t.close());

  it('purges finished webhook deliveries (and those waiting for an endpoint disabled since before the cutoff) and processed jobs past their retention, measured by the injected clock; keeps the rest', async () => {
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
    // an endpoint disabled 35 days ago (and one disabled yesterday): their pending messages wait no longer than the retention
    const disabledEndpoint = async (daysAgo: number) => (await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret, enabled, disabled_reason, disabled_at)
      VALUES ($1, 'https://hooks.example.test/off', '{}', false, 'failing', now() - make_interval(days => $2::int)) RETURNING id`, [orgId, daysAgo])).rows[0].id;
    const stuck = async (endpointId: string) => (await q(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at, last_attempt_at)
      VALUES ($1, $2, (random() * 1e12)::bigint, 'test.event', '{}', 'pending', now(), now() - interval '36 days', now() - interval '36 days') RETURNING id`, [orgId, endpointId])).rows[0].id;
    const longDisabled = await stuck(await disabledEndpoint(35));
    const justDisabled = await stuck(await disabledEndpoint(1));
    const oldJob = await job(10);
    const freshJob = await job(1);
    const pendingJob = await job(null);

    const retention = t.app.get(RetentionJob);
    // nothing is old enough yet
    expect(await retention.run()).toEqual({ webhookDeliveries: 1, processedJobs: 0, eventReceipts: 0, emailDeliveries: 0, dataExports: 0 });
    expect((await q('SELECT id FROM core.webhook_messages WHERE id = ANY($1)', [[longDisabled, justDisabled]])).rows.map((r) => r.id)).toEqual([justDisabled]);
    clock.advance(10 * DAY); // delivered 30, failed 35, pending 50 days ago; jobs processed 20 and 11 days ago
    expect(await retention.run()).toEqual({ webhookDeliveries: 2, processedJobs: 1, eventReceipts: 0, emailDeliveries: 0, dataExports: 0 });

    const messages = (await q('SELECT id FROM core.webhook_messages WHERE org_id = $1', [orgId])).rows.map((r) => r.id).sort();
    expect(messages).toEqual([oldPending, recent, replayed, justDisabled].sort());
    expect(messages).not.toContain(oldDelivered);
    expect(messages).not.toContain(oldFailed);
    const jobs = (await q(`SELECT id FROM core.outbox WHERE org_id = $1 AND topic = 'test.job'`, [orgId])).rows.map((r) => String(r.id)).sort();
    expect(jobs).toEqual([String(freshJob), String(pendingJob)].sort());
    expect(jobs).not.toContain(String(oldJob));
  });

  it('purges finished e-mail deliveries, sent digests and routed-event receipts past their retention; keeps what is in flight', async () => {
    const owner = await registerUser(t, 'mailer');
    const orgId = await createOrg(t, owner, 'Mailed Ltd');
    const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
    const now = new Date(clock.now());
    const ago = (days: number) => new Date(now.getTime() - days * DAY);
    const [digest] = (await q(`INSERT INTO core.email_digests (user_id, category, window_start, due_at, sent_at) VALUES ($1, 'finance', $2, $2, $2) RETURNING id`, [owner.id, ago(40)])).rows;
    const [openDigest] = (await q(`INSERT INTO core.email_digests (user_id, category, window_start, due_at) VALUES ($1, 'ai', $2, $2) RETURNING id`, [owner.id, ago(40)])).rows;
    const mail = async (status: string, createdDaysAgo: number, sentDaysAgo: number | null, digestId: string | null = null) => (await q(
      `INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status, created_at, sent_at, digest_id)
       VALUES ($1, $2, 'someone@example.test', 'notice', 'finance', '{"title":"Invoice paid"}', $3, $4, $5, $6) RETURNING id`,
      [orgId, owner.id, status, ago(createdDaysAgo), sentDaysAgo === null ? null : ago(sentDaysAgo), digestId])).rows[0].id;
    const oldSent = await mail('sent', 45, 40);
    const oldFailed = await mail('failed', 40, null);
    const oldNotSent = await mail('not_sent', 40, null);
    const oldDigested = await mail('digested', 41, null, digest.id);
    const sentRecently = await mail('sent', 45, 5); // queued long ago, sent 5 days ago: counts from the sending
    const oldQueued = await mail('queued', 40, null);
    const oldPendingDigest = await mail('digest_pending', 40, null);
    // receipts: an old one whose event is done, an old one whose event still waits in the outbox, a fresh one
    const event = async (processed: boolean) => (await q(`INSERT INTO core.outbox (org_id, topic, payload, processed_at) VALUES ($1, 'test.event', '{}', $2) RETURNING id`,
      [orgId, processed ? ago(20) : null])).rows[0].id;
    const doneEvent = await event(true);
    const waitingEvent = await event(false);
    const receipt = (eventId: string, daysAgo: number) => q(`INSERT INTO core.notification_event_receipts (org_id, event_id, event_type, routed_at) VALUES ($1, $2, 'test.event', $3)`, [orgId, eventId, ago(daysAgo)]);
    await receipt(doneEvent, 20);
    await receipt(waitingEvent, 20);
    await receipt('999999999', 1);

    const result = await t.app.get(RetentionJob).run();
    expect(result).toMatchObject({ eventReceipts: 1, emailDeliveries: 4 });
    const mails = (await q('SELECT id FROM core.email_deliveries WHERE org_id = $1', [orgId])).rows.map((r) => r.id).sort();
    expect(mails).toEqual([sentRecently, oldQueued, oldPendingDigest].sort());
    for (const gone of [oldSent, oldFailed, oldNotSent, oldDigested]) expect(mails).not.toContain(gone);
    // the sent digest went with its deliveries; the open one stays
    expect((await q('SELECT id FROM core.email_digests WHERE user_id = $1', [owner.id])).rows.map((r) => r.id)).toEqual([openDigest.id]);
    const receipts = (await q('SELECT event_id FROM core.notification_event_receipts WHERE org_id = $1', [orgId])).rows.map((r) => String(r.event_id)).sort();
    expect(receipts).toEqual([String(waitingEvent), '999999999'].sort());
  });

  it('refuses a retention of zero days at boot (config is validated)', async () => {
    await expect(createTestApp({ RETENTION_OUTBOX_DAYS: '0' })).rejects.toThrow(/RETENTION_OUTBOX_DAYS/);
  });
});
