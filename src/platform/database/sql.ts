import { HttpException, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Decimal } from '../decimal.js';
import pg from 'pg';
import { AppError } from '../errors/app-error.js';
import { DatabaseUnavailableError } from '../errors/database-errors.js';
import type { Compilable, InferResult } from './query-builder.js';

/**
 * How repositories talk to PostgreSQL: parameterised SQL inside one transaction. The method names
 * and tagged-template form are Prisma Client's raw-query API (`$queryRaw\`... ${value}\``: every
 * interpolation becomes a bind parameter, never SQL text), so a repository reads the same as it
 * would against a Prisma transaction client.
 *
 * It runs on node-postgres directly. The repositories use no Prisma model queries, and Prisma's
 * interactive-transaction engine cost about 0.6 ms of CPU per request on the hot path (four raw
 * statements); see bench/README.md. Prisma stays the schema's description (prisma/schema.prisma,
 * checked against the migrated database by the drift test).
 *
 * Values come back as Prisma's raw queries return them: int8 → bigint, numeric → Decimal,
 * date → Date at UTC midnight, timestamp → Date, json/jsonb → parsed, bytea → Buffer.
 */
export interface Db {
  $queryRaw<T = unknown[]>(sql: TemplateStringsArray, ...values: unknown[]): Promise<T>;
  $executeRaw(sql: TemplateStringsArray, ...values: unknown[]): Promise<number>;
  /** SQL text built by the caller from constants only; values still go as parameters ($1, $2, ...). */
  $queryRawUnsafe<T = unknown[]>(sql: string, ...values: unknown[]): Promise<T>;
  $executeRawUnsafe(sql: string, ...values: unknown[]): Promise<number>;
  /**
   * Sends a write without waiting for its answer; the transaction waits for it with COMMIT (both travel
   * together), and fails, rolled back, if it failed. For writes nothing later in the request reads:
   * the audit row.
   */
  $executeRawAtCommit(sql: TemplateStringsArray, ...values: unknown[]): void;
  /**
   * Sends COMMIT now, in the same write as the statements sent before it in this tick, without waiting for their
   * answers: for a transaction whose last statement takes a hot lock (a gapless document number), so that the lock is
   * held for the server's work only, not for a round trip to the app and back. The transaction takes no statement after
   * it. Its outcome is reported as ever: when one of those statements fails PostgreSQL answers COMMIT by rolling
   * back, the statement's own promise rejects and so does the transaction.
   */
  commitNow(): void;
  /**
   * Runs one statement over the extended protocol (Parse/Bind/Execute: one statement by construction) and answers
   * its columns and its rows as arrays (two columns of one name stay two). For the semantic layer's queries. Values
   * of the types in `asText` (OIDs) come back as PostgreSQL's text, unparsed.
   */
  $queryArrays(sql: string, values: unknown[], asText?: ReadonlySet<number>): Promise<{ columns: { name: string; typeOid: number }[]; rows: unknown[][] }>;
  /** Runs a typed query of the query builder (`qb` in query-builder.ts): its rows, typed from the schema. */
  run<Q extends Compilable>(query: Q): Promise<InferResult<Q>>;
  /** Runs a typed write and answers the number of rows it changed. */
  runCount(query: Compilable): Promise<number>;
  /** A typed write sent as `$executeRawAtCommit` sends one: not awaited, settled with COMMIT. */
  runAtCommit(query: Compilable): void;
  /**
   * Runs `fn` once the transaction has committed, never when it rolls back: for what leaves the process about a change
   * that must exist first (an event forwarded to PostHog). Synchronous; a throw is logged, the request is not failed.
   */
  afterCommit(fn: () => void): void;
}

const TYPES = {
  INT8: 20,
  NUMERIC: 1700,
  DATE: 1082,
  TIMESTAMP: 1114,
  INT8_ARRAY: 1016,
  NUMERIC_ARRAY: 1231,
} as const;

