import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { CLAIM_HEAD_MIN, webhookRepository as repo } from '../../src/modules/webhooks/webhook.repository.js';
import { MAX_ATTEMPTS } from '../../src/modules/webhooks/retry-schedule.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { claimTimes, explainClaim, idleFairShare, messagesRead, testId } from './claim-plan.js';

/**
 * A disabled endpoint's backlog stays due (it is sent when the endpoint is enabled again), at the head of the due order
 * when it is old. The worker's claim reads no more of it than the head of the due order (32 × the claim's size, at least
 * CLAIM_HEAD_MIN: 4,096), however
 * long it is, and looks per enabled endpoint past it: before, every claim read the whole backlog (100k messages on
 * disabled endpoints: 100,044 rows and 115-518 ms per claim) before it found an enabled endpoint's message.
 *
 * Organizations 1-10 have one disabled endpoint each, 2,000 due messages on each (20,000, due six hours ago and after,
 * longer than three times the head of a claim of 4: 4,096). Organization 11 has two enabled endpoints: A with 5 due messages (the oldest of the
 * enabled endpoints'), B with one; organizations 12-20 one enabled endpoint each, with one due message, due i s ago.
 */
describe('webhooks: the claim behind a disabled endpoint\'s backlog', () => {
  let t: TestApp;
  let owner: TestUser;
  let privileged: PrivilegedDatabase;
  const { now, lease } = claimTimes();
  const org = (i: number) => testId(8, i);
  const endpoint = (i: number) => testId(9, i);
  const A = endpoint(111);
  const B = endpoint(112);
  const fair = () => idleFairShare(4, 10);
  const LIMIT = 4;
  const ENABLED_DUE = 5 + 1 + 9;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    privileged = t.app.get(PrivilegedDatabase);
    owner = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, 'Backlog Ltd');
    await onPlan(t, orgId, 'professional');
    const { body: ep } = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'http://127.0.0.1:9/hook' }).expect(201);
    const c = await t.db.admin.connect();
    try {
      // setup only: organizations, endpoints and messages written directly (their triggers and foreign keys off)
      await c.query('SET session_replication_role = replica');
      await c.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'Backlog ' || i, 'business', $1 FROM generate_series(1, 20) i`, [owner.id]);
      const endpoints = `INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled, disabled_at, disabled_reason)
        SELECT v.org_id, v.id, e.url, e.secret, v.enabled, CASE WHEN NOT v.enabled THEN $3::timestamptz END, CASE WHEN NOT v.enabled THEN 'failing' END
        FROM core.webhook_endpoints e CROSS JOIN LATERAL (
          SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid AS org_id, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid AS id, i > 10 AS enabled
          FROM generate_series(1, 20) i WHERE i <> 11
          UNION ALL SELECT $4::uuid, $5::uuid, true UNION ALL SELECT $4::uuid, $6::uuid, true) v
        WHERE e.org_id = $1 AND e.id = $2`;
      await c.query(endpoints, [orgId, ep.id, now, org(11), A, B]);
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at, attempts)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'ping', '{}',
          $1::timestamptz - interval '6 hours' + make_interval(secs => g), 1
        FROM generate_series(1, 10) i CROSS JOIN generate_series(1, 2000) g`, [now]);
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at)
        SELECT $2::uuid, $3::uuid, 'ping', '{}'::jsonb, $1::timestamptz - make_interval(secs => 100 + g) FROM generate_series(1, 5) g
        UNION ALL SELECT $2::uuid, $4::uuid, 'ping', '{}'::jsonb, $1::timestamptz - interval '50 s'
        UNION ALL SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'ping', '{}'::jsonb,
          $1::timestamptz - make_interval(secs => i)
        FROM generate_series(12, 20) i`, [now, org(11), A, B]);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
    await t.db.admin.query('DELETE FROM core.webhook_endpoints WHERE id = $1', [ep.id]);
    await t.db.admin.query('ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
  });
  afterAll(() => t?.close());

  /** The claim run once under EXPLAIN (ANALYZE) and rolled back, in the plan of a large table (no full scans). */
  const explain = () => explainClaim(t, [now, lease, LIMIT, MAX_ATTEMPTS, fair()], { settings: 'SET LOCAL enable_seqscan = off' });

  it('reads no more of the backlog than the head of the due order: the rows a claim reads are bounded by its size and the enabled endpoints\' due messages', async () => {
    // the head (CLAIM_HEAD_MIN, above 32 × 4; read twice: its candidates, then is that all there is?), the enabled
    // endpoints' own due messages (at most their room; in their index, then by primary key, then locked), the claimed
    // rows (8,211 here): well under three heads, and not the 20,000 (the claim before the head read them all)
    expect(messagesRead(await explain())).toBeLessThan(3 * CLAIM_HEAD_MIN);
    expect(3 * CLAIM_HEAD_MIN).toBeLessThan(20_000);
  });

  it('claims the enabled endpoints\' messages behind it, fairly: each organization\'s first before a second, each endpoint\'s first before a second; the backlog stays as it was', async () => {
    const { rows: [a1] } = await t.db.admin.query('SELECT id FROM core.webhook_messages WHERE endpoint_id = $1 ORDER BY next_attempt_at LIMIT 1', [A]);
    const claimed = await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, LIMIT, MAX_ATTEMPTS, fair()));

    // A's oldest (organization 11's first), then the first messages of organizations 20, 19 and 18 (due 20, 19 and 18 s
    // ago): not B's (due 50 s ago, organization 11's second) nor A's second (the endpoint's second)
    expect(claimed.exhausted).toEqual([]);
    expect(claimed.claimed.map((m) => m.endpoint_id).sort()).toEqual([endpoint(18), endpoint(19), endpoint(20), A].sort());
    expect(claimed.claimed.find((m) => m.endpoint_id === A)).toEqual(expect.objectContaining({ id: a1.id, org_id: org(11), attempts: 1 }));
    const { rows } = await t.db.admin.query(`SELECT endpoint_id, status, attempts FROM core.webhook_messages WHERE next_attempt_at = $1 ORDER BY endpoint_id`, [lease]);
    expect(rows).toEqual([endpoint(18), endpoint(19), endpoint(20), A].sort().map((endpoint_id) => ({ endpoint_id, status: 'pending', attempts: 1 })));
    // the rest of the enabled endpoints' messages: due still, never claimed
    const { rows: [rest] } = await t.db.admin.query(`SELECT count(*)::int AS n, max(attempts) AS attempts FROM core.webhook_messages m
      JOIN core.webhook_endpoints e ON e.org_id = m.org_id AND e.id = m.endpoint_id AND e.enabled WHERE m.status = 'pending' AND m.next_attempt_at <= $1`, [now]);
    expect(rest).toEqual({ n: ENABLED_DUE - LIMIT, attempts: 0 });
    // the backlog: due, never claimed
    const { rows: [backlog] } = await t.db.admin.query(`SELECT count(*)::int AS n, min(attempts) AS min, max(attempts) AS max FROM core.webhook_messages
      WHERE status = 'pending' AND next_attempt_at <= $1 AND endpoint_id IN (SELECT id FROM core.webhook_endpoints WHERE NOT enabled)`, [now]);
    expect(backlog).toEqual({ n: 20_000, min: 1, max: 1 });
  });
});

/**
 * A head cut off with the first messages of `limit` organizations in it, but fewer than 8 × `limit` messages the claim
 * may take (review rE): those are not the answer alone, since another worker may hold them locked (SKIP LOCKED), and
 * the claim before the head had spares behind them. Organization 0's disabled endpoint has 4,092 due messages (the head
 * of a claim of 4 is 4,096), organizations 1-4 one due message each right behind them (in the head), organizations
 * 5-12 one each after the head. With 1-4's messages locked by another claim, this one takes 5-8's.
 */
describe('webhooks: the claim with the head\'s candidates locked by another worker', () => {
  let t: TestApp;
  let privileged: PrivilegedDatabase;
  const { now, lease } = claimTimes();
  const id = testId;
  const fair = () => idleFairShare(4, 10);

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    privileged = t.app.get(PrivilegedDatabase);
    const owner = await registerUser(t, 'owner');
    const c = await t.db.admin.connect();
    try {
      // setup only: organizations, endpoints and messages written directly (their triggers and foreign keys off)
      await c.query('SET session_replication_role = replica');
      await c.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'Held ' || i, 'business', $1 FROM generate_series(0, 12) i`, [owner.id]);
      await c.query(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled, disabled_at, disabled_reason)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid,
          'https://hooks.example.com/' || i, '{}'::jsonb, i > 0, CASE WHEN i = 0 THEN $1::timestamptz END, CASE WHEN i = 0 THEN 'failing' END
        FROM generate_series(0, 12) i`, [now]);
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at, attempts)
        SELECT $2::uuid, $3::uuid, 'ping', '{}', $1::timestamptz - interval '2 days' + make_interval(secs => g), 1 FROM generate_series(1, 4092) g`,
      [now, id(8, 0), id(9, 0)]);
      await c.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'ping', '{}',
          $1::timestamptz - interval '1 day' + make_interval(secs => i) FROM generate_series(1, 12) i`, [now]);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
    await t.db.admin.query('VACUUM ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
  });
  afterAll(() => t?.close());

  it('takes the next organizations\' messages behind them (it took none: the head\'s few were all it looked at)', async () => {
    expect(CLAIM_HEAD_MIN).toBe(4096);
    const other = await t.db.admin.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT 1 FROM core.webhook_messages WHERE org_id = ANY($1::uuid[]) FOR UPDATE', [[1, 2, 3, 4].map((i) => id(8, i))]);
      const claimed = await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, 4, MAX_ATTEMPTS, fair()));
      expect(claimed.claimed.map((m) => m.org_id).sort()).toEqual([5, 6, 7, 8].map((i) => id(8, i)));
      const { rows } = await t.db.admin.query('SELECT org_id FROM core.webhook_messages WHERE next_attempt_at = $1 ORDER BY org_id', [lease]);
      expect(rows.map((r) => r.org_id)).toEqual([5, 6, 7, 8].map((i) => id(8, i)));
    } finally {
      await other.query('ROLLBACK');
      other.release();
    }
  });
});
