import { AppError } from './app-error.js';
import { errorCodeSpec } from './catalog.js';
import { PlatformErrors } from './platform.errors.js';

/**
 * The database could not be reached, or cut the connection a request was using (restart, crash,
 * failover, terminated backend): the transaction did not commit (unless the cut came during COMMIT),
 * and the same request may succeed later.
 */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the database is unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** The retryable failures every operation that touches the database (or the queue) can answer, with their Retry-After. */
export const RETRYABLE_ERRORS = {
  database_unavailable: { retryAfterSeconds: 5, message: 'the database is unavailable; retry later' },
  database_timeout: { retryAfterSeconds: 2, message: 'the database did not answer in time (a statement or lock timeout); retry later' },
  queue_unavailable: { retryAfterSeconds: 5, message: 'the job queue is unavailable; retry later' },
} as const;
export type RetryableErrorCode = keyof typeof RETRYABLE_ERRORS;

export function retryableError(code: RetryableErrorCode): AppError {
  const { message, retryAfterSeconds } = RETRYABLE_ERRORS[code];
  return AppError.unavailable(code, message, retryAfterSeconds);
}

/**
 * The SQLSTATEs of failures that may pass when the same work runs again, whatever it was: the connection was lost or refused
 * (class 08); the transaction lost a conflict (40001 serialization, 40P01 deadlock; not the rest of class 40: 40002, a
 * deferred constraint refused at commit, fails again); the server ran short of resources (53000, 53100 disk full, 53200
 * out of memory, 53300 too many connections; not 53400, a configured limit the same work exceeds again); a statement or
 * lock waited too long (57014, 55P03) or a transaction sat idle too long (25P03); the server shut down, crashed, was
 * starting, or ended an idle session (57P01, 57P02, 57P03, 57P05). Not 58xxx or XX000: a server fault or corruption,
 * not known to pass.
 */
const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '53000', '53100', '53200', '53300', '57014', '55P03', '25P03', '57P01', '57P02', '57P03', '57P05']);
const CONFLICT_SQLSTATES = new Set(['40001', '40P01']);
const TIMEOUT_SQLSTATES = new Set(['57014', '55P03']);

/**
 * Whether this SQLSTATE says the database could not be reached: the connection refused or lost (class 08), the server
 * shutting down, crashed or starting (57P01, 57P02, 57P03). Not 57P05 (an idle session ended by the server: a setting).
 */
export function isConnectionSqlState(code: string | undefined): boolean {
  return !!code && (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03');
}

/** Whether this SQLSTATE is a statement, lock or idle-in-transaction timeout (57014, 55P03, 25P03). */
export function isTimeoutSqlState(code: string | undefined): boolean {
  return code === '57014' || code === '55P03' || code === '25P03';
}

/** Whether a failure with this SQLSTATE may pass when the same work runs again (TRANSIENT_SQLSTATES, class 08). */
export function isTransientSqlState(code: string | undefined): boolean {
  return !!code && (code.startsWith('08') || TRANSIENT_SQLSTATES.has(code));
}

/** The SQLSTATE of a PostgreSQL error (pg's DatabaseError, or an error that wraps one as `cause`). */
export function sqlState(err: unknown): { code?: string; message?: string; constraint?: string; detail?: string; hint?: string } {
  const seen = new Set<unknown>();
  let cur: any = err;
  while (cur && typeof cur === 'object' && !seen.has(cur)) {
    seen.add(cur);
    if (typeof cur.code === 'string' && /^[0-9A-Z]{5}$/.test(cur.code)) {
      return { code: cur.code, message: cur.message, constraint: cur.constraint, detail: cur.detail, hint: cur.hint };
    }
    cur = cur.cause;
  }
  return {};
}

/** What a handler of `translateDatabaseError` gets: the failed statement's SQLSTATE, message, constraint... */
export type DatabaseErrorInfo = ReturnType<typeof sqlState>;

/**
 * Awaits `work`; a database error whose SQLSTATE has a handler here leaves as the AppError the handler
 * returns (or as it was, when the handler returns undefined). For the errors that mean something
 * specific at one call site (a taken name, the last owner); everything else is mapped once, below.
 *
 *   await translateDatabaseError(workspaces.create(db, orgId, name), { '23505': () => AppError.conflict('workspace.name_taken', ...) });
 */
export async function translateDatabaseError<T>(work: Promise<T>, handlers: Record<string, (e: DatabaseErrorInfo) => AppError | undefined>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    const info = sqlState(err);
    throw (info.code && handlers[info.code]?.(info)) || err;
  }
}