const parseArray = (parse: (s: string) => unknown) => {
  const arrayParser = pg.types.getTypeParser(1009 as never) as (s: string) => unknown[]; // text[]
  // a multi-dimensional array (numeric[][]) parses to nested arrays: each element, however deep
  const each = (v: unknown): unknown => (v === null ? null : Array.isArray(v) ? v.map(each) : parse(v as string));
  return (s: string) => arrayParser(s).map(each);
};
const toBigInt = (s: string) => BigInt(s);
const toDecimal = (s: string) => new Decimal(s);
const asIs = (s: string) => s;

/** The result types above, for this pool only (pg's global parsers stay as they are). */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    switch (oid) {
      case TYPES.INT8:
        return toBigInt;
      case TYPES.NUMERIC:
        return toDecimal;
      case TYPES.DATE:
        return (s: string) => new Date(`${s}T00:00:00Z`);
      case TYPES.TIMESTAMP:
        return (s: string) => new Date(`${s.replace(' ', 'T')}Z`);
      case TYPES.INT8_ARRAY:
        return parseArray(toBigInt);
      case TYPES.NUMERIC_ARRAY:
        return parseArray(toDecimal);
      default:
        return pg.types.getTypeParser(oid as never, format as never);
    }
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * A Date as the text of its instant in UTC. pg writes a Date in the process's local time ('2026-02-28T20:30:00.000-03:30'
 * at TZ=America/St_Johns for 2026-03-01T00:00Z): the same instant as a timestamptz, but `::date` of it is the local day
 * and `::timestamp` the local wall time, so an answer would depend on the process's TZ. Years before 1 as pg writes them.
 */
function utcTimestamp(d: Date): string {
  const year = d.getUTCFullYear();
  const rest = d.toISOString().replace(/^[+-]?\d+/, ''); // -MM-DDTHH:mm:ss.sssZ
  return year >= 1 ? `${String(year).padStart(4, '0')}${rest}` : `${String(1 - year).padStart(4, '0')}${rest} BC`;
}

/** Parameter values: Decimal as its exact text (pg would send it as a JSON string), a Date in UTC (utcTimestamp). */
function param(value: unknown): unknown {
  if (value instanceof Decimal) return value.toFixed();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? value : utcTimestamp(value);
  if (Array.isArray(value)) return value.map(param);
  return value;
}

/**
 * The name a statement is prepared under on the server: one per SQL text. Only texts fixed by the code get one (a
 * tagged template's, a `prepare`d query's), so a connection prepares a bounded set of statements. A prepared statement
 * is parsed, analysed (the row-level-security policies expanded) once per connection, and after five executions
 * PostgreSQL may keep its generic plan: an issued invoice's sixteen statements cost the database about half the CPU
 * they cost as unnamed statements, parsed and planned on every execution (bench/README.md).
 */
