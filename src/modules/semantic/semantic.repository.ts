import pg from 'pg';
import type { Db } from '../../platform/database/database.service.js';

// The only place with semantic SQL: the caller's statement (checked by semantic-sql-guard.ts) wrapped as a
// subquery capped by rows and by bytes (the two bind parameters), and the catalog read listing the views.

const TYPE_NAMES: Record<number, string> = {
  16: 'boolean', 19: 'name', 20: 'bigint', 21: 'smallint', 23: 'integer', 25: 'text', 114: 'json', 700: 'real', 701: 'double precision',
  1042: 'character', 1043: 'character varying', 1082: 'date', 1083: 'time', 1114: 'timestamp', 1184: 'timestamptz', 1186: 'interval',
  1700: 'numeric', 2950: 'uuid', 3802: 'jsonb', 1009: 'text[]', 1016: 'bigint[]', 1007: 'integer[]', 2951: 'uuid[]',
};

/**
 * Types whose values are read as PostgreSQL's text and answered by `cell`, not parsed into JavaScript values: a Date
 * cannot hold infinity, BC or years past 9999 (toISOString throws on those), JSON.parse turns a jsonb number such
 * as 12345678901234567.89 into the nearest double, node-postgres makes an interval an object of its parts (answered
 * as {"days":1,"hours":2}, 0 parts left out) and a float Infinity or NaN, which JSON answers as null, and a numeric
 * read as a Decimal loses its scale (10.50 of a numeric(12,2) printed back as 10.5).
 */
const DATE = 1082, TIMESTAMP = 1114, TIMESTAMPTZ = 1184, JSON_ = 114, JSONB = 3802, FLOAT4 = 700, FLOAT8 = 701, INTERVAL = 1186, NUMERIC = 1700;
const ARRAY_OF: Record<number, number> = {
  1182: DATE, 1115: TIMESTAMP, 1185: TIMESTAMPTZ, 199: JSON_, 3807: JSONB, 1021: FLOAT4, 1022: FLOAT8, 1187: INTERVAL, 1231: NUMERIC,
};
const AS_TEXT = new Set([DATE, TIMESTAMP, TIMESTAMPTZ, JSON_, JSONB, FLOAT4, FLOAT8, INTERVAL, NUMERIC, ...Object.keys(ARRAY_OF).map(Number)]);
const parseTextArray = pg.types.getTypeParser(1009 as never) as (s: string) => unknown[]; // nested for several dimensions
const parseTimestamptz = pg.types.getTypeParser(1184 as never) as (s: string) => unknown;

/** A timestamp of years 1-9999 AD as PostgreSQL prints it (DateStyle ISO), with or without its UTC offset. */
const PLAIN_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$/;
const PLAIN_TIMESTAMPTZ = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}(:\d{2}){0,2}$/;

/** ISO 8601 in UTC (milliseconds) when `d` is a valid instant of years 1-9999, else undefined. */
function iso(d: unknown): string | undefined {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) return undefined;
  const year = d.getUTCFullYear();
  return year >= 1 && year <= 9999 ? d.toISOString() : undefined;
}

/**
 * The answer of one value read as text (AS_TEXT): a date as PostgreSQL prints it (YYYY-MM-DD, or infinity, -infinity,
 * 0044-03-15 BC, 10000-01-01); a timestamp as ISO 8601 in UTC when it is an instant of years 1-9999, else as
 * PostgreSQL prints it; json and jsonb as their text, numbers exact; an interval as PostgreSQL prints it (IntervalStyle
 * postgres, set by `run`); a real or double precision as a number, or its text when it is Infinity, -Infinity or NaN
 * (PostgreSQL prints the shortest text that reads back as the same float: the number is that text's); a numeric as
 * PostgreSQL prints it (its scale kept: 10.50, 0.00; NaN, Infinity, -Infinity); arrays element by element.
 */
function cell(oid: number, text: string): unknown {
  const element = ARRAY_OF[oid];
  if (element !== undefined) {
    const each = (v: unknown): unknown => (v === null ? null : Array.isArray(v) ? v.map(each) : cell(element, v as string));
    return each(parseTextArray(text));
  }
  if (oid === TIMESTAMP && PLAIN_TIMESTAMP.test(text)) return iso(new Date(`${text.replace(' ', 'T')}Z`)) ?? text;
  if (oid === TIMESTAMPTZ && PLAIN_TIMESTAMPTZ.test(text)) return iso(parseTimestamptz(text)) ?? text;
  if (oid === FLOAT4 || oid === FLOAT8) {
    const n = Number(text);
    return Number.isFinite(n) ? n : text;
  }
  return text;
}

export interface SemanticRows {
  columns: { name: string; type: string }[];
  /** the rows, in the statement's order, as many as fit in the byte cap */
  rows: unknown[][];
  /** rows the statement gave within the row limit, before the byte cap (rows.length < fetched: the byte cap cut it) */
  fetched: number;
}

