import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db } from '../../platform/database/database.service.js';
import { FEATURE_LABEL_LIMIT, Metrics } from '../../platform/observability/metrics.js';
import { AuditService } from '../audit/audit.service.js';
import { analyticsRepository as repo } from './analytics.repository.js';
import { AnalyticsService, MAX_AGE_MS } from './analytics.service.js';

const DAY_MS = 86_400_000;

type OrgCount = { orgId: string; count: number };

const monthStart = (t: number, addMonths = 0) => {
  const d = new Date(t);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + addMonths, 1));
};

/**
 * Keeps the event table's monthly partitions (the previous month through ANALYTICS_PARTITIONS_AHEAD months ahead
 * exist; those older than ANALYTICS_RETENTION_MONTHS are dropped, and so are the roll-ups of those months) and the
 * daily roll-ups: every 10 minutes today, yesterday and the days that received events since (an app may date events
 * up to 28 days back), so counts lag events by at most that; nightly every day an event may still be dated in, for
 * events another process received and did not roll up (it stopped). Privileged path `analytics.maintenance`:
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
    private readonly analytics: AnalyticsService,
    private readonly audit: AuditService,
  ) {}

  onApplicationBootstrap(): void {
    // a process that starts in a new month needs no wait for the nightly run
    this.booted = this.maintainPartitions().catch((err) => this.logger.error(`analytics partitions failed: ${(err as Error).message}`));
  }

  @Cron(CronExpression.EVERY_DAY_AT_1AM, { name: 'analytics-partitions' })
  async onPartitionSchedule(): Promise<void> {
    await this.maintainPartitions().catch((err) => this.logger.error(`analytics partitions failed: ${(err as Error).message}`));
    await this.rollUpAcceptedAge().catch((err) => this.logger.error(`analytics nightly roll-up failed: ${(err as Error).message}`));
  }

  @Cron(CronExpression.EVERY_10_MINUTES, { name: 'analytics-rollup' })
  async onRollupSchedule(): Promise<void> {
    await this.rollUp().catch((err) => this.logger.error(`analytics roll-up failed: ${(err as Error).message}`));
  }

  /**
   * Creates the partitions ahead, drops the expired ones and deletes the roll-ups of those months; returns the
   * partitions' names and the roll-up rows deleted. Each organization that lost events, roll-ups or event names gets
   * one audit row (analytics.retention_purged, by the system) in the same transaction: how many events and roll-ups,
   * which names. A partition holds every organization's events: its drop is the log line's (no organization to file
   * it under), its events counted per organization before it goes.
   */
  async maintainPartitions(now = this.clock.now()): Promise<{ created: string[]; dropped: string[]; rollUpsDeleted: number }> {
    return this.privileged.run('analytics.maintenance', async (db) => {
      const created = await repo.createPartitions(db, monthStart(now, -1), this.config.analytics.partitionsAhead + 1);
      // keep the current month and the (retention - 1) before it
      const keepFrom = monthStart(now, -(this.config.analytics.retentionMonths - 1));
      const events = await repo.eventsBefore(db, keepFrom);
      const dropped = await repo.dropPartitions(db, keepFrom);
      const rollUps = await repo.deleteRollUpsBefore(db, keepFrom);
      // a name whose events are all past the retention no longer counts against ANALYTICS_MAX_EVENT_NAMES
      const names = await repo.deleteEventNamesUnusedSince(db, keepFrom);
      await this.auditPurge(db, keepFrom, { events, rollUps, names });
      const rollUpsDeleted = rollUps.reduce((n, r) => n + r.count, 0);
      if (created.length || dropped.length || rollUpsDeleted || names.length) {
        this.logger.log(`analytics partitions: created ${created.join(', ') || 'none'}; dropped ${dropped.join(', ') || 'none'}; ${rollUpsDeleted} roll-up rows deleted; ${names.length} event names forgotten`);
      }
      return { created, dropped, rollUpsDeleted };
    });
  }

  /** One audit row per organization that lost events, roll-ups or event names to the retention. */
  private async auditPurge(db: Db, keepFrom: Date, purged: { events: OrgCount[]; rollUps: OrgCount[]; names: { orgId: string; name: string }[] }): Promise<void> {
    const byOrg = new Map<string, { events: number; rollUps: number; eventNamesForgotten: string[] }>();
    const of = (orgId: string) => byOrg.get(orgId) ?? byOrg.set(orgId, { events: 0, rollUps: 0, eventNamesForgotten: [] }).get(orgId)!;
    for (const { orgId, count } of purged.events) of(orgId).events += count;
    for (const { orgId, count } of purged.rollUps) of(orgId).rollUps += count;
    for (const { orgId, name } of purged.names) of(orgId).eventNamesForgotten.push(name);
    for (const [orgId, counts] of byOrg) {
      counts.eventNamesForgotten.sort();
      await this.audit.recordPrivileged(db, orgId, 'system', {
        action: 'analytics.retention_purged', entityType: 'organization', entityId: orgId,
        after: { ...counts, before: keepFrom.toISOString().slice(0, 10), retentionMonths: this.config.analytics.retentionMonths },
      });
    }
  }

  /** Recomputes the roll-ups of every day an event may be dated in (MAX_AGE_MS back) through today. */
  async rollUpAcceptedAge(): Promise<number> {
    const today = this.today();
    return this.rollUp(new Date(today - Math.ceil(MAX_AGE_MS / DAY_MS) * DAY_MS - DAY_MS), new Date(today + DAY_MS));
  }

  private today(): number {
    const now = new Date(this.clock.now());
    return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  }

  /**
   * Recomputes the daily roll-ups of the UTC days that [from, to) touches (default: yesterday and today) and of the
   * days that received events since the last roll-up, in one statement, then the usage gauges of /metrics (active
   * users per organization, today's feature usage by plan tier: FEATURE_LABEL_LIMIT events per plan read, the rest
   * summed by the database). Returns rows written.
   */
  async rollUp(from?: Date, to?: Date): Promise<number> {
    const today = this.today();
    const start = from ? from.getTime() - (from.getTime() % DAY_MS) : today - DAY_MS;
    const end = to?.getTime() ?? today + DAY_MS;
    const received = this.analytics.takeReceivedDays();
    const days = new Set(received);
    for (let d = start; d < end; d += DAY_MS) days.add(d);
    try {
      return await this.privileged.run('analytics.maintenance', async (db) => {
        const written = await repo.rollUp(db, [...days].map((d) => new Date(d)));
        const day = new Date(today).toISOString().slice(0, 10);
        const users = await repo.activeUsersByOrg(db, new Date(today));
        // per plan its FEATURE_LABEL_LIMIT most used events, then one row (event null) of the rest summed: the gauge's "other"
        const features = await repo.featureUsageByPlan(db, day, day, FEATURE_LABEL_LIMIT);
        this.metrics.setUsage(users, features.map((f) => ({ plan: f.plan, feature: f.event ?? 'other', events: f.events })));
        return written;
      });
    } catch (err) {
      this.analytics.restoreReceivedDays(received);
      throw err;
    }
  }
}