export function statementName(text: string): string {
  return `oz_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
}

/**
 * The text and statement name of each tagged template, by its strings (one array per call site), and the repository
 * operation that sends it (`operation`, found once, only when statements are timed).
 */
const templates = new WeakMap<TemplateStringsArray, { text: string; name: string; operation?: string }>();

/**
 * Records one statement's time (seconds, from send to answer or error) under the repository operation that sent it:
 * the query-latency histogram when metrics are served (Metrics.queryRecorder); without it statements are not timed.
 */
export type QueryRecorder = (operation: string, seconds: number) => void;

/** The database a pool's statements go to, as statement spans name it. */
export interface StatementTarget {
  database: string;
  host: string;
  port: number;
}

/**
 * Spans for statements when tracing is on (tracing.ts installs them with traceStatements). `recording`: whether the
 * current context is a recorded span's, asked once per transaction (a transaction runs in one request's context);
 * only then does each statement go through `wrap`, which sends it inside a span of its own. `text` is given only
 * when the statement's values travel apart from it (a tagged template, a compiled query), never for raw texts, which
 * may carry literals; `operation` is the repository operation that sent it (found once per call site or text).
 */
export interface StatementSpans {
  recording(): boolean;
  wrap<T>(send: () => Promise<T>, text: string | undefined, operation: string, target: StatementTarget): Promise<T>;
}
let statementSpans: StatementSpans | undefined;

/** Installs (or, with undefined, removes) the span around every statement of every pool (tracing.ts). */
export function traceStatements(spans: StatementSpans | undefined): void {
  statementSpans = spans;
}

/** `  at Object.post (file:///app/src/modules/ledger/ledger.repository.ts:12:3)` → function (if any) and file. */
const STACK_FRAME = /^\s*at (?:(.+?) \()?(.+?):\d+:\d+\)?$/;

/** A frame's function name without `async `, `new `, its receiver (`Object.`, the class) or its alias; none when anonymous. */
function functionName(fn: string | undefined): string | undefined {
  if (!fn) return undefined;
  const name = fn.replace(/^async /, '').replace(/^new /, '').replace(/ \[as [^\]]*\]$/, '');
  const own = name.slice(name.lastIndexOf('.') + 1);
  return own && own !== '<anonymous>' ? own : undefined;
}

/**
 * The repository operation a stack was captured in, `<file base name>.<function>` (`ledger.repository.postBatch`):
 * the first frame outside the file of the stack's first frame (the capturing module, this one), named by the first
 * named function of that file further down the stack (an arrow passed to `map` or to a transaction is anonymous;
 * the method around it, or awaiting it, is not), `anonymous` when there is none. The dev loader's frames
 * (file:///.../src/x.ts) and a build's (/app/dist/src/x.js) give the same name.
 */
export function operationOf(stack: string): string {
  const frames: { fn?: string; file: string }[] = [];
  for (const line of stack.split('\n')) {
    const m = STACK_FRAME.exec(line);
    if (m) frames.push({ fn: m[1], file: m[2] });
  }
  const first = frames.findIndex((f) => f.file !== frames[0].file);
  if (first < 0) return 'other';
  const file = frames[first].file;
  const base = file.slice(Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\')) + 1).replace(/\.[cm]?[jt]sx?$/, '');
  const named = frames.slice(first).find((f) => f.file === file && functionName(f.fn));
  return `${base}.${named ? functionName(named.fn) : 'anonymous'}`;
}

/** V8's own text of each frame (CallSite#toString), whatever formatter is installed. */
const v8Frames = (_: Error, sites: NodeJS.CallSite[]) => sites.map((site) => `    at ${String(site)}`).join('\n');

/**
 * The operation calling into this module, from one stack captured now: deep enough to reach an awaiting method, and
 * in V8's own format (a source-map formatter, such as Jest's, names a frame after the identifier called there: `run`).
 */
function callerOperation(): string {
  const { stackTraceLimit, prepareStackTrace } = Error;
  Error.stackTraceLimit = 50;
  Error.prepareStackTrace = v8Frames;
  const stack = String(new Error().stack ?? '');
  Error.stackTraceLimit = stackTraceLimit;
  Error.prepareStackTrace = prepareStackTrace;
  return operationOf(stack);
}

/**
 * SQL texts not tied to a call site (the query builder's, $queryRawUnsafe's, $queryArrays') are named by the first
 * caller that sends them, for at most this many texts; the rest are "other" (a text built with a varying number of
 * parameters must not grow this map, or the stacks captured, without bound).
 */
const TEXT_OPERATION_LIMIT = 1_000;
const textOperations = new Map<string, string>();

function textOperation(text: string): string {
  let operation = textOperations.get(text);
  if (operation === undefined) {
    if (textOperations.size >= TEXT_OPERATION_LIMIT) return 'other';
    operation = callerOperation();
    textOperations.set(text, operation);
  }
  return operation;
}

/** A tagged template's operation, found the first time its call site is timed (fromTemplate has cached the site). */
function templateOperation(strings: TemplateStringsArray): string {
  const t = templates.get(strings)!;
  return (t.operation ??= callerOperation());
}

/** `a ${x} b ${y}` → `a $1 b $2`, prepared under its name when `named`. */
function fromTemplate(strings: TemplateStringsArray, values: unknown[], named: boolean): pg.QueryConfig {
  let t = templates.get(strings);
  if (!t) {
    let text = strings[0];
    for (let i = 1; i < strings.length; i++) text += `$${i}${strings[i]}`;
    t = { text, name: statementName(text) };
    templates.set(strings, t);
  }
  return named ? { name: t.name, text: t.text, values: values.map(param) } : { text: t.text, values: values.map(param) };
}

/** A query of the builder: prepared under its name when `prepare`d (compiled once: a fixed text) and `named`. */
function fromCompiled(query: Compilable, named: boolean): pg.QueryConfig {
  const compiled = query.compile() as ReturnType<Compilable['compile']> & { statementName?: string };
  const values = compiled.parameters.map(param);
  return named && compiled.statementName ? { name: compiled.statementName, text: compiled.sql, values } : { text: compiled.sql, values };
}

/**
 * A prepared statement whose result columns changed under it (a migration altered a table it reads with `*` while
 * this connection was open): PostgreSQL refuses it on this connection from then on, so the connection is discarded.
 */
const isStalePreparedStatement = (err: unknown) => (err as { code?: string })?.code === '0A000' && /cached plan must not change result type/.test((err as Error).message);

/** 25P02: a statement sent after another failed in the same transaction ("current transaction is aborted"). */
const isAbortedTransaction = (err: unknown) => (err as { code?: string })?.code === '25P02';

/**
 * A write the server sent at commit (an audit row, a server event, an outbox row: never the client's input) was refused
 * for its data (SQLSTATE classes 22, 23, 42: a constraint, a missing partition, a policy). It is the server's failure, so
 * a 500, logged with its cause (review of df203c6: mapped as the database error itself, a missing partition answered the
 * client a 422 naming the table, and nothing was logged). A conflict, a timeout or a lost connection stays as it is (a
 * 409 to retry, a 503).
 */
export class AtCommitWriteFailed extends Error {
  override name = 'AtCommitWriteFailed';
  /** the database's refusal; not the `cause`, which the error mapping follows (sqlState) and would answer as the client's */
  constructor(readonly refusal: unknown) {
    super(`a write sent at commit failed: ${(refusal as Error)?.message ?? String(refusal)}`);
  }
}

const atCommitFailure = (err: unknown) =>
  /^(22|23|42)/.test(String((err as { code?: unknown })?.code ?? '')) ? new AtCommitWriteFailed(err) : err;

/**
 * Statements sent in the same tick leave in one write: the connection's socket is corked until the next tick
 * (node-postgres writes each statement on its own otherwise: one system call per statement; an issued invoice sends
 * about 13 statements in about 7 ticks). Nothing waits longer: whatever awaits an answer yields, and the next tick uncorks.
 */
const corked = new WeakSet<pg.PoolClient>();
function sendTogether(client: pg.PoolClient): void {
  if (corked.has(client)) return;
  const stream = (client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
  if (!stream?.cork || !stream.uncork) return;
  stream.cork();
  corked.add(client);
  process.nextTick(() => {
    corked.delete(client);
    stream.uncork!();
  });
}

/** A multi-statement simple query answers with one result per statement: the last one counts. */
const last = (r: pg.QueryResult | pg.QueryResult[]) => (Array.isArray(r) ? r[r.length - 1] : r);

/** The database, host and port of a connection string (empty when it is not a URL). */
function targetOf(connectionString: string): StatementTarget {
  try {
    const url = new URL(connectionString);
    return { database: decodeURIComponent(url.pathname.slice(1)), host: url.hostname, port: Number(url.port || 5432) };
  } catch {
    return { database: '', host: '', port: 5432 };
  }
}

/** `send()`, its time to its answer or error recorded under `operation`. */
function timed(send: () => Promise<pg.QueryResult>, record: QueryRecorder, operation: string): Promise<pg.QueryResult> {
  const start = performance.now();
  return send().then(
    (result) => {
      record(operation, (performance.now() - start) / 1000);
      return result;
    },
    (err: unknown) => {
      record(operation, (performance.now() - start) / 1000);
      throw err;
    },
  );
}

class ConnectionDb implements Db {
  /** statements sent by $executeRawAtCommit, settled before the transaction reports its outcome */
  readonly atCommit: Promise<unknown>[] = [];
  /** COMMIT, once sent by commitNow */
  committed?: Promise<pg.QueryResult>;
  /** afterCommit's callbacks, run by transaction() once COMMIT has answered COMMIT */
  readonly afterCommitted: (() => void)[] = [];
  /**
   * The first failure of a statement sent at commit, as it arrives: PostgreSQL refuses every statement after it with
   * 25P02, and a statement the work awaits later fails so; transaction() then fails with this one, the cause.
   */
  atCommitFailure?: unknown;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly named: boolean,
    private readonly readOnlyRolledBack: boolean,
    private readonly record: QueryRecorder | undefined,
    private readonly target: StatementTarget,
    /** set when this transaction runs in a recorded span */
    private readonly spans: StatementSpans | undefined,
    /** the client-side deadline of $queryArrays' statements (ms), which run under a statement timeout of their own */
    private readonly arraysDeadlineMs: number,
  ) {}

  private get c(): pg.PoolClient {
    if (this.committed) throw new Error('the transaction is committed (commitNow): no statement can follow');
    sendTogether(this.client);
    return this.client;
  }

  commitNow(): void {
    if (this.readOnlyRolledBack) throw new Error('commitNow in a transaction that is always rolled back');
    const committed = this.c.query('COMMIT');
    committed.catch(() => undefined); // awaited by transaction()
    this.committed = committed;
  }

  /**
   * Sends one statement. Timed only when a recorder is set, in a span only when tracing is on and the request is
   * sampled: its operation is found once per call site (a template) or text, so a timed statement costs two clock
   * readings and one observation. `parameterized`: the text holds no values (a template's, a compiled query's).
   */
  private query(site: TemplateStringsArray | string, query: pg.QueryConfig, parameterized: boolean): Promise<pg.QueryResult> {
    const client = this.c;
    const record = this.record;
    const spans = this.spans;
    if (!record && !spans) return client.query(query);
    // found here, in this module's frames, so that the first frame outside it is the repository's
    const operation = typeof site === 'string' ? textOperation(site) : templateOperation(site);
    const send = record ? () => timed(() => client.query(query), record, operation) : () => client.query(query);
    return spans ? spans.wrap(send, parameterized ? query.text : undefined, operation, this.target) : send();
  }

  $executeRawAtCommit(sql: TemplateStringsArray, ...values: unknown[]): void {
    this.sendAtCommit(this.query(sql, fromTemplate(sql, values, this.named), true));
  }

  runAtCommit(query: Compilable): void {
    const q = fromCompiled(query, this.named);
    this.sendAtCommit(this.query(q.text, q, true));
  }

  afterCommit(fn: () => void): void {
    if (this.readOnlyRolledBack) throw new Error('afterCommit in a transaction that is always rolled back');
    this.afterCommitted.push(fn);
  }

  private sendAtCommit(sent: Promise<pg.QueryResult>): void {
    // reported by transaction(), not as an unhandled rejection
    sent.catch((err: unknown) => {
      if (!isAbortedTransaction(err)) this.atCommitFailure ??= err;
    });
    this.atCommit.push(sent);
  }

  async $queryRaw<T = unknown[]>(sql: TemplateStringsArray, ...values: unknown[]): Promise<T> {
    return (await this.query(sql, fromTemplate(sql, values, this.named), true)).rows as T;
  }

  async $executeRaw(sql: TemplateStringsArray, ...values: unknown[]): Promise<number> {
    return (await this.query(sql, fromTemplate(sql, values, this.named), true)).rowCount ?? 0;
  }

  async run<Q extends Compilable>(query: Q): Promise<InferResult<Q>> {
    const q = fromCompiled(query, this.named);
    return (await this.query(q.text, q, true)).rows as InferResult<Q>;
  }

  async $queryArrays(sql: string, values: unknown[], asText?: ReadonlySet<number>): Promise<{ columns: { name: string; typeOid: number }[]; rows: unknown[][] }> {
    if (values.length === 0) throw new Error('$queryArrays needs at least one parameter: without one node-postgres would use the simple protocol');
    const types = asText?.size ? { getTypeParser: (oid: number, format?: string) => (asText.has(oid) ? asIs : typeParsers.getTypeParser(oid as never, format as never)) } : undefined;
    const r = await this.query(sql, { text: sql, values: values.map(param), rowMode: 'array', types, query_timeout: this.arraysDeadlineMs } as pg.QueryConfig, false); // rows as arrays
    return { columns: r.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID })), rows: r.rows as unknown[][] };
  }

  async runCount(query: Compilable): Promise<number> {
    const q = fromCompiled(query, this.named);
    return (await this.query(q.text, q, true)).rowCount ?? 0;
  }

  async $queryRawUnsafe<T = unknown[]>(sql: string, ...values: unknown[]): Promise<T> {
    return last(await this.query(sql, { text: sql, values: values.length ? values.map(param) : undefined }, false)).rows as T;
  }

  async $executeRawUnsafe(sql: string, ...values: unknown[]): Promise<number> {
    return last(await this.query(sql, { text: sql, values: values.length ? values.map(param) : undefined }, false)).rowCount ?? 0;
  }
}