/**
 * Maps database errors to API errors: unique → 409, foreign key → 409/404, check or any data exception (22xxx) → 422,
 * RLS or privilege denial → 403, raised application errors (P0001, P0002) → 422 rejected with their message; a database that is
 * down, out of resources or timed out → 503 with Retry-After; a lost conflict → 409 conflict.retry; an error whose HINT is a declared code
 * (src/platform/errors/catalog.ts) leaves with that code and its status, and with the JSON object of its DETAIL, if it
 * has one, as its details.
 */
export function mapDatabaseError(err: unknown): AppError | undefined {
  if (err instanceof DatabaseUnavailableError) return retryableError('database_unavailable');
  const { code, message, constraint, detail, hint } = sqlState(err);
  if (!code) return undefined;
  // transient (isTransientSqlState): lost connections, the server shutting down or starting up, out of resources; the
  // timeouts and the lost conflicts have answers of their own, below
  if (isTransientSqlState(code) && !TIMEOUT_SQLSTATES.has(code) && !CONFLICT_SQLSTATES.has(code)) return retryableError('database_unavailable');
  // a rule in the database names its declared error code in the HINT (RAISE ... USING HINT = 'ledger.unbalanced'), and
  // its details, when it has any, in the DETAIL as a JSON object (a batch's entry: DETAIL = jsonb_build_object('index', i))
  const declared = hint ? errorCodeSpec(hint) : undefined;
  if (declared) return new AppError(declared.status, hint!, message ?? hint!, detailsOf(detail));
  switch (code) {
    case '57014': // statement_timeout
    case '55P03': // lock_timeout
      return retryableError('database_timeout');
    case '23505':
      return PlatformErrors.error('conflict.unique', constraint ? `a record with the same key already exists (${constraint})` : message ?? 'duplicate');
    case '23503':
      return PlatformErrors.error('conflict.reference', 'the record refers to, or is referred to by, another record');
    case '23514':
    case '23502':
      return PlatformErrors.error('invalid', message ?? 'invalid value');
    case '22021': // a NUL character in text (validation refuses them first; a backstop)
    case '22P05': // \u0000 in jsonb
      return PlatformErrors.error('validation_failed', 'the input contains a NUL character (\\u0000), which cannot be stored');
    case '28000':
      return AppError.unauthorized(message);
    case '42501':
      return PlatformErrors.error('forbidden', message?.startsWith('new row violates row-level security')
        ? 'you are not allowed to make this change in this organization'
        : message ?? 'permission denied');
    case 'P0001':
    case 'P0002': // no_data_found without a declared code in its HINT: the entity is unknown here, the message names it
      return PlatformErrors.error('rejected', message ?? 'rejected by the database');
    case '40001':
    case '40P01':
      return PlatformErrors.error('conflict.retry', 'the change conflicted with a concurrent one; retry');
    default:
      // any other data exception (class 22: a value out of range, a bad time zone offset...): a value the database
      // refused; input checks should catch these first, this keeps a missed one from becoming a 500
      return code.startsWith('22') ? PlatformErrors.error('invalid', message ?? 'invalid value') : undefined;
  }
}

/** The details a declared database error carries in its DETAIL: a JSON object; anything else (PostgreSQL's own words) is none. */
function detailsOf(detail: string | undefined): Record<string, unknown> | undefined {
  if (!detail?.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(detail);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}
