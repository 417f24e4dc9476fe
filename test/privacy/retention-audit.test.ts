import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser } from '../support/factories.js';
import { RetentionJob } from '../../src/modules/privacy/retention.job.js';

const DAY = 86_400_000;

describe('retention job: one audit row per organization that lost rows', () => {
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ RETENTION_WEBHOOK_DELIVERY_DAYS: '30', RETENTION_OUTBOX_DAYS: '14', RETENTION_EMAIL_DELIVERY_DAYS: '30' }, { clock });
  });
  afterAll(() => t.close());

  it('writes, in the purge\'s transaction, each organization\'s counts per class and the retention; none for an organization that lost nothing', async () => {
    const owner = await registerUser(t, 'ra-owner');
    const a = await createOrg(t, owner, 'Purged A Ltd');
    const b = await createOrg(t, owner, 'Purged B Ltd');
    const untouched = await createOrg(t, owner, 'Untouched Ltd');
    const q = (sql: string, params: unknown[] = []) => t.db.admin.query(sql, params);
    // by the injected clock: deliveries and e-mails 35 days old (past their 30), jobs processed 20 days ago (past the outbox's 14)
    const ago = (days: number) => new Date(clock.now() - days * DAY);
    const [endpoint] = (await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.test/x', '{}') RETURNING id`, [a])).rows;
    for (const days of [35, 35, 5]) {
      await q(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, status, created_at, last_attempt_at)
        VALUES ($1, $2, (random() * 1e12)::bigint, 'test.event', '{"email":"private@example.test"}', 'succeeded', $3, $3)`, [a, endpoint.id, ago(days)]);
    }
    const job = (org: string, processedAt: Date) => q(`INSERT INTO core.outbox (org_id, topic, payload, processed_at) VALUES ($1, 'test.job', '{}', $2)`, [org, processedAt]);
    await job(a, ago(20));
    await job(b, ago(20));
    await job(b, ago(20));
    await job(untouched, ago(1));
    const mail = (org: string, sentAt: Date, digestId: string | null = null) => q(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status, created_at, sent_at, digest_id)
      VALUES ($1, $2, 'someone@example.test', 'notice', 'finance', '{}', 'sent', $3, $3, $4)`, [org, owner.id, sentAt, digestId]);
    await mail(b, ago(35));
    await mail(untouched, ago(5));
    // the owner's sent digest (a person's, of no organization): counted in their personal organization's row
    const [digest] = (await q(`INSERT INTO core.email_digests (user_id, category, window_start, due_at, sent_at) VALUES ($1, 'finance', $2, $2, $2) RETURNING id`, [owner.id, ago(35)])).rows;
    await mail(b, ago(35), digest.id);

    const retention = t.app.get(RetentionJob);
    const audits = async () => (await q(`SELECT org_id, actor_id, principal_type, entity_type, entity_id, after FROM core.audit_logs
      WHERE action = 'privacy.retention_purged' AND org_id = ANY($1) ORDER BY array_position($1::uuid[], org_id), id`, [[a, b, untouched, owner.personalOrgId]])).rows;
    expect(await retention.run()).toEqual({ webhookDeliveries: 2, processedJobs: 3, eventReceipts: 0, emailDeliveries: 2, dataExports: 0 });
    const days = { retentionDays: { webhookDeliveries: 30, outbox: 14, emailDeliveries: 30 } };
    const zero = { webhookDeliveries: 0, processedJobs: 0, eventReceipts: 0, emailDeliveries: 0, emailDigests: 0, dataExportsExpired: 0 };
    const system = { actor_id: null, principal_type: 'system', entity_type: 'organization' };
    const rows = await audits();
    expect(rows).toEqual([
      { org_id: a, ...system, entity_id: a, after: { ...zero, webhookDeliveries: 2, processedJobs: 1, ...days } },
      { org_id: b, ...system, entity_id: b, after: { ...zero, processedJobs: 2, emailDeliveries: 2, ...days } },
      { org_id: owner.personalOrgId, ...system, entity_id: owner.personalOrgId, after: { ...zero, emailDigests: 1, ...days } },
    ]);
    // counts only: nothing of what was purged
    expect(JSON.stringify(rows)).not.toContain('private@example.test');
    // and the rows are gone
    const left = await q(`SELECT (SELECT count(*) FROM core.webhook_messages WHERE org_id = $1) AS messages,
      (SELECT count(*) FROM core.email_deliveries WHERE org_id = $2) AS mails, (SELECT count(*) FROM core.email_digests WHERE id = $3) AS digests`, [a, b, digest.id]);
    expect(left.rows).toEqual([{ messages: '1', mails: '0', digests: '0' }]);
    // a run that finds nothing more writes no row
    await retention.run();
    expect(await audits()).toHaveLength(3);
  });
});
