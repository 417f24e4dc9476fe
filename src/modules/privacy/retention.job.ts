import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { scheduleFromConfig } from '../../platform/queue/schedule.js';
import { OutboxRelay } from '../../platform/queue/outbox-relay.service.js';
import { retentionRepository } from './erasure.repository.js';
import { DataExportService } from './data-export.service.js';

export const RETENTION_JOB = 'privacy.retention';
const DAY_MS = 86_400_000;
/** Jobs of each of Bull's states (failed, delayed, waiting) the retention run looks at for an outbox row that is gone. */
export const QUEUE_SWEEP_LIMIT = 1000;

/**
 * Purges what has passed its retention, per data class (RETENTION_* settings; the table in docs/privacy.md), on
 * RETENTION_CRON. Sessions, refresh tokens and spent links are purged by auth's SessionPurgeJob (JOBS_PURGE_CRON).
 * Counts only are logged: no personal data leaves the database.
 */
@Injectable()
export class RetentionJob implements OnModuleInit {
  private readonly logger = new Logger(RetentionJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly scheduler: SchedulerRegistry,
    private readonly clock: Clock,
    private readonly exports: DataExportService,
    private readonly relay: OutboxRelay,
  ) {}

  onModuleInit(): void {
    scheduleFromConfig(this.scheduler, RETENTION_JOB, this.config.retention.cron, () => this.run(), this.logger);
  }

  async run(): Promise<{ webhookDeliveries: number; processedJobs: number; eventReceipts: number; emailDeliveries: number; dataExports: number }> {
    const now = this.clock.now();
    const { webhookDeliveryDays, outboxDays, emailDeliveryDays } = this.config.retention;
    const result = await this.privileged.run('privacy.retention', async (db) => ({
      webhookDeliveries: await retentionRepository.purgeWebhookDeliveries(db, new Date(now - webhookDeliveryDays * DAY_MS)),
      processedJobs: await retentionRepository.purgeProcessedJobs(db, new Date(now - outboxDays * DAY_MS)),
      eventReceipts: await retentionRepository.purgeEventReceipts(db, new Date(now - outboxDays * DAY_MS)),
      emailDeliveries: await retentionRepository.purgeEmailDeliveries(db, new Date(now - emailDeliveryDays * DAY_MS)),
      // exports whose download link has expired: their files are deleted (the row stays, marked expired)
      dataExports: await this.exports.purgeExpired(db, new Date(now)),
    }));
    this.logger.log(result, 'retention purge');
    // then the jobs queue: copies of jobs whose outbox row is gone (this purge, an erasure, an organization's deletion)
    // would keep their payload in Redis, a failed one for ever. Bounded per run; the next run goes on
    const swept = await this.relay.sweepQueue(QUEUE_SWEEP_LIMIT)
      .catch((e: Error) => {
        this.logger.warn(`jobs queue not swept: ${e.message}`);
        return 0;
      });
    if (swept) this.logger.log({ queueCopiesRemoved: swept }, 'retention purge of the jobs queue');
    return result;
  }
}
