import { Process, Processor } from '@nestjs/bull';
import type { Job as BullJob } from 'bull';
import { JobRegistry, type Job } from './jobs.js';
import { JOBS_QUEUE, OutboxRelay } from './outbox-relay.service.js';

/**
 * Jobs one process runs at once. The relay hands on batches; the domain-event subscribers' writes and the
 * outbox's "done" of jobs finishing together are written in one statement each (see Coalescer), so
 * running many at once is what lets them batch.
 */
export const JOBS_WORKER_CONCURRENCY = 16;

/**
 * Runs relayed jobs from Bull (only when REDIS_URL is set), then records the outbox row as done: a
 * job counts as done when its handler has finished, not when it was queued. If recording fails, the
 * Bull job fails and Bull runs it again (handlers are idempotent). A failure is counted, logged and kept
 * on the outbox row (last_error) before Bull sees it.
 */
@Processor(JOBS_QUEUE)
export class JobsProcessor {
  constructor(
    private readonly registry: JobRegistry,
    private readonly relay: OutboxRelay,
  ) {}

  @Process({ name: '*', concurrency: JOBS_WORKER_CONCURRENCY })
  async handle(job: BullJob<Job>): Promise<void> {
    try {
      await this.registry.run(job.data);
      await this.relay.markDone(job.data);
    } catch (err) {
      await this.relay.recordWorkerFailure(job.data, err, job.attemptsMade + 1, job.opts.attempts ?? 1);
      throw err;
    }
  }
}