export interface SqlPoolOptions {
  /** connections in the pool */
  max: number;
  /** longest wait for a free or new connection before the request fails (ms) */
  connectTimeoutMs: number;
  /** longest single statement (ms): a runaway query is cancelled by the server */
  statementTimeoutMs: number;
  /**
   * The longest statement timeout a transaction sets for itself (set_config('statement_timeout', ..., true)) before the
   * statements it sends with $queryArrays: a semantic query's (AI_SEMANTIC_TIMEOUT_MS). Default: statementTimeoutMs.
   */
  localStatementTimeoutMs?: number;
  /** longest wait for a lock (ms), shorter than the statement timeout: a request behind a held lock fails early */
  lockTimeoutMs?: number;
  /** a transaction left idle this long is ended by the server (ms; default: the statement timeout) */
  idleInTransactionTimeoutMs?: number;
  /**
   * Tagged templates and `prepare`d queries as named prepared statements (default true); false behind a pooler that
   * does not keep them across transactions (a transaction-mode PgBouncer before 1.21).
   */
  preparedStatements?: boolean;
  /** times every statement a transaction sends (not BEGIN, COMMIT, ROLLBACK), by repository operation; none: not timed */
  recordQuery?: QueryRecorder;
  /**
   * Called once for each connection that could not be had (not opened, or none free within connectTimeoutMs) and each
   * one lost (an idle one's 'error', one that errored or whose ROLLBACK failed during a transaction, then discarded):
   * omnizen_db_pool_errors_total. Not for the readiness ping's own connection (readiness reports it).
   */
  onConnectionError?: () => void;
}

