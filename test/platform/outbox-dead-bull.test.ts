import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { Job as BullJob, Queue } from 'bull';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { enqueue, JobRegistry } from '../../src/platform/queue/jobs.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';

const service = { kind: 'service', name: 'outbox-dead-bull-test' } as const;
const meta = { requestId: 'outbox-dead-bull-test' };

/**
 * A job's cap counts tries (core.outbox.tries: its handler started in Bull's worker), not claims: a claim of a job Bull
 * still holds (running, waiting) and a hand-off Redis refused are no try. A dead job leaves nothing in Redis (its payload).
 * Claims running out are driven by making the row due (available_at moved to now), and Bull's own backoff between its
 * retries by promoting the delayed job: nothing waits on the wall clock.
 */
(hasRedis ? describe : describe.skip)('dead jobs of the outbox through Bull (REDIS_URL set)', () => {
  let t: TestApp;
  let orgId: string;
  let relay: OutboxRelay;
  let registry: JobRegistry;
  let queue: Queue;
  /** the Bull jobs whose failures are promoted at once (Bull's backoff between its retries, not waited for) */
  const hurried = new Set<string>();

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: process.env.REDIS_URL });
    const userId = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    orgId = (await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Dead Bull Jobs Org', $1) RETURNING id`, [userId])).rows[0].id;
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [orgId, userId]);
    relay = t.app.get(OutboxRelay);
    registry = t.app.get(JobRegistry);
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    queue.on('failed', (job: BullJob) => {
      if (!hurried.has(String(job.id))) return;
      void job.isDelayed().then((delayed) => (delayed ? job.promote() : undefined)).catch(() => undefined);
    });
  });
  afterAll(() => t?.close());

  const enqueueCommitted = async (topic: string, payload: Record<string, unknown>) => {
    await t.app.get(DatabaseService).tenant(service, orgId, meta, (tx) => enqueue(tx, topic, payload));
    const id = String((await t.db.admin.query(`SELECT id FROM core.outbox WHERE topic = $1`, [topic])).rows[0].id);
    hurried.add(`outbox-${id}`);
    return id;
  };
  const row = async (topic: string) => (await t.db.admin.query(
    `SELECT attempts, tries, last_error, payload, processed_at IS NOT NULL AS processed, dead_at IS NOT NULL AS dead, available_at > now() AS later
     FROM core.outbox WHERE topic = $1`, [topic])).rows[0];
  /** its claim ran out, or its backoff passed (moved here instead of waiting) */
  const due = (topic: string) => t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND processed_at IS NULL`, [topic]);
  /**
   * The `n`-th next time this process's worker has finished a try of Bull job `jobId` (failed), or its completion, whichever
   * comes first: what it was (a job dead too early completes, and the test says so instead of waiting for ever).
   */
  const nth = (event: 'failed' | 'completed', jobId: string, n = 1) => new Promise<'failed' | 'completed'>((resolve) => {
    let seen = 0;
    const settle = (what: 'failed' | 'completed') => {
      queue.off('failed', onFailed);
      queue.off('completed', onCompleted);
      resolve(what);
    };
    const onFailed = (job: BullJob) => {
      if (String(job.id) === jobId && (event === 'completed' || ++seen >= n)) settle('failed');
    };
    const onCompleted = (job: BullJob) => {
      if (String(job.id) === jobId) settle('completed');
    };
    queue.on('failed', onFailed);
    queue.on('completed', onCompleted);
  });
  /** what Redis holds of the Bull job: its state, and whether its hash (with the payload) is still there */
  const inRedis = async (jobId: string) => {
    const job = await queue.getJob(jobId);
    return { state: job ? await job.getState() : null, hash: await queue.client.exists(queue.toKey(jobId)) };
  };

  it('counts tries, not claims: a long run claimed again and again, then hand-offs Redis refused, use none of its cap; its last try makes it dead, and Redis keeps nothing of it', async () => {
    let calls = 0;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let finish!: () => void;
    const finishing = new Promise<void>((resolve) => (finish = resolve));
    registry.register('test.long_export', async () => {
      calls += 1;
      if (calls === 1) {
        started();
        await finishing;
      }
      throw new Error('the export failed');
    }, { maxAttempts: 7 });
    const id = await enqueueCommitted('test.long_export', { userId: 'u-1' });
    const jobId = `outbox-${id}`;
    const fifth = nth('failed', jobId, 5);
    await relay.drain();
    try {
      await running;
      // the first try runs past its claim, eight claims long: each time its claim runs out the relay finds Bull running it
      for (let claim = 2; claim <= 9; claim++) {
        await due('test.long_export');
        expect(await relay.drain()).toBe(1);
      }
      expect(await row('test.long_export')).toMatchObject({ attempts: 9, tries: 1, processed: false, dead: false });
      expect((await inRedis(jobId)).state).toBe('active');
    } finally {
      // it fails, and so do Bull's four retries: five tries of seven, backed off as the relay does (16 s after the fifth)
      finish();
    }
    expect(await fifth).toBe('failed');
    expect(calls).toBe(5);
    expect(await row('test.long_export')).toMatchObject({
      attempts: 9, tries: 5, last_error: 'the export failed', processed: false, dead: false, later: true,
    });
    expect(await inRedis(jobId)).toEqual({ state: 'failed', hash: 1 });

    // Redis refuses three hand-offs: claims (attempts past the cap), no tries, no death; the row keeps the job's own last
    // error (the hand-off's is only logged), the one it is given up dead with
    const getJob = jest.spyOn(queue, 'getJob').mockRejectedValue(new Error('Redis went away'));
    try {
      for (let claim = 10; claim <= 12; claim++) {
        await due('test.long_export');
        await relay.drain();
        expect(await row('test.long_export')).toMatchObject({
          attempts: claim, tries: 5, last_error: 'the export failed', processed: false, dead: false, later: true,
        });
      }
    } finally {
      getJob.mockRestore();
    }
    expect(calls).toBe(5);

    // Redis is back: Bull's failed job is retried, a sixth try
    const failed = nth('failed', jobId);
    await due('test.long_export');
    await relay.drain();
    // not given up: tried (its tries, not its claims, are compared with its cap)
    expect(await row('test.long_export')).toMatchObject({ attempts: 13, dead: false });
    expect(await failed).toBe('failed');
    expect(calls).toBe(6);
    expect(await row('test.long_export')).toMatchObject({ attempts: 13, tries: 6, last_error: 'the export failed', processed: false, dead: false, later: true });

    // the seventh and last try fails: dead, and the Bull job is completed and removed, not left failed with its payload
    const completed = nth('completed', jobId);
    await due('test.long_export');
    await relay.drain();
    expect(await completed).toBe('completed');
    expect(calls).toBe(7);
    expect(await row('test.long_export')).toMatchObject({
      attempts: 14, tries: 7, last_error: 'the export failed', payload: { userId: 'u-1' }, processed: true, dead: true,
    });
    expect(await inRedis(jobId)).toEqual({ state: null, hash: 0 });
    // never relayed again
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() - interval '30 days' WHERE topic = 'test.long_export'`);
    expect(await relay.drain()).toBe(0);
    expect(calls).toBe(7);
  });

  it('gives up, untried, a job Bull holds as failed whose last try\'s failure was not recorded dead, and removes it from Redis', async () => {
    let calls = 0;
    registry.register('test.refused_unrecorded', async () => {
      calls += 1;
      throw new Error('refused');
    }, { maxAttempts: 7 });
    const id = await enqueueCommitted('test.refused_unrecorded', { distinctIds: ['d-1'] });
    const jobId = `outbox-${id}`;
    const fifth = nth('failed', jobId, 5);
    await relay.drain();
    expect(await fifth).toBe('failed');
    expect(await inRedis(jobId)).toEqual({ state: 'failed', hash: 1 });
    // as if two more tries had run and the last one's failure had not been recorded (the database did not answer the worker)
    await t.db.admin.query(`UPDATE core.outbox SET tries = 7, available_at = now() WHERE topic = 'test.refused_unrecorded'`);
    await relay.drain();
    expect(calls).toBe(5);
    expect(await row('test.refused_unrecorded')).toMatchObject({
      attempts: 2, tries: 7, last_error: 'refused', payload: { distinctIds: ['d-1'] }, processed: true, dead: true,
    });
    expect(await inRedis(jobId)).toEqual({ state: null, hash: 0 });
  });

  it('never gives up a last try that succeeded in the worker but whose done the database did not record: Bull runs it again, then it is done', async () => {
    let calls = 0;
    registry.register('test.worker_done_unrecorded', async () => void (calls += 1), { maxAttempts: 1 });
    const id = await enqueueCommitted('test.worker_done_unrecorded', { n: 1 });
    const jobId = `outbox-${id}`;
    // the first (and last) try succeeds; recording it done fails (a database blip)
    const markDone = jest.spyOn(relay, 'markDone').mockRejectedValueOnce(new Error('the database did not answer'));
    // its first run fails in Bull (the done not recorded), then it completes
    const failed = nth('failed', jobId);
    const completed = new Promise<void>((resolve) => {
      const onCompleted = (job: BullJob) => {
        if (String(job.id) !== jobId) return;
        queue.off('completed', onCompleted);
        resolve();
      };
      queue.on('completed', onCompleted);
    });
    try {
      await relay.drain();
      expect(await failed).toBe('failed');
      await completed;
    } finally {
      markDone.mockRestore();
    }
    // Bull ran it again (idempotent), the second time recorded done: never dead, no error kept
    expect(calls).toBe(2);
    expect(await row('test.worker_done_unrecorded')).toMatchObject({ tries: 2, last_error: null, processed: true, dead: false });
    expect((await inRedis(jobId)).state).toBe('completed');
  });

  it('gives up, untried, a job past its last try that Bull no longer holds (Redis lost it)', async () => {
    let calls = 0;
    registry.register('test.lost_last_try', async () => void (calls += 1), { maxAttempts: 3 });
    const id = await enqueueCommitted('test.lost_last_try', {});
    // claimed and tried three times before; Redis lost the job of the last try
    await t.db.admin.query(`UPDATE core.outbox SET attempts = 3, tries = 3, last_error = 'refused before' WHERE topic = 'test.lost_last_try'`);
    expect(await relay.drain()).toBe(1);
    expect(calls).toBe(0);
    expect(await row('test.lost_last_try')).toMatchObject({ attempts: 4, tries: 3, last_error: 'refused before', processed: true, dead: true });
    expect(await inRedis(`outbox-${id}`)).toEqual({ state: null, hash: 0 });
  });
});
