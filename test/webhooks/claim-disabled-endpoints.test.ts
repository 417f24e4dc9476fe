import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { webhookRepository as repo } from '../../src/modules/webhooks/webhook.repository.js';
import { MAX_ATTEMPTS } from '../../src/modules/webhooks/retry-schedule.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/throwaway-servers.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * The delivery worker's claim and disabled endpoints.
 * 1. The in-flight window (docs/webhooks.md): the claim does not re-check (nor lock) the endpoint, so a PATCH disabling
 *    it that commits after a claim's snapshot (the claim read it enabled) does not stop that claim: the message is
 *    claimed, and sent once. A claim that sees the disabling claims none of its messages. The window is held open with
 *    a real connection holding an advisory lock a trigger waits on before the claim updates the message.
 * 2. A disabled endpoint's backlog stays due (it is sent when the endpoint is enabled again), at the head of the due
 *    order: the claim reads no more of it than its head, however long it is, and looks per enabled endpoint instead.
 */
describe('webhooks: the claim and disabled endpoints', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let privileged: PrivilegedDatabase;
  const clients: pg.Client[] = [];
  const GATE = 770_613;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    privileged = t.app.get(PrivilegedDatabase);
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Claim And Disable Ltd');
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
    await t.db.admin.query('DELETE FROM core.webhook_endpoints');
  });
  afterAll(() => t?.close());

  const fair = () => ({ perEndpoint: 4, perOrganization: 10, sending: new Map<string, number>(), sendingByOrg: new Map<string, number>() });

  it('a claim whose snapshot saw the endpoint enabled still claims its message when a PATCH disabling it commits meanwhile (the in-flight window); the next claim takes none', async () => {
    const { body: ep } = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'http://127.0.0.1:9/hook' }).expect(201);
    const id = (await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}/ping`).set(owner.auth).expect(202)).body.id as string;
    const now = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000);
    await t.db.admin.query(`UPDATE core.webhook_messages SET next_attempt_at = $2::timestamptz - interval '1 s' WHERE id = $1`, [id, now]);

    const holder = new pg.Client({ connectionString: t.db.url });
    await holder.connect();
    clients.push(holder);
    await holder.query('SELECT pg_advisory_lock($1, 1)', [GATE]);
    await t.db.admin.query(`CREATE TRIGGER test_claim_gate BEFORE UPDATE ON core.webhook_messages FOR EACH ROW
      WHEN (OLD.id = '${id}'::uuid) EXECUTE FUNCTION core.test_claim_gate()`);

    const lease = new Date(now.getTime() + 90_000);
    const claim = privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, 10, MAX_ATTEMPTS, fair()));
    // the claim has its snapshot (the endpoint enabled) and waits before it updates the message
    await until('the claim waits for the gate', async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%webhook_messages%'`)).rows[0].n >= 1);
    const patched = await t.http.patch(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}`).set(owner.auth).send({ enabled: false }).expect(200);
    expect(patched.body.enabled).toBe(false); // committed
    await holder.query('SELECT pg_advisory_unlock($1, 1)', [GATE]);

    // claimed all the same, with the endpoint's URL: the worker sends it once after the PATCH has answered
    expect(await claim).toEqual({ claimed: [expect.objectContaining({ id, endpoint_id: ep.id, attempts: 1, url: ep.url })], exhausted: [] });
    const state = async () => (await t.db.admin.query('SELECT id, status, attempts, next_attempt_at FROM core.webhook_messages WHERE org_id = $1', [orgId])).rows;
    expect(await state()).toEqual([{ id, status: 'pending', attempts: 1, next_attempt_at: lease }]);
    const { rows: [endpoint] } = await t.db.admin.query('SELECT enabled FROM core.webhook_endpoints WHERE id = $1', [ep.id]);
    expect(endpoint).toEqual({ enabled: false });

    // its lease run out unrecorded (the send failed, say), a claim that sees the disabling takes none of its messages
    const later = new Date(lease.getTime() + 1000);
    expect(await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, later, new Date(later.getTime() + 90_000), 10, MAX_ATTEMPTS, fair())))
      .toEqual({ claimed: [], exhausted: [] });
    expect(await state()).toEqual([{ id, status: 'pending', attempts: 1, next_attempt_at: lease }]);
  });

  it('reads no more of a disabled endpoint\'s backlog than the head of the due order, however long it is, and claims the enabled endpoints\' messages behind it', async () => {
    const { body: ep } = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'http://127.0.0.1:9/many' }).expect(201);
    const now = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000);
    const org = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const endpoint = (i: number) => `00000000-0000-4000-9000-${String(i).padStart(12, '0')}`;
    await t.db.admin.query(`SET session_replication_role = replica`);
    try {
      // 20 organizations with one endpoint each: 1-10 disabled, 11-20 enabled
      await t.db.admin.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'Backlog ' || i, 'business', $1 FROM generate_series(1, 20) i`, [owner.id]);
      await t.db.admin.query(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled, disabled_at)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, e.url, e.secret,
          i > 10, CASE WHEN i <= 10 THEN $3::timestamptz END
        FROM core.webhook_endpoints e CROSS JOIN generate_series(1, 20) i WHERE e.org_id = $1 AND e.id = $2`, [orgId, ep.id, now]);
      // 3,000 due messages on the disabled endpoints, due an hour ago and more; one on each enabled endpoint, due since i s
      await t.db.admin.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at, attempts)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'ping', '{}',
          $1::timestamptz - interval '2 hours' + make_interval(secs => g), 1
        FROM generate_series(1, 10) i CROSS JOIN generate_series(1, 300) g`, [now]);
      await t.db.admin.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at)
        SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'ping', '{}',
          $1::timestamptz - make_interval(secs => i)
        FROM generate_series(11, 20) i`, [now]);
    } finally {
      await t.db.admin.query(`RESET session_replication_role`);
    }
    await t.db.admin.query('DELETE FROM core.webhook_endpoints WHERE id = $1', [ep.id]);
    await t.db.admin.query('ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
    const lease = new Date(now.getTime() + 90_000);

    // the claim's statement, run once under EXPLAIN ANALYZE and rolled back: the messages' rows it reads, in the plan
    // of a large table (index scans; these tables are small enough for a full scan to cost less)
    let statement: { text: string; values: unknown[] } | undefined;
    const capture = { $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
      statement = { text: strings.reduce((text, part, i) => `${text}$${i}${part}`), values };
      return [];
    } } as unknown as Parameters<typeof repo.claimDue>[0];
    await repo.claimDue(capture, now, lease, 4, MAX_ATTEMPTS, fair());
    await t.db.admin.query('BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off');
    const { rows: [{ 'QUERY PLAN': [plan] }] } = await t.db.admin.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement!.text}`, statement!.values);
    await t.db.admin.query('ROLLBACK');
    type Node = { 'Relation Name'?: string; 'Index Name'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number; Plans?: Node[] };
    const read = (n: Node): number => (n['Relation Name'] === 'webhook_messages' && !n['Plans']?.length
      ? ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0)) * (n['Actual Loops'] ?? 0) : 0) + (n.Plans ?? []).reduce((sum, c) => sum + read(c), 0);
    // the head of 8 × 4 due messages (read twice: all of them disabled ones', is there more?), the 10 enabled endpoints'
    // own due messages (in their index, then by primary key), the 4 claimed: not the 3,000 of the backlog
    expect(read(plan.Plan)).toBeLessThanOrEqual(2 * 8 * 4 + 2 * 10 + 3 * 4);

    const claimed = await privileged.run('webhooks.delivery', (db) => repo.claimDue(db, now, lease, 4, MAX_ATTEMPTS, fair()));
    // the oldest due messages of enabled endpoints: those of endpoints 20, 19, 18 and 17 (due 20, 19, 18 and 17 s ago)
    expect(claimed.exhausted).toEqual([]);
    expect(claimed.claimed.map((m) => m.endpoint_id).sort()).toEqual([endpoint(17), endpoint(18), endpoint(19), endpoint(20)]);
    const { rows } = await t.db.admin.query(`SELECT org_id, count(*)::int AS n FROM core.webhook_messages WHERE next_attempt_at = $1 GROUP BY org_id ORDER BY org_id`, [lease]);
    expect(rows).toEqual([17, 18, 19, 20].map((i) => ({ org_id: org(i), n: 1 })));
    // the backlog is left as it was: due, never claimed
    const { rows: [backlog] } = await t.db.admin.query(`SELECT count(*)::int AS n, max(attempts) AS attempts FROM core.webhook_messages
      WHERE status = 'pending' AND next_attempt_at <= $1 AND endpoint_id IN (SELECT id FROM core.webhook_endpoints WHERE NOT enabled)`, [now]);
    expect(backlog).toEqual({ n: 3000, attempts: 1 });
  });
});
