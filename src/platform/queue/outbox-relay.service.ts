import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { getQueueToken } from '@nestjs/bull';
import type { Queue } from 'bull';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { PrivilegedDatabase } from '../database/privileged.service.js';
import { JobRegistry, type Job } from './jobs.js';

export const JOBS_QUEUE = 'jobs';
export const JOBS_QUEUE_TOKEN = getQueueToken(JOBS_QUEUE);

/**
 * Moves committed outbox rows to Bull (REDIS_URL set; the Bull job id is the outbox id, so a
 * row relayed twice is queued once) or runs them in-process. Failures back off and retry.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OutboxRelay.name);
  private running: Promise<number> | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly registry: JobRegistry,
    private readonly scheduler: SchedulerRegistry,
    @Optional() @Inject(JOBS_QUEUE_TOKEN) private readonly queue?: Queue,
  ) {
    // Without a listener an unreachable Redis would surface as an uncaught 'error' event.
    this.queue?.on('error', (err) => this.logger.warn(`jobs queue: ${err.message}`));
    // @nestjs/bull closes the queue in its onModuleDestroy; with Redis down that close rejects and
    // aborts the whole shutdown. Wrap it: log, end the clients still trying to connect, go on.
    const bull = this.queue as (Queue & { onModuleDestroy?: () => Promise<void> }) | undefined;
    // @nestjs/bull starts the worker with queue.process() and drops its promise, which rejects when
    // Redis cannot be reached: an unhandled rejection ends a Node process. Log it instead; Bull
    // reconnects, and /health/ready says Redis is down.
    if (bull) {
      const startWorker = bull.process.bind(bull) as (...args: unknown[]) => Promise<void>;
      bull.process = ((...args: unknown[]) => {
        const started = startWorker(...args);
        started.catch((err: Error) => this.logger.warn(`jobs worker stopped: ${err.message}`));
        return started;
      }) as Queue['process'];
    }
    if (bull?.onModuleDestroy) {
      const closeQueue = bull.onModuleDestroy.bind(bull);
      bull.onModuleDestroy = () =>
        closeQueue()
          .catch((err: Error) => this.logger.warn(`jobs queue did not close cleanly: ${err.message}`))
          .finally(() => {
            for (const client of bull.clients) if (client.status !== 'end') client.disconnect();
          });
    }
  }

  onApplicationBootstrap(): void {
    const every = this.config.jobs.relayIntervalMs;
    if (every > 0) {
      this.scheduler.addInterval('outbox-relay', setInterval(() => void this.drain().catch((e) => this.logger.error(e)), every));
    }
  }

  onModuleDestroy(): void {
    if (this.scheduler.doesExist('interval', 'outbox-relay')) this.scheduler.deleteInterval('outbox-relay');
  }

  /** Relays every pending job; returns how many were handled. Safe to call concurrently. */
  drain(): Promise<number> {
    this.running ??= this.relayAll().finally(() => (this.running = null));
    return this.running;
  }

  private async relayAll(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.relayBatch(50);
      total += n;
      if (n === 0) return total;
    }
  }

  private async relayBatch(limit: number): Promise<number> {
    return this.privileged.run('jobs.relay', async (db) => {
      const rows = await db.$queryRaw<{ id: bigint; org_id: string; topic: string; payload: Record<string, unknown>; attempts: number }[]>`
        SELECT id, org_id, topic, payload, attempts FROM core.outbox
        WHERE processed_at IS NULL AND available_at <= now()
        ORDER BY available_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
      for (const row of rows) {
        const job: Job = { id: row.id.toString(), orgId: row.org_id, topic: row.topic, payload: row.payload };
        try {
          if (this.queue) {
            await this.queue.add(job.topic, job, { jobId: `outbox-${job.id}`, attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 1000 });
          } else {
            await this.registry.run(job);
          }
          await db.$executeRaw`UPDATE core.outbox SET processed_at = now(), attempts = attempts + 1, last_error = NULL WHERE org_id = ${row.org_id}::uuid AND id = ${row.id}`;
        } catch (err) {
          const delaySeconds = Math.min(3600, 2 ** Math.min(row.attempts, 12));
          this.logger.warn(`job ${job.id} (${job.topic}) failed: ${(err as Error).message}; retry in ${delaySeconds}s`);
          await db.$executeRaw`UPDATE core.outbox SET attempts = attempts + 1, last_error = ${(err as Error).message},
            available_at = now() + make_interval(secs => ${delaySeconds}) WHERE org_id = ${row.org_id}::uuid AND id = ${row.id}`;
        }
      }
      return rows.length;
    });
  }
}