/** The two columns the wrapper adds after the statement's own (names a statement is unlikely to use). */
const BYTES = '"semantic_query bytes"';
const FETCHED = '"semantic_query fetched"';

export const semanticRepository = {
  /**
   * Runs `statement` with `SET LOCAL statement_timeout`, answering at most `limit` rows and, of those, the first
   * whose text form (the row as PostgreSQL prints it) sums to at most `byteCap` bytes. A row past either cap never
   * leaves the database: a statement answering 10,000 rows of 100 MB each would otherwise be read whole into the
   * API's memory. The caller's transaction is READ ONLY and rolled back (DatabaseService.tenant with
   * readOnlyRolledBack).
   */
  async run(db: Db, statement: string, caps: { limit: number; byteCap: number }, timeoutMs: number): Promise<SemanticRows> {
    // No temp_file_limit here: it is a superuser's setting (PGC_SUSET), which neither the API's role nor a migration
    // (Supabase's postgres is no superuser) may set. Where the database's operator sets one, its error (53400) is
    // answered 400 semantic.query_failed (semantic.service).
    // The semantic views filter on org_id = auth_org_id(), whose value the planner cannot know: it estimates one row
    // per table and picks nested loops, which over 1,000,000 journal lines join every line against every entry
    // (minutes). Semantic queries are analytical reads: hash and merge joins only (bench/README.md, bench:agents).
    // A join that can only be a nested loop (LATERAL, a cross join) then costs 10^10, and that cost starts JIT: half a
    // second of compiling for two rows. The guard's fences (OFFSET 0 on every derived table) keep such joins as joins.
    // Intervals and floats are answered as PostgreSQL prints them: intervals in the documented style ('1 day 02:00:00'),
    // floats in their shortest exact text (extra_float_digits 0 would round them to 15 digits), whatever the server's
    // settings. All of these (and the statement timeout) for this transaction, in one round trip.
    await db.$executeRawUnsafe(`SELECT set_config('statement_timeout', '${Math.trunc(timeoutMs)}', true), set_config('enable_nestloop', 'off', true), `
      + `set_config('jit', 'off', true), set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true)`);
    // `answer`: the statement's rows within the row limit, each with the running sum of the rows' text sizes. The
    // rows within the byte cap follow in order; then one last row, every column NULL but the count of `answer`'s
    // rows (to tell "cut by the byte cap" from "no rows"). That row comes from a join that never matches, on an
    // equality so that it is a hash join: with nested loops off, a join on `false` would cost 10^10 and start JIT.
    // The newline ends a trailing -- comment of the statement before the closing parenthesis.
    const r = await db.$queryArrays(`WITH answer AS MATERIALIZED (
  SELECT semantic_query.*, sum(octet_length(semantic_query.*::text)) OVER (ROWS UNBOUNDED PRECEDING) AS ${BYTES}
  FROM (\n${statement}\n) AS semantic_query LIMIT $1)
SELECT answer.*, NULL::bigint AS ${FETCHED} FROM answer WHERE answer.${BYTES} <= $2
UNION ALL
SELECT nothing.*, fetched.n FROM (SELECT count(*) AS n FROM answer) AS fetched
  LEFT JOIN (SELECT * FROM answer WHERE false) AS nothing ON nothing.${BYTES} = fetched.n`, [caps.limit, caps.byteCap], AS_TEXT);
    const own = r.columns.slice(0, -2);
    const last = r.rows[r.rows.length - 1];
    const unknown = [...new Set(own.map((c) => c.typeOid).filter((oid) => !TYPE_NAMES[oid]))];
    const names = new Map<number, string>();
    if (unknown.length) {
      const rows = await db.$queryRaw<{ oid: number; name: string }[]>`SELECT oid::int AS oid, format_type(oid, NULL) AS name FROM pg_catalog.pg_type WHERE oid = ANY(${unknown}::oid[])`;
      for (const t of rows) names.set(t.oid, t.name);
    }
    return {
      columns: own.map((c) => ({ name: c.name, type: TYPE_NAMES[c.typeOid] ?? names.get(c.typeOid) ?? 'unknown' })),
      rows: r.rows.slice(0, -1).map((row) => own.map((c, i) => (row[i] !== null && AS_TEXT.has(c.typeOid) ? cell(c.typeOid, row[i] as string) : row[i]))),
      fetched: Number(last[last.length - 1]),
    };
  },

  /** The semantic views the caller may SELECT, with their COMMENT-documented columns. */
  async views(db: Db): Promise<{ view: string; view_comment: string | null; column_name: string; column_type: string; column_comment: string | null }[]> {
    return db.$queryRaw`
      SELECT c.relname AS view, obj_description(c.oid, 'pg_class') AS view_comment, a.attname AS column_name,
        format_type(a.atttypid, a.atttypmod) AS column_type, col_description(c.oid, a.attnum) AS column_comment
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = 'semantic' AND c.relkind IN ('v', 'm') AND has_table_privilege(c.oid, 'SELECT')
      ORDER BY c.relname, a.attnum`;
  },
};
