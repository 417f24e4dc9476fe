import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { APP_CONFIG, ConfigError, type AppConfig } from '../../platform/config/config.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AuditService } from '../audit/audit.service.js';
import { sessionRepository } from './session.repository.js';

export const PURGE_JOB = 'auth.purge-sessions';

/**
 * Deletes expired refresh tokens and ended sessions on JOBS_PURGE_CRON. @Cron() takes its
 * expression at class-definition time, before config exists, so the job is registered here.
 */
@Injectable()
export class SessionPurgeJob implements OnModuleInit {
  private readonly logger = new Logger(SessionPurgeJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly audit: AuditService,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onModuleInit(): void {
    let job: CronJob;
    try {
      job = CronJob.from({
        cronTime: this.config.jobs.purgeCron,
        onTick: async () => {
          await this.run().catch((err) => this.logger.error({ err }, 'session purge failed'));
        },
        waitForCompletion: true,
      });
    } catch (err) {
      throw new ConfigError(`JOBS_PURGE_CRON "${this.config.jobs.purgeCron}" is not a valid cron expression: ${(err as Error).message}`);
    }
    this.scheduler.addCronJob(PURGE_JOB, job);
    job.start();
  }

  /** One purge; each affected user gets an audit row in their personal organization. */
  async run(): Promise<{ tokens: number; sessions: number }> {
    const result = await this.privileged.run('jobs.purge', async (db) => {
      const purged = await sessionRepository.purgeExpired(db);
      for (const u of purged.byUser) {
        await this.audit.recordPrivileged(db, u.personalOrgId, 'system', {
          action: 'auth.sessions_purged', entityType: 'user', entityId: u.userId, after: { sessions: u.sessions },
        });
      }
      return { tokens: purged.tokens, sessions: purged.sessions };
    });
    this.logger.log(result, 'session purge');
    return result;
  }
}
