import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { scheduleFromConfig } from '../../platform/queue/schedule.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AuditService } from '../audit/audit.service.js';
import { invitationRepository } from './invitation.repository.js';

/** Expired invitations stay listed (status "expired") this long, then the purge deletes them. */
export const EXPIRED_INVITATION_RETENTION_DAYS = 30;

/** Scheduled clean-up of expired invitations (privileged path jobs.purge), on JOBS_PURGE_CRON. */
@Injectable()
export class InvitationPurge implements OnApplicationBootstrap {
  private readonly logger = new Logger(InvitationPurge.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly audit: AuditService,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    scheduleFromConfig(this.scheduler, 'invitations-purge', this.config.jobs.purgeCron, () => this.purgeExpired(), this.logger);
  }

  /** Deletes invitations expired more than the retention ago; one audit row per organization. */
  async purgeExpired(): Promise<number> {
    return this.privileged.run('jobs.purge', async (db) => {
      const perOrg = await invitationRepository.purgeExpired(db, EXPIRED_INVITATION_RETENTION_DAYS);
      for (const { orgId, count } of perOrg) {
        await this.audit.recordPrivileged(db, orgId, 'system', { action: 'invitation.purged', entityType: 'invitation', after: { count, retentionDays: EXPIRED_INVITATION_RETENTION_DAYS } });
      }
      const total = perOrg.reduce((n, o) => n + o.count, 0);
      if (total > 0) this.logger.log(`purged ${total} expired invitation(s)`);
      return total;
    });
  }
}
