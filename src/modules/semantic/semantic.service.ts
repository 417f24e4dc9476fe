import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Principal } from '../../platform/auth/principal.js';
import { DatabaseService, type RequestMeta, type TenantTx } from '../../platform/database/database.service.js';
import { sqlState } from '../../platform/errors/database-errors.js';
import { AppError } from '../../platform/errors/app-error.js';
import { acceptSemanticQuery } from './semantic-sql-guard.js';
import { SemanticErrors } from './semantic.errors.js';
import { semanticRepository as repo } from './semantic.repository.js';
import type { SemanticResultDto, SemanticViewDto } from './semantic.dto.js';

/** JSON of one result value (numerics, dates, timestamps and JSON come as PostgreSQL's text: semantic.repository). */
function jsonValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map(jsonValue);
  return v;
}

/** A 503 semantic.busy with Retry-After: the query did not run, the client may retry. */
function busy(message: string, details: Record<string, unknown>): AppError {
  const err = SemanticErrors.error('semantic.busy', `${message}; the query did not run: retry in ${SEMANTIC_BUSY_RETRY_SECONDS} s`, details);
  err.retryAfterSeconds = SEMANTIC_BUSY_RETRY_SECONDS;
  return err;
}

/**
 * What the server ran out of (SQLSTATE class 53 but 53300, too many connections, which is the server's): the query's
 * own size, answered as 400 semantic.query_failed. 53400 is temp_file_limit where the database sets one.
 */
const OUT_OF_RESOURCES: Record<string, string> = {
  '53000': 'the server lacked the resources to run the query',
  '53100': 'the server ran out of disk space for the query\'s temporary files',
  '53200': 'the server ran out of memory running the query',
  '53400': 'the query needed more temporary disk space than the server allows (temp_file_limit)',
};

/** The Retry-After of a 503 semantic.busy: a query runs within its statement timeout, most well under a second. */
export const SEMANTIC_BUSY_RETRY_SECONDS = 1;

/**
 * The semantic layer's read endpoint, for people (POST /semantic/query) and for agents (the query_semantic tool):
 * the statement is accepted by the parser's allow-list, then runs in its own READ ONLY transaction under the
 * caller's claims, with a statement timeout, a row cap and a byte cap, and that transaction is always rolled back.
 */
@Injectable()
export class SemanticService {
  constructor(
    private readonly db: DatabaseService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Semantic queries running in this process: all of them, and each organization's (see slot). */
  private running = 0;
  private readonly runningByOrg = new Map<string, number>();
  /** Queries waiting for a slot, first come first served (an organization at its own limit is passed over). */
  private readonly waiters: { orgId: string; grant: () => void }[] = [];
  private readonly waitingByOrg = new Map<string, number>();

  async query(principal: Principal, orgId: string, meta: RequestMeta, sql: string, limits: { rowCap?: number; byteCap?: number; timeoutMs?: number } = {}): Promise<SemanticResultDto> {
    const accepted = await acceptSemanticQuery(sql);
    const rowCap = limits.rowCap ?? this.config.ai.semanticRowCap;
    const byteCap = limits.byteCap ?? this.config.ai.semanticByteCap;
    const timeoutMs = limits.timeoutMs ?? this.config.ai.semanticTimeoutMs;
    // a slot is held before the transaction: a query waiting for one holds no database connection. Keyed on the
    // organization's id in lower case: the route takes a UUID in any letter case (the same organization, one limit)
    const release = await this.slot(orgId.toLowerCase(), timeoutMs);
    let result;
    try {
      result = await this.db.tenant(principal, orgId, meta, async (tx) => {
        try {
          return await repo.run(tx.db, accepted.statement, { limit: rowCap + 1, byteCap }, timeoutMs);
        } catch (err) {
          throw this.queryError(err, timeoutMs);
        }
      }, { readOnlyRolledBack: true });
    } finally {
      release();
    }
    const kept = result.rows.slice(0, rowCap);
    // the byte cap cut it when it kept fewer rows than the statement gave, short of the row cap
    const truncatedBy = kept.length < Math.min(result.fetched, rowCap) ? 'bytes' : result.fetched > rowCap ? 'rows' : null;
    const rows = kept.map((r) => r.map(jsonValue));
    return { columns: result.columns, rows, rowCount: rows.length, truncated: truncatedBy !== null, truncatedBy };
  }

  /**
   * Takes one of the process's SEMANTIC_MAX_CONCURRENT_QUERIES slots and one of the organization's
   * SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG: no static rule bounds what a query builds across rows of views joined with
   * each other (up to PostgreSQL's 1 GB a value, within the statement timeout), so the queries that run at once bound
   * what they hold together. Past either, the query waits for a slot, first come first served, as one of at most
   * SEMANTIC_QUEUED_QUERIES_PER_ORG of its organization and for at most `waitMs` (the query's own timeout: a running
   * query ends within it); else, or once that wait is over, 503 semantic.busy with Retry-After (the query did not run).
   * So a dashboard's few queries at once all answer, while no organization holds more than its share of the process.
   * Returns the release, to be called once the query's transaction is over (whatever its outcome).
   */
  private slot(orgId: string, waitMs: number): Promise<() => void> {
    if (this.free(orgId)) return Promise.resolve(this.take(orgId));
    const queued = this.waitingByOrg.get(orgId) ?? 0;
    if (queued >= this.config.ai.semanticQueuedQueriesPerOrg) return Promise.reject(this.busy(orgId));
    this.waitingByOrg.set(orgId, queued + 1);
    return new Promise((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        const left = (this.waitingByOrg.get(orgId) ?? 1) - 1;
        if (left > 0) this.waitingByOrg.set(orgId, left);
        else this.waitingByOrg.delete(orgId);
      };
      const waiter = { orgId, grant: () => { leave(); resolve(this.take(orgId)); } };
      const timer = setTimeout(() => { leave(); reject(this.busy(orgId)); }, waitMs);
      this.waiters.push(waiter);
    });
  }

