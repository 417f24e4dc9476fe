import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { getQueueToken } from '@nestjs/bull';
import type { Job as BullJob, Queue } from 'bull';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { PrivilegedDatabase } from '../database/privileged.service.js';
import { retryableError } from '../errors/database-errors.js';
import { jobPayload, JobRegistry, retryDelaySeconds, type Job } from './jobs.js';
import { backlog, claimDue, countTries, existingJobs, markDead, markDone, pendingPayload, recordError, recordFailure, releaseClaims, renewClaim, startTry, type ClaimedJob } from './outbox.repository.js';
import { Metrics } from '../observability/metrics.js';
import { Coalescer } from './coalesce.js';
import { CallTimer, Clock, withTimeout as within } from '../clock/clock.js';

export const JOBS_QUEUE = 'jobs';
export const JOBS_QUEUE_TOKEN = getQueueToken(JOBS_QUEUE);

/**
 * Options of every job relayed to Bull: the Bull job id is the outbox id, so a row relayed twice is queued once. Bull's
 * backoff (1, 2, 4, 8 s) is the relay's first four (retryDelaySeconds). A failed job stays in Bull's failed set (no
 * removeOnFail): the relay retries it there once its outbox backoff has passed (retry() gives it one more try, as a relay
 * in-process), where removing it would have the relay queue it anew, five tries a relay. A dead job's Bull copy, the one
 * that would keep its payload in Redis, is removed (JobsProcessor, handToBull); so is the copy of a job whose outbox row
 * is gone (an erasure: removeFromQueue; otherwise the retention run's sweepQueue). A personal-data topic's copy holds no
 * payload (bullData); one an older relay queued with it has it blanked (blankPersonalCopy).
 */
const BULL_JOB_OPTIONS = { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 1000 } as const;

/** A connection of Bull's (its own ioredis 5) with the queues ioredis keeps commands in while it is not connected. */
interface BullConnection {
  status: string;
  connect(): Promise<void>;
  /** the commands sent on a connection since lost, sent again only once the client is ready again */
  prevCommandQueue?: { shift(): { command: { reject(err: Error): void } } | undefined } | null;
  flushQueue(err: Error, options: { offlineQueue: boolean; commandQueue: boolean }): void;
}

/**
 * Fails, as a close does ("Connection is closed."), every command of a connection that is not established: those sent
 * on the connection it lost and those queued since. The commands queue of a connection being set up ('connect') holds
 * its handshake, which is left to it.
 */
function failUnsentCommands(connection: BullConnection): void {
  const closed = () => new Error('Connection is closed.');
  for (let item = connection.prevCommandQueue?.shift(); item; item = connection.prevCommandQueue?.shift()) item.command.reject(closed());
  connection.prevCommandQueue = null;
  connection.flushQueue(closed(), { offlineQueue: true, commandQueue: connection.status !== 'connect' });
}

/**
 * Keeps an unreachable Redis from ending the process through the queue: every promise Bull or @nestjs/bull starts
 * and drops gets a handler that logs (an unhandled rejection ends a Node process), and closing does not wait for a
 * Redis that is gone. Bull reconnects on its own; /health/ready says Redis is down.
 */
