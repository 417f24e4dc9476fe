import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { scheduleFromConfig } from '../../platform/queue/schedule.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AuditService } from '../audit/audit.service.js';
import { sessionRepository } from './session.repository.js';
import { identityRepository } from './identity.repository.js';
import { accountTokenRepository } from './account-token.repository.js';

export const PURGE_JOB = 'auth.purge-sessions';

/** Deletes expired refresh tokens, ended sessions, spent verification, password-reset and e-mail change links, and app-token redemptions on JOBS_PURGE_CRON. */
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
    scheduleFromConfig(this.scheduler, PURGE_JOB, this.config.jobs.purgeCron, () => this.run(), this.logger);
  }

  /** One purge; each affected user gets an audit row in their personal organization. */
  async run(): Promise<{ tokens: number; sessions: number }> {
    const result = await this.privileged.run('jobs.purge', async (db) => {
      const purged = await sessionRepository.purgeExpired(db);
      // spent verification links, app-token redemptions past their tokens' expiry, spent password-reset links and
      // e-mail change requests: no audit (the audit log already holds what they did)
      await identityRepository.purgeExpired(db);
      await accountTokenRepository.purgeExpired(db);
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