  /** Whether a query of `orgId` may run now: under the organization's limit and the process's. */
  private free(orgId: string): boolean {
    return (this.runningByOrg.get(orgId) ?? 0) < this.config.ai.semanticMaxConcurrentQueriesPerOrg
      && this.running < this.config.ai.semanticMaxConcurrentQueries;
  }

  private take(orgId: string): () => void {
    this.running++;
    this.runningByOrg.set(orgId, (this.runningByOrg.get(orgId) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      const left = (this.runningByOrg.get(orgId) ?? 1) - 1;
      if (left > 0) this.runningByOrg.set(orgId, left);
      else this.runningByOrg.delete(orgId);
      // hand the slot on: the first waiter whose organization is under its limit (grant takes the slot at once)
      for (const w of [...this.waiters]) if (this.free(w.orgId)) w.grant();
    };
  }

  /** The 503 semantic.busy for a query of `orgId` that cannot run: the organization's limit, else the process's. */
  private busy(orgId: string): AppError {
    const perOrg = this.config.ai.semanticMaxConcurrentQueriesPerOrg;
    const own = this.runningByOrg.get(orgId) ?? 0;
    if (own >= perOrg) {
      return busy(`${own} semantic queries of this organization are running, the most one organization may run at once (SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG)`,
        { limit: 'organization', maxConcurrent: perOrg, running: own });
    }
    const max = this.config.ai.semanticMaxConcurrentQueries;
    return busy(`${this.running} semantic queries are running on this server, the most it runs at once (SEMANTIC_MAX_CONCURRENT_QUERIES)`,
      { limit: 'process', maxConcurrent: max, running: this.running });
  }

  async views(tx: TenantTx): Promise<SemanticViewDto[]> {
    const views = new Map<string, SemanticViewDto>();
    for (const r of await repo.views(tx.db)) {
      const name = `semantic.${r.view}`;
      const v = views.get(name) ?? { name, description: r.view_comment, columns: [] };
      v.columns.push({ name: r.column_name, type: r.column_type, description: r.column_comment });
      views.set(name, v);
    }
    return [...views.values()];
  }

  /** A failure of the caller's statement is the caller's: 4xx naming it, never a 500 or a 503. */
  private queryError(err: unknown, timeoutMs: number): unknown {
    if (err instanceof AppError) return err;
    const { code, message } = sqlState(err);
    if (!code) return err;
    // syntax the guard's parser (PostgreSQL 18's) accepts and an older server does not (1_000, AT LOCAL): a syntax error as the parser's
    if (code === '42601') return SemanticErrors.error('semantic.syntax_error', `the query is not valid SQL for this server: ${message}`, { sqlState: code });
    if (code === '57014') return SemanticErrors.error('semantic.query_timeout', `the query ran longer than ${timeoutMs} ms and was cancelled`);
    if (code === '25006') return SemanticErrors.error('semantic.query_refused', 'the query tried to write in a read-only transaction', { reason: 'read-only transaction' });
    if (code === '42501') return SemanticErrors.error('semantic.query_refused', `permission denied: ${message}`, { reason: 'permission denied' });
    if (code.startsWith('53') && code !== '53300') {
      return SemanticErrors.error('semantic.query_failed', `${OUT_OF_RESOURCES[code] ?? OUT_OF_RESOURCES['53000']}: read fewer rows, aggregate earlier or sort less (${message})`, { sqlState: code });
    }
    // connection-level failures stay what they are (503 from the one mapping; of class 53 only 53300 is left here)
    if (code.startsWith('08') || code.startsWith('57') || code === '53300') return err;
    return SemanticErrors.error('semantic.query_failed', `the query failed: ${message}`, { sqlState: code });
  }
}
