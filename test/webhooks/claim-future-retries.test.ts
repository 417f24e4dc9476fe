import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { webhookRepository as repo } from '../../src/modules/webhooks/webhook.repository.js';
import { MAX_ATTEMPTS } from '../../src/modules/webhooks/retry-schedule.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { claimTimes, explainClaim, idleFairShare, planNodes, sqlTestId, testId } from './claim-plan.js';

/**
 * The claim's per-endpoint lookup in an organization whose endpoints hold many retries not yet due (review of 8f632d5,
 * HIGH). On PostgreSQL 15 a btree scan ends on a row comparison only where the comparison's FIRST column decides it: with
 * bounds (org_id, endpoint_id, next_attempt_at) the lookup of an endpoint read every pending entry after it in its
 * organization (0 rows in 1,669 buffers against 3; a claim 0.9-1.2 s against 52-63 ms at 200 endpoints × 500 future
 * retries). The lookup's bounds are now plain equalities (the organization's an array of one) and next_attempt_at <= now,
 * which the scan stops on: it reads the endpoint's due entries and stops at its first entry not due.
 *
 * One organization, ENDPOINTS enabled endpoints: the first has a backlog of 120 due messages (older than all: it fills the
 * head's candidates, so the claim looks per endpoint), every other one FUTURE retries due after the claim.
 */
describe('webhooks: the claim\'s per-endpoint lookup among endpoints with retries not yet due', () => {
  let t: TestApp;
  let privileged: PrivilegedDatabase;
  const ENDPOINTS = 100;
  const FUTURE = 200;
  const { now, lease } = claimTimes();
  const fair = () => idleFairShare(13, 25);
  const LIMIT = 13;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    privileged = t.app.get(PrivilegedDatabase);
    const owner = await registerUser(t, 'owner');
    const c = await t.db.admin.connect();
    try {
      // setup only: the organization, its endpoints and messages written directly (their triggers and foreign keys off)
      await c.query('SET session_replication_role = replica');
      await c.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id) VALUES ($1, 'Retries', 'business', $2)`, [testId(8, 1), owner.id]);
      await c.query(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled)
        SELECT $1::uuid, ${sqlTestId(9, 'i')}, 'https://hooks.example.com/' || i, '{}'::jsonb, true FROM generate_series(1, ${ENDPOINTS}) i`, [testId(8, 1)]);
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at, created_at, attempts)
        SELECT $2::uuid, $3::uuid, g, 'ping', '{}'::jsonb, $1::timestamptz - interval '2 days' + make_interval(secs => g), $1::timestamptz - interval '2 days', 0
        FROM generate_series(1, 120) g
        UNION ALL
        SELECT $2::uuid, ${sqlTestId(9, 'i')}, 1000 + g, 'ping', '{}'::jsonb, $1::timestamptz + make_interval(secs => g * 60), $1::timestamptz - interval '1 day', 1
        FROM generate_series(2, ${ENDPOINTS}) i CROSS JOIN generate_series(1, ${FUTURE}) g`, [now, testId(8, 1), testId(9, 1)]);
      await c.query('VACUUM ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
  });
  afterAll(() => t?.close());

  it('reads each endpoint\'s own range only: a few buffers per endpoint, not the organization\'s later endpoints\' retries', async () => {
    // the claim's statements, run as the worker runs them, the last under EXPLAIN (ANALYZE, BUFFERS) and rolled back
    const plan = await explainClaim(t, [now, lease, LIMIT, MAX_ATTEMPTS, fair()], { buffers: true });
    // the lookup: the endpoint index's scan run once per enabled endpoint
    const lookups = planNodes(plan).filter((n) => n['Index Name'] === 'webhook_messages_endpoint_due_idx' && (n['Actual Loops'] ?? 0) >= ENDPOINTS);
    expect(lookups).toHaveLength(1);
    const [lookup] = lookups;
    const buffers = (lookup['Shared Hit Blocks'] ?? 0) + (lookup['Shared Read Blocks'] ?? 0);
    // the index's descent to the endpoint's first due entry (3 pages here), and the backlog's room: neither the
    // organization's later endpoints' retries (ENDPOINTS / 2 × FUTURE entries a lookup on average: 9,551 buffers in the
    // 8f632d5 form) nor the endpoint's own (FUTURE entries, a leaf page or two: 473 buffers with the bounds in row form
    // from endpoint_id on)
    expect(buffers).toBeLessThan(4 * ENDPOINTS);
  });

  it('claims the backlog\'s oldest, as before', async () => {
    const { rows } = await t.db.admin.query(`SELECT id FROM core.webhook_messages WHERE endpoint_id = $1 ORDER BY next_attempt_at, id LIMIT ${LIMIT}`, [testId(9, 1)]);
    const claimed = await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, LIMIT, MAX_ATTEMPTS, fair()));
    expect(claimed.exhausted).toEqual([]);
    expect(claimed.claimed.map((m) => m.id).sort()).toEqual(rows.map((r: { id: string }) => r.id).sort());
  });
});
