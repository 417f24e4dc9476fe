import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { DatabaseService } from '../database/database.service.js';
import { DatabaseUnavailableError } from '../errors/database-errors.js';
import { Metrics } from '../observability/metrics.js';

/** The schemas whose tables hold organizations' rows (test/platform/schemas.ts lists the same). */
const TENANT_SCHEMAS = ['core', 'hub', 'finance', 'ai', 'public', 'semantic'] as const;

export interface CanaryResult {
  ok: boolean;
  /** tables where the probe principal saw rows: a policy lets another organization's rows through */
  leaks: { table: string; rows: number }[];
  checkedAt: Date;
  error?: string;
}

/**
 * Row-level security checked from the outside, periodically (RLS_CANARY_INTERVAL_MS) and on demand by
 * /health/ready: a person who belongs to no organization must see no row of any organization. A failure makes
 * the instance not ready, sets omnizen_rls_canary_ok to 0 (the RlsCanaryFailing alert) and is logged as an error; so
 * does a check that cannot run while the database answers (only an unreachable database keeps the last verdict).
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
      const leaks = await this.db.rlsCanary(TENANT_SCHEMAS);
      this.last = { ok: leaks.length === 0, leaks, checkedAt: new Date() };
      if (leaks.length) this.logger.error({ leaks }, 'RLS canary: a principal of no organization can read organizations\' rows');
    } catch (err) {
      // the database is down: readiness reports it as postgres down; the canary keeps its last verdict
      if (err instanceof DatabaseUnavailableError) return this.last ?? { ok: false, leaks: [], checkedAt: new Date(), error: err.message };
      // the database answers but the check fails (a policy that raises, a timeout): not a verdict of "no leak"
      this.last = { ok: false, leaks: [], checkedAt: new Date(), error: (err as Error).message };
      this.logger.error({ err: (err as Error).message }, 'RLS canary: the check could not run');
    }
    this.metrics.rlsCanary.set(this.last.ok ? 1 : 0);
    return this.last;
  }
}
