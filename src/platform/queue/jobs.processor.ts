import { Process, Processor } from '@nestjs/bull';
import type { Job as BullJob } from 'bull';
import { JobRegistry, type Job } from './jobs.js';
import { JOBS_QUEUE } from './outbox-relay.service.js';

/** Runs relayed jobs from Bull (only when REDIS_URL is set). */
@Processor(JOBS_QUEUE)
export class JobsProcessor {
  constructor(private readonly registry: JobRegistry) {}

  @Process({ name: '*', concurrency: 4 })
  handle(job: BullJob<Job>): Promise<void> {
    return this.registry.run(job.data);
  }
}
