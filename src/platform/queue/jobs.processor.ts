import { Process, Processor } from '@nestjs/bull';
import type { Job as BullJob } from 'bull';
import { JobRegistry, type Job } from './jobs.js';
import { JOBS_QUEUE, OutboxRelay } from './outbox-relay.service.js';

/**
 * Runs relayed jobs from Bull (only when REDIS_URL is set), then records the outbox row as done: a
 * job counts as done when its handler has finished, not when it was queued. If recording fails, the
 * Bull job fails and Bull runs it again (handlers are idempotent).
 */
@Processor(JOBS_QUEUE)
export class JobsProcessor {
  constructor(
    private readonly registry: JobRegistry,
    private readonly relay: OutboxRelay,
  ) {}

  @Process({ name: '*', concurrency: 4 })
  async handle(job: BullJob<Job>): Promise<void> {
    await this.registry.run(job.data);
    await this.relay.markDone(job.data);
  }
}
