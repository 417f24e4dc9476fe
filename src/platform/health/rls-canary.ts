import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { DatabaseService, type CanaryLeak, type CanaryRead } from '../database/database.service.js';
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
 * How many pages of a table one check reads at most (rlsCanaryRange): 512 kB, whatever the table's size, the next
 * block each check, so every page within pages / CANARY_BLOCK_PAGES checks; a smaller table is read whole.
 */
export const CANARY_BLOCK_PAGES = 64;

/** A finding of the canary; rows_visible carries when the rows were last seen. */
export type CanaryFinding = CanaryLeak & { seenAt?: Date };

export interface CanaryResult {
  ok: boolean;
  /**
   * tables where the probe principal saw rows (a policy lets another organization's rows through: until a full pass of
   * the table has read clean since), or whose catalog says it could
   */
  leaks: CanaryFinding[];
  checkedAt: Date;
  error?: string;
}

/**
 * Row-level security checked from the outside, at start and periodically (RLS_CANARY_INTERVAL_MS), and on demand by
 * /health/ready: a person who belongs to no organization must see no row of any organization, and no table may be
 * open to them whatever it holds (DatabaseService.rlsCanary: the catalog, then a read of each table bounded by
 * CANARY_BLOCK_PAGES, so that a large table does not make every check end in the statement timeout: the next block of
 * its pages each check, so that a policy that lets through the rows of a few pages is found within a pass of
 * pages / CANARY_BLOCK_PAGES checks). Rows seen in a table stay a finding until a full pass over that table (every
 * block, read since) comes back clean: a clean block proves nothing about the others, and a policy changed is no proof
 * either (only a read of every page is), so the verdict does not flap with the blocks. The positions and the findings
 * are this instance's (a restart starts a new pass, which finds the rows again within one pass). A failure makes
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
  /** per table, the page its next block starts at */
  private readonly next = new Map<string, number>();
  /** per table where rows were seen, the finding and how many pages have read clean since (it ends at the table's pages) */
  private readonly seen = new Map<string, { finding: CanaryFinding; cleanPages: number }>();
  /** the check under way: a second caller shares it (two checks at once would read one block twice and count it twice) */
  private running?: Promise<CanaryResult>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly db: DatabaseService,
    private readonly metrics: Metrics,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const every = this.config.observability.rlsCanaryIntervalMs;
    if (every <= 0) return;
    // a first verdict now, not one interval later: until then omnizen_rls_canary_ok has no sample (Metrics)
    void this.run();
    this.scheduler.addInterval('rls-canary', setInterval(() => void this.run(), every));
  }

  /** The last periodic result; a fresh one when there is none yet or the canary does not run periodically. */
  async latest(): Promise<CanaryResult> {
    if (!this.last || this.config.observability.rlsCanaryIntervalMs === 0) return this.run();
    return this.last;
  }

  run(): Promise<CanaryResult> {
    this.running ??= this.check().finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * This check's verdict from its reads: each table's block moves on (back to 0 after its last); rows seen make (or
   * renew) its finding, a clean read counts its pages towards a full pass, which ends the finding. A table with a finding
   * that was neither read nor found in the catalog this time is gone (dropped, or no longer readable by the role).
   */
  private settle(catalog: CanaryLeak[], reads: CanaryRead[], now: Date): CanaryFinding[] {
    const flagged = new Set(catalog.map((l) => l.table));
    const read = new Set(reads.map((r) => r.table));
    for (const table of [...this.next.keys()]) if (!read.has(table) && !flagged.has(table)) this.next.delete(table);
    for (const table of [...this.seen.keys()]) if (!read.has(table) && !flagged.has(table)) this.seen.delete(table);
    for (const r of reads) {
      const stuck = this.seen.get(r.table);
      // the block started elsewhere than where the last one ended (the table shrank): the pages counted clean may not
      // be there any more; count again
      if (stuck && r.from !== (this.next.get(r.table) ?? 0)) stuck.cleanPages = 0;
      this.next.set(r.table, r.to >= r.pages ? 0 : r.to);
      if (r.rows > 0) this.seen.set(r.table, { finding: { table: r.table, rows: r.rows, reason: 'rows_visible', seenAt: now }, cleanPages: 0 });
      else if (stuck && (stuck.cleanPages += r.to - r.from) >= r.pages) this.seen.delete(r.table);
    }
    return [...catalog, ...[...this.seen.values()].map((s) => s.finding)].sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0));
  }

  private async check(): Promise<CanaryResult> {
    try {
      const { leaks: catalog, reads } = await this.db.rlsCanary(TENANT_SCHEMAS, CANARY_LOCK_TIMEOUT_MS, CANARY_BLOCK_PAGES, this.next);
      const checkedAt = new Date();
      const leaks = this.settle(catalog, reads, checkedAt);
      this.last = { ok: leaks.length === 0, leaks, checkedAt };
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
