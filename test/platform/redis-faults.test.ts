import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bull';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { enqueue, JobRegistry, type Job } from '../../src/platform/queue/jobs.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser } from '../support/factories.js';
import { ThrowawayRedis, until } from '../support/throwaway-servers.js';

/** METRICS_TOKEN: it opens the checks of /health/ready (an anonymous caller gets its status only) */
const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef0123456789';

const service = { kind: 'service', name: 'redis-faults' } as const;
const meta = { requestId: 'redis-faults' };

/**
 * Redis failing under the job outbox, on a redis-server of this file's own that keeps nothing on disk:
 * the API stays up, no transaction waits on Redis, and every job runs once Redis is back.
 */
describe('the job outbox survives Redis faults', () => {
  let redis: ThrowawayRedis;
  let t: TestApp;
  let orgId: string;
  let relay: OutboxRelay;
  let queue: Queue;
  /** runs per outbox id, of the topics these tests register */
  const runs = new Map<string, number>();
  const count = async (job: Job) => void runs.set(job.id, (runs.get(job.id) ?? 0) + 1);

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    t = await createTestApp({
      METRICS_TOKEN,
      REDIS_URL: redis.url,
      // PostgreSQL ends a transaction idle this long: one the relay held while Redis is away would not outlive the test
      // (long enough for the app's own short transactions on a busy CI machine: 1.5 s and 2.5 s each failed a full run)
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '5000',
      // every pass re-relays what has not been confirmed yet (Bull's job id keeps that to one job)
      JOBS_CLAIM_TIMEOUT_MS: '1',
      JOBS_ENQUEUE_TIMEOUT_MS: '500',
    });
    relay = t.app.get(OutboxRelay);
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    const registry = t.app.get(JobRegistry);
    registry.register('test.outage', count);
    registry.register('test.restart', count);
    const userId = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    orgId = (await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Redis Faults', $1) RETURNING id`, [userId])).rows[0].id;
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [orgId, userId]);
  });
  afterAll(async () => {
    if (redis && !redis.running) await redis.start(); // a test that failed midway may leave it down
    await t?.close();
    await redis?.kill();
  });

  const enqueueJob = (topic: string, n: number) => t.app.get(DatabaseService).tenant(service, orgId, meta, (tx) => enqueue(tx, topic, { n }));
  const rows = async (topic: string) =>
    (await t.db.admin.query<{ id: string; processed_at: Date | null; last_error: string | null }>(
      'SELECT id::text, processed_at, last_error FROM core.outbox WHERE topic = $1 ORDER BY id', [topic])).rows;
  const redisReady = () => until('Bull is connected to Redis again', () => queue.client.status === 'ready', 300);

  it('Redis down: the API stays up, the relay holds no transaction, then every job runs exactly once', async () => {
    // while Redis is away, every connection of the queue tries again at most 2 s apart (Bull's own schedule waits up to
    // 20 s: the queue stayed away that long after Redis was back from a longer outage)
    const clients = (queue as unknown as { clients: { options: { retryStrategy?: (attempts: number) => number | void | null } }[] }).clients;
    expect(clients.length).toBeGreaterThan(0);
    for (const c of clients) expect([1, 10, 100].map((n) => c.options.retryStrategy?.(n))).toEqual([50, 500, 2000]);
    await redis.kill();
    for (let n = 1; n <= 5; n++) await enqueueJob('test.outage', n);
    // two relay passes, each refused by the queue: the first hands the jobs over in one addBulk, the second one by one
    // (jobs relayed again); the backoff between them moved instead of waited for
    for (let pass = 1; pass <= 2; pass++) {
      await relay.drain();
      await t.http.get('/health').expect(200);
      await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'test.outage'`);
    }
    const attempts = await t.db.admin.query<{ attempts: number }>(`SELECT attempts FROM core.outbox WHERE topic = 'test.outage' ORDER BY id`);
    expect(attempts.rows.map((r) => r.attempts)).toEqual([2, 2, 2, 2, 2]);
    // ready all the same: Redis is reported, it decides only when the deployment says it needs it (READINESS_REQUIRES_REDIS)
    const ready = await t.http.get('/health/ready').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200);
    expect(ready.body).toMatchObject({ status: 'ok', checks: { postgres: 'up', redis: 'down', rls: 'up' } });
    const { observability } = t.config; // the object the application was built with (APP_CONFIG)
    observability.readinessRequiresRedis = true;
    try {
      expect((await t.http.get('/health/ready').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(503)).body).toMatchObject({ status: 'unavailable', checks: { postgres: 'up', redis: 'down', rls: 'up' } });
      // anonymous: the same 503, its status only
      expect((await t.http.get('/health/ready').expect(503)).body).toEqual({ status: 'unavailable' });
    } finally {
      observability.readinessRequiresRedis = false;
    }
    // no session of the app sits in a transaction, and requests are served meanwhile
    const idle = await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`);
    expect(idle.rows[0].n).toBe(0);
    await registerUser(t, 'during-outage');
    const waiting = await rows('test.outage');
    expect(waiting).toHaveLength(5);
    for (const row of waiting) expect(row).toMatchObject({ processed_at: null, last_error: 'the job queue is unavailable; retry later' });
    expect(runs.size).toBe(0);

    await redis.start();
    await redisReady();
    // the backoff has passed (moved here instead of waited for)
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'test.outage'`);
    await relay.drain();
    await until('every job has run and is recorded done', async () => (await rows('test.outage')).every((r) => r.processed_at !== null));
    await relay.drain(); // nothing left to relay: no second run
    await queue.whenCurrentJobsFinished();
    expect([...runs.entries()].filter(([id]) => waiting.some((w) => w.id === id)).map(([, n]) => n)).toEqual([1, 1, 1, 1, 1]);
    expect((await rows('test.outage')).map((r) => r.last_error)).toEqual([null, null, null, null, null]);
  });

  it('a Redis restart between queueing and running loses the Bull job, yet the job runs', async () => {
    if (!redis.running) await redis.start();
    await redisReady();
    // the first test's registration queued its verification e-mail; with claims of 1 ms a pass would hand it over again
    // while it runs, so it is settled (its backoff, if any, moved instead of waited for) before this test counts what one
    // pass hands over
    await t.db.admin.query('UPDATE core.outbox SET available_at = now() WHERE processed_at IS NULL');
    await until('no earlier job is still open', async () => {
      await relay.drain();
      return (await t.db.admin.query('SELECT 1 FROM core.outbox WHERE processed_at IS NULL')).rowCount === 0;
    });
    await queue.pause(true); // this process's worker takes nothing: the job stays queued in Redis
    await enqueueJob('test.restart', 1);
    expect(await relay.drain()).toBe(1);
    const [row] = await rows('test.restart');
    expect(await (await queue.getJob(`outbox-${row.id}`))?.getState()).toBe('waiting');
    expect(row.processed_at).toBeNull(); // queued is not done

    await redis.kill(); // without persistence: the queued job is gone
    await redis.start();
    await redisReady();
    expect(await queue.getJob(`outbox-${row.id}`)).toBeNull();
    await queue.resume(true);
    // its claim has run out (JOBS_CLAIM_TIMEOUT_MS): the next pass queues it again
    await relay.drain();
    await until('the job has run and is recorded done', async () => (await rows('test.restart'))[0].processed_at !== null);
    expect(runs.get(row.id)).toBe(1);
  });
});
