import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db } from '../../platform/database/database.service.js';
import { scheduleFromConfig } from '../../platform/queue/schedule.js';
import { OutboxRelay } from '../../platform/queue/outbox-relay.service.js';
import { AuditService } from '../audit/audit.service.js';
import { retentionRepository, type PurgedInOrg } from './erasure.repository.js';
import { DataExportService } from './data-export.service.js';

export const RETENTION_JOB = 'privacy.retention';
const DAY_MS = 86_400_000;
/** Jobs of each of Bull's states (failed, delayed, waiting) the retention run looks at for an outbox row that is gone. */
export const QUEUE_SWEEP_LIMIT = 1000;
/**
 * Days an erasure's walk of analytics events (core.erasure_prepasses) is kept when its erasure never committed (refused
 * after the walk, or not retried): then the row goes, and its link of the person to their events' pseudonym with it.
 */
export const ERASURE_WALK_RETENTION_DAYS = 7;

/**
 * Purges what has passed its retention, per data class (RETENTION_* settings; the table in docs/privacy.md), on
 * RETENTION_CRON. Sessions, refresh tokens and spent links are purged by auth's SessionPurgeJob (JOBS_PURGE_CRON).
 * Counts only are logged: no personal data leaves the database. Each organization that lost rows gets one audit row
 * (privacy.retention_purged, by the system) in the purge's transaction: how many of each class, and the retention that
 * took them; a person's sent digests (of no organization) count in their personal organization's.
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
    private readonly audit: AuditService,
  ) {}

  onModuleInit(): void {
    scheduleFromConfig(this.scheduler, RETENTION_JOB, this.config.retention.cron, () => this.run(), this.logger);
  }

  async run(): Promise<{ webhookDeliveries: number; processedJobs: number; eventReceipts: number; emailDeliveries: number; dataExports: number }> {
    const now = this.clock.now();
    const { webhookDeliveryDays, outboxDays, emailDeliveryDays } = this.config.retention;
    const result = await this.privileged.run('privacy.retention', async (db) => {
      const purged: Record<string, PurgedInOrg[]> = {
        webhookDeliveries: await retentionRepository.purgeWebhookDeliveries(db, new Date(now - webhookDeliveryDays * DAY_MS)),
        processedJobs: await retentionRepository.purgeProcessedJobs(db, new Date(now - outboxDays * DAY_MS)),
        eventReceipts: await retentionRepository.purgeEventReceipts(db, new Date(now - outboxDays * DAY_MS)),
      };
      const email = await retentionRepository.purgeEmailDeliveries(db, new Date(now - emailDeliveryDays * DAY_MS));
      purged.emailDeliveries = email.deliveries;
      purged.emailDigests = email.digests;
      // exports whose download link has expired: their files are deleted (the row stays, marked expired)
      const exports = await this.exports.purgeExpired(db, new Date(now));
      const expired = new Map<string, number>();
      for (const orgId of exports.expiredIn) expired.set(orgId, (expired.get(orgId) ?? 0) + 1);
      purged.dataExportsExpired = [...expired].map(([orgId, count]) => ({ orgId, count }));
      await this.auditPerOrganization(db, purged);
      // a person's, of no organization: counted in the log only
      const erasureWalks = await retentionRepository.purgeErasureWalks(db, new Date(now - ERASURE_WALK_RETENTION_DAYS * DAY_MS));
      if (erasureWalks) this.logger.log({ erasureWalks }, 'retention purge of the walks of erasures that did not commit');
      const total = (rows: PurgedInOrg[]) => rows.reduce((n, r) => n + r.count, 0);
      return {
        webhookDeliveries: total(purged.webhookDeliveries), processedJobs: total(purged.processedJobs), eventReceipts: total(purged.eventReceipts),
        emailDeliveries: total(purged.emailDeliveries), dataExports: exports.files,
      };
    });
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

  /** One audit row per organization that lost rows: its count of each class (0 for the others) and the retention settings. */
  private async auditPerOrganization(db: Db, purged: Record<string, PurgedInOrg[]>): Promise<void> {
    const byOrg = new Map<string, Record<string, number>>();
    for (const [kind, rows] of Object.entries(purged)) {
      for (const { orgId, count } of rows) {
        if (!orgId || !count) continue;
        const counts = byOrg.get(orgId) ?? Object.fromEntries(Object.keys(purged).map((k) => [k, 0]));
        counts[kind] += count;
        byOrg.set(orgId, counts);
      }
    }
    const { webhookDeliveryDays, outboxDays, emailDeliveryDays } = this.config.retention;
    for (const [orgId, counts] of byOrg) {
      await this.audit.recordPrivileged(db, orgId, 'system', {
        action: 'privacy.retention_purged', entityType: 'organization', entityId: orgId,
        after: { ...counts, retentionDays: { webhookDeliveries: webhookDeliveryDays, outbox: outboxDays, emailDeliveries: emailDeliveryDays } },
      });
    }
  }
}
