import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { POSTHOG_ERASURE_JOB } from '../../src/modules/analytics/posthog.forwarder.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const MIGRATION = '20270210920100_posthog_erasure_done_payload_emptied';
const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;

/**
 * PostHog erasure jobs done before their payload was emptied on done kept the erased person's addresses in the clear
 * until the retention purge: the migration empties them (audited), and nothing else: a dead or waiting one keeps its
 * payload (secrets:rotate seals those), another topic's done job keeps its own.
 */
describe('migration: the done PostHog erasures written before keep no address', () => {
  let db: TestDatabase;
  const [org, other] = [randomUUID(), randomUUID()];
  const address = 'erased.person@example.test';
  const clear = { distinctIds: ['user-1', `org:${org}:user:${address}`] };
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: before, log: () => undefined });
    // the rows as the earlier version left them (the outbox has no foreign key to the organization: 20270112000100)
    const rows: [string, string, string, Record<string, unknown>, string][] = [
      ['done', org, POSTHOG_ERASURE_JOB, { ...clear, _traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, `processed_at = now()`],
      ['doneOtherOrg', other, POSTHOG_ERASURE_JOB, clear, `processed_at = now()`],
      ['doneEmptied', org, POSTHOG_ERASURE_JOB, {}, `processed_at = now()`],
      ['dead', org, POSTHOG_ERASURE_JOB, clear, `processed_at = now(), dead_at = now()`],
      ['waiting', org, POSTHOG_ERASURE_JOB, clear, `available_at = now() + interval '1 hour'`],
      ['otherTopic', org, 'mail.invitation', { email: address }, `processed_at = now()`],
    ];
    for (const [name, orgId, topic, payload, state] of rows) {
      const { rows: [r] } = await db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, $2, $3) RETURNING id::text`, [orgId, topic, payload]);
      await db.admin.query(`UPDATE core.outbox SET ${state} WHERE id = $1`, [r.id]);
      ids[name] = r.id;
    }
  }, 300_000);
  afterAll(() => db.drop());

  const payloads = async () => Object.fromEntries((await db.admin.query(`SELECT id::text, payload FROM core.outbox`)).rows
    .map((r) => [Object.keys(ids).find((k) => ids[k] === r.id), r.payload]));
  const audited = async () => (await db.admin.query(`SELECT org_id, actor_id, principal_type, entity_type, entity_id, before, after
    FROM core.audit_logs WHERE action = 'jobs.payload_emptied' ORDER BY entity_id::bigint`)).rows;

  it('empties the payload of the done ones, audited with ids only; the dead, waiting and other topics keep theirs; idempotent', async () => {
    expect(await migrate(db.url, { log: () => undefined })).toContain(MIGRATION);
    expect(await payloads()).toEqual({ done: {}, doneOtherOrg: {}, doneEmptied: {}, dead: clear, waiting: clear, otherTopic: { email: address } });
    const expected = [[org, ids.done], [other, ids.doneOtherOrg]].map(([orgId, id]) => ({
      org_id: orgId, actor_id: `migration:${MIGRATION.split('_')[0]}`, principal_type: 'system', entity_type: 'outbox_job', entity_id: id, before: null, after: null,
    }));
    expect(await audited()).toEqual(expected);
    // of this topic, the address is now only in the rows still to run (sealed by secrets:rotate)
    const { rows } = await db.admin.query(`SELECT id::text FROM core.outbox WHERE topic = $1 AND strpos(payload::text, $2) > 0 ORDER BY id`, [POSTHOG_ERASURE_JOB, address]);
    expect(rows.map((r) => r.id)).toEqual([ids.dead, ids.waiting]);

    // applied again (as the Supabase CLI's copy could be): nothing more changes, nothing more is audited
    await db.admin.query(readFileSync(join(projectRoot(), 'prisma', 'migrations', MIGRATION, 'migration.sql'), 'utf8'));
    expect(await payloads()).toEqual({ done: {}, doneOtherOrg: {}, doneEmptied: {}, dead: clear, waiting: clear, otherTopic: { email: address } });
    expect(await audited()).toEqual(expected);
  });
});