export function guardQueue(queue: Queue, logger: Pick<Logger, 'warn'>, shutdownGraceMs: number, timer = new CallTimer()): void {
  const bull = queue as Queue & { onApplicationShutdown?: () => Promise<void>; setWorkerName?: () => Promise<void>; bclientInitialized?: boolean; bclient: BullConnection };
  // Without a listener an unreachable Redis would surface as an uncaught 'error' event.
  bull.on('error', (err) => logger.warn(`jobs queue: ${err.message}`));
  // @nestjs/bull starts the worker with queue.process() and drops its promise, which rejects when Redis cannot be
  // reached; process() itself names the worker's connection (setWorkerName) and drops that promise too, which
  // rejects when the client ends before it was ever ready
  const startWorker = bull.process.bind(bull) as (...args: unknown[]) => Promise<void>;
  bull.process = ((...args: unknown[]) => {
    const started = startWorker(...args);
    // Bull can reject it with nothing (undefined) when the queue closes while the worker starts
    started.catch((err: Error | undefined) => logger.warn(`jobs worker stopped: ${err?.message ?? String(err)}`));
    return started;
  }) as Queue['process'];
  const nameWorker = bull.setWorkerName?.bind(bull);
  if (nameWorker) {
    bull.setWorkerName = () => {
      const named = nameWorker();
      named.catch((err: Error | undefined) => logger.warn(`jobs worker connection not named: ${err?.message ?? String(err)}`));
      return named;
    };
  }
  // @nestjs/bull closes the queue in its onApplicationShutdown (queue.close()). Bull's close waits for the jobs running
  // here, then for Redis. So closing waits for the jobs (within the shutdown grace; 1 s when Redis is not connected), not
  // for Redis: an unfinished job's outbox row stays claimed and is relayed again. Then every client not yet ended is ended.
  // Bull's close also cuts the worker's connection (its blocking wait for jobs) and makes it again at once, to resume
  // after its pause, waiting for it to be ready (with Redis hung, for ever; a connection still being made refused it:
  // "Redis is already connecting/connected", a rejection Bull leaves unhandled, which ends the process). Closing, nothing
  // resumes: it is not made again. And a worker connection not established (Redis restarted, its reconnection under way)
  // holds waits for jobs that are not on Redis: those sent on the connection it lost, kept to be sent again once it is
  // back, and those queued since. Bull's close waits for them, and once it has cut the reconnection nothing ends them
  // (ioredis 5 even marks the closed connection ready): it waited for ever (CI: login-throttle-redis-down's close). They
  // fail as at a close, which a closing worker ignores.
  if (bull.onApplicationShutdown) {
    const closeQueue = bull.onApplicationShutdown.bind(bull);
    bull.onApplicationShutdown = () => {
      const ms = bull.client.status === 'ready' ? shutdownGraceMs : 1000;
      const worker = bull.bclientInitialized ? bull.bclient : undefined;
      if (worker) worker.connect = () => Promise.resolve();
      const closing = closeQueue(); // the queue is closing from here: its worker stops at the failures below
      if (worker && worker.status !== 'ready') failUnsentCommands(worker);
      return within(closing, ms, () => new Error(`not closed within ${ms} ms`), timer)
        .catch((err: Error) => logger.warn(`jobs queue did not close cleanly: ${err.message}`))
        .finally(() => {
          for (const client of bull.clients) {
            // Bull's close, still under way, would connect its blocking connection again once that one has ended
            client.connect = () => Promise.reject(new Error('the jobs queue is closed'));
            if (client.status !== 'end') client.disconnect();
          }
        });
    };
  }
}

