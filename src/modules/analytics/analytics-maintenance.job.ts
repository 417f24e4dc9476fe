import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db } from '../../platform/database/database.service.js';
import { type AnalyticsStep, FEATURE_LABEL_LIMIT, Metrics } from '../../platform/observability/metrics.js';
import { AuditService } from '../audit/audit.service.js';
import { analyticsRepository as repo } from './analytics.repository.js';
import { AnalyticsService, MAX_AGE_MS } from './analytics.service.js';

const DAY_MS = 86_400_000;
/** Days of core.analytics_daily_users kept before today's: the active-users gauge reads 29 of them and today's. */
const ACTIVE_USER_DAYS_KEPT = 30;

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
    this.booted = this.maintainPartitions().catch((err) => this.failed('analytics.partitions', err));
  }

  @Cron(CronExpression.EVERY_DAY_AT_1AM, { name: 'analytics-partitions' })
  async onPartitionSchedule(): Promise<void> {
    await this.maintainPartitions().catch((err) => this.failed('analytics.partitions', err));
    await this.rollUpAcceptedAge().catch((err) => this.failed('analytics.rollup', err));
  }

  @Cron(CronExpression.EVERY_10_MINUTES, { name: 'analytics-rollup' })
  async onRollupSchedule(): Promise<void> {
    await this.rollUp().catch((err) => this.failed('analytics.rollup', err));
  }

  /** A step that failed: logged with its error and counted (omnizen_analytics_steps_failed_total, by step). */
  private failed(step: AnalyticsStep, err: unknown): void {
    this.metrics.analyticsStepsFailed.inc({ step });
    this.logger.error(`${step} failed: ${(err as Error).message}`);
  }

  /**
   * Creates the partitions ahead (a transaction of its own), then drops the expired ones and deletes the roll-ups of those months, and who was active on
   * the days before the last 31 (the gauge reads 30: ACTIVE_USER_DAYS_KEPT); returns the partitions' names and the roll-up rows deleted. Each organization that lost events,
   * roll-ups, active-user days or event names gets one audit row (analytics.retention_purged, by the system) in the same
   * transaction: how many events, roll-ups and active-user days, which names. A partition holds every organization's events: its drop is the log line's (no organization to file
   * it under), its events counted per organization before it goes. The purge runs in one instance at a time
   * (a try-lock: another instance's run skips it), holds the partitions' lock from before its first read (a
   * create of another instance waits for it, never the other way round) and drops last, so the ACCESS EXCLUSIVE lock that a
   * partition's DDL takes on core.analytics_events (every analytics insert waits for it) is held only to the commit.
   */
  async maintainPartitions(now = this.clock.now()): Promise<{ created: string[]; dropped: string[]; rollUpsDeleted: number }> {
    // its own short transaction: CREATE TABLE … PARTITION OF locks core.analytics_events against every insert (ACCESS
    // EXCLUSIVE) until the commit, so nothing else runs under that lock. The function serializes concurrent runs
    // (another instance's) on a named lock (core.xact_lock) and makes only the partitions missing once it holds it.
    const created = await this.privileged.run('analytics.maintenance', (db) =>
      repo.createPartitions(db, monthStart(now, -1), this.config.analytics.partitionsAhead + 1));
    const purged = await this.privileged.run('analytics.maintenance', async (db) => {
      // one instance purges at a time; one that finds another purging leaves it the work (it would find nothing left)
      if (!(await repo.tryRetentionLock(db))) return { dropped: [] as string[], rollUpsDeleted: 0, names: 0 };
      // the partitions' lock before anything reads core.analytics_events: the drop takes it last, and another instance's
      // create holding it waits for the table lock the reads below hold to the commit (a deadlock). Inserts never wait for it
      await repo.lockPartitions(db);
      // then the erasures in flight: each reads the events and deletes old active-user rows this purge deletes (a deadlock)
      await repo.holdRollUps(db);
      // keep the current month and the (retention - 1) before it
      const keepFrom = monthStart(now, -(this.config.analytics.retentionMonths - 1));
      const events = await repo.eventsBefore(db, keepFrom);
      const rollUps = await repo.deleteRollUpsBefore(db, keepFrom);
      // who was active: the gauge reads the last 30 days (today's included); 31 kept (a run before midnight read the 30th)
      const activeUsersFrom = new Date(this.today(now) - ACTIVE_USER_DAYS_KEPT * DAY_MS);
      const activeUserDays = await repo.deleteDailyUsersBefore(db, activeUsersFrom);
      // a name whose events are all past the retention no longer counts against ANALYTICS_MAX_EVENT_NAMES
      const names = await repo.deleteEventNamesUnusedSince(db, keepFrom);
      await this.auditPurge(db, keepFrom, activeUsersFrom, { events, rollUps, activeUserDays, names });
      // last, just before the commit: DROP TABLE locks core.analytics_events against every insert (ACCESS EXCLUSIVE)
      // until then; the events it drops were counted above (nothing inserts into a month past the retention)
      const dropped = await repo.dropPartitions(db, keepFrom);
      return { dropped, rollUpsDeleted: rollUps.reduce((n, r) => n + r.count, 0), names: names.length };
    });
    const { dropped, rollUpsDeleted } = purged;
    if (created.length || dropped.length || rollUpsDeleted || purged.names) {
      this.logger.log(`analytics partitions: created ${created.join(', ') || 'none'}; dropped ${dropped.join(', ') || 'none'}; ${rollUpsDeleted} roll-up rows deleted; ${purged.names} event names forgotten`);
    }
    return { created, dropped, rollUpsDeleted };
  }

  /** One audit row per organization that lost events, roll-ups, active-user days or event names to the retention. */
  private async auditPurge(db: Db, keepFrom: Date, activeUsersFrom: Date, purged: { events: OrgCount[]; rollUps: OrgCount[]; activeUserDays: OrgCount[]; names: { orgId: string; name: string }[] }): Promise<void> {
    const byOrg = new Map<string, { events: number; rollUps: number; activeUserDays: number; eventNamesForgotten: string[] }>();
    const of = (orgId: string) => byOrg.get(orgId) ?? byOrg.set(orgId, { events: 0, rollUps: 0, activeUserDays: 0, eventNamesForgotten: [] }).get(orgId)!;
    for (const { orgId, count } of purged.events) of(orgId).events += count;
    for (const { orgId, count } of purged.rollUps) of(orgId).rollUps += count;
    for (const { orgId, count } of purged.activeUserDays) of(orgId).activeUserDays += count;
    for (const { orgId, name } of purged.names) of(orgId).eventNamesForgotten.push(name);
    for (const [orgId, counts] of byOrg) {
      counts.eventNamesForgotten.sort();
      await this.audit.recordPrivileged(db, orgId, 'system', {
        action: 'analytics.retention_purged', entityType: 'organization', entityId: orgId,
        after: {
          ...counts, before: keepFrom.toISOString().slice(0, 10), retentionMonths: this.config.analytics.retentionMonths,
          activeUserDaysBefore: activeUsersFrom.toISOString().slice(0, 10),
        },
      });
    }
  }

  /** Recomputes the roll-ups of every day an event may be dated in (MAX_AGE_MS back) through today. */
  async rollUpAcceptedAge(): Promise<number> {
    const today = this.today();
    return this.rollUp(new Date(today - Math.ceil(MAX_AGE_MS / DAY_MS) * DAY_MS - DAY_MS), new Date(today + DAY_MS));
  }

  private today(at = this.clock.now()): number {
    const now = new Date(at);
    return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  }

  /**
   * Recomputes the daily roll-ups of the UTC days that [from, to) touches (default: yesterday and today) and of the
   * days that received events since the last roll-up, a day per transaction; returns the roll-up rows written. Then, a
   * day per transaction too, who was active on those days (core.analytics_daily_users) and, each in a transaction of its
   * own, the usage gauges of /metrics (refreshUsageGauges): their failure never undoes nor holds back the roll-up (logged
   * and counted). A day whose roll-up lock another transaction holds (another instance's run, an erasure) is skipped, not
   * waited for past the lock timeout; the days skipped, and those that received events when a step failed, are redone by
   * the next run (AnalyticsService.restoreReceivedDays).
   */
  async rollUp(from?: Date, to?: Date): Promise<number> {
    const today = this.today();
    const start = from ? from.getTime() - (from.getTime() % DAY_MS) : today - DAY_MS;
    const end = to?.getTime() ?? today + DAY_MS;
    const received = this.analytics.takeReceivedDays();
    const days = new Set(received);
    for (let d = start; d < end; d += DAY_MS) days.add(d);
    const dates = [...days].sort((a, b) => a - b).map((d) => new Date(d));
    const skipped = new Set<number>();
    let written = 0;
    // a day that fails is redone by the next run and holds back none of the others (one failing for good would
    // otherwise stop every later day and the gauges); the first failure is thrown once every day was tried
    let failure: unknown;
    for (const day of dates) {
      try {
        const n = await this.privileged.run('analytics.maintenance', (db) => repo.rollUpDay(db, day));
        if (n === null) skipped.add(day.getTime());
        else written += n;
      } catch (err) {
        skipped.add(day.getTime());
        failure ??= err;
      }
    }
    for (const day of dates) {
      try {
        if (!(await this.privileged.run('analytics.maintenance', (db) => repo.rollUpDailyUsers(db, day)))) skipped.add(day.getTime());
      } catch (err) {
        skipped.add(day.getTime());
        this.failed('analytics.daily_users', err);
      }
    }
    if (skipped.size) {
      this.analytics.restoreReceivedDays([...skipped]);
      this.logger.log(`analytics roll-up: ${skipped.size} day(s) to redo by the next run (their lock held, or a step failed)`);
    }
    await this.refreshUsageGauges(today);
    if (failure !== undefined) throw failure;
    return written;
  }

  /**
   * The usage gauges, from the committed roll-ups, each read in a transaction of its own: active users per
   * organization (today and the last 30 days, from core.analytics_daily_users) and today's feature usage by plan tier
   * (FEATURE_LABEL_LIMIT events per plan read, the rest summed by the database). A read that fails (a statement timeout)
   * is logged and counted, and leaves its gauge as it was.
   */
  private async refreshUsageGauges(today: number): Promise<void> {
    const day = new Date(today).toISOString().slice(0, 10);
    try {
      const users = await this.privileged.run('analytics.maintenance', (db) => repo.activeUsersByOrg(db, new Date(today)));
      this.metrics.setActiveUsers(users);
    } catch (err) {
      this.failed('analytics.active_users', err);
    }
    try {
      // per plan its FEATURE_LABEL_LIMIT most used events, then one row (event null) of the rest summed: the gauge's "other"
      const features = await this.privileged.run('analytics.maintenance', (db) => repo.featureUsageByPlan(db, day, day, FEATURE_LABEL_LIMIT));
      this.metrics.setFeatureUsage(features.map((f) => ({ plan: f.plan, feature: f.event ?? 'other', events: f.events })));
    } catch (err) {
      this.failed('analytics.feature_usage', err);
    }
  }
}