/**
 * How long the client waits for a statement's answer (ms) before it gives the connection up, for statements under
 * `statementTimeoutMs`: PostgreSQL's statement timeout cannot fire when the server does not answer at all (a frozen
 * host, a network partition), and the request would wait until TCP gives up (about 15 minutes). Twice the statement
 * timeout, because a statement's clock starts when it is sent and a pipelined statement may wait behind the one before
 * it, and a second for the network: a statement the server cancels, or that finishes just in time, is answered before.
 */
export function clientDeadlineMs(statementTimeoutMs: number): number {
  return 2 * statementTimeoutMs + 1_000;
}

/** TCP keepalive probes start after this long without traffic (ms). */
const KEEPALIVE_DELAY_MS = 10_000;

/** The readiness ping's longest wait for a connection, and then for its answer (ms): under /health/ready's 2 s per probe. */
const PING_TIMEOUT_MS = 1_500;

/**
 * A pool of connections for one login, handing out transactions.
 *
 * A connection the server cuts (restart, crash, failover, terminated backend, idle-in-transaction
 * timeout) emits 'error'; node-postgres throws that as an unhandled 'error' event, ending the process,
 * unless someone listens. The pool listens for idle connections; `transaction` listens for as long as
 * it holds one, and discards a connection that errored instead of returning it to the pool. The request
 * on it fails with DatabaseUnavailableError (503), every other request carries on.
 *
 * A server that stops answering (frozen, partitioned away) emits nothing: a statement not answered within
 * clientDeadlineMs of the statement timeout in force fails, and pg destroys its connection (the statements pipelined
 * behind it could not be answered either); the request fails with DatabaseUnavailableError. TCP keepalive finds the
 * idle connections such a server left behind.
 */
