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
});
