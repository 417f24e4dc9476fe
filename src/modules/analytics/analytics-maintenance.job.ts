import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { Metrics } from '../../platform/observability/metrics.js';
import { analyticsRepository as repo } from './analytics.repository.js';

const DAY_MS = 86_400_000;

const monthStart = (t: number, addMonths = 0) => {
  const d = new Date(t);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + addMonths, 1));
};

/**
 * Keeps the event table's monthly partitions (the previous month through ANALYTICS_PARTITIONS_AHEAD months ahead
 * exist; those older than ANALYTICS_RETENTION_MONTHS are dropped) and the daily roll-ups (today and yesterday are
 * recomputed every 10 minutes, so counts lag events by at most that). Privileged path `analytics.maintenance`:
 * the partition functions are SECURITY DEFINER functions of the table's owner, executable by service_role only.
 */
@Injectable()
export class AnalyticsMaintenanceJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(AnalyticsMaintenanceJob.name);
  /** the start-up run (tests wait for it before they move partitions themselves) */
  booted: Promise<unknown> = Promise.resolve();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
  ) {}

  onApplicationBootstrap(): void {
    // a process that starts in a new month needs no wait for the nightly run
    this.booted = this.maintainPartitions().catch((err) => this.logger.error(`analytics partitions failed: ${(err as Error).message}`));
  }

  @Cron(CronExpression.EVERY_DAY_AT_1AM, { name: 'analytics-partitions' })
  async onPartitionSchedule(): Promise<void> {
    await this.maintainPartitions().catch((err) => this.logger.error(`analytics partitions failed: ${(err as Error).message}`));
  }

  @Cron(CronExpression.EVERY_10_MINUTES, { name: 'analytics-rollup' })
  async onRollupSchedule(): Promise<void> {
    await this.rollUp().catch((err) => this.logger.error(`analytics roll-up failed: ${(err as Error).message}`));
  }

  /** Creates the partitions ahead and drops the expired ones; returns their names. */
  async maintainPartitions(now = this.clock.now()): Promise<{ created: string[]; dropped: string[] }> {
    return this.privileged.run('analytics.maintenance', async (db) => {
      const created = await repo.createPartitions(db, monthStart(now, -1), this.config.analytics.partitionsAhead + 1);
      // keep the current month and the (retention - 1) before it
      const dropped = await repo.dropPartitions(db, monthStart(now, -(this.config.analytics.retentionMonths - 1)));
      if (created.length || dropped.length) this.logger.log(`analytics partitions: created ${created.join(', ') || 'none'}; dropped ${dropped.join(', ') || 'none'}`);
      return { created, dropped };
    });
  }

  /**
   * Recomputes the daily roll-ups of the UTC days [from, to) (default: yesterday and today), then the usage gauges of
   * /metrics (active users per organization, today's feature usage by plan tier). Returns rows written.
   */
  async rollUp(from?: Date, to?: Date): Promise<number> {
    const now = this.clock.now();
    const today = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate());
    return this.privileged.run('analytics.maintenance', async (db) => {
      const written = await repo.rollUp(db, from ?? new Date(today - DAY_MS), to ?? new Date(today + DAY_MS));
      const day = new Date(today).toISOString().slice(0, 10);
      const users = await repo.activeUsersByOrg(db, new Date(today));
      const features = await repo.featureUsageByPlan(db, day, day);
      this.metrics.setUsage(users, features.map((f) => ({ plan: f.plan, feature: f.event, events: f.events })));
      return written;
    });
  }
}
