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
 * job counts as done when its handler has finished, not when it was queued. Each start is one try of
 * the outbox row (its topic's cap compares tries; a claim is none). If recording the success fails, the
 * Bull job fails and Bull runs it again (handlers are idempotent), its failure not recorded on the outbox row. A failure is counted, logged and kept
 * on the outbox row (last_error) before Bull sees it; the failure of its last try makes the row dead, and
 * the Bull job is then completed and removed, not failed: Bull's failed set would keep its payload in
 * Redis for ever, and the outbox row keeps it for an operator. A topic whose payload is personal data (a PostHog erasure's
 * distinct ids, JobOptions.personalData) leaves it out of Bull altogether: its handler gets it from the outbox row.
 */
@Processor(JOBS_QUEUE)
export class JobsProcessor {
  constructor(
    private readonly registry: JobRegistry,
    private readonly relay: OutboxRelay,
  ) {}

  @Process({ name: '*', concurrency: JOBS_WORKER_CONCURRENCY })
  async handle(job: BullJob<Job>): Promise<void> {
    // a personal-data topic's copy queued with its payload by an earlier version: blanked before it runs, so it is not
    // kept among the completed (or failed) ones with it
    await this.relay.blankPersonalCopy(job);
    await this.relay.startTry(job.data);
    try {
      // a personal-data topic's payload is read from its outbox row (Bull's copy holds none); its row done, dead or gone
      // meanwhile: nothing to run, nothing to record
      const runnable = await this.relay.withStoredPayload(job.data);
      if (!runnable) return;
      await this.registry.run(runnable);
    } catch (err) {
      const dead = await this.relay.recordWorkerFailure(job.data, err, job.attemptsMade + 1, job.opts.attempts ?? 1);
      if (!dead) throw err;
      // Bull reads removeOnComplete from the job it finishes (Job.moveToCompleted): this one is removed, not kept
      // among the last completed ones
      job.opts.removeOnComplete = true;
      return;
    }
    // outside the try: a success whose recording failed is no failed try (its last one would be given up dead though it
    // succeeded). The Bull job fails and Bull runs it again (handlers are idempotent); the outbox row is left as it is
    await this.relay.markDone(job.data);
  }
}