export class SqlPool {
  private readonly pool: pg.Pool;
  /** the readiness ping's own connection, opened on the first ping */
  private pingPool?: pg.Pool;
  private readonly named: boolean;
  private readonly arraysDeadlineMs: number;
  private readonly connectTimeoutMs: number;
  private readonly recordQuery: QueryRecorder | undefined;
  private readonly target: StatementTarget;
  private readonly logger: Logger;
  private readonly connectionError: () => void;

  constructor(private readonly connectionString: string, options: SqlPoolOptions, name: string) {
    this.logger = new Logger(name);
    this.named = options.preparedStatements ?? true;
    this.recordQuery = options.recordQuery;
    this.connectionError = options.onConnectionError ?? (() => undefined);
    this.target = targetOf(connectionString);
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.arraysDeadlineMs = clientDeadlineMs(Math.max(options.statementTimeoutMs, options.localStatementTimeoutMs ?? 0));
    this.pool = new pg.Pool({
      connectionString,
      max: options.max,
      connectionTimeoutMillis: options.connectTimeoutMs,
      statement_timeout: options.statementTimeoutMs,
      query_timeout: clientDeadlineMs(options.statementTimeoutMs),
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      lock_timeout: options.lockTimeoutMs,
      // a transaction left open by a stuck handler does not hold its locks for ever
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? options.statementTimeoutMs,
      types: typeParsers,
      // statements are sent without waiting for the answer to the one before (their answers still come
      // in order): BEGIN travels with the first statement, COMMIT with the audit row
      pipeline: true,
    } as pg.PoolConfig); // pg's types do not list `pipeline` yet
    this.pool.on('error', (err) => {
      this.connectionError();
      this.logger.warn(`idle database connection lost: ${err.message}`);
    });
  }

