import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { enqueue, JobRegistry, type Job } from '../../src/platform/queue/jobs.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { claimDue, recordFailure } from '../../src/platform/queue/outbox.repository.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { Metrics } from '../../src/platform/observability/metrics.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { bounded, until } from '../support/throwaway-servers.js';

const service = { kind: 'service', name: 'outbox-test' } as const;
const meta = { requestId: 'outbox-test' };

/** An organization made through the owner connection (setup only). */
async function makeOrg(t: TestApp): Promise<string> {
  const userId = randomUUID();
  await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
  const { rows } = await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Outbox Org', $1) RETURNING id`, [userId]);
  await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [rows[0].id, userId]);
  return rows[0].id;
}

/** Writes a job in a tenant transaction (as a service acting for the organization), like a module does. */
function enqueueCommitted(t: TestApp, orgId: string, topic: string, payload: Record<string, unknown>) {
  return t.app.get(DatabaseService).tenant(service, orgId, meta, (tx) => enqueue(tx, topic, payload));
}

const outboxRows = async (t: TestApp, topic: string) =>
  (await t.db.admin.query('SELECT id, attempts, last_error, processed_at, available_at > now() AS later FROM core.outbox WHERE topic = $1', [topic])).rows;

/** The failed-jobs counter of `topic`. */
const failedJobs = async (t: TestApp, topic: string) =>
  (await t.app.get(Metrics).jobsFailed.get()).values.find((v) => v.labels.topic === topic)?.value ?? 0;

/** A gauge's value after a scrape (its collectors run first). */
async function scraped(t: TestApp, gauge: 'outboxLag' | 'outboxDepth'): Promise<number> {
  const metrics = t.app.get(Metrics);
  await metrics.scrape();
  return (await metrics[gauge].get()).values[0].value;
}

/** Makes the topic's rows due `minutes` ago (moved here instead of waiting). */
const dueAgo = (t: TestApp, topic: string, minutes: number) =>
  t.db.admin.query(`UPDATE core.outbox SET available_at = now() - make_interval(mins => $2) WHERE topic = $1`, [topic, minutes]);