/**
 * Moves committed outbox rows to Bull (REDIS_URL set) or runs them in-process, at least once each:
 * 1. claim up to JOBS_RELAY_BATCH_SIZE due rows (FOR UPDATE SKIP LOCKED: relays of several instances take
 *    different rows) and commit (each becomes due again after JOBS_CLAIM_TIMEOUT_MS);
 * 2. outside any transaction, hand them to Bull (one addBulk for the rows relayed the first time) or run them, one
 *    after another, each started only while at least half of the batch's claim is left: the rest is given back (due
 *    again at once), so a slow batch (SMTP answering slowly) never runs a row whose claim another instance may have taken;
 *    the job running renews its own claim every third of the claim, so a single job longer than the claim is not run
 *    again by another instance meanwhile;
 * 3. record the outcome: done when its handler has finished (for Bull: the worker, see
 *    JobsProcessor), or a failure with a backoff; after its topic's last try (JobRegistry.maxAttempts, compared with the
 *    row's tries: the times its handler was started; a claim is no try) the job is dead: never relayed again, its error
 *    and payload kept in the outbox for an operator (omnizen_outbox_dead), its Bull copy removed.
 * So no transaction stays open while Redis is slow or down, and a job Redis lost (a restart without
 * persistence) is relayed again when its claim runs out. Handlers are idempotent.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OutboxRelay.name);
  private running: Promise<number> | null = null;
  /** shutting down: no new batch is claimed, and the claimed jobs not yet started are given back */
  private stopping = false;
  /**
   * The one-off sweep at boot of Bull's copies that still hold a personal-data topic's payload (blankPersonalCopies):
   * settled when it is over or given up (logged), or at shutdown if Redis was never ready. Null in-process.
   */
  bootSweep: Promise<void> | null = null;
  private cancelBootSweep: (() => void) | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly registry: JobRegistry,
    private readonly scheduler: SchedulerRegistry,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly timer: CallTimer,
    @Optional() @Inject(JOBS_QUEUE_TOKEN) private readonly queue?: Queue,
  ) {
    metrics.onScrape(async () => {
      // capped like the queue's counts: a database that does not answer leaves the gauges as they were, /metrics answers
      const { depth, lagSeconds, dead } = await within(this.privileged.run('metrics.scrape', (db) => backlog(db)), 1000,
        () => new Error('the database did not answer'), this.timer);
      metrics.outboxDepth.set(depth);
      metrics.outboxLag.set(lagSeconds);
      // a topic whose dead jobs an operator retried or deleted (or the retention purged) drops out
      metrics.outboxDead.reset();
      for (const { topic, count } of dead) metrics.outboxDead.set({ topic }, count);
      if (this.queue) {
        const counts = await within(this.queue.getJobCounts(), 1000, () => new Error('the jobs queue did not answer'));
        for (const state of ['waiting', 'active', 'delayed', 'failed'] as const) metrics.queueDepth.set({ state }, counts[state] ?? 0);
      }
    });
    if (this.queue) guardQueue(this.queue, this.logger, config.shutdownGraceMs, timer);
  }

  onApplicationBootstrap(): void {
    const every = this.config.jobs.relayIntervalMs;
    if (every > 0) {
      this.scheduler.addInterval('outbox-relay', setInterval(() => void this.drain().catch((e: Error) => this.logger.warn(`outbox relay pass failed: ${e.message}`)), every));
    }
    if (this.queue && this.registry.personalDataTopics().length) this.bootSweep = this.sweepAtBoot(this.queue);
  }

  /** Starts the boot's sweep (bootSweep) once Bull's connection is ready; cancelled at shutdown if it never was. */
  private sweepAtBoot(queue: Queue): Promise<void> {
    return new Promise<void>((resolve) => {
      const run = () => {
        this.cancelBootSweep = null;
        this.blankPersonalCopies()
          .then((n) => { if (n) this.logger.log(`${n} job(s) of personal-data topics queued with their payload by an earlier version: their copies in the jobs queue blanked`); },
            (e: Error) => this.logger.warn(`the jobs queue was not swept of personal-data payloads queued by an earlier version: ${e.message}`))
          .finally(resolve);
      };
      if (queue.client.status === 'ready') return run();
      queue.client.once('ready', run);
      this.cancelBootSweep = () => {
        queue.client.off('ready', run);
        resolve();
      };
    });
  }

  /**
   * At shutdown: no new pass or batch, the job running finishes (its outcome recorded), and the jobs its batch claimed
   * but did not start are due again at once for another instance, before the pools close.
   */
  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    if (this.scheduler.doesExist('interval', 'outbox-relay')) this.scheduler.deleteInterval('outbox-relay');
    this.cancelBootSweep?.();
    await Promise.all([this.running?.catch(() => undefined), this.bootSweep]);
  }

  /** Relays every pending job; returns how many were handled. Safe to call concurrently. */
  drain(): Promise<number> {
    this.running ??= this.relayAll().finally(() => (this.running = null));
    return this.running;
  }

  /** Jobs run here that succeeded but whose done the database did not record (its outcome is written again at each pass). */
  private readonly unrecordedDone = new Map<string, Job>();

  /** Records a finished job done; if the database does not answer, kept to be recorded again at the next pass. */
  private recordDone(job: Job, how: string): Promise<void> {
    return this.markDone(job).catch((e: Error) => {
      this.unrecordedDone.set(job.id, job);
      this.logger.warn(`job ${job.id} (${job.topic}) ${how} but was not recorded done (recorded again at the next pass): ${e.message}`);
    });
  }

  private async recordUnrecordedDone(): Promise<void> {
    if (!this.unrecordedDone.size) return;
    const jobs = [...this.unrecordedDone.values()];
    // written together (markDone coalesces the calls made at once)
    await Promise.all(jobs.map((j) => this.markDone(j)))
      .then(() => jobs.forEach((j) => this.unrecordedDone.delete(j.id)))
      .catch((e: Error) => this.logger.warn(`${jobs.length} succeeded job(s) still not recorded done: ${e.message}`));
  }

  /** Batches until one comes back short: a row re-claimed by this very pass (a claim shorter than a pass) waits for the next. */
  private async relayAll(): Promise<number> {
    const batch = this.config.jobs.relayBatchSize;
    let total = 0;
    await this.recordUnrecordedDone();
    for (;;) {
      if (this.stopping) return total;
      const n = await this.relayBatch(batch);
      total += n;
      if (n < batch) return total;
    }
  }

  private async relayBatch(limit: number): Promise<number> {
    const claimMs = this.config.jobs.claimTimeoutMs;
    // measured from before the claim: this instance's deadline is never later than the rows' available_at
    const claimedAt = this.clock.now();
    const jobs = await this.privileged.run('jobs.relay', (db) => claimDue(db, limit, claimMs / 1000));
    if (this.queue) {
      // relayed for the first time: Bull cannot hold them yet, one addBulk (one round trip) queues them all;
      // relayed again (a claim ran out, a hand-off failed): Bull may hold them in any state, each is looked at
      const fresh = jobs.filter((j) => j.attempts === 1);
      if (fresh.length) {
        try {
          await this.handManyToBull(this.queue, fresh);
        } catch (err) {
          for (const job of fresh) await this.recordFailure(job, err as Error, false);
        }
      }
      for (const job of jobs.filter((j) => j.attempts !== 1)) {
        // a failed hand-off (Redis down) is not the job's refusal: it never makes it dead
        await this.handToBull(this.queue, job).catch((err: Error) => this.recordFailure(job, err, false));
      }
      return jobs.length;
    }
    for (const [i, job] of jobs.entries()) {
      // a job started with less than half the claim left could outlive it, and another instance would run it too
      // (the first one always runs: a claim shorter than one job still makes progress)
      const claimShort = i > 0 && this.clock.now() - claimedAt >= claimMs / 2;
      if (this.stopping || claimShort) {
        const left = jobs.slice(i);
        const why = this.stopping ? 'at shutdown' : 'as their claim runs short';
        await this.privileged.run('jobs.relay', (db) => releaseClaims(db, left))
          .catch((e: Error) => this.logger.warn(`${left.length} claimed job(s) not given back ${why} (due again when the claim runs out): ${e.message}`));
        break;
      }
      // claimed after its last try: that try's failure was never recorded (the process died running it)
      if (job.tries >= this.registry.maxAttempts(job.topic)) {
        await this.giveUp(job, null);
        continue;
      }
      // counted before it runs: a try that ends the process is a try
      const tries = await this.privileged.run('jobs.relay', (db) => startTry(db, job))
        .catch((e: Error) => {
          this.logger.warn(`job ${job.id} (${job.topic}) not started (due again when its claim runs out): ${e.message}`);
          return null;
        });
      // null: the database did not answer, or the row is no longer this claim's
      if (tries === null) continue;
      const tried = { ...job, tries };
      try {
        await this.runClaimed(tried, claimMs);
      } catch (err) {
        await this.recordFailure(tried, err as Error);
        continue;
      }
      // a success whose recording failed (the database did not answer) is no failed try: were it one, its topic's last
      // try would be given up dead though it succeeded. Recorded again at this relay's next pass (a success wins over a
      // death another relay recorded meanwhile); if this process ends first, its claim runs out and it is relayed again
      await this.recordDone(tried, 'succeeded');
    }
    return jobs.length;
  }

  /**
   * Runs a claimed job in-process, renewing its claim every third of the claim while it runs (started with at least half
   * of it left, the first renewal comes before it runs out): a job longer than its claim (a slow provider, a big export)
   * is not claimed and run again by another instance meanwhile. Only under its own claim: a renewal that finds the row
   * claimed again (this instance stalled past its claim) stops renewing, and the job's outcome is recorded as before.
   */
  private async runClaimed(job: ClaimedJob, claimMs: number): Promise<void> {
    let running = true;
    let renewal: Promise<void> = Promise.resolve();
    const renew = async () => {
      const kept = await this.privileged.run('jobs.relay', (db) => renewClaim(db, job, claimMs / 1000))
        // the database did not answer: the next renewal tries again (a claim lasts three renewal periods)
        .catch((e: Error) => {
          this.logger.warn(`job ${job.id} (${job.topic}): its claim was not renewed: ${e.message}`);
          return true;
        });
      if (!kept && running) {
        running = false;
        stop();
        this.logger.warn(`job ${job.id} (${job.topic}) outlived its claim, which another relay has taken: it may run twice`);
      }
    };
    const stop = this.timer.every(claimMs / 3, () => {
      if (running) renewal = renew();
      return renewal;
    });
    try {
      await this.registry.run(job);
    } finally {
      running = false;
      stop();
      // a renewal under way lands before the outcome is recorded (it would move a failure's backoff)
      await renewal;
    }
  }

  /** A call to Bull, refused as queue_unavailable when Redis does not answer within JOBS_ENQUEUE_TIMEOUT_MS. */
  private onQueue<T>(call: Promise<T>): Promise<T> {
    return within(call, this.config.jobs.enqueueTimeoutMs, () => retryableError('queue_unavailable'));
  }

  /** Queues jobs Bull has never seen with one addBulk; a job id Bull holds already is left as it is (Bull ignores the duplicate). */
  private async handManyToBull(queue: Queue, jobs: ClaimedJob[]): Promise<void> {
    // with Redis down, Bull's commands would wait in its offline queue: fail now and back off instead
    if (queue.client.status !== 'ready') throw retryableError('queue_unavailable');
    const bulk = jobs.map((job) => ({ name: job.topic, data: this.bullData(job), opts: { jobId: `outbox-${job.id}`, ...BULL_JOB_OPTIONS } }));
    await this.onQueue(queue.addBulk(bulk));
  }

  /**
   * Queues the job in Bull unless Bull already has it: still waiting, running or in Bull's backoff (nothing to do: it is
   * looked at again when this claim runs out; a claim is no try, the worker counts tries), completed without the
   * completion recorded (record it now), or failed after its own retries (retry it: one more try). A job whose tries
   * reached its cap, failed in Bull or gone from it (Redis lost it), had its last try without that failure recorded (the
   * database did not answer the worker): given up, its Bull copy removed first (it holds the payload). A personal-data
   * topic's copy an older relay queued with its payload is blanked first, whatever its state.
   */
  private async handToBull(queue: Queue, job: ClaimedJob): Promise<void> {
    if (queue.client.status !== 'ready') throw retryableError('queue_unavailable');
    const jobId = `outbox-${job.id}`;
    const existing = await this.onQueue(queue.getJob(jobId));
    if (existing) {
      await this.blankPersonalCopy(existing);
      const state = await this.onQueue(existing.getState());
      if (state === 'completed') {
        // Bull ran it and the worker's record did not land: recorded now. The database failing here is no refused
        // hand-off (Redis answered): kept for the next pass, as an in-process success whose record failed
        return this.recordDone(job, 'completed in the queue');
      }
      if (state !== 'failed') return;
      if (job.tries < this.registry.maxAttempts(job.topic)) return this.onQueue(existing.retry());
      await this.onQueue(existing.remove());
      return this.giveUp(job, null);
    }
    if (job.tries >= this.registry.maxAttempts(job.topic)) return this.giveUp(job, null);
    await this.onQueue(queue.add(job.topic, this.bullData(job), { jobId, ...BULL_JOB_OPTIONS }));
  }

  /**
   * What Bull keeps of a job (in Redis: while it waits, fails and is retried, and among the last 1,000 completed ones):
   * a personal-data topic's without its payload (JobOptions.personalData), which the worker reads from the outbox row
   * (withStoredPayload).
   */
  private bullData(job: ClaimedJob): Job {
    const payload = this.registry.holdsPersonalData(job.topic) ? {} : job.payload;
    return { id: job.id, orgId: job.orgId, topic: job.topic, payload, traceParent: job.traceParent };
  }

  /**
   * A Bull copy of a personal-data topic's job that still holds its payload (queued by a relay from before
   * JobOptions.personalData kept it out of Bull): its data replaced by what bullData keeps (the payload `{}`), in
   * whatever state (completed: Bull keeps the last 1,000; failed: until the relay retries it). Its job id stays, and with
   * it "relayed twice is queued once". Best effort: a failure is logged (the relay meets the copy again, or the next boot's
   * sweep does). Answers whether it was blanked.
   */
  async blankPersonalCopy(copy: BullJob): Promise<boolean> {
    const data = copy.data as Partial<Job> | undefined;
    if (typeof data?.topic !== 'string' || !this.registry.holdsPersonalData(data.topic)) return false;
    const { payload } = data;
    if (payload === undefined || (typeof payload === 'object' && payload !== null && !Object.keys(payload).length)) return false;
    try {
      await this.onQueue(copy.update({ ...data, payload: {} }));
      return true;
    } catch (err) {
      this.logger.warn(`job ${String(data.id)} (${data.topic}): its copy in the jobs queue still holds its payload (not blanked): ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * Blanks (blankPersonalCopy) every copy in Bull (completed, failed, delayed, waiting or paused; a running one is blanked
   * by its worker, JobsProcessor) that still holds a personal-data topic's payload: the copies an earlier version queued
   * with it (the boot's sweep). Pages of `pageSize`; answers how many were blanked, 0 with Redis not connected.
   */
  async blankPersonalCopies(pageSize = 1000): Promise<number> {
    const queue = this.queue;
    if (!queue || queue.client.status !== 'ready') return 0;
    let blanked = 0;
    for (const state of ['completed', 'failed', 'delayed', 'waiting', 'paused'] as const) {
      for (let from = 0; !this.stopping; from += pageSize) {
        const copies = (await this.onQueue(queue.getJobs([state], from, from + pageSize - 1, true))).filter((j) => !!j);
        for (const copy of copies) if (await this.blankPersonalCopy(copy)) blanked += 1;
        if (copies.length < pageSize) break;
      }
    }
    return blanked;
  }

  /**
   * The job Bull's worker runs: a personal-data topic's payload read from its outbox row (Bull holds none of it, bullData);
   * null when the row is done, dead or deleted meanwhile (an erasure): nothing to run.
   */
  async withStoredPayload(job: Job): Promise<Job | null> {
    if (!this.registry.holdsPersonalData(job.topic)) return job;
    const stored = await this.privileged.run('jobs.relay', (db) => pendingPayload(db, job));
    return stored && { id: job.id, orgId: job.orgId, topic: job.topic, ...jobPayload(stored) };
  }

  /**
   * The job's handler has finished (in-process, or Bull's worker): it is never relayed again. Calls made while
   * a previous one is being written are written together, in one statement (Bull's worker finishes many jobs at once).
   */
  markDone(job: Job): Promise<void> {
    return this.done.add(job);
  }

  private readonly done = new Coalescer<Job>((jobs) => this.privileged.run('jobs.relay', (db) => markDone(db, jobs, (j) => this.registry.holdsPersonalData(j.topic))));

  /**
   * Bull's worker starts the job's handler: one more try of its outbox row (written with the other starts of the moment, in
   * one statement). If the database does not answer, the try is not counted (logged): the job runs anyway.
   */
  startTry(job: Job): Promise<void> {
    return this.starts.add(job)
      .catch((e: Error) => this.logger.warn(`job ${job.id} (${job.topic}): its try was not counted: ${e.message}`));
  }

  private readonly starts = new Coalescer<Job>((jobs) => this.privileged.run('jobs.relay', (db) => countTries(db, jobs)));

  /**
   * The job failed in Bull's worker (attempt `attempt` of `attempts`): counted, logged (its id and topic, never its
   * payload) and its error kept on the outbox row. Its topic's last try (the row's tries): dead, answers true (the worker
   * then completes the Bull job, which removes it). Otherwise Bull retries it after its backoff; once Bull's attempts are
   * spent, the relay retries it after the outbox's backoff (no sooner than its claim runs out). If the database is down
   * the error is only logged (false: the relay gives it up later if that was its last try).
   */
  async recordWorkerFailure(job: Job, err: unknown, attempt: number, attempts: number): Promise<boolean> {
    const message = err instanceof Error ? err.message : String(err);
    this.metrics.jobsFailed.inc({ topic: job.topic });
    const last = attempt >= attempts;
    const maxAttempts = this.registry.maxAttempts(job.topic);
    // its last try is logged dead besides (logDead)
    const next = last ? `retried after its outbox backoff, unless this was its last try (of ${maxAttempts})` : 'the jobs queue retries it';
    this.logger.warn(`job ${job.id} (${job.topic}) failed (attempt ${attempt} of ${attempts} in the jobs queue): ${message}; ${next}`);
    const dead = await this.privileged.run('jobs.relay', (db) => recordError(db, job, message, maxAttempts, last))
      .catch((e: Error) => {
        this.logger.warn(`job ${job.id}: could not record its failure: ${e.message}`);
        return false;
      });
    if (dead) this.logDead(job, maxAttempts);
    return dead;
  }

  /**
   * A job's try failed (`tried`, its tries this one included): due again after its backoff, or, its topic's last try,
   * dead. Its hand-off to Bull failed (not `tried`: no try, Redis is down): due again after a backoff on its claims, never
   * dead; the row keeps the job's own last error (a job dead later shows why it failed), the hand-off's only where none is.
   */
  private async recordFailure(job: ClaimedJob, err: Error, tried = true): Promise<void> {
    // a refused hand-off ran nothing: counted apart, or a Redis outage would read as every waiting topic's jobs failing
    if (tried) this.metrics.jobsFailed.inc({ topic: job.topic });
    else this.metrics.jobHandOffsRefused.inc({ topic: job.topic });
    if (tried && job.tries >= this.registry.maxAttempts(job.topic)) {
      this.logger.warn(`job ${job.id} (${job.topic}) failed: ${err.message}`);
      return this.giveUp(job, err.message);
    }
    const delaySeconds = retryDelaySeconds(tried ? job.tries : job.attempts);
    this.logger.warn(tried ? `job ${job.id} (${job.topic}) failed: ${err.message}; retry in ${delaySeconds}s`
      : `job ${job.id} (${job.topic}) not handed to the jobs queue: ${err.message}; retry in ${delaySeconds}s`);
    // if this fails too (the database is down), the claim runs out and the job is relayed again
    await this.privileged.run('jobs.relay', (db) => recordFailure(db, job, err.message, delaySeconds, tried))
      .catch((e: Error) => this.logger.warn(`job ${job.id}: could not record its failure: ${e.message}`));
  }

  /** Marks the job dead (markDead: `error` as its last error, or the one recorded before when null). */
  private async giveUp(job: ClaimedJob, error: string | null): Promise<void> {
    // if this fails (the database is down), the claim runs out and the job is claimed, past its cap, again
    const dead = await this.privileged.run('jobs.relay', (db) => markDead(db, job, error))
      .catch((e: Error) => {
        this.logger.warn(`job ${job.id}: could not record it dead: ${e.message}`);
        return false;
      });
    if (dead) this.logDead(job, this.registry.maxAttempts(job.topic));
  }

  /**
   * Jobs whose outbox rows an erasure deleted (ids of `core.outbox`, once it has committed): their Bull copies, which hold
   * the payload (an invitee's e-mail) and would otherwise stay in Bull's failed set for ever, are removed. Best effort:
   * Redis down, or a copy running right now (Bull refuses to remove it), is logged and left to the sweep (sweepQueue).
   * Nothing to do in-process (no REDIS_URL).
   */
  async removeFromQueue(ids: string[]): Promise<number> {
    const queue = this.queue;
    if (!queue || !ids.length) return 0;
    if (queue.client.status !== 'ready') {
      this.logger.warn(`${ids.length} deleted job(s) not removed from the jobs queue (Redis is not connected): left to its sweep`);
      return 0;
    }
    let removed = 0;
    for (const id of ids) {
      try {
        const copy = await this.onQueue(queue.getJob(`outbox-${id}`));
        if (!copy) continue;
        await this.onQueue(copy.remove());
        removed += 1;
      } catch (err) {
        this.logger.warn(`deleted job ${id}: its copy in the jobs queue was not removed (left to its sweep): ${(err as Error).message}`);
      }
    }
    return removed;
  }

  /** Where sweepQueue goes on in each state of Bull's: it looks at `limit` jobs of each a run, the next ones the next run. */
  private readonly sweepFrom: Record<'failed' | 'delayed' | 'waiting', number> = { failed: 0, delayed: 0, waiting: 0 };

  /**
   * Removes from Bull the jobs (failed, delayed or waiting; never one running) whose outbox row no longer exists: deleted
   * by an erasure whose removal of their copy failed, by an organization's deletion (ON DELETE CASCADE) or by the
   * retention purge. Their payload would stay in Redis (a failed job for ever). At most `limit` jobs looked at per state
   * and run, going on from where the last run stopped (back to the start once a state's end is reached). Answers how
   * many were removed; 0 in-process or with Redis not connected.
   */
  async sweepQueue(limit: number): Promise<number> {
    const queue = this.queue;
    if (!queue || queue.client.status !== 'ready') return 0;
    let removed = 0;
    for (const state of ['failed', 'delayed', 'waiting'] as const) {
      const from = this.sweepFrom[state];
      const copies = (await this.onQueue(queue.getJobs([state], from, from + limit - 1, true))).filter((j) => !!j);
      const keys = copies.flatMap((j) => {
        const data = j.data as Partial<Job> | undefined;
        return typeof data?.id === 'string' && typeof data.orgId === 'string' ? [{ org: data.orgId, id: data.id }] : [];
      });
      const kept = new Set((await this.privileged.run('jobs.relay', (db) => existingJobs(db, keys))).map((k) => `${k.org}:${k.id}`));
      let gone = 0;
      for (const copy of copies) {
        const data = copy.data as Partial<Job> | undefined;
        if (typeof data?.id !== 'string' || kept.has(`${data.orgId}:${data.id}`)) continue;
        try {
          await this.onQueue(copy.remove());
          gone += 1;
        } catch (err) {
          this.logger.warn(`job ${data.id}: its copy in the jobs queue, whose outbox row is gone, was not removed: ${(err as Error).message}`);
        }
      }
      removed += gone;
      // the removed ones no longer take a place in the state's list
      this.sweepFrom[state] = copies.length < limit ? 0 : from + copies.length - gone;
    }
    if (removed) this.logger.log(`${removed} job(s) whose outbox row is gone removed from the jobs queue`);
    return removed;
  }

  private logDead(job: Job, maxAttempts: number): void {
    this.logger.error(`job ${job.id} (${job.topic}) given up after ${maxAttempts} tries: dead, never retried; its error and payload stay in core.outbox (dead_at) for an operator to retry it, until the retention purge (its copy in the jobs queue is removed)`);
  }
}
