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

  async query(principal: Principal, orgId: string, meta: RequestMeta, sql: string, limits: { rowCap?: number; byteCap?: number; timeoutMs?: number } = {}): Promise<SemanticResultDto> {
    const accepted = await acceptSemanticQuery(sql);
    const rowCap = limits.rowCap ?? this.config.ai.semanticRowCap;
    const byteCap = limits.byteCap ?? this.config.ai.semanticByteCap;
    const timeoutMs = limits.timeoutMs ?? this.config.ai.semanticTimeoutMs;
    const result = await this.db.tenant(principal, orgId, meta, async (tx) => {
      try {
        return await repo.run(tx.db, accepted.statement, { limit: rowCap + 1, byteCap }, timeoutMs);
      } catch (err) {
        throw this.queryError(err, timeoutMs);
      }
    }, { readOnlyRolledBack: true });
    const kept = result.rows.slice(0, rowCap);
    // the byte cap cut it when it kept fewer rows than the statement gave, short of the row cap
    const truncatedBy = kept.length < Math.min(result.fetched, rowCap) ? 'bytes' : result.fetched > rowCap ? 'rows' : null;
    const rows = kept.map((r) => r.map(jsonValue));
    return { columns: result.columns, rows, rowCount: rows.length, truncated: truncatedBy !== null, truncatedBy };
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
