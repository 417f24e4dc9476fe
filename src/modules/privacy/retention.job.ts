import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { scheduleFromConfig } from '../../platform/queue/schedule.js';
import { retentionRepository } from './erasure.repository.js';
import { DataExportService } from './data-export.service.js';

export const RETENTION_JOB = 'privacy.retention';
const DAY_MS = 86_400_000;

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
    return result;
  }
}