  /** A connection from the pool; a server that cannot be reached is DatabaseUnavailableError. */
  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      this.connectionError();
      throw new DatabaseUnavailableError(err);
    }
  }

  /**
   * BEGIN, `work`, COMMIT on one connection; ROLLBACK when `work` throws (the error is rethrown).
   * A statement sent with $executeRawAtCommit that failed fails the transaction: PostgreSQL answers
   * COMMIT of a failed transaction by rolling it back, and its error is rethrown.
   * A connection that errored, or whose ROLLBACK fails, is discarded, not returned to the pool; the
   * failure is then DatabaseUnavailableError unless `work` threw an error of its own making.
   */
  async transaction<T>(work: (db: Db) => Promise<T>, options: { readOnlyRolledBack?: boolean } = {}): Promise<T> {
    const client = await this.connect();
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken ??= err;
    };
    client.on('error', onError);
    let db: ConnectionDb | undefined;
    try {
      // READ ONLY ... ROLLBACK: a statement written by someone else (a semantic query) can change nothing, and
      // whatever it set in the session (settings, claims) ends with the transaction
      sendTogether(client);
      const begun = client.query(options.readOnlyRolledBack ? 'BEGIN READ ONLY' : 'BEGIN');
      begun.catch(() => undefined); // awaited below; the first statement of `work` fails too if BEGIN did
      db = new ConnectionDb(client, this.named, !!options.readOnlyRolledBack, this.recordQuery, this.target, statementSpans?.recording() ? statementSpans : undefined, this.arraysDeadlineMs);
      const result = await work(db);
      await begun;
      if (options.readOnlyRolledBack) {
        await client.query('ROLLBACK');
        return result;
      }
      let committed = db.committed;
      if (!committed) {
        sendTogether(client);
        committed = client.query('COMMIT');
        committed.catch(() => undefined);
      }
      // the first failure is rethrown: COMMIT rolled back
      for (const sent of db.atCommit) await sent.catch((err: unknown) => Promise.reject(atCommitFailure(err)));
      const { command } = await committed;
      if (command !== 'COMMIT') throw new Error(`the transaction was rolled back (${command})`);
      for (const fn of db.afterCommitted) {
        try {
          fn();
        } catch (err) {
          this.logger.warn(`an after-commit callback failed: ${(err as Error).message}`);
        }
      }
      return result;
    } catch (thrown) {
      // a statement the work awaited after an at-commit one that failed (an audit row a policy refused, an event dated
      // in a month without its partition): its 25P02 names no cause; the at-commit failure is the cause, thrown as the
      // server's own failure (a 500 that logs it), not mapped as a database error answering the client
      const atCommit = isAbortedTransaction(thrown) ? db?.atCommitFailure : undefined;
      const err = atCommit !== undefined ? atCommitFailure(atCommit) : thrown;
      if (isStalePreparedStatement(err)) broken ??= err as Error;
      if (!broken) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken ??= rollbackError;
        });
      }
      if (broken && !(err instanceof AppError || err instanceof HttpException)) throw new DatabaseUnavailableError(err);
      throw err;
    } finally {
      client.removeListener('error', onError);
      // a connection discarded for a stale prepared statement was not lost: the server still answered on it
      if (broken && !isStalePreparedStatement(broken)) this.connectionError();
      client.release(broken);
    }
  }

  /**
   * One statement outside any transaction (readiness probe), on a connection of its own: readiness reports whether
   * PostgreSQL answers, not whether the pool has a free connection (slow requests holding all of them still succeed).
   * A server that does not answer fails it within PING_TIMEOUT_MS, and its connection is replaced.
   */
  async ping(): Promise<void> {
    if (this.pool.ended) throw new Error('the pool has ended'); // opens no connection after end()
    if (!this.pingPool) {
      this.pingPool = new pg.Pool({
        connectionString: this.connectionString,
        max: 1,
        connectionTimeoutMillis: Math.min(this.connectTimeoutMs, PING_TIMEOUT_MS),
        query_timeout: PING_TIMEOUT_MS,
        keepAlive: true,
        keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
        idleTimeoutMillis: 0, // kept open between probes
        allowExitOnIdle: true,
      });
      this.pingPool.on('error', (err) => this.logger.warn(`the readiness ping's idle connection lost: ${err.message}`));
    }
    await this.pingPool.query('SELECT 1');
  }

  /** Connections in use and idle, and callers waiting for one (for /metrics). */
  stats(): { inUse: number; idle: number; waiting: number } {
    return { inUse: this.pool.totalCount - this.pool.idleCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  async end(): Promise<void> {
    if (this.pingPool && !this.pingPool.ended) await this.pingPool.end();
    if (!this.pool.ended) await this.pool.end();
  }
}
