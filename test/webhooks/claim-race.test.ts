import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { webhookRepository as repo } from '../../src/modules/webhooks/webhook.repository.js';
import { MAX_ATTEMPTS } from '../../src/modules/webhooks/retry-schedule.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * Two delivery workers (API instances) claiming at once. A worker's claim reads the due messages under its statement's
 * snapshot, then locks them one by one (FOR UPDATE SKIP LOCKED) as it claims them. When another worker's claim of a
 * message commits in between, READ COMMITTED follows the lock to the row's new version: the message was claimed a
 * second time (sent twice, its attempts counted twice) unless the lock re-checks the row itself.
 *
 * The window is made deterministic: a trigger this file adds to its test database holds the first worker's update of
 * the first message it claims (after its snapshot, before it locks the second message) on an advisory lock the test
 * holds; the second worker claims the second message and commits; then the first goes on.
 */
describe('webhooks: a message claimed by one worker after another worker\'s claim began is not claimed again', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let privileged: PrivilegedDatabase;
  const clients: pg.Client[] = [];
  const GATE = 770_612;

  beforeAll(async () => {
    // the endpoint's signing secret is sealed with the secret box
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    privileged = t.app.get(PrivilegedDatabase);
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Two Workers Ltd');
    await onPlan(t, orgId, 'professional');
    await t.db.admin.query(`
      CREATE FUNCTION core.test_claim_gate() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_advisory_xact_lock_shared(${GATE}, 1);
        RETURN NEW;
      END $$`);
  });
  afterEach(async () => {
    await t.db.admin.query('DROP TRIGGER IF EXISTS test_claim_gate ON core.webhook_messages');
    await Promise.all(clients.splice(0).map((c) => c.end()));
  });
  afterAll(() => t?.close());

  it('claims each due message once: the claim that began first skips the message the other claimed and committed meanwhile', async () => {
    const url = 'http://127.0.0.1:9/hook';
    const { body: ep } = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url }).expect(201);
    const ping = async () => (await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}/ping`).set(owner.auth).expect(202)).body.id as string;
    const first = await ping();
    const second = await ping();
    const { rows: [due] } = await t.db.admin.query('SELECT max(next_attempt_at) AS at FROM core.webhook_messages WHERE endpoint_id = $1', [ep.id]);
    const now = new Date(due.at);
    const claim = (leaseUntil: Date) => privileged.run('webhooks.delivery',
      (db) => repo.claimDue(db, now, leaseUntil, 10, MAX_ATTEMPTS, { perEndpoint: 4, perOrganization: 10, sending: new Map(), sendingByOrg: new Map() }));

    const holder = new pg.Client({ connectionString: t.db.url });
    await holder.connect();
    clients.push(holder);
    await holder.query('SELECT pg_advisory_lock($1, 1)', [GATE]);
    await t.db.admin.query(`CREATE TRIGGER test_claim_gate BEFORE UPDATE ON core.webhook_messages FOR EACH ROW
      WHEN (OLD.id = '${first}'::uuid) EXECUTE FUNCTION core.test_claim_gate()`);

    const leaseA = new Date(now.getTime() + 90_000);
    const leaseB = new Date(now.getTime() + 91_000);
    const workerA = claim(leaseA);
    await advisoryLockWaiters(t.db.admin); // A has its snapshot, has claimed the first message and waits before the second
    const workerB = await claim(leaseB);
    expect(workerB).toEqual({ claimed: [expect.objectContaining({ id: second, attempts: 1, url })], exhausted: [] });
    await holder.query('SELECT pg_advisory_unlock($1, 1)', [GATE]);
    const claimedByA = await workerA;

    expect(claimedByA).toEqual({ claimed: [expect.objectContaining({ id: first, attempts: 1, url })], exhausted: [] });
    const { rows } = await t.db.admin.query('SELECT id, status, attempts, next_attempt_at FROM core.webhook_messages WHERE endpoint_id = $1 ORDER BY next_attempt_at', [ep.id]);
    expect(rows).toEqual([
      { id: first, status: 'pending', attempts: 1, next_attempt_at: leaseA },
      { id: second, status: 'pending', attempts: 1, next_attempt_at: leaseB },
    ]);
  });
  it('claims the oldest due messages of many organizations without looking up every endpoint: the rows it reads are bounded by the claim, not by the endpoints', async () => {
    const { body: ep } = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'http://127.0.0.1:9/many' }).expect(201);
    // 100 organizations, 2 endpoints each, 2 due messages on each endpoint: organization i's are due (i × 10 + 3j + g) s ago
    const now = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000);
    await t.db.admin.query(`SET session_replication_role = replica`);
    try {
      await t.db.admin.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'Many ' || i, 'business', $1 FROM generate_series(1, 100) i`, [owner.id]);
      await t.db.admin.query(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad((i * 10 + j)::text, 12, '0'))::uuid, e.url, e.secret, true
        FROM core.webhook_endpoints e CROSS JOIN generate_series(1, 100) i CROSS JOIN generate_series(1, 2) j WHERE e.org_id = $1 AND e.id = $2`, [orgId, ep.id]);
      await t.db.admin.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at)
        SELECT e.org_id, e.id, 'ping', '{}', $1::timestamptz - make_interval(secs => i * 10 + (e.id = ('00000000-0000-4000-9000-' || lpad((i * 10 + 2)::text, 12, '0'))::uuid)::int * 3 + g)
        FROM generate_series(1, 100) i
        JOIN core.webhook_endpoints e ON e.org_id = ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid
        CROSS JOIN generate_series(1, 2) g`, [now]);
    } finally {
      await t.db.admin.query(`RESET session_replication_role`);
    }
    await t.db.admin.query('ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
    const lease = new Date(now.getTime() + 90_000);
    const fair = { perEndpoint: 4, perOrganization: 10, sending: new Map<string, number>(), sendingByOrg: new Map<string, number>() };

    // the claim's statement, run once under EXPLAIN ANALYZE and rolled back: the messages' rows it reads, in the plan
    // of a large table (index scans; these tables are small enough for a full scan to cost less)
    let statement: { text: string; values: unknown[] } | undefined;
    const capture = { $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
      statement = { text: strings.reduce((text, part, i) => `${text}$${i}${part}`), values };
      return [];
    } } as unknown as Parameters<typeof repo.claimDue>[0];
    await repo.claimDue(capture, now, lease, 4, MAX_ATTEMPTS, fair);
    await t.db.admin.query('BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off');
    const { rows: [{ 'QUERY PLAN': [plan] }] } = await t.db.admin.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement!.text}`, statement!.values);
    await t.db.admin.query('ROLLBACK');
    type Node = { 'Relation Name'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number; Plans?: Node[] };
    const read = (n: Node): number => (n['Relation Name'] === 'webhook_messages' && !n['Plans']?.length
      ? ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0)) * (n['Actual Loops'] ?? 0) : 0) + (n.Plans ?? []).reduce((sum, c) => sum + read(c), 0);
    // 400 due messages on 200 endpoints; the claim of 4 reads its 8 × 4 oldest candidates and the rows it claims
    expect(read(plan.Plan)).toBeLessThanOrEqual(8 * 4 + 3 * 4);

    const claimed = await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, 4, MAX_ATTEMPTS, fair));
    // the first due message of the four organizations whose messages are the oldest (endpoint 2's, 3 s older)
    const first = (i: number) => `00000000-0000-4000-9000-${String(i * 10 + 2).padStart(12, '0')}`;
    expect(claimed.exhausted).toEqual([]);
    expect(claimed.claimed.map((m) => m.endpoint_id).sort()).toEqual([first(97), first(98), first(99), first(100)]);
    const { rows } = await t.db.admin.query(`SELECT endpoint_id, next_attempt_at FROM core.webhook_messages WHERE attempts > 0 AND org_id <> $1 ORDER BY endpoint_id`, [orgId]);
    expect(rows).toEqual([97, 98, 99, 100].map((i) => ({ endpoint_id: first(i), next_attempt_at: lease })));
    const { rows: [{ n }] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.webhook_messages WHERE status = 'pending' AND next_attempt_at <= $1`, [now]);
    expect(n).toBe(396);
  });
});