describe('job outbox, in-process (no REDIS_URL)', () => {
  let t: TestApp;
  let orgId: string;
  let relay: OutboxRelay;
  let registry: JobRegistry;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined });
    orgId = await makeOrg(t);
    relay = t.app.get(OutboxRelay);
    registry = t.app.get(JobRegistry);
  });
  afterAll(() => t.close());

  it('never runs a job whose transaction rolled back', async () => {
    const runs: Job[] = [];
    registry.register('test.rolled_back', async (job) => void runs.push(job));
    await expect(t.app.get(DatabaseService).tenant(service, orgId, meta, async (tx) => {
      await enqueue(tx, 'test.rolled_back', { n: 1 });
      throw new Error('the business write failed');
    })).rejects.toThrow('the business write failed');
    await relay.drain();
    expect(runs).toEqual([]);
    expect(await outboxRows(t, 'test.rolled_back')).toEqual([]);
  });

  it('runs a committed job once, with its organization and payload', async () => {
    const runs: Job[] = [];
    registry.register('test.committed', async (job) => void runs.push(job));
    await enqueueCommitted(t, orgId, 'test.committed', { invoice: 'INV-1' });
    expect(await relay.drain()).toBeGreaterThanOrEqual(1);
    await relay.drain();
    expect(runs).toEqual([expect.objectContaining({ orgId, topic: 'test.committed', payload: { invoice: 'INV-1' } })]);
    const [row] = await outboxRows(t, 'test.committed');
    expect(row).toMatchObject({ attempts: 1, last_error: null });
    expect(row.processed_at).not.toBeNull();
  });

  it('retries a failing handler later (backoff), then completes it', async () => {
    let calls = 0;
    registry.register('test.flaky', async () => {
      calls += 1;
      if (calls === 1) throw new Error('downstream unavailable');
    });
    await enqueueCommitted(t, orgId, 'test.flaky', {});
    await relay.drain();
    expect(calls).toBe(1);
    let [row] = await outboxRows(t, 'test.flaky');
    expect(row).toMatchObject({ attempts: 1, last_error: 'downstream unavailable', processed_at: null, later: true });
    // backed off: not retried by an immediate drain
    await relay.drain();
    expect(calls).toBe(1);
    // once the backoff has passed (moved here instead of waiting), the next drain retries it
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'test.flaky'`);
    await relay.drain();
    expect(calls).toBe(2);
    [row] = await outboxRows(t, 'test.flaky');
    expect(row).toMatchObject({ attempts: 2, last_error: null });
    expect(row.processed_at).not.toBeNull();
  });

  it('runs privileged work as service_role, on its path, without JIT (a claim\'s plan compiled for seconds at volume)', async () => {
    const [settings] = await t.app.get(PrivilegedDatabase).run('jobs.relay', (db) => db.$queryRaw<Record<string, string>[]>`
      SELECT current_user AS role, current_setting('omnizen.privileged_path') AS path, current_setting('jit') AS jit`);
    expect(settings).toEqual({ role: 'service_role', path: 'jobs.relay', jit: 'off' });
  });

  it('a failure recorded late by an earlier claim leaves the row\'s later claim alone', async () => {
    await enqueueCommitted(t, orgId, 'test.reclaimed', {});
    const privileged = t.app.get(PrivilegedDatabase);
    const claim = async () => (await privileged.run('jobs.relay', (db) => claimDue(db, 100, 300))).filter((j) => j.topic === 'test.reclaimed');
    const [first] = await claim();
    // the first claim ran out (moved here instead of waiting): another relay claims the row
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'test.reclaimed'`);
    const [second] = await claim();
    expect([first.attempts, second.attempts]).toEqual([1, 2]);
    await privileged.run('jobs.relay', (db) => recordFailure(db, first, 'the first claim failed late', 1));
    expect((await outboxRows(t, 'test.reclaimed'))[0]).toMatchObject({ attempts: 2, last_error: null, later: true, processed_at: null });
    await privileged.run('jobs.relay', (db) => recordFailure(db, second, 'the second claim failed', 1));
    expect((await outboxRows(t, 'test.reclaimed'))[0]).toMatchObject({ attempts: 2, last_error: 'the second claim failed', processed_at: null });
  });

  it('counts a job that keeps failing, and its lag grows from when it first became due (claims and backoffs move available_at)', async () => {
    registry.register('test.always_failing', async () => {
      throw new Error('downstream refuses it');
    });
    await enqueueCommitted(t, orgId, 'test.always_failing', {});
    await dueAgo(t, 'test.always_failing', 10);
    const lags: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      await relay.drain();
      expect(await failedJobs(t, 'test.always_failing')).toBe(attempt);
      expect((await outboxRows(t, 'test.always_failing'))[0]).toMatchObject({ attempts: attempt, last_error: 'downstream refuses it', processed_at: null, later: true });
      lags.push(await scraped(t, 'outboxLag'));
      // its backoff has passed (moved here instead of waiting)
      await dueAgo(t, 'test.always_failing', 0);
    }
    // due for ten minutes and more, though each failure made it due again later
    expect(lags[0]).toBeGreaterThanOrEqual(600);
    expect(lags[0]).toBeLessThan(900);
    expect(lags[2]).toBeGreaterThanOrEqual(lags[1]);
    expect(lags[1]).toBeGreaterThanOrEqual(lags[0]);
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = now() WHERE topic = 'test.always_failing'`);
  });

  it('answers a scrape while the outbox cannot be read, its gauges left as they were', async () => {
    const depth = await scraped(t, 'outboxDepth');
    await enqueueCommitted(t, orgId, 'test.scrape_locked', {});
    const locker = await t.db.admin.connect();
    const expiries: (() => void)[] = [];
    const timer = jest.spyOn(t.app.get(CallTimer), 'start').mockImplementation((_ms, expire) => {
      expiries.push(expire);
      return () => undefined;
    });
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE core.outbox IN ACCESS EXCLUSIVE MODE');
      const scraping = t.app.get(Metrics).scrape();
      // the collector's statement waits for the lock; its time limit runs out (the injected timer fires)
      await until('the scrape waits for the outbox lock', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'relation'`)).rows[0].n >= 1);
      for (const expire of expiries) expire();
      // well before the lock timeout (DATABASE_LOCK_TIMEOUT_MS, 5 s) would end the statement
      await bounded(scraping, 2_000, () => '/metrics did not answer while the outbox was locked');
      expect((await t.app.get(Metrics).outboxDepth.get()).values[0].value).toBe(depth);
    } finally {
      timer.mockRestore();
      await locker.query('ROLLBACK');
      locker.release();
    }
    expect(await scraped(t, 'outboxDepth')).toBe(depth + 1);
  });
});

