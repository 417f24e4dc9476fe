import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { CLAIM_HEAD_MIN, webhookRepository as repo } from '../../src/modules/webhooks/webhook.repository.js';
import { MAX_ATTEMPTS } from '../../src/modules/webhooks/retry-schedule.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { claimTimes, explainClaim, idleFairShare, messagesRead, sqlTestId, testId } from './claim-plan.js';

/**
 * The claim's per-endpoint lookup after bursts were delivered (review rE M2). The planner counts about one due message
 * per endpoint (it multiplies the selectivities of org_id and endpoint_id), so any index of the endpoint's messages read
 * in full and sorted cost it about what the range of webhook_messages_endpoint_due_idx did (8.47 against 8.43), and the
 * statistics of that partial index decided: few entries on many pages (the pages a queue's index keeps once its bursts
 * are delivered; 586 entries on 9,391 pages in a scratch database, analyzed, not vacuumed, autovacuum off), and every
 * claim read every message of every enabled endpoint (603,143 rows, 1.0-1.7 s at 2,010 endpoints × 300 delivered) until
 * those statistics changed. The lookup now asks for the order (org_id, next_attempt_at, id), which that index alone has
 * (the organization an array of one, not an equality the planner drops from the order), with sorts off for the claim's
 * transaction: the range is its only plan without a sort.
 *
 * Organizations 1-400, one enabled endpoint each, 300 messages each fanned out, analyzed while due, delivered, analyzed
 * again (120,000 delivered), the partial index's statistics set as repeated bursts leave them; organization 1's endpoint
 * has a backlog of 120 (older than all): it fills the head's candidates, so the claim looks per endpoint; every tenth
 * endpoint has one due message.
 */
describe('webhooks: the claim after bursts were delivered (statistics of the delivered, not of the due messages)', () => {
  let t: TestApp;
  let privileged: PrivilegedDatabase;
  const ENDPOINTS = 400;
  const DELIVERED = 300;
  const { now, lease } = claimTimes();
  const fair = () => idleFairShare(13, 25);
  const LIMIT = 13;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    privileged = t.app.get(PrivilegedDatabase);
    const owner = await registerUser(t, 'owner');
    const c = await t.db.admin.connect();
    try {
      // setup only: organizations, endpoints and messages written directly (their triggers and foreign keys off)
      await c.query('SET session_replication_role = replica');
      await c.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id)
        SELECT ${sqlTestId(8, 'i')}, 'Burst ' || i, 'business', $1 FROM generate_series(1, ${ENDPOINTS}) i`, [owner.id]);
      await c.query(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled)
        SELECT ${sqlTestId(8, 'i')}, ${sqlTestId(9, 'i')}, 'https://hooks.example.com/' || i, '{}'::jsonb, true FROM generate_series(1, ${ENDPOINTS}) i`);
      // a burst, fanned out (due over the last hours) and analyzed while due
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at, created_at)
        SELECT ${sqlTestId(8, 'i')}, ${sqlTestId(9, 'i')}, g, 'ping', '{}', $1::timestamptz - make_interval(secs => g * 60), $1::timestamptz - make_interval(secs => g * 60)
        FROM generate_series(1, ${ENDPOINTS}) i CROSS JOIN generate_series(1, ${DELIVERED}) g`, [now]);
      await c.query('VACUUM ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
      // delivered, and analyzed again, not vacuumed (autovacuum off or behind: the due indexes keep the burst's entries)
      await c.query(`UPDATE core.webhook_messages SET status = 'succeeded', attempts = 1, next_attempt_at = NULL, last_attempt_at = created_at`);
      await c.query('ANALYZE core.webhook_messages');
      // and the partial index's statistics as repeated bursts leave them (each one's entries, vacuumed away, keep their
      // pages): few entries on many pages (586 on 9,391 where the claim before read 603,143 rows)
      await c.query(`UPDATE pg_class SET reltuples = greatest(1, relpages / 16) WHERE oid = 'core.webhook_messages_endpoint_due_idx'::regclass`);
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at, created_at)
        SELECT $2::uuid, $3::uuid, 100000 + g, 'ping', '{}'::jsonb, $1::timestamptz - interval '2 days' + make_interval(secs => g), $1::timestamptz - interval '2 days'
        FROM generate_series(1, 120) g
        UNION ALL
        SELECT ${sqlTestId(8, 'i')}, ${sqlTestId(9, 'i')}, 200000, 'ping', '{}'::jsonb, $1::timestamptz - make_interval(secs => i), $1::timestamptz - make_interval(secs => i)
        FROM generate_series(10, ${ENDPOINTS}, 10) i`, [now, testId(8, 1), testId(9, 1)]);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
  });
  afterAll(() => t?.close());

  it('reads each endpoint\'s due range only: the rows a claim reads stay bounded by the head and the endpoints\' room, not by the messages they were sent', async () => {
    // the claim's statements, run as the worker runs them, the last under EXPLAIN (ANALYZE) and rolled back
    const plan = await explainClaim(t, [now, lease, LIMIT, MAX_ATTEMPTS, fair()]);
    // the head (CLAIM_HEAD_MIN at most), the endpoints' own due messages (at most their room), the claimed rows: under
    // three heads, where the claim before read the endpoints' delivered messages (64,249 rows here)
    const read = messagesRead(plan);
    expect(read).toBeLessThan(3 * CLAIM_HEAD_MIN);
    expect(3 * CLAIM_HEAD_MIN).toBeLessThan(ENDPOINTS * DELIVERED / 4);
  });

  it('claims what it claimed before: the backlog\'s oldest (organization 1\'s first), then the other organizations\' due messages, oldest first', async () => {
    const { rows: [first] } = await t.db.admin.query(`SELECT id FROM core.webhook_messages WHERE endpoint_id = $1 AND status = 'pending' ORDER BY next_attempt_at LIMIT 1`, [testId(9, 1)]);
    const claimed = await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, LIMIT, MAX_ATTEMPTS, fair()));
    expect(claimed.exhausted).toEqual([]);
    // each organization's first before any second: organization 1's oldest, and the 12 oldest of the other organizations
    // (due 400, 390, ... 290 s ago: endpoints 400, 390, ..., 290)
    expect(claimed.claimed.map((m) => m.endpoint_id).sort()).toEqual([testId(9, 1), ...Array.from({ length: 12 }, (_, k) => testId(9, ENDPOINTS - 10 * k))].sort());
    expect(claimed.claimed.find((m) => m.endpoint_id === testId(9, 1))?.id).toBe(first.id);
  });
});
