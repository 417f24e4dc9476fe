import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { DatabaseService, type CanaryLeak } from '../database/database.service.js';
import { DatabaseUnavailableError, isTransientSqlState, sqlState } from '../errors/database-errors.js';
import { Metrics } from '../observability/metrics.js';

/** The schemas whose tables hold organizations' rows (test/platform/schemas.ts lists the same). */
const TENANT_SCHEMAS = ['core', 'hub', 'finance', 'ai', 'public', 'semantic'] as const;
/**
 * How long the canary waits for a table's lock (ms): a table held ACCESS EXCLUSIVE (a migration's ALTER TABLE, VACUUM
 * FULL) fails the check soon, as a check that could not run, not a verdict.
 */
export const CANARY_LOCK_TIMEOUT_MS = 1000;
/**
 * About how many pages of a table one check reads at most (rlsCanaryProbe): 512 kB, whatever the table's size; a
 * smaller table is read whole.
 */
export const CANARY_SAMPLE_PAGES = 64;

export interface CanaryResult {
  ok: boolean;
  /** tables where the probe principal saw rows (a policy lets another organization's rows through), or whose catalog says it could */
  leaks: CanaryLeak[];
  checkedAt: Date;
  error?: string;
}

/**
 * Row-level security checked from the outside, periodically (RLS_CANARY_INTERVAL_MS) and on demand by
 * /health/ready: a person who belongs to no organization must see no row of any organization, and no table may be
 * open to them whatever it holds (DatabaseService.rlsCanary: the catalog, then a read of each table bounded by
 * CANARY_SAMPLE_PAGES, so that a large table does not make every check end in the statement timeout). A failure makes
 * the instance not ready, sets omnizen_rls_canary_ok to 0 (the RlsCanaryFailing alert) and is logged as an error; so
 * does a check that fails for a reason that does not pass (a policy that raises). A check that could not run for a
 * reason that passes (the database unreachable, a lock or statement timeout: isTransientSqlState) is no verdict: the
 * last one stands, omnizen_rls_canary_unchecked is 1 (the RlsCanaryNotRunning alert, when it lasts) and a warning is
 * logged; with no verdict yet the instance is not ready.
 */
@Injectable()
export class RlsCanary implements OnApplicationBootstrap {
  private readonly logger = new Logger(RlsCanary.name);
  private last?: CanaryResult;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly db: DatabaseService,
    private readonly metrics: Metrics,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const every = this.config.observability.rlsCanaryIntervalMs;
    if (every > 0) this.scheduler.addInterval('rls-canary', setInterval(() => void this.run(), every));
  }

  /** The last periodic result; a fresh one when there is none yet or the canary does not run periodically. */
  async latest(): Promise<CanaryResult> {
    if (!this.last || this.config.observability.rlsCanaryIntervalMs === 0) return this.run();
    return this.last;
  }

  async run(): Promise<CanaryResult> {
    try {
      const leaks = await this.db.rlsCanary(TENANT_SCHEMAS, CANARY_LOCK_TIMEOUT_MS, CANARY_SAMPLE_PAGES);
      this.last = { ok: leaks.length === 0, leaks, checkedAt: new Date() };
      if (leaks.length) this.logger.error({ leaks }, 'RLS canary: a principal of no organization can read organizations\' rows, or a table is open to it');
    } catch (err) {
      const message = (err as Error).message;
      // the check could not run this time (the database down, a table locked by a migration, a timeout): no verdict;
      // the last one stands (readiness reports a database that is down as postgres down)
      if (err instanceof DatabaseUnavailableError || isTransientSqlState(sqlState(err).code)) {
        this.metrics.rlsCanaryUnchecked.set(1);
        this.logger.warn({ err: message, verdictOf: this.last?.checkedAt }, 'RLS canary: the check could not run; the last verdict stands');
        return this.last ?? { ok: false, leaks: [], checkedAt: new Date(), error: message };
      }
      // the database answers but the check fails for a reason that does not pass (a policy that raises): not "no leak"
      this.last = { ok: false, leaks: [], checkedAt: new Date(), error: message };
      this.logger.error({ err: message }, 'RLS canary: the check could not run');
    }
    this.metrics.rlsCanaryUnchecked.set(0);
    this.metrics.rlsCanary.set(this.last.ok ? 1 : 0);
    return this.last;
  }
}