(hasRedis ? describe : describe.skip)('job outbox through Bull (REDIS_URL set)', () => {
  let t: TestApp;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: process.env.REDIS_URL });
    orgId = await makeOrg(t);
  });
  afterAll(() => t?.close());

  it('runs a relayed job exactly once even when it is relayed twice', async () => {
    const relay = t.app.get(OutboxRelay);
    const queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    const runs: Job[] = [];
    t.app.get(JobRegistry).register('test.bull', async (job) => void runs.push(job));
    await enqueueCommitted(t, orgId, 'test.bull', { n: 1 });
    const first = completion(queue);
    await relay.drain();
    await first;
    expect((await outboxRows(t, 'test.bull'))[0].processed_at).not.toBeNull();
    // as if the completion had not been recorded and the claim had run out: it is relayed again
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = NULL, available_at = now() WHERE topic = 'test.bull'`);
    expect(await relay.drain()).toBe(1);
    // not queued again: Bull still holds the one completed job and nothing else (queue.whenCurrentJobsFinished() is not
    // used to wait: it drops the worker's blocking connection, and the worker then pauses for JOBS_WORKER_RETRY_DELAY_MS)
    const counts = await queue.getJobCounts();
    expect(counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, failed: 0, completed: 1 });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ orgId, topic: 'test.bull', payload: { n: 1 } });
    // Bull had completed it: the relay recorded that instead of queueing it again
    const [row] = await outboxRows(t, 'test.bull');
    expect(row).toMatchObject({ attempts: 2, last_error: null });
    expect(row.processed_at).not.toBeNull();
  });

  it('counts a job failing in the worker, logs it without its payload, keeps its error, and its lag grows', async () => {
    const relay = t.app.get(OutboxRelay);
    const queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    t.app.get(JobRegistry).register('test.bull_failing', async () => {
      throw new Error('downstream refuses it');
    });
    await enqueueCommitted(t, orgId, 'test.bull_failing', { email: 'person@example.test' });
    await dueAgo(t, 'test.bull_failing', 10);
    const warn = jest.spyOn(Logger.prototype, 'warn');
    try {
      const failed = failure(queue);
      await relay.drain();
      const job = await failed;
      // the worker recorded the failure before Bull saw it; Bull retries it after its backoff (removed here: not waited for)
      await job.remove();
      const [row] = await outboxRows(t, 'test.bull_failing');
      expect(row).toMatchObject({ attempts: 1, last_error: 'downstream refuses it', processed_at: null });
      expect(await failedJobs(t, 'test.bull_failing')).toBe(1);
      const logged = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.includes('test.bull_failing'));
      expect(logged).toEqual([`job ${row.id} (test.bull_failing) failed (attempt 1 of 5 in the jobs queue): downstream refuses it; the jobs queue retries it`]);
      // queued (its claim moved available_at on), yet due for ten minutes
      expect(await scraped(t, 'outboxLag')).toBeGreaterThanOrEqual(600);
    } finally {
      warn.mockRestore();
      await t.db.admin.query(`UPDATE core.outbox SET processed_at = now() WHERE topic = 'test.bull_failing'`);
    }
  });

  it('counts a job done when its handler has finished, not when it was queued', async () => {
    const relay = t.app.get(OutboxRelay);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    t.app.get(JobRegistry).register('test.slow', async () => {
      started();
      await released;
    });
    await enqueueCommitted(t, orgId, 'test.slow', {});
    await relay.drain();
    await running;
    expect((await outboxRows(t, 'test.slow'))[0].processed_at).toBeNull();
    expect(await relay.drain()).toBe(0); // claimed: not relayed again while it runs
    const done = completion(t.app.get<Queue>(JOBS_QUEUE_TOKEN));
    release();
    await done;
    expect((await outboxRows(t, 'test.slow'))[0].processed_at).not.toBeNull();
  });
});

describe('job outbox at shutdown (in-process)', () => {
  it('finishes the job under way, claims no further batch, and gives back the claimed jobs it did not start', async () => {
    const t = await createTestApp({ REDIS_URL: undefined, JOBS_RELAY_INTERVAL_MS: '0', JOBS_RELAY_BATCH_SIZE: '3' });
    try {
      const orgId = await makeOrg(t);
      const ran: number[] = [];
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      t.app.get(JobRegistry).register('test.shutdown', async (job) => {
        ran.push(job.payload.n as number);
        if (job.payload.n === 1) {
          started();
          await released;
        }
      });
      for (let n = 1; n <= 5; n++) await enqueueCommitted(t, orgId, 'test.shutdown', { n });
      const pass = t.app.get(OutboxRelay).drain();
      await running; // the first batch (jobs 1-3) is claimed; job 1 runs
      const closing = t.app.close();
      release();
      await closing;
      await pass;
      expect(ran).toEqual([1]);
      const { rows } = await t.db.admin.query(`SELECT payload ->> 'n' AS n, attempts, processed_at IS NOT NULL AS done, available_at <= now() AS due
        FROM core.outbox WHERE topic = 'test.shutdown' ORDER BY id`);
      expect(rows).toEqual([
        { n: '1', attempts: 1, done: true, due: expect.any(Boolean) },
        // claimed, not started: due again at once, the claim not counted
        { n: '2', attempts: 0, done: false, due: true },
        { n: '3', attempts: 0, done: false, due: true },
        // never claimed
        { n: '4', attempts: 0, done: false, due: true },
        { n: '5', attempts: 0, done: false, due: true },
      ]);
    } finally {
      await t.db.drop();
    }
  });
});

/** Bull's next 'failed' event: the job whose attempt failed. */
function failure(queue: Queue): Promise<import('bull').Job> {
  return new Promise((resolve) => queue.once('failed', (job) => resolve(job)));
}

/** Bull's next 'completed' event: the worker has run the handler and recorded the outbox row as done. */
function completion(queue: Queue): Promise<void> {
  return new Promise((resolve, reject) => {
    queue.once('completed', () => resolve());
    queue.once('failed', (_job, err) => reject(err));
  });
}
