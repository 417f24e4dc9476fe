import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { enqueue, JobRegistry, type Job } from '../../src/platform/queue/jobs.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';

const CLAIM_MS = 60_000;
const service = { kind: 'service', name: 'outbox-claim-test' } as const;
const meta = { requestId: 'outbox-claim-test' };

/**
 * Two instances relaying one outbox in-process (no Redis): a job that runs longer than its claim renews the claim
 * while it runs, so the other instance does not claim and run it too. Time moves on A's clock and, for the rows, in
 * the database (their claims moved back instead of waiting); A's renewals tick when the test says so.
 */
describe('job outbox, in-process: a job longer than its claim keeps it', () => {
  let a: TestApp;
  let b: NestFastifyApplication;
  const clockA = new ManualClock();
  let orgId: string;
  /** A's renewal timer: the ticks it was given (run by the test), their periods, how many were stopped */
  const ticks: (() => Promise<void>)[] = [];
  const periods: number[] = [];
  let stopped = 0;

  beforeAll(async () => {
    a = await createTestApp({ REDIS_URL: undefined, JOBS_CLAIM_TIMEOUT_MS: String(CLAIM_MS), JOBS_RELAY_INTERVAL_MS: '0' }, { clock: clockA });
    // the second instance: the same databases and settings, the real clock and timer
    b = (await startApp(a.config)).app;
    a.app.get(CallTimer).every = (ms, tick) => {
      periods.push(ms);
      ticks.push(tick);
      return () => void stopped++;
    };
    const userId = randomUUID();
    await a.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    const { rows } = await a.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Claim Org', $1) RETURNING id`, [userId]);
    orgId = rows[0].id;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const row = async (topic: string) => (await a.db.admin.query(
    `SELECT attempts, processed_at IS NOT NULL AS done, available_at > now() AS claimed, available_at FROM core.outbox WHERE topic = $1`, [topic])).rows[0];
  /** `ms` pass: on A's clock, and for the rows of `topic` in the database (their claims come that much closer). */
  const pass = async (topic: string, ms: number) => {
    clockA.advance(ms);
    await a.db.admin.query(`UPDATE core.outbox SET available_at = available_at - make_interval(secs => $2) WHERE topic = $1`, [topic, ms / 1000]);
  };
  /** A job on `topic`, held on A until released; B records the runs it makes (and fails them if `bFails`). */
  const heldJob = async (topic: string, bFails = false) => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const ranByA: Job[] = [];
    const ranByB: Job[] = [];
    a.app.get(JobRegistry).register(topic, async (job) => {
      ranByA.push(job);
      started();
      await released;
    });
    b.get(JobRegistry).register(topic, async (job) => {
      ranByB.push(job);
      if (bFails) throw new Error('B failed it');
    });
    await a.app.get(DatabaseService).tenant(service, orgId, meta, (tx) => enqueue(tx, topic, { n: 1 }));
    ticks.length = 0;
    periods.length = 0;
    stopped = 0;
    const drainA = a.app.get(OutboxRelay).drain();
    await running;
    return { release, drainA, ranByA, ranByB };
  };

  it('renews the claim of the job it runs: past the first claim, the other instance does not run it', async () => {
    const { release, drainA, ranByA, ranByB } = await heldJob('test.long');
    try {
      // 80 s pass, a renewal every 20 s: the first claim (60 s) ran out long ago
      for (let i = 0; i < 4; i++) {
        await pass('test.long', CLAIM_MS / 3);
        for (const tick of ticks) await tick();
      }
      await b.get(OutboxRelay).drain();
      expect(ranByB).toEqual([]);
      expect(await row('test.long')).toMatchObject({ attempts: 1, done: false, claimed: true });
    } finally {
      release();
      await drainA;
    }
    // one renewal timer for the job, every third of the claim, stopped when it ended
    expect(periods).toEqual([CLAIM_MS / 3]);
    expect(stopped).toBe(1);
    expect(ranByA).toEqual([expect.objectContaining({ orgId, topic: 'test.long', payload: { n: 1 } })]);
    expect(await row('test.long')).toMatchObject({ attempts: 1, done: true });
    // done: nothing left for B
    await pass('test.long', 2 * CLAIM_MS);
    await b.get(OutboxRelay).drain();
    expect(ranByB).toEqual([]);
  });

  it('renews only its own claim: once another instance has claimed the row, the renewals stop and leave it alone', async () => {
    const { release, drainA, ranByA, ranByB } = await heldJob('test.stalled', true);
    try {
      // A stalled past its claim without a renewal (the database did not answer): B claims the row, runs it, and it
      // fails there (due again after B's backoff, under B's claim: attempts 2)
      await pass('test.stalled', CLAIM_MS + 1);
      await b.get(OutboxRelay).drain();
      expect(ranByB).toHaveLength(1);
      const afterB = await row('test.stalled');
      expect(afterB).toMatchObject({ attempts: 2, done: false });
      for (const tick of ticks) await tick();
      // the renewal found the claim not A's: B's backoff stands, and A renews no more
      expect(await row('test.stalled')).toEqual(afterB);
      expect(stopped).toBe(1);
    } finally {
      release();
      await drainA;
    }
    expect(ranByA).toHaveLength(1);
    // A's outcome (done) is recorded as before: the row is not run again
    expect(await row('test.stalled')).toMatchObject({ attempts: 2, done: true });
  });
});
