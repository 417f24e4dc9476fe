import { parse, scan } from 'libpg-query';
import { SemanticErrors } from './semantic.errors.js';

/**
 * What a semantic query may be, decided on PostgreSQL's own parse tree (libpg-query: the server's parser
 * compiled to WebAssembly), never on the text: exactly one SELECT (CTEs allowed, each a SELECT too) that
 * reads only views of schema `semantic` (or its own CTEs) and calls only allow-listed functions. Beneath
 * this, the query runs READ ONLY under the caller's claims and is rolled back: RLS still decides the rows.
 *
 * Memory: a statement's size says little about the values it builds. PostgreSQL inlines a CTE or subquery read once
 * into the query above it, so a chain of CTEs each doing concat(s,s,s,s,s,s,s,s,s,s) on the one before becomes ONE
 * expression that grows 10x per level while it is planned, before any row is read and out of the statement timeout's
 * reach (4 levels: 6 s; 7 levels: 21 GB and an OOM-killed backend). These rules keep every value far from the 1 GB
 * a PostgreSQL value may have:
 * - growth bound (boundGrowth): every expression is weighed by how large its value can be as text, in units of its
 *   inputs' largest values: concat and || add up their arguments' weights; printing an array or a row as text quotes
 *   each element and escapes its '"' and '\' (ARRAY[...], ROW(...), ARRAY(SELECT ...), array_agg, a whole-row
 *   reference weigh 2x their parts), JSON escaping up to 6x (to_json, json_build_*, json_agg...: a control character
 *   becomes \u0001; a JSON argument is copied unescaped, 1x), so that each level of to_json(to_json(x)::text) or
 *   (ARRAY[x])::text multiplies; replace, regexp_replace and array_to_string multiply by their literal replacement's /
 *   separator's length, translate by 4, to_char its format by 8; a cast weighs what its text input can make (char(n)
 *   pads, a number's exponent expands: '1e131071' prints 131,072 digits); a CTE's or subquery's columns carry their
 *   weight (each its own where the guard can tell which column a name reads) and whether they are JSON into the query
 *   that reads them. Any expression heavier than MAX_GROWTH (64) is refused. So no value exceeds 64 x U, where U is the larger
 *   of the largest value or row (as text) of a semantic view and QUERY_MAX_BYTES (300 KB: a literal weighs its share
 *   of that, a number in it at its printed length): about 19 MB.
 *   A row's work is bounded too: PostgreSQL holds every value it evaluates for a row until the row is done (a row is
 *   formed, sorted, materialized whole), uninterrupted, out of the timeout's reach. So the weights of all of them add up,
 *   held to MAX_ROW_GROWTH (512) for each row of a SELECT, CTE, subquery or VALUES list (the statement's own SELECT's row
 *   counted WRAPPER_ROW_COPIES (4) more times: semantic.repository materializes it with its text and answers it; 48
 *   columns of 20 x a 95 KB literal, 990 under the old bound of 1,024, peaked at 2.6 GB and answered 6-11 s late): its output columns; its WHERE,
 *   JOIN ... ON, GROUP BY, HAVING, window (PARTITION BY, ORDER BY), DISTINCT and ORDER BY expressions (those not output
 *   are hidden columns of the row); and, within each expression, every value built on the way (see BUILT): a comparison,
 *   AND / OR / NOT or a function of a fixed-size result (length, num_nonnulls) weighs 1, but its arguments still add
 *   theirs. (1,000 columns of 19 MB made a backend allocate 17 GB; a WHERE of 20 conditions on such values 484 MB, 9 s
 *   past a 3.5 s timeout, and 1,000 conditions or ORDER BY terms would have been 17 to 35 GB.)
 * - across rows (checkAcrossRows): a value built across ROWS (string_agg, array_agg, json(b)_agg, json(b)_object_agg,
 *   ARRAY(SELECT ...)) has no static bound: it grows with every row read, and the rows read are bounded by the statement
 *   timeout only (they are read with interrupt checks). What each row adds is bounded instead: at most one view value
 *   (its weight past 1 is refused where a column is read into it twice, or through replace, regexp_replace or
 *   array_to_string) and at most ACROSS_ROWS_MAX_CONSTANT_BYTES (256) bytes that are not a view's values: literals, the
 *   separator, the text of numbers, dates and other constants the query makes (konstOf; a CTE's or subquery's columns
 *   carry theirs, a value aggregated across rows counts that of each row times the rows it read that no view gave).
 *   The rows a query makes without reading a view are bounded too (multiplyRows: generate_series, unnest and VALUES,
 *   multiplied where they are joined or read again through CTEs and subqueries, by the grouping sets of GROUPING
 *   SETS / CUBE / ROLLUP: CUBE of n 2^n, ROLLUP n + 1, and by 2 for each FULL JOIN, which keeps the unmatched rows of
 *   both sides: 8 comma-joined chains of 12 FULL JOINed one-row items made 12^8 rows, 2.8 GB): at most MAX_SERIES_ROWS (100,000). unnest counts the elements
 *   of its array where they can be counted (arrayElems: a literal, ARRAY[...], ARRAY(SELECT ...), array_agg, an
 *   ordered-set aggregate's array (percentile_cont / percentile_disc of an array of fractions: one a fraction; mode and
 *   percentile_disc of arrays: the ORDER BY value's), a scalar subquery's or a CTE's or subquery's column of those, each
 *   carrying its count, Col.elems; a string literal one more than its commas, wherever it may be read as an array) and
 *   refuses any other (a cast of text to an array, through another cast too: `t::text::int[]` of a CTE's
 *   '{' || string_agg(...) || '}' over 100,000 rows unnested twice made 10^10 rows, 3.13 GB; a function not known to
 *   return a scalar).
 *   generate_series' numbers are counted exactly (scaled BigInt: 0.1 .. 0.3 by 0.2 makes 2 rows, which doubles counted
 *   as 1, and 40 of them cross-joined 2^40; 1e30 .. 1e30 + 1e8 makes 10^8 + 1), not cast to an integer type from a
 *   fraction (1.6::int is 2) nor to numeric(p, s) (both round). Its dates and timestamps are read as PostgreSQL reads
 *   them, to the microsecond (timeValue: years 0001-9999 AD, 'YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]' and a UTC offset; BC,
 *   'infinity', 'epoch', 'now', named time zones and a seventh digit of a second refused): a date drops the time of day,
 *   a timestamp ignores a UTC offset, a timestamptz honours it and is compared in UTC, and a time of the session's zone
 *   (a timestamptz without an offset; a date or timestamp where the series runs as timestamptz, as it does of two
 *   dates) counts the zone's possible offsets (16 hours from UTC, 26 hours between two such times: MAX_ZONE_OFFSET,
 *   ZONE_SHIFT). Its interval step is read as PostgreSQL reads it (intervalLength: '1 month', '1.5 seconds', '0.5 day',
 *   '1 microsecond', '01:30:00'; ISO 8601 'PT1S', 'ago' and mixed signs refused) at its shortest: a month 28 days less
 *   an hour, a day 23 hours, a fraction of a year whole months, of a month days of 30; a step that is not exactly zero
 *   at least a microsecond (stepMin: PostgreSQL rounds '0.6 us' to 1 µs and '0.06 year' to 1 mon, never to 0; counted as
 *   one row, '0.6 us' over a day made 8.6 x 10^10 rows, 5.15 GB).
 *   generate_series' step must be a literal, its bounds literals too, or both one anchor of the statement's time
 *   (current_date; now(), current_timestamp, current_timestamp(p); localtimestamp, localtimestamp(p)) plus or minus
 *   literal days or intervals, each possibly truncated by date_trunc('<unit up to a year>', ...) or cast to date or a
 *   timestamp (anchoredBound: its span that of the offsets, each unit at its longest, a month 31 days; each truncation
 *   or cast counted as moving it by its unit's longest, a cast to a timestamp by two days; the step at its shortest),
 *   so that a date spine relative to today (date_trunc('month', current_date) to current_date) is counted as one of
 *   literal dates. A span between a literal date and an anchor is not counted (refused): today is not known here.
 *   And a view's value read into a value built across rows is read once for each row of no view it is joined with (a
 *   view joined with generate_series(1, 100000): 100 MB a view row of 1,000-byte memos), and once for each grouping set
 *   of the SELECT that aggregates it (GROUPING SETS ((), (), ...) of 4,096 sets, or CUBE of 12 columns, grouped 3,000
 *   rows of a view into 788 MB), in the query the aggregate belongs to: an aggregate in a subquery whose arguments read
 *   only (or, where a view's columns are not known, may read) an enclosing query's columns is that query's, as in
 *   PostgreSQL, and is weighed in its rows and grouping sets too (aggregateLevels: SELECT (SELECT array_agg(v.memo)) FROM
 *   v, generate_series(1, 100000) made 5.87 GB): at most ACROSS_ROWS_MAX_VIEW_REPEATS (32) times (viewRepeats: each FROM item counts
 *   its rows of no view unless an equality between its column and what other FROM items give holds it to a row or a
 *   few of each of theirs, othersFactor: a date spine `generate_series(...) d LEFT JOIN semantic.v ON v.date = d::date`,
 *   whose values are distinct, distinctOf; times the grouping sets: a report's ROLLUP of 3 columns or CUBE of 2 is 4).
 *   A set-returning function of GROUP BY, or of a target-list column GROUP BY names (GROUP BY 1, GROUP BY its output
 *   name), runs before the aggregation: its rows repeat every row the aggregates read (GROUP BY generate_series(1, 100000)
 *   * 0 made one string_agg of a view's memos 1 GB), so it is counted before the aggregates are weighed.
 *   So such a value is at most (rows read before the timeout) x (one view value + 256 bytes): of constants alone about
 *   25 MB; and all of a statement's (every SELECT, subquery and CTE, counted in one budget) add up to at most
 *   ACROSS_ROWS_MAX_STATEMENT_BYTES (64 MB) of constants, each its bytes a row times the rows of no view it reads, times
 *   its grouping sets (spendAcrossRows: 40 such string_agg in one SELECT built 1.9 GB, in 40 scalar subqueries 3.8 GB); the views' rows, and their joins with each other, are read at the speed of reading them within the timeout
 *   (string_agg runs about 7-10 million rows a second: 8 bytes a row reach about 340 MB in 5 s), and PostgreSQL's 1 GB
 *   limit of a value ends string_agg with an error (54000). Views joined with each other (a view with itself too) by no
 *   equality of their columns (a cross join, ON b.id >= a.id; an array_agg of a view unnested twice) are refused where a
 *   value is built across their rows or their rows are sorted, grouped or windowed (checkViewsJoined,
 *   checkViewsJoinedHeld: 2.4 to 7.5 GB of temp in 11 s of 3,000 rows), and so is a correlated subquery building a value
 *   across a view's rows again for each of many outer rows unless an equality ties it to the outer row
 *   (checkCorrelatedViewAcross: 1.2 GB in 10 s). Joined by an equality, no static rule bounds them (the rows of each
 *   key, which the guard cannot know): string_agg(a.memo, '') FROM v a JOIN v b ON b.k = a.k reaches up to that 1 GB (1-1.5 GB a backend at its peak), and
 *   array_agg / jsonb_agg of such a join are limited only by the statement timeout, each element kept (2.4 GB was
 *   measured of 3,000 x 3,000 rows). So is an array built by array_agg over a view's rows and unnested more than once
 *   (SELECT count(*) FROM (SELECT array_agg(id) a FROM semantic.v) s, unnest(s.a) x, unnest(s.a) y: its elements are
 *   the view's rows, counted as one element, so that the unnests' rows, a view's rows to the power of the unnests, are
 *   bounded by the statement timeout only). That residual is bounded by the queries that run at once instead, not by a static
 *   rule (SEMANTIC_MAX_CONCURRENT_QUERIES in a process, SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG of an organization:
 *   semantic.service). A value built across rows weighs at least 1, so what is built from it is at most 64 times its
 *   size (array_to_string(ARRAY(SELECT ...), '<100 KB>') is refused). Aggregated across rows again, such a value (a
 *   subquery's, CTE's or scalar subquery's column of one, a window aggregate's) is refused unless each of its values is
 *   in one row aggregated (a grouped subquery's aggregate, its FROM alone) or the rows aggregated are at most one
 *   (Across, acrossOf: array_agg(s.big) FROM v, (SELECT string_agg(memo, '') big FROM v) s made 6 GB at 2,000 rows).
 *   One row (rowsOne) means one-row FROM items, none FULL JOINed (99 one-row items FULL JOINed are 99 rows), and no
 *   set-returning function in the target list, ORDER BY, GROUP BY or DISTINCT ON (PostgreSQL runs them there too); a
 *   set operation's column is in a row of each arm, and lag / lead by a computed offset copy one row's value into every
 *   row (as first_value does): such values are no longer in one row.
 *   Rows PostgreSQL holds all at once in memory, never spilled, are held to the same rules (checkHeldRows): those of
 *   x IN / NOT IN / op ANY / ALL (SELECT ...) (a hashed SubPlan: NOT IN of 100,000 rows of a 20 KB literal, 2 GB) and
 *   of each INTERSECT / EXCEPT arm (HashSetOp: 1.9 GB). A correlated subquery (reading an enclosing query's column:
 *   weighSubquery) runs again for each row of the query reading it, whose ORDER BY or hash holds every result: its
 *   constant bytes built across rows count once for each of that query's rows made of no view (1.6 GB of temp in 5 s).
 *   round(x, s) and trunc(x, s) take a literal scale of at most MAX_ROUND_SCALE (100), counted as s + 3 bytes.
 * - depth bound: at most MAX_DEPTH (8) SELECTs nested inside each other or reading each other (a CTE chain counts);
 *   WITH RECURSIVE is refused (a recursive CTE grows a value every iteration: s || s doubles it).
 * - size bound, checked first: at most MAX_NODES (20,000) parse-tree nodes nested at most MAX_NESTING (200) deep, so
 *   that the checks (synchronous: they hold the event loop; some recursive) stay short and never exhaust the stack;
 *   each is linear in the tree but for the derived tables' fences (their subtrees, nested at most MAX_DEPTH deep) and
 *   the lookup of each column name read in every FROM item in scope (at most MAX_FROM_ITEMS a SELECT, each looked up
 *   by name: a CTE's columns are indexed once), with at most MAX_COLUMNS output columns a SELECT or VALUES row.
 * - a NUL character is refused: the parser reads a C string and would check only the text before it.
 * - fences (fenceStatement): the statement run is the caller's with every CTE made AS MATERIALIZED and every derived
 *   table (subquery in FROM) given OFFSET 0, so PostgreSQL plans each level on its own and never merges their
 *   expressions into one. The rewrite is checked on the parse tree: the fenced text must parse to the caller's tree
 *   with exactly those fences added.
 */

/** A query's size at most (the API takes 100,000 characters: at most 3 bytes each; the agents' tool takes this). */
export const QUERY_MAX_BYTES = 300_000;
/** The heaviest expression a query may have: how many of its inputs' largest values one value may hold (see above). */
export const MAX_GROWTH = 64;
/**
 * Every value evaluated for one row adds up (its columns, its WHERE, GROUP BY, ORDER BY... expressions and the values
 * built on the way, all held until the row is done), to at most MAX_ROW_GROWTH times the largest input: far more than one
 * value may grow to, so that an analyst's report (20 columns, 10 conditions, GROUP BY 5, ORDER BY 3) or a SELECT of many
 * plain columns or JSON builders stays allowed, while a row stays far below PostgreSQL's 1 GB tuple (1,000 columns of
 * 64 x each made a backend allocate 17 GB; 20 conditions on such values, 484 MB).
 */
export const MAX_ROW_GROWTH = 512;
/**
 * The statement's own rows are held again by the wrapper that runs it (semantic.repository): materialized with their text
 * (printed: up to 2x) and answered, so the outermost SELECT's row counts WRAPPER_ROW_COPIES more times toward its
 * MAX_ROW_GROWTH (48 columns of 20 x a 95 KB literal, a row of 990 under the old bound of 1,024, peaked at 2.6 GB).
 */
export const WRAPPER_ROW_COPIES = 4;
/** SELECTs nested inside each other or reading each other (CTE chains) at most. */
export const MAX_DEPTH = 8;
/** Parse-tree nodes at most, and how deeply they may nest: the checks take time in proportion to them (and stack). */
export const MAX_NODES = 20_000;
export const MAX_NESTING = 200;
/**
 * FROM items of one SELECT at most (tables, views, CTEs, subqueries and functions; each side of a join counts): each
 * column name is looked up in every FROM item in scope, so their number times the names read is the checks' work.
 */
export const MAX_FROM_ITEMS = 100;
/** Output columns of one SELECT or VALUES row at most: PostgreSQL's own limit of a target list (MaxTupleAttributeNumber). */
export const MAX_COLUMNS = 1664;
/**
 * The bytes that are not a view's values (literals, separators, the text of numbers, dates and other constants) each row
 * may add to a value built across rows (string_agg, array_agg, json(b)_agg, json(b)_object_agg, ARRAY(SELECT ...)).
 */
export const ACROSS_ROWS_MAX_CONSTANT_BYTES = 256;
/**
 * The rows a query may make of no view at most: generate_series (its step literal, its bounds literals, counted exactly,
 * or offsets of one anchor of the statement's time: see seriesRows and anchoredBound), unnest and VALUES,
 * multiplied where they are joined or read again through CTEs and subqueries (a monthly date spine of 10 years: 120).
 */
export const MAX_SERIES_ROWS = 100_000;
/**
 * How many times one view value may be read into a value built across rows (string_agg, array_agg, json(b)_agg,
 * json(b)_object_agg, ARRAY(SELECT ...)) through the rows of no view it is joined with: a view joined with
 * generate_series(1, 100000) repeats each of its values 100,000 times (1,000-byte memos: 100 MB a view row, 1 GB of
 * ten), unless the series is joined to it by an equality on the series' column (a date spine: one row, or two of a
 * daily series cast to date, for each of the view's rows); and once for each grouping set of the SELECT that aggregates
 * it (GROUPING SETS, CUBE, ROLLUP: a report's ROLLUP of 3 columns is 4, CUBE of 5 columns 32). See viewRepeats.
 */
export const ACROSS_ROWS_MAX_VIEW_REPEATS = 32;
/**
 * The bytes that are not a view's values (see ACROSS_ROWS_MAX_CONSTANT_BYTES) all the values one statement builds across
 * rows may add up to: each across-rows aggregate (string_agg, array_agg, json(b)_agg, json(b)_object_agg, as a window
 * too) and ARRAY(SELECT ...) of every SELECT, subquery and CTE counts its constant bytes a row times the rows it reads
 * that no view gave, once for each grouping set. Each alone is held to 256 bytes x 100,000 rows (about 25 MB); 40 of
 * them in one SELECT, or in 40 scalar subqueries, built 1.9 GB and 3.8 GB from no data at all.
 */
export const ACROSS_ROWS_MAX_STATEMENT_BYTES = 64 * 1024 * 1024;

/**
 * Functions a query may call (unqualified or pg_catalog.*): aggregates, windows, arithmetic, text, dates, json building.
 * None that builds a value of a size given by an argument (repeat, lpad, rpad, format's width): one call of those
 * makes the backend allocate up to 1 GB, long before the statement timeout or the byte cap can act.
 */
export const ALLOWED_FUNCTIONS = new Set([
  // aggregates
  'count', 'sum', 'avg', 'min', 'max', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp',
  'percentile_cont', 'percentile_disc', 'mode', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every',
  'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'corr', 'covar_pop', 'covar_samp', 'regr_slope', 'regr_intercept',
  // windows
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead', 'first_value', 'last_value', 'nth_value',
  // numbers
  'abs', 'round', 'ceil', 'ceiling', 'floor', 'trunc', 'sign', 'mod', 'power', 'sqrt', 'cbrt', 'exp', 'ln', 'log', 'log10', 'div', 'width_bucket',
  // text
  'lower', 'upper', 'initcap', 'length', 'char_length', 'character_length', 'octet_length', 'substring', 'substr', 'left', 'right',
  'trim', 'btrim', 'ltrim', 'rtrim', 'concat', 'concat_ws', 'replace', 'split_part', 'strpos', 'position',
  'starts_with', 'reverse', 'translate', 'to_char', 'to_number', 'md5', 'regexp_replace', 'regexp_match', 'regexp_like',
  // dates and times
  'date_trunc', 'date_part', 'extract', 'date_bin', 'age', 'make_date', 'make_timestamp', 'make_interval', 'to_date', 'to_timestamp',
  'now', 'timezone', 'justify_days', 'justify_hours', 'justify_interval', 'isfinite',
  // json building and reading
  'json_build_object', 'jsonb_build_object', 'json_build_array', 'jsonb_build_array', 'to_json', 'to_jsonb',
  'jsonb_extract_path_text', 'json_extract_path_text', 'jsonb_array_length', 'jsonb_typeof',
  // sets and arrays
  'generate_series', 'unnest', 'array_length', 'cardinality', 'array_position', 'array_to_string',
  // conditionals that parse as calls
  'num_nulls', 'num_nonnulls',
]);

/** Types a query may cast to (a cast runs the type's input function: reg* types look up the catalogs). */
const ALLOWED_TYPES = new Set([
  'int2', 'int4', 'int8', 'smallint', 'integer', 'int', 'bigint', 'numeric', 'decimal', 'float4', 'float8', 'real', 'double precision',
  'text', 'varchar', 'bpchar', 'char', 'character varying', 'name', 'date', 'timestamp', 'timestamptz', 'time', 'timetz', 'interval',
  'bool', 'boolean', 'uuid', 'json', 'jsonb',
]);

/** SQL value functions (CURRENT_DATE...) that are plain values; CURRENT_USER and the like are left out. */
const ALLOWED_SQL_VALUES = new Set([
  'SVFOP_CURRENT_DATE', 'SVFOP_CURRENT_TIME', 'SVFOP_CURRENT_TIME_N', 'SVFOP_CURRENT_TIMESTAMP', 'SVFOP_CURRENT_TIMESTAMP_N',
  'SVFOP_LOCALTIME', 'SVFOP_LOCALTIME_N', 'SVFOP_LOCALTIMESTAMP', 'SVFOP_LOCALTIMESTAMP_N',
]);

/** Node types that never belong in a read of the semantic layer, with the reason given back. */
const REFUSED_NODES: Record<string, string> = {
  InsertStmt: 'INSERT', UpdateStmt: 'UPDATE', DeleteStmt: 'DELETE', MergeStmt: 'MERGE', CopyStmt: 'COPY',
  IntoClause: 'SELECT ... INTO', LockingClause: 'FOR UPDATE/SHARE', ParamRef: 'parameters ($1)',
  RangeTableFunc: 'XMLTABLE', RangeTableSample: 'TABLESAMPLE', XmlExpr: 'XML functions', XmlSerialize: 'XML functions',
  JsonTable: 'JSON_TABLE', CallStmt: 'CALL', DoStmt: 'DO', VariableSetStmt: 'SET', TransactionStmt: 'transaction control',
  // SQL/JSON syntax parses to nodes of its own, not FuncCall/TypeCast: it would pass the function and type allow-lists
  // unchecked (json_value(... RETURNING regclass) looks the catalogs up). The allow-listed json_build_* functions remain.
  JsonFuncExpr: 'SQL/JSON JSON_VALUE/JSON_QUERY/JSON_EXISTS', JsonArrayConstructor: 'SQL/JSON JSON_ARRAY',
  JsonArrayQueryConstructor: 'SQL/JSON JSON_ARRAY', JsonObjectConstructor: 'SQL/JSON JSON_OBJECT', JsonArrayAgg: 'SQL/JSON JSON_ARRAYAGG',
  JsonObjectAgg: 'SQL/JSON JSON_OBJECTAGG', JsonIsPredicate: 'SQL/JSON IS JSON', JsonParseExpr: 'SQL/JSON JSON()',
  JsonScalarExpr: 'SQL/JSON JSON_SCALAR', JsonSerializeExpr: 'SQL/JSON JSON_SERIALIZE', MergeSupportFunc: 'MERGE_ACTION()',
};

export interface AcceptedQuery {
  /** the statement's own text (without a trailing semicolon), to be run as a subquery */
  statement: string;
  /** the semantic views it reads */
  views: string[];
}

const refuse = (reason: string) => SemanticErrors.error('semantic.query_refused', `the query was refused: ${reason}`, { reason });

const nameOf = (list: any[] | undefined): string[] => (list ?? []).map((n) => n?.String?.sval ?? '').filter(Boolean);

const refuseNesting = () => refuse(`the query nests expressions more than ${MAX_NESTING} levels deep; at most ${MAX_NESTING} are allowed`);

/** Parses `sql` and checks it against the rules above; throws semantic.query_refused / semantic.syntax_error naming the reason. */
export async function acceptSemanticQuery(sql: string): Promise<AcceptedQuery> {
  try {
    return await accept(sql);
  } catch (err) {
    // the checks below recurse over the tree: MAX_NESTING keeps them far from the stack's end, this is the backstop
    if (err instanceof RangeError) throw refuse(`the query could not be checked (${err.message}): it is too large or nests too deeply`);
    throw err;
  }
}

async function accept(sql: string): Promise<AcceptedQuery> {
  const size = Buffer.byteLength(sql, 'utf8');
  if (size > QUERY_MAX_BYTES) throw refuse(`the query is ${size} bytes; at most ${QUERY_MAX_BYTES} are allowed`);
  // the parser reads a C string: it would stop at a NUL and check only the text before it, the rest handed on unparsed
  if (sql.includes('\u0000')) throw refuse('the query contains a NUL character (\\u0000), which a statement cannot hold');
  let tree: { stmts?: { stmt: Record<string, unknown>; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = (await parse(sql)) as typeof tree;
  } catch (err) {
    // the parser's own tree, past about 1,500 levels, does not fit the stack
    if (err instanceof RangeError) throw refuseNesting();
    throw SemanticErrors.error('semantic.syntax_error', `the query is not valid SQL: ${(err as Error).message}`);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length === 0) throw refuse('the query is empty');
  if (stmts.length > 1) throw refuse(`only one statement is allowed, found ${stmts.length}`);
  const [{ stmt, stmt_location: at = 0, stmt_len: len = 0 }] = stmts;
  const kind = Object.keys(stmt)[0];
  if (kind !== 'SelectStmt') throw refuse(`only SELECT is allowed, found ${REFUSED_NODES[kind] ?? kind.replace(/Stmt$/, '').toUpperCase()}`);

  // before any work that grows with the tree's depth or size (every check below walks it, recursively)
  checkTreeSize(stmt);
  // an unqualified name must be a CTE in scope where it is read (PostgreSQL would resolve any other through the search path)
  checkUnqualifiedNames(stmt, new Set());
  const views = new Set<string>();
  walk(stmt, (node, type) => {
    const reason = REFUSED_NODES[type] ?? (type.startsWith('Json') ? `SQL/JSON syntax (${type})` : undefined);
    if (reason) throw refuse(`${reason} is not allowed`);
    switch (type) {
      case 'SelectStmt':
        if (node.intoClause) throw refuse('SELECT ... INTO is not allowed');
        if (node.withClause?.recursive) throw refuse('WITH RECURSIVE is not allowed (a read of the semantic views needs no recursion)');
        break;
      case 'CommonTableExpr': {
        const q = node.ctequery ?? {};
        const inner = Object.keys(q)[0];
        if (inner !== 'SelectStmt') throw refuse(`a CTE must be a SELECT (writable CTEs are not allowed), found ${REFUSED_NODES[inner] ?? inner}`);
        break;
      }
      case 'RangeVar': {
        const schema: string | undefined = node.schemaname;
        const rel: string = node.relname;
        if (node.catalogname) throw refuse(`${node.catalogname}.${schema}.${rel}: another database cannot be read`);
        // an unqualified name is a CTE in scope (checkUnqualifiedNames)
        if (schema === 'semantic') {
          views.add(`semantic.${rel}`);
        } else if (schema) {
          throw refuse(`${schema}.${rel} is outside schema semantic (${schema === 'pg_catalog' || schema === 'information_schema' ? 'the catalogs are not readable' : 'only semantic.* views are readable'})`);
        }
        break;
      }
      case 'FuncCall': {
        const parts = nameOf(node.funcname);
        const name = parts[parts.length - 1]?.toLowerCase();
        const schema = parts.length > 1 ? parts[0].toLowerCase() : undefined;
        if (parts.length > 2 || (schema && schema !== 'pg_catalog') || !ALLOWED_FUNCTIONS.has(name)) {
          throw refuse(`function ${parts.join('.')} is not allowed`);
        }
        break;
      }
      case 'TypeCast': {
        const parts = nameOf(node.typeName?.names).map((s) => s.toLowerCase());
        const name = parts[parts.length - 1];
        if ((parts.length > 1 && parts[0] !== 'pg_catalog') || !ALLOWED_TYPES.has(name)) throw refuse(`a cast to ${parts.join('.')} is not allowed`);
        break;
      }
      case 'ColumnRef':
        checkFieldNames((node.fields ?? []).slice(1));
        break;
      case 'A_Indirection':
        checkFieldNames(node.indirection ?? []);
        break;
      case 'SQLValueFunction':
        if (!ALLOWED_SQL_VALUES.has(node.op)) throw refuse(`${String(node.op).replace('SVFOP_', '').toLowerCase()} is not allowed`);
        break;
      case 'A_Expr': case 'SortBy': {
        // an operator of another schema (OPERATOR(public.<), ORDER BY ... USING OPERATOR(public.<)) runs its function
        const parts = nameOf(type === 'SortBy' ? node.useOp : node.name);
        if (parts.length > 1 && parts[0].toLowerCase() !== 'pg_catalog') throw refuse(`operator ${parts.join('.')} is not allowed`);
        break;
      }
      default:
        if (type.endsWith('Stmt')) throw refuse(`${type.replace(/Stmt$/, '').toUpperCase()} is not allowed`);
    }
  });
  boundGrowth(stmt.SelectStmt as Sel);
  // the parser's offsets count UTF-8 bytes, not UTF-16 code units: 'Müller' shifts every later offset by one
  const bytes = Buffer.from(sql, 'utf8');
  const statement = (len > 0 ? bytes.subarray(at, at + len) : bytes.subarray(at)).toString('utf8');
  return { statement: await fenceStatement(statement), views: [...views].sort() };
}

/** Refuses a tree of more than MAX_NODES nodes or nested more than MAX_NESTING deep; iterative, so any tree the parser gives is measured. */
function checkTreeSize(root: unknown): void {
  let nodes = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (!value || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const v of value) stack.push([v, depth]);
      continue;
    }
    for (const [key, child] of Object.entries(value)) {
      if (!child || typeof child !== 'object') continue;
      let d = depth;
      if (/^[A-Z]/.test(key) && !Array.isArray(child)) {
        if (++nodes > MAX_NODES) throw refuse(`the query has more than ${MAX_NODES} parse-tree nodes (names, values, operators, calls...); at most ${MAX_NODES} are allowed`);
        if (++d > MAX_NESTING) throw refuseNesting();
      }
      stack.push([child, d]);
    }
  }
}

/**
 * Refuses a field name PostgreSQL may read as a call: `rel.f` and `(expr).f` are f(rel) when rel has no column f
 * (`x.row_to_json` calls row_to_json(x)). These are the functions of pg_catalog that take a whole row (one argument
 * of type record, anyelement, "any"...); no semantic view has a column of these names. (Casts of a row in this
 * notation, `x.text`, are not PostgreSQL's since 9.1.)
 */
const ROW_FUNCTIONS = new Set([
  'any_out', 'anycompatible_out', 'anyelement_out', 'anynonarray_out', 'concat', 'hash_record', 'json_build_array', 'json_build_object',
  'jsonb_build_array', 'jsonb_build_object', 'num_nonnulls', 'num_nulls', 'pg_collation_for', 'pg_column_compression', 'pg_column_size',
  'pg_typeof', 'quote_literal', 'quote_nullable', 'record_out', 'record_send', 'row_to_json', 'to_json', 'to_jsonb',
]);
function checkFieldNames(fields: any[]): void {
  for (const f of fields) {
    const name: string | undefined = f?.String?.sval;
    if (name !== undefined && ROW_FUNCTIONS.has(name)) {
      throw refuse(`the field .${name} is a call of function ${name} on the row (PostgreSQL reads rel.${name} as ${name}(rel)); write the call if the function is allowed`);
    }
  }
}

/**
 * Refuses an unqualified table name that is not a CTE in scope where it is read. The scope is PostgreSQL's: a WITH
 * clause's names are visible in its SELECT (set operations' arms included) and in nested queries; in its own CTEs only
 * the earlier siblings are (all of them under WITH RECURSIVE). A CTE's name anywhere else in the query does not make a
 * name readable: `(WITH pg_roles AS (...) SELECT ...) s, pg_roles` reads pg_catalog.pg_roles.
 */
function checkUnqualifiedNames(value: unknown, scope: ReadonlySet<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) checkUnqualifiedNames(v, scope);
    return;
  }
  if (!value || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(value)) {
    if (!child || typeof child !== 'object') continue;
    if (key === 'SelectStmt' || key === 'larg' || key === 'rarg') {
      checkSelect(child as Record<string, any>, scope);
    } else if (key === 'RangeVar') {
      const rv = child as { schemaname?: string; relname: string };
      if (!rv.schemaname && !scope.has(rv.relname)) throw refuse(`table ${rv.relname} is outside schema semantic (name the view semantic.${rv.relname})`);
    } else {
      checkUnqualifiedNames(child, scope);
    }
  }
}

function checkSelect(select: Record<string, any>, outer: ReadonlySet<string>): void {
  const { withClause, ...rest } = select;
  let scope = outer;
  if (withClause) {
    const ctes: { ctename: string; ctequery: unknown }[] = (withClause.ctes ?? []).map((c: any) => c.CommonTableExpr).filter(Boolean);
    const all = new Set([...outer, ...ctes.map((c) => c.ctename)]);
    const earlier = new Set(outer);
    for (const c of ctes) {
      checkUnqualifiedNames(c.ctequery, withClause.recursive ? all : earlier);
      earlier.add(c.ctename);
    }
    scope = all;
  }
  checkUnqualifiedNames(rest, scope);
}

/** Visits every node of the parse tree: `visit(node, type)` for each `{ Type: node }` wrapper. */
function walk(value: unknown, visit: (node: any, type: string) => void): void {
  if (Array.isArray(value)) {
    for (const v of value) walk(v, visit);
    return;
  }
  if (!value || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(value)) {
    if (/^[A-Z]/.test(key) && child && typeof child === 'object' && !Array.isArray(child)) visit(child, key);
    walk(child, visit);
  }
}

// ---- growth and depth bound -------------------------------------------------------------------------------------

type Sel = Record<string, any>;
/**
 * What a SELECT gives the query that reads it: its heaviest column, its whole row (for `t` / `t.*` / `*`), its depth,
 * and where known its output columns in order (name undefined where the guard does not tell PostgreSQL's name: such a
 * column may be any name read), so that a column is read at its own weight and a JSON column is known as JSON.
 */
interface Shape {
  value: number; row: number; depth: number; cols?: readonly Col[]; konst: number; gen: number; rep: number; elems?: number;
  /** (the most of its columns': a whole row) whether a value is built across rows (see Across); undefined: NONE */
  across?: Across;
  /** the SELECT makes at most one row (an aggregate without GROUP BY, LIMIT 1, one VALUES row, FROM items of one row) */
  one?: boolean;
}
/**
 * Whether a value is built across rows (string_agg, array_agg, json(b)_agg, json(b)_object_agg, ARRAY(SELECT ...)): NONE;
 * DISJOINT, an aggregate of its query's groups (each row read into one group's value), each value in one row of the
 * query that reads it; REPEATED, a value that may be in many rows (a window aggregate's, a scalar subquery's, a
 * DISJOINT one joined with other FROM items of more than one row, or grouped in several grouping sets). Aggregated
 * again across rows (acrossOf), a REPEATED value adds all of it for every row (a view joined with a subquery's
 * string_agg of the view: 6 GB at 2,000 rows): refused unless those rows are at most one.
 */
const Across = { NONE: 0, DISJOINT: 1, REPEATED: 2 } as const;
type Across = (typeof Across)[keyof typeof Across];
/**
 * konst (in Shape: the whole row's): the part of a column's value that is not a view's value (see konstOf), in the same
 * units as weight; gen (in Shape): how many rows the SELECT can make of no view (see MAX_SERIES_ROWS); elems (in Shape:
 * the most of its columns'): how many elements an array the column holds may have (see arrayElems; undefined: not known).
 */
interface Col {
  name?: string; weight: number; json: boolean; konst: number;
  /** rep (in Shape: the most of its columns'): how many of the shape's rows one view value may appear in; 0: it holds none (see viewRepeats) */
  rep: number;
  /** how many of the shape's rows one value of the column may appear in, where the guard can tell (a generate_series' column: 1) */
  distinct?: number;
  /** the same of the column's value cast to date (a time series: 2 with a step of a day or more, more for shorter ones) */
  perDay?: number;
  /** how many elements unnest may make of the column's value (see arrayElems); undefined: not known, unnest of it is refused */
  elems?: number;
  /** whether its value is built across rows (see Across); undefined: NONE */
  across?: Across;
}
/** A FROM item a column reference may read: its name (alias or relation) and shape. */
interface Source { name?: string; shape: Shape }
interface Env {
  ctes: ReadonlyMap<string, Shape>;
  /** the heaviest value / row readable from enclosing queries (correlated and LATERAL references), and their FROM items */
  outerValue: number;
  outerRow: number;
  outerNames: ReadonlySet<string>;
  outerSources: readonly Source[];
  /** the rows of no view the enclosing query has made so far (LATERAL and correlated references read them) */
  outerGen: number;
  /** the enclosing query's context (a subquery's, a LATERAL subquery's): an aggregate of its columns is its (aggregateLevels) */
  outerCtx?: Ctx;
  /**
   * the statement's: the constant bytes its values built across rows add up to so far (ACROSS_ROWS_MAX_STATEMENT_BYTES);
   * `enclosing`, those of them spent by aggregates that may be an enclosing query's (aggregateLevels: counted in its rows)
   */
  budget: { bytes: number; enclosing: number };
  /** a subquery's: set once it reads a column of an enclosing query (see weighSubquery) */
  correlated?: { yes: boolean };
}
/**
 * What an expression of one SELECT can read; `work`: the weights of the values it has built so far for one row (see
 * BUILT), which PostgreSQL holds until the row is done.
 */
interface Ctx {
  env: Env; value: number; row: number; names: ReadonlySet<string>; depth: number; sources: readonly Source[]; work: number;
  /** the rows of no view this SELECT's FROM items and set-returning functions make so far (their product) */
  gen: number;
  /** weighing the constant part of a value (konstOf), not its weight: nothing is refused or counted as work */
  konst?: boolean;
  /** (with konst) one row's: a value built across rows counts what one row it reads adds, not all of them (checkMadeRows) */
  perRow?: boolean;
  /** a SELECT's FROM items and the equalities joining them, once its FROM list is read (see viewRepeats) */
  rows?: RowsOf;
  /** the grouping sets of the SELECT (GROUPING SETS, CUBE, ROLLUP: groupingSets): its aggregates read each row once for each */
  sets?: number;
}

/** One FROM item of a SELECT: its source, and the rows of no view it makes (generate_series, unnest, VALUES, a CTE of them). */
interface FromItem { source: Source; gen: number }
/**
 * An equality `item.column = expression` (WHERE, JOIN ... ON): for any values of the items the expression reads (deps),
 * at most `mult` rows of `item` match. validFor: the items whose values it holds for (an outer join's preserved side is
 * matched only where the other side's values are; undefined: any).
 */
interface Anchor { item: Source; mult: number; deps: ReadonlySet<Source>; validFor?: ReadonlySet<Source> }
interface RowsOf {
  items: FromItem[]; anchors: Anchor[];
  /** the rows set-returning functions of the target list make for each row of the FROM list */
  targetGen: number;
  cache: Map<Source | undefined, number>;
  /** the FULL JOINs of the FROM list: each may make the rows of both sides where they do not match (two of one-row items) */
  fullJoins: number;
  /** the set-returning functions of the target list, ORDER BY, GROUP BY and DISTINCT ON (each repeats the rows it is in) */
  setReturning: number;
}

const VIEW: Shape = { value: 1, row: 1, depth: 0, konst: 0, gen: 1, rep: 1 };
/** One byte, as a weight (U is at least QUERY_MAX_BYTES). */
const BYTE = 1 / QUERY_MAX_BYTES;
/** The most bytes a numeric prints as (131,072 digits before the point, 16,383 after), and any other fixed-size type. */
const NUMERIC_MAX_BYTES = 147_500;
const FIXED_MAX_BYTES = 100;

/** Functions whose result is a number, a boolean, a date or a fixed-size text, whatever their arguments' size. */
const BOUNDED_RESULT = new Set([
  'count', 'sum', 'avg', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp', 'percentile_cont',
  'bool_and', 'bool_or', 'every', 'corr', 'covar_pop', 'covar_samp', 'regr_slope', 'regr_intercept',
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile',
  'abs', 'round', 'ceil', 'ceiling', 'floor', 'trunc', 'sign', 'mod', 'power', 'sqrt', 'cbrt', 'exp', 'ln', 'log', 'log10', 'div', 'width_bucket',
  'length', 'char_length', 'character_length', 'octet_length', 'strpos', 'position', 'starts_with', 'to_number', 'md5', 'regexp_like',
  'date_trunc', 'date_part', 'extract', 'date_bin', 'age', 'make_date', 'make_timestamp', 'make_interval', 'to_date', 'to_timestamp',
  'now', 'timezone', 'justify_days', 'justify_hours', 'justify_interval', 'isfinite',
  'jsonb_array_length', 'jsonb_typeof', 'generate_series', 'array_length', 'cardinality', 'array_position', 'num_nulls', 'num_nonnulls',
]);
/** Functions returning one of their arguments (or a part of one). */
const ONE_OF_ARGS = new Set(['min', 'max', 'mode', 'percentile_disc', 'lag', 'lead', 'first_value', 'last_value', 'nth_value', 'substring', 'substr', 'left', 'right', 'split_part', 'unnest']);
/**
 * Functions of the allow-list whose value may be an array (arrayElems counts its elements): array_agg, regexp_match's
 * groups, an ordered-set aggregate's (of an array of fractions, or of ORDER BY values that are arrays), and those
 * returning one of their arguments (min, max, lag...). Every other returns a scalar.
 */
const ARRAY_VALUED = new Set(['array_agg', 'regexp_match', 'percentile_cont', 'percentile_disc', 'mode', 'min', 'max', 'lag', 'lead', 'first_value', 'last_value', 'nth_value']);
/** Functions whose result is JSON: printing a text argument escapes it (up to 6x: a control character becomes \u0001). */
const JSON_VALUED = new Set(['to_json', 'to_jsonb', 'json_build_object', 'json_build_array', 'jsonb_build_object', 'jsonb_build_array', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg']);
/** Column references and scalar subqueries found (while weighed) to read a JSON value: a JSON builder copies it unescaped. */
const JSON_READS = new WeakSet<object>();
/**
 * Aggregates building one value across rows: the rows they read are bounded by the statement timeout only, so their
 * value weighs at least 1 (as much as a view's value) and a later multiplication (replace, array_to_string) counts;
 * what each row adds is held to a view's values and ACROSS_ROWS_MAX_CONSTANT_BYTES (checkAcrossRows).
 */
const ACROSS_ROWS = new Set(['string_agg', 'array_agg', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg']);
/** The constant part (konstOf) of a value of a fixed-size type made of no view value and no literal (now(), count(*)): 40 bytes. */
const SMALL_KONST = 40 * BYTE;
/** Each subquery's shape, kept when it is weighed: konstOf reads it and never weighs a subquery again. */
const SUBLINK_SHAPES = new WeakMap<object, Shape>();
/** Functions whose first argument's every byte may become several in an across-rows aggregate's row (see amplifies). */
const MULTIPLYING = new Set(['replace', 'regexp_replace', 'array_to_string']);
const FIXED_TYPES = new Set(['int2', 'int4', 'int8', 'smallint', 'integer', 'int', 'bigint', 'float4', 'float8', 'real', 'double precision',
  'date', 'timestamp', 'timestamptz', 'time', 'timetz', 'interval', 'bool', 'boolean', 'uuid']);
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'char', 'character varying', 'name']);
const NUMERIC_TYPES = new Set(['numeric', 'decimal']);
const JSON_TYPES = new Set(['json', 'jsonb']);
/** Operators whose result is a part of their left argument. */
const PART_OPERATORS = new Set(['->', '->>', '#>', '#>>', '#-']);
/** Operators whose result is a truth value: none holds its operands' value (acrossOf). */
const TRUTH_OPERATORS = new Set(['=', '<>', '!=', '<', '>', '<=', '>=', '~', '~*', '!~', '!~*', '~~', '~~*', '!~~', '!~~*',
  '@>', '<@', '?', '?|', '?&', '&&', '@@', '@?', '@@@', '<<', '>>', '&<', '&>', '-|-', '^@']);
const AT_MOST_ONE = (...w: number[]) => Math.max(0, ...w);

/** The one column of a subquery's shape, where it has exactly one (read as a value: scalar, ARRAY, IN); else its whole row is. */
const onlyColumn = (inner: Shape): Col | undefined => (inner.cols?.length === 1 ? inner.cols[0] : undefined);

/**
 * The constant part of the heaviest element of unnest(ARRAY[...], ...) (`weighElem` of each element), summed over its
 * arrays: one row of it holds one element of each; undefined for any other call (another function, an array that is
 * not ARRAY[...]).
 */
function unnestElement(name: string | undefined, args: any[], weighElem: (e: unknown) => number): number | undefined {
  if (name !== 'unnest' || !args.length || !args.every((a) => a?.A_ArrayExpr)) return undefined;
  return args.reduce((a: number, arr) => a + AT_MOST_ONE(...(arr.A_ArrayExpr.elements ?? []).map(weighElem)), 0);
}

/** A column reference's name: `c` (no rel) or `rel.c`; undefined for any other (a star, three parts or more). */
function columnName(fields: readonly any[]): { rel?: string; name: string } | undefined {
  const parts = fields.map((f) => f?.String?.sval as string | undefined);
  if (parts.length > 2 || parts.some((p) => p === undefined)) return undefined;
  return parts.length === 2 ? { rel: parts[0], name: parts[1]! } : { name: parts[0]! };
}

/** The konst of the widest row of the FROM items in scope (a whole-row reference, a column of no known FROM item). */
function rowKonst(ctx: Ctx): number {
  return ctx.sources.reduce((a, src) => Math.max(a, src.shape.konst), 0);
}

/**
 * The constant part of an expression's value: how much of it (as a weight: bytes x BYTE) is not a view's values. Its
 * literals (a string escaped as JSON escapes it where JSON is built), the text of numbers, dates and constants it makes
 * (now(), CURRENT_DATE, count(*): 40 bytes; a view's number or date: its own), separators, and what replace,
 * array_to_string, to_char, casts to char(n)... make of those; a view's column weighs 0 here, a CTE's or subquery's
 * column its own constant part, a value aggregated across rows that of each of its rows times the rows it reads that
 * were made of no view (ctx.gen). Asked for once `weigh` has checked the expression: nothing is refused or counted again.
 */
function konstOf(node: unknown, ctx: Ctx): number {
  return weigh(node, { ...ctx, konst: true, work: 0 });
}

/** Whether an expression is a number (its digits its own, not text that a cast to numeric may read as 1e131071). */
function isNumberExpr(node: any): boolean {
  if (node?.A_Const) return !!(node.A_Const.ival || node.A_Const.fval);
  if (node?.FuncCall) return BOUNDED_RESULT.has(nameOf(node.FuncCall.funcname).pop()?.toLowerCase() ?? '');
  if (node?.A_Expr) return node.A_Expr.kind === 'AEXPR_OP' && ['+', '-', '*', '/', '%'].includes(nameOf(node.A_Expr.name).pop() ?? '');
  if (node?.TypeCast) {
    const type = nameOf(node.TypeCast.typeName?.names).pop()?.toLowerCase() ?? '';
    return (NUMERIC_TYPES.has(type) || FIXED_TYPES.has(type)) && !(node.TypeCast.typeName?.arrayBounds ?? []).length;
  }
  return false;
}

/**
 * Refuses an across-rows aggregate (or ARRAY(SELECT ...)) whose every row adds more than ACROSS_ROWS_MAX_CONSTANT_BYTES
 * that are not a view's values (`konst`, its arguments' constant part, the separator's included), or that holds a view's
 * value more than once a row (`weight` past 1, and a column read twice into it or multiplied: see amplifies).
 */
function checkAcrossRows(what: string, konst: number, weight: number, args: unknown[]): void {
  const bytes = konst / BYTE;
  if (bytes > ACROSS_ROWS_MAX_CONSTANT_BYTES + 1e-6) {
    throw refuse(`${what} adds up to ${bytes > 1e9 ? 'over 10^9' : Math.ceil(bytes - 1e-6)} bytes that are not a view's values for each row it aggregates (literals, its separator, the text of numbers, dates and other constants the query makes); at most ${ACROSS_ROWS_MAX_CONSTANT_BYTES} bytes a row are allowed (ACROSS_ROWS_MAX_CONSTANT_BYTES: a value built across rows grows by that much for every row read before the statement timeout)`);
  }
  if (weight > 1 + 1e-9 && amplifies(args)) {
    throw refuse(`${what} holds a view's value more than once for each row it aggregates (a column read twice into it, or through replace, regexp_replace or array_to_string); a value built across rows may hold each column a row once, at most one view value a row (weight 1), and ${ACROSS_ROWS_MAX_CONSTANT_BYTES} bytes of constants (ACROSS_ROWS_MAX_CONSTANT_BYTES)`);
  }
}

/**
 * Adds the constant part of a value built across rows (`konst`, as a weight: its bytes that are not a view's values, for
 * all the rows it reads) to the statement's budget; refuses once all of them add up past ACROSS_ROWS_MAX_STATEMENT_BYTES.
 */
function spendAcrossRows(what: string, konst: number, ctx: Ctx): void {
  const budget = ctx.env.budget;
  budget.bytes += konst / BYTE;
  if (budget.bytes > ACROSS_ROWS_MAX_STATEMENT_BYTES + 1e-3) {
    const mb = (b: number) => (b > 1e15 ? 'over 10^9 MB' : `${Math.ceil(b / 1024 / 1024)} MB`);
    throw refuse(`the values the query builds across rows (string_agg, array_agg, json(b)_agg, json(b)_object_agg, ARRAY(SELECT ...), in every SELECT, subquery and CTE) add up to ${mb(budget.bytes)} of bytes that are not a view's values (literals, separators, the text of numbers, dates and other constants, for every row made of no view that each reads: generate_series, unnest, VALUES), at ${what}; at most ${ACROSS_ROWS_MAX_STATEMENT_BYTES / 1024 / 1024} MB a statement are allowed (ACROSS_ROWS_MAX_STATEMENT_BYTES): aggregate fewer or shorter constants, or fewer rows of a series`);
  }
}

/**
 * A subquery's rows that PostgreSQL holds all at once, in memory and never spilled: ARRAY(SELECT ...) builds one value of
 * them, x IN / NOT IN / op ANY (SELECT ...) hashes them (a hashed SubPlan), INTERSECT and EXCEPT hash each arm's
 * (HashSetOp). So they are held as a value built across rows is (checkAcrossRows): each row at most one view value and
 * ACROSS_ROWS_MAX_CONSTANT_BYTES of constants, a view value repeated at most ACROSS_ROWS_MAX_VIEW_REPEATS times, no
 * value already built across rows in more than one row (Across.REPEATED), and `konst` (their constant bytes, for every
 * row made of no view, as a weight) spent from the statement's budget (spendAcrossRows). `selects`: the SELECTs (or
 * VALUES, set operations) whose rows they are; each row's columns are looked for a view value read twice (amplifies).
 */
function checkHeldRows(what: string, inner: Shape, selects: Sel[], konst: number, ctx: Ctx): void {
  const single = onlyColumn(inner);
  const col = single ?? inner;
  const rows: unknown[][] = [];
  const leaves = (s: Sel | undefined): void => {
    if (!s) return;
    if (s.op && s.op !== 'SETOP_NONE') return [s.larg, s.rarg].forEach(leaves);
    if (s.valuesLists) for (const list of s.valuesLists) rows.push(list.List?.items ?? []);
    else rows.push((s.targetList ?? []).map((t: any) => t.ResTarget?.val));
  };
  selects.forEach(leaves);
  for (const row of rows.length ? rows : [[]]) checkAcrossRows(what, col.konst, single ? inner.value : inner.row, row);
  if (col.rep > ACROSS_ROWS_MAX_VIEW_REPEATS) throw refuseRepeats(what, col.rep);
  if (col.across === Across.REPEATED && !inner.one) throw refuseAcrossAgain(what);
  spendAcrossRows(what, konst, ctx);
}

/**
 * Rows made of no view (generate_series, unnest, VALUES: ctx.gen > 1) are bounded by MAX_SERIES_ROWS only, not by a view
 * read: what PostgreSQL holds of them (a sort's rows, a hash join's or anti-join's inner side, a group's key, a hashed
 * DISTINCT) grows with the constants each carries (ORDER BY of 100,000 rows of a 20 KB literal: 1.9 GB of temp in 5 s;
 * NOT EXISTS of them, a hash anti-join: 1.95 GB of memory; 1,000 columns of a 245-byte literal each, sorted: 2 GB). So
 * the constants of a whole row of such a SELECT (konstOf of every expression of its target list, and of its WHERE,
 * JOIN ... ON, GROUP BY, HAVING, window, ORDER BY and DISTINCT expressions that are not a target-list column), times its
 * rows made of no view, may be at most MADE_ROWS_MAX_CONSTANT_BYTES (a label on a 12-month spine, a 2-row VALUES of
 * descriptions are far below it). A value built across rows in the row counts what it holds there: an aggregate of the
 * SELECT's own rows what one row it reads adds (all of them add up over its rows), a window aggregate up to all the rows
 * of its frame (each row holds its frame's), a scalar or ARRAY subquery its whole value (a sort holds a copy in every
 * row); unnest(ARRAY[...]) one element a row.
 */
export const MADE_ROWS_MAX_CONSTANT_BYTES = 32 * 1024 * 1024;
function checkMadeRows(targets: unknown[], clauses: unknown[], ctx: Ctx): void {
  if (ctx.gen <= 1) return;
  const weighOf = (node: unknown) => weigh(node, { ...ctx, konst: true, perRow: true, work: 0 }) / BYTE;
  // (an expression's text without its position in the statement: the same expression written twice is the same text)
  const text = (node: unknown) => JSON.stringify(node, (k, v) => (k === 'location' ? undefined : v));
  const names = new Set((targets as any[]).map((t: any) => t?.name).filter(Boolean));
  const vals = (targets as any[]).map((t: any) => t?.val);
  // (each target's text once, not again for every key)
  const valTexts = new Set(vals.map(text));
  // a key that is a target-list column (its position, its output name, the same expression) is held once
  const isColumn = (node: any) => node?.A_Const?.ival !== undefined
    || (node?.ColumnRef?.fields?.length === 1 && names.has(node.ColumnRef.fields[0]?.String?.sval))
    || valTexts.has(text(node));
  let bytes = vals.reduce((a: number, v) => a + weighOf(v), 0);
  const keys = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(keys);
    if (!node || typeof node !== 'object') return;
    const k = Object.keys(node);
    if (k.length !== 1 || !/^[A-Z]/.test(k[0])) return Object.values(node).forEach(keys);
    const n = (node as Record<string, any>)[k[0]];
    if (k[0] === 'SortBy') return keys(n.node);
    if (k[0] === 'WindowDef') return keys([n.partitionClause, n.orderClause]);
    if (k[0] === 'List') return keys(n.items);
    if (isColumn(node)) return;
    // a condition's truth value holds nothing: its operands are what a hash or a sort keeps
    if (k[0] === 'BoolExpr') return keys(n.args);
    if (k[0] === 'NullTest' || k[0] === 'BooleanTest') return keys(n.arg);
    if (k[0] === 'A_Expr' && (n.kind !== 'AEXPR_OP' || TRUTH_OPERATORS.has(nameOf(n.name).pop() ?? ''))) return keys([n.lexpr, n.rexpr]);
    if (k[0] === 'SubLink' && n.subLinkType !== 'EXPR_SUBLINK' && n.subLinkType !== 'ARRAY_SUBLINK') return keys(n.testexpr);
    bytes += weighOf(node);
  };
  keys(clauses);
  const total = bytes * ctx.gen;
  if (total > MADE_ROWS_MAX_CONSTANT_BYTES + 1e-3) {
    const n = (x: number) => (x > 1e12 ? 'over 10^12' : `${Math.ceil(x - 1e-6)}`);
    throw refuse(`a row of a SELECT of rows made of no view (generate_series, unnest, VALUES) computes up to ${n(bytes)} bytes that are not a view's values (literals, the text of numbers, dates and other constants the query makes, values built across rows: all its columns and its WHERE, JOIN ... ON, GROUP BY, HAVING, window, ORDER BY and DISTINCT expressions) for each of up to ${n(ctx.gen)} rows, ${n(total)} bytes in all, which a sort, hash, join or EXISTS holds; at most ${MADE_ROWS_MAX_CONSTANT_BYTES} bytes are allowed (MADE_ROWS_MAX_CONSTANT_BYTES: carry fewer or shorter constants, or make fewer rows)`);
  }
}

/**
 * Whether the value of `args` holds a column's value more than once: the same column read twice where its text goes into
 * the value (not in a comparison, a condition, a subquery or a function of a fixed-size result such as length), or read
 * inside replace (by more than one byte), regexp_replace or array_to_string, which may multiply each of its bytes.
 */
function amplifies(args: unknown[]): boolean {
  const seen = new Set<string>();
  let repeated = false;
  const visit = (v: unknown, multiplied: boolean): void => {
    if (repeated || !v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach((x) => visit(x, multiplied));
    const keys = Object.keys(v);
    if (keys.length !== 1 || !/^[A-Z]/.test(keys[0])) return Object.values(v).forEach((x) => visit(x, multiplied));
    const type = keys[0];
    const n = (v as Record<string, any>)[type];
    switch (type) {
      case 'ColumnRef': {
        const key = nameOf(n.fields).join('.').toLowerCase();
        if (multiplied || seen.has(key)) repeated = true;
        seen.add(key);
        return;
      }
      case 'SubLink': case 'BoolExpr': case 'NullTest': case 'BooleanTest': case 'SortBy': case 'WindowDef':
        return;
      case 'A_Expr': {
        const op = nameOf(n.name).pop() ?? '';
        if (n.kind === 'AEXPR_OP' && (op === '||' || PART_OPERATORS.has(op))) return visit([n.lexpr, n.rexpr], multiplied);
        if (n.kind === 'AEXPR_NULLIF') return visit(n.lexpr, multiplied);
        return;
      }
      case 'CaseExpr':
        return visit([n.defresult, ...(n.args ?? []).map((w: any) => w?.CaseWhen?.result)], multiplied);
      case 'TypeCast': {
        const type = nameOf(n.typeName?.names).pop()?.toLowerCase() ?? '';
        if (FIXED_TYPES.has(type) && !(n.typeName?.arrayBounds ?? []).length) return;
        return visit(n.arg, multiplied);
      }
      case 'FuncCall': {
        const name = nameOf(n.funcname).pop()?.toLowerCase() ?? '';
        const fargs: unknown[] = n.args ?? [];
        if (BOUNDED_RESULT.has(name)) return;
        if (MULTIPLYING.has(name)) {
          visit(fargs[0], multiplied || name !== 'replace' || (literalLength(fargs[2]) ?? 2) > 1);
          return visit(fargs.slice(1), multiplied);
        }
        return visit(fargs, multiplied);
      }
      default:
        return Object.values(n).forEach((x) => visit(x, multiplied));
    }
  };
  visit(args, false);
  return repeated;
}

/** A join of a FROM list: its kind (JOIN_INNER, JOIN_LEFT, JOIN_RIGHT, JOIN_FULL), each side's FROM items, its ON. */
interface Join { kind: string; left: readonly Source[]; right: readonly Source[]; quals: unknown }

/** The equalities anchoring FROM items (see anchorsOf) a SELECT reads at most: othersFactor takes time in proportion to them. */
const MAX_ANCHORS = 256;

/** The conjuncts of a condition: its AND's arguments, nested ANDs flattened. */
function conjuncts(q: any): any[] {
  if (!q) return [];
  return q.BoolExpr?.boolop === 'AND_EXPR' ? (q.BoolExpr.args ?? []).flatMap(conjuncts) : [q];
}

/**
 * The equalities of a SELECT that hold one of its FROM items to one row (or a few) for the values of others: `x = y`
 * in WHERE or a join's ON, x a column of the item that holds each value once (distinctOf: a generate_series' column,
 * itself or cast), y any expression not reading that item (nor a subquery). The ON of an outer join holds for its
 * nullable side; for its preserved side only where the other side's values are (its unmatched rows are kept whatever).
 */
function anchorsOf(items: FromItem[], joins: Join[], where: unknown): Anchor[] {
  const rows: RowsOf = { items, anchors: [], targetGen: 1, cache: new Map(), fullJoins: 0, setReturning: 0 };
  const anchors: Anchor[] = [];
  const consider = (q: any, join?: Join) => {
    const e = q?.A_Expr;
    if (!e || e.kind !== 'AEXPR_OP' || !e.lexpr || !e.rexpr) return;
    const op = nameOf(e.name);
    if (op.pop() !== '=' || (op.length && op[0].toLowerCase() !== 'pg_catalog')) return;
    for (const [x, y] of [[e.lexpr, e.rexpr], [e.rexpr, e.lexpr]]) {
      const d = distinctOf(x, rows);
      if (!d?.source || d.rows === undefined) continue;
      const deps = localDeps(y, items);
      if (!deps || deps.has(d.source)) continue;
      let validFor: Set<Source> | undefined;
      if (join && join.kind !== 'JOIN_INNER') {
        const inLeft = join.left.includes(d.source);
        const nullable = (join.kind === 'JOIN_LEFT' && !inLeft) || (join.kind === 'JOIN_RIGHT' && inLeft);
        if (!nullable) validFor = new Set(inLeft ? join.right : join.left);
      }
      // (an item of one row of no view needs none; past MAX_ANCHORS the rest are not read: each item then counts its rows)
      const item = items.find((i) => i.source === d.source);
      if (item && d.rows < item.gen && anchors.length < MAX_ANCHORS) anchors.push({ item: d.source, mult: d.rows, deps, validFor });
    }
  };
  for (const q of conjuncts(where)) consider(q);
  for (const join of joins) for (const q of conjuncts(join.quals)) consider(q, join);
  return anchors;
}

/** The FROM items a column name may read: a qualified one its item's, an unqualified one every item having it (or any name). */
function itemsNamed(fields: any[], items: readonly FromItem[]): { items: FromItem[]; exact: FromItem[] } | undefined {
  const column = columnName(fields);
  if (!column) return undefined;
  const { rel, name } = column;
  const found: FromItem[] = [];
  const exact: FromItem[] = [];
  for (const item of items) {
    if (rel !== undefined ? item.source.name !== rel : false) continue;
    const index = columnIndex(item.source.shape);
    if (index.named.has(name)) exact.push(item);
    if (index.named.has(name) || index.any || (rel === undefined && item.source.name === name)) found.push(item);
  }
  return { items: found, exact };
}

/** The FROM items an expression reads; undefined where it cannot be told (a subquery, a whole row of no known item). */
function localDeps(node: unknown, items: readonly FromItem[]): Set<Source> | undefined {
  const deps = new Set<Source>();
  let unknown = false;
  const visit = (v: unknown): void => {
    if (unknown || !v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(visit);
    const keys = Object.keys(v);
    if (keys.length !== 1 || !/^[A-Z]/.test(keys[0])) return Object.values(v).forEach(visit);
    const n = (v as Record<string, any>)[keys[0]];
    if (keys[0] === 'SubLink') {
      unknown = true;
      return;
    }
    if (keys[0] === 'ColumnRef') {
      const fields: any[] = n.fields ?? [];
      if (fields[fields.length - 1]?.A_Star) {
        const rel = fields.length === 2 ? fields[0]?.String?.sval : undefined;
        for (const item of items) if (rel === undefined || item.source.name === rel) deps.add(item.source);
        return;
      }
      const named = itemsNamed(fields, items);
      if (!named) unknown = true;
      else for (const item of named.items) deps.add(item.source);
      return;
    }
    Object.values(n).forEach(visit);
  };
  visit(node);
  return unknown ? undefined : deps;
}

/** The type a cast names (its last name, lower case), or undefined for an array or a type with modifiers. */
function castType(node: any): string | undefined {
  const t = node?.TypeCast?.typeName;
  if (!t || (t.arrayBounds ?? []).length || (t.typmods ?? []).length) return undefined;
  return nameOf(t.names).pop()?.toLowerCase();
}

type Distinct = { rows?: number; perDay?: number };
/**
 * What a cast makes of a column that holds each value in `d.rows` rows at most: a cast to date holds a time's date
 * (perDay), to text the same values, between timestamps a time zone's daylight saving change may fold an hour (2x).
 */
function castDistinct(d: Distinct, type: string | undefined): Distinct {
  if (type === 'date') return { rows: d.perDay, perDay: d.perDay };
  if (type === 'timestamp' || type === 'timestamptz') return { rows: d.rows && 2 * d.rows, perDay: d.perDay && 2 * d.perDay };
  if (type === 'text' || type === 'varchar') return { rows: d.rows };
  return {};
}

/** The FROM item whose column `x` (possibly cast) reads, and in how many of the SELECT's rows a value of it may be; undefined if none. */
function distinctOf(x: any, rows: RowsOf): (Distinct & { source?: Source }) | undefined {
  const casts: (string | undefined)[] = [];
  let node = x;
  while (node?.TypeCast) {
    casts.unshift(castType(node));
    node = node.TypeCast.arg;
  }
  if (!node?.ColumnRef || node.ColumnRef.fields?.[node.ColumnRef.fields.length - 1]?.A_Star) return undefined;
  // an unqualified name that two FROM items have is an error of PostgreSQL's (ambiguous): the one found is the column read
  const named = itemsNamed(node.ColumnRef.fields ?? [], rows.items);
  if (!named || named.exact.length !== 1) return undefined;
  const [item] = named.exact;
  const parts = nameOf(node.ColumnRef.fields);
  const col = columnIndex(item.source.shape).named.get(parts[parts.length - 1]);
  if (col?.distinct === undefined) return undefined;
  let d: Distinct = { rows: col.distinct, perDay: col.perDay };
  for (const type of casts) d = castDistinct(d, type);
  return { ...d, source: item.source };
}

/** A generate_series call (possibly cast), alone among the target list's set-returning functions: each of its values once. */
function distinctSeries(x: any): Distinct | undefined {
  const casts: (string | undefined)[] = [];
  let node = x;
  while (node?.TypeCast) {
    casts.unshift(castType(node));
    node = node.TypeCast.arg;
  }
  const f = node?.FuncCall;
  if (!f || nameOf(f.funcname).pop()?.toLowerCase() !== 'generate_series') return undefined;
  let d: Distinct = { rows: 1, perDay: seriesPerDay(f.args ?? []) };
  for (const type of casts) d = castDistinct(d, type);
  return d;
}

/** The set-returning functions (generate_series, unnest) of expressions, outside subqueries. */
function countSetReturning(node: unknown): number {
  let n = 0;
  const visit = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(visit);
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'SubLink') return;
    if (keys.length === 1 && keys[0] === 'FuncCall') {
      const name = nameOf((v as any).FuncCall.funcname).pop()?.toLowerCase();
      if (name === 'generate_series' || name === 'unnest') n++;
    }
    Object.values(v).forEach(visit);
  };
  visit(node);
  return n;
}

/** How many of a time series' values may fall on one date: 2 with a step of a day or more (23 hours counted), more for shorter steps. */
function seriesPerDay(args: unknown[]): number | undefined {
  if (!timeTypeOf(args[0]) && anchoredSpan(args[0], args[1]) === undefined) return undefined;
  const step = args.length > 2 ? seriesStep(args[2]) : undefined;
  if (!step) return undefined;
  const min = stepMin(step);
  return min === 0n ? 1 : min >= DAY.min ? 2 : Number(divCeil(DAY.max, min)) + 1;
}

/**
 * The column of a FROM item that is one generate_series (not ROWS FROM, not WITH ORDINALITY): each of its values once,
 * named as PostgreSQL names it (the alias's column name, else the alias, else generate_series); undefined otherwise.
 */
function seriesColumns(rf: any, weight: number, konst: number, rep: number): Col[] | undefined {
  const fns: any[] = rf.functions ?? [];
  const f = fns.length === 1 && !rf.is_rowsfrom && !rf.ordinality ? fns[0]?.List?.items?.[0]?.FuncCall : undefined;
  if (!f || nameOf(f.funcname).pop()?.toLowerCase() !== 'generate_series' || fns[0].List.items[1]?.List || (rf.coldeflist ?? []).length) return undefined;
  const colnames = nameOf(rf.alias?.colnames);
  if (colnames.length > 1) return undefined;
  const name = colnames[0] ?? rf.alias?.aliasname ?? 'generate_series';
  return [{ name, weight, json: false, konst, rep, distinct: 1, perDay: seriesPerDay(f.args ?? []), elems: 1 }];
}

/**
 * How many rows of a SELECT one row of FROM item `j` may be in through its other FROM items' rows of no view (each
 * item's `gen`, or the `mult` of an equality anchoring it to items counted before it), times the target list's
 * set-returning functions' rows; without `j`, how many rows one value from outside the FROM list may be in (a
 * subquery's, an enclosing query's). Views count 1: the rows they read are bounded by the statement timeout only.
 * An upper bound: items are counted in an order where each is anchored if it can be (to those before it).
 */
function othersFactor(rows: RowsOf | undefined, j?: Source): number {
  if (!rows) return 1;
  const cached = rows.cache.get(j);
  if (cached !== undefined) return cached;
  // items of one row of no view at most (views, a CTE of one row) first: they multiply nothing
  const placed = new Set<Source>(j ? [j] : []);
  for (const item of rows.items) if (item.gen <= 1) placed.add(item.source);
  // (a FULL JOIN may make the rows of both its sides: counted as doubling them, as in multiplyRows)
  let factor = rows.targetGen * 2 ** rows.fullJoins;
  for (;;) {
    let best: { source: Source; mult: number } | undefined;
    for (const item of rows.items) {
      if (placed.has(item.source)) continue;
      let mult = item.gen;
      for (const a of rows.anchors) {
        if (a.item !== item.source || a.mult >= mult || (a.validFor && !(j && a.validFor.has(j)))) continue;
        if ([...a.deps].every((d) => placed.has(d))) mult = a.mult;
      }
      if (!best || mult < best.mult) best = { source: item.source, mult };
    }
    if (!best) break;
    placed.add(best.source);
    factor *= Math.max(1, best.mult);
  }
  rows.cache.set(j, factor);
  return factor;
}

/**
 * How many rows of the SELECT (ctx) one view value an expression reads may be in: 0 if it reads none. A column of a
 * FROM item: the rows of that item it is in (Col.rep) times othersFactor; of anything else (an enclosing query's, a
 * subquery's value, a join's alias, a name not found): othersFactor of all of them. A view's value read into a value
 * built across rows is appended once for each of those rows (see ACROSS_ROWS_MAX_VIEW_REPEATS).
 */
function viewRepeats(node: unknown, ctx: Ctx): number {
  let r = 0;
  const local = new Set(ctx.rows?.items.map((i) => i.source));
  const of = (src: Source, rep: number) => {
    if (rep > 0) r = Math.max(r, rep * othersFactor(ctx.rows, local.has(src) ? src : undefined));
  };
  const visit = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(visit);
    const keys = Object.keys(v);
    if (keys.length !== 1 || !/^[A-Z]/.test(keys[0])) return Object.values(v).forEach(visit);
    const n = (v as Record<string, any>)[keys[0]];
    if (keys[0] === 'SubLink') {
      visit(n.testexpr);
      if (n.subLinkType !== 'EXPR_SUBLINK' && n.subLinkType !== 'ARRAY_SUBLINK') return;
      const inner = SUBLINK_SHAPES.get(n) ?? VIEW;
      if (inner.rep > 0) r = Math.max(r, inner.rep * othersFactor(ctx.rows));
      return;
    }
    if (keys[0] !== 'ColumnRef') return Object.values(n).forEach(visit);
    const fields: any[] = n.fields ?? [];
    const parts = fields.map((f) => f?.String?.sval as string | undefined);
    const star = !!fields[fields.length - 1]?.A_Star;
    const column = columnName(fields);
    if (fields.length === 1 && parts[0] !== undefined) {
      // an unqualified name that one of the SELECT's own FROM items has is that item's column (two: PostgreSQL's error, ambiguous)
      const exact = ctx.sources.filter((src) => local.has(src) && columnIndex(src.shape).named.has(parts[0]!));
      if (exact.length === 1) return of(exact[0], columnIndex(exact[0].shape).named.get(parts[0]!)!.rep);
    }
    let found = false;
    for (const src of ctx.sources) {
      if (star || (fields.length === 1 && src.name === parts[0])) {
        // a whole row: `*`, `t.*`, `t`
        if (star && fields.length === 2 && src.name !== parts[0]) continue;
        found = true;
        of(src, src.shape.rep);
        if (star) continue;
      }
      if (star || !column) {
        if (!star) of(src, src.shape.rep);
        found ||= !star;
        continue;
      }
      if (column.rel !== undefined && src.name !== column.rel) continue;
      const index = columnIndex(src.shape);
      for (const c of [index.named.get(column.name), index.any]) {
        if (!c) continue;
        found = true;
        of(src, c.rep);
      }
    }
    if (!found) for (const src of ctx.sources) if (src.shape.rep > 0) r = Math.max(r, src.shape.rep * othersFactor(ctx.rows));
  };
  visit(node);
  return r;
}

const refuseRepeats = (what: string, repeats: number, sets = 1) =>
  refuse(`${what} reads a view's value that the rows it aggregates may repeat up to ${repeats > 1e12 ? 'over 10^12' : Math.ceil(repeats)} times (a view joined with generate_series, unnest or VALUES without an equality between the series' column and the view's: each view value is appended once for every row of the series${sets > 1 ? `; and grouped in ${sets > 1e12 ? 'over 10^12' : sets} grouping sets of GROUPING SETS / CUBE / ROLLUP: each grouping set aggregates every row again, ROLLUP of n columns n + 1, CUBE of n 2^n` : ''}); at most ${ACROSS_ROWS_MAX_VIEW_REPEATS} are allowed (ACROSS_ROWS_MAX_VIEW_REPEATS): join the series to the view by an equality on the series' column (FROM generate_series(...) d LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date), or aggregate the view before joining it`);

/** Multiplies the rows made of no view by a row source's; refuses past MAX_SERIES_ROWS. */
function multiplyRows(ctx: Ctx, rows: number, what: string): void {
  ctx.gen *= Math.max(1, rows);
  if (ctx.gen > MAX_SERIES_ROWS) throw refuseSeries(what, ctx.gen);
}

const refuseSeries = (what: string, rows: number) =>
  refuse(`the query can make up to ${rows > 1e12 ? 'over 10^12' : Math.ceil(rows)} rows without reading a view, at ${what} (the rows of generate_series, unnest and VALUES multiply where they are joined or read again through CTEs and subqueries); at most ${MAX_SERIES_ROWS} are allowed (MAX_SERIES_ROWS)`);

/**
 * How many rows unnest may make: the most elements of its arrays (arrayElems). An array whose elements cannot be
 * counted is refused: a CTE's column of array_agg over generate_series(1, 100000), unnested twice, made 10^10 rows.
 */
function unnestRows(args: unknown[], ctx: Ctx): number {
  const rows = args.reduce((m: number, a) => Math.max(m, literalText(a) !== undefined ? literalText(a)!.split(',').length : arrayElems(a, ctx)), 1);
  if (!Number.isFinite(rows)) {
    throw refuse(`unnest(...) reads an array whose elements cannot be counted (a cast of a value that is not a literal to an array, a column of unknown source, a CASE or COALESCE of those...); unnest may read array literals, ARRAY[...], ARRAY(SELECT ...), array_agg, and CTE or subquery columns of those, so that the rows a query makes without reading a view can be counted: at most ${MAX_SERIES_ROWS} are allowed (MAX_SERIES_ROWS)`);
  }
  return rows;
}

/**
 * How many elements unnest may make of a value (a scalar counts 1, as an element of ARRAY[...]): a literal array its
 * written-out elements, ARRAY[...] the sum of its elements', ARRAY(SELECT ...) and array_agg one element (or array) for
 * each row they read that no view gave, a scalar subquery or a CTE's or subquery's column the elements of its value
 * (Col.elems), a view's column as many as the rows made so far (its elements are the view's data), || the sum of both
 * sides', CASE, COALESCE, GREATEST / LEAST, min, max... the most of their arguments'. Infinity where it cannot be told:
 * a cast of anything but a literal or an ARRAY to an array (text of the query read as an array), an unknown column.
 */
function arrayElems(node: any, ctx: Ctx): number {
  if (!node || typeof node !== 'object') return Infinity;
  // (a string literal may be read as an array where one is expected, ARRAY[1] || '{1,2,3}': at most a comma's worth each)
  if (node.A_Const) return node.A_Const.isnull ? 0 : node.A_Const.sval ? literalElems(node.A_Const.sval.sval ?? '') : 1;
  if (node.TypeCast) {
    const cast = node.TypeCast;
    if (!(cast.typeName?.arrayBounds ?? []).length) return 1;
    const arg = cast.arg;
    if (arg?.A_Const) return arrayElems(arg, ctx);
    // a cast of a cast: of a literal, its text; of a cast to an array, that array's; of any other (t::text::int[]), text
    // the query built, read as an array: not counted
    const inner = arg?.TypeCast;
    if (inner) return inner.arg?.A_Const ? arrayElems(inner.arg, ctx) : (inner.typeName?.arrayBounds ?? []).length ? arrayElems(arg, ctx) : Infinity;
    return arg?.A_ArrayExpr || arg?.SubLink?.subLinkType === 'ARRAY_SUBLINK' ? arrayElems(arg, ctx) : Infinity;
  }
  if (node.A_ArrayExpr) return (node.A_ArrayExpr.elements ?? []).reduce((n: number, e: unknown) => n + arrayElems(e, ctx), 0);
  if (node.SubLink) {
    const sub = node.SubLink;
    if (sub.subLinkType !== 'EXPR_SUBLINK' && sub.subLinkType !== 'ARRAY_SUBLINK') return 1;
    const inner = SUBLINK_SHAPES.get(sub);
    if (!inner) return Infinity;
    const col = (onlyColumn(inner) ?? inner).elems ?? Infinity;
    return sub.subLinkType === 'ARRAY_SUBLINK' ? Math.max(1, inner.gen) * col : col;
  }
  if (node.ColumnRef) {
    const column = columnName(node.ColumnRef.fields ?? []);
    if (!column) return Infinity;
    const { rel, name } = column;
    let elems = -1;
    for (const src of ctx.sources) {
      if (rel !== undefined && src.name !== rel) continue;
      // (a view's array: its elements are the view's data, counted as in the old rows-so-far bound)
      if (src.shape === VIEW) {
        elems = Math.max(elems, ctx.gen, ctx.env.outerGen);
        continue;
      }
      const index = columnIndex(src.shape);
      for (const c of [index.named.get(name), index.any]) if (c) elems = Math.max(elems, c.elems ?? Infinity);
    }
    // a whole row (`t`): a record, one element
    if (elems < 0 && rel === undefined && ctx.names.has(name)) return 1;
    return elems < 0 ? Infinity : elems;
  }
  if (node.A_Indirection) {
    // a subscript or a slice holds at most the array's elements; a field of a record: not followed
    return (node.A_Indirection.indirection ?? []).every((i: any) => i?.A_Indices) ? arrayElems(node.A_Indirection.arg, ctx) : Infinity;
  }
  if (node.A_Expr) {
    const e = node.A_Expr;
    if (e.kind === 'AEXPR_OP' && nameOf(e.name).pop() === '||') return arrayElems(e.lexpr, ctx) + arrayElems(e.rexpr, ctx);
    if (e.kind === 'AEXPR_NULLIF') return arrayElems(e.lexpr, ctx);
    return 1;
  }
  if (node.CaseExpr) {
    const results = [node.CaseExpr.defresult, ...(node.CaseExpr.args ?? []).map((w: any) => w?.CaseWhen?.result)].filter(Boolean);
    return Math.max(0, ...results.map((r: unknown) => arrayElems(r, ctx)));
  }
  if (node.CoalesceExpr || node.MinMaxExpr) return Math.max(0, ...((node.CoalesceExpr ?? node.MinMaxExpr).args ?? []).map((a: unknown) => arrayElems(a, ctx)));
  if (node.CollateClause) return arrayElems(node.CollateClause.arg, ctx);
  if (node.RowExpr || node.BoolExpr || node.NullTest || node.BooleanTest || node.SQLValueFunction || node.GroupingFunc) return 1;
  if (node.FuncCall) {
    const f = node.FuncCall;
    const name = nameOf(f.funcname).pop()?.toLowerCase() ?? '';
    const args: unknown[] = f.args ?? [];
    // one element (or the elements of one array) for each row aggregated: the rows made so far
    if (name === 'array_agg') return Math.max(1, ctx.gen, ctx.env.outerGen, ...aggregateLevels(f, ctx).map((c) => c.gen)) * (args.length ? arrayElems(args[0], ctx) : 1);
    if (name === 'regexp_match') return (literalText(args[1]) ?? '').split('(').length;
    // an ordered-set aggregate's value: an ORDER BY value (mode, percentile_disc), one for each fraction of an array of them
    const ordered = (): number => Math.max(1, ...((f.agg_order ?? []) as any[]).map((o) => arrayElems(o?.SortBy?.node, ctx)));
    if (name === 'percentile_cont') return args.length ? arrayElems(args[0], ctx) : Infinity;
    if (name === 'percentile_disc') return (args.length ? arrayElems(args[0], ctx) : Infinity) * ordered();
    if (name === 'mode') return ordered();
    if (ARRAY_VALUED.has(name)) return Math.max(0, ...args.map((a) => arrayElems(a, ctx)));
    // any other function of the allow-list returns a scalar (unnest an element); anything else is not counted
    return ALLOWED_FUNCTIONS.has(name) ? 1 : Infinity;
  }
  return Infinity;
}

/** The elements a string literal read as an array may have: one more than its commas (a literal's text is at most QUERY_MAX_BYTES). */
function literalElems(text: string): number {
  let n = 1;
  for (let i = text.indexOf(','); i >= 0; i = text.indexOf(',', i + 1)) n++;
  return n;
}

/** Microseconds: a second, an hour, a day (the units of time and interval values below, all exact: BigInt). */
const US_SECOND = 1_000_000n;
const US_HOUR = 3_600n * US_SECOND;
const US_DAY = 24n * US_HOUR;
/**
 * The session's time zone is not known when a query is checked: a wall-clock time of it is within MAX_ZONE_OFFSET of
 * UTC (tzdata's offsets, local mean times included, are within 16 hours), and two of them differ from their UTC times
 * by at most ZONE_SHIFT (a zone's largest change of offset: Samoa's day skipped in 2011, and an hour of daylight saving).
 */
const MAX_ZONE_OFFSET = 16n * US_HOUR;
const ZONE_SHIFT = 26n * US_HOUR;

/**
 * An interval's unit: its shortest and longest length (a calendar unit's, in the session's time zone: a day 23 to 25
 * hours, a month 28 to 31 days, each an hour less or more), and how PostgreSQL carries a fraction of it (DecodeInterval):
 * a year's into whole months (rounded), a month's into days of 30 (and the rest as time), a week's into days of 7, a
 * day's as time (24 hours); a fraction of a microsecond rounds.
 */
interface IntervalUnit { min: bigint; max: bigint; fraction: 'months' | 'days' | 'time'; per: bigint }
const MONTH: IntervalUnit = { min: 28n * US_DAY - US_HOUR, max: 31n * US_DAY + US_HOUR, fraction: 'days', per: 30n };
const DAY: IntervalUnit = { min: 23n * US_HOUR, max: 25n * US_HOUR, fraction: 'time', per: US_DAY };
const INTERVAL_UNITS: [RegExp, IntervalUnit][] = [
  [/^(y|yr|yrs|year|years)$/, { min: 365n * US_DAY - US_HOUR, max: 366n * US_DAY + US_HOUR, fraction: 'months', per: 12n }],
  [/^(mon|mons|month|months)$/, MONTH],
  [/^(w|week|weeks)$/, { min: 7n * DAY.min, max: 7n * DAY.max, fraction: 'days', per: 7n }],
  [/^(d|day|days)$/, DAY],
  ...([[/^(h|hr|hrs|hour|hours)$/, US_HOUR], [/^(m|min|mins|minute|minutes)$/, 60n * US_SECOND], [/^(s|sec|secs|second|seconds)$/, US_SECOND],
    [/^(ms|msec|msecs|millisecond|milliseconds)$/, 1_000n], [/^(us|usec|usecs|microsecond|microseconds)$/, 1n]] as [RegExp, bigint][])
    .map(([re, us]): [RegExp, IntervalUnit] => [re, { min: us, max: us, fraction: 'time', per: us }]),
];

/** An interval's length (microseconds): its shortest and longest, of one sign (-1, 0 or 1; `min` and `max` are magnitudes). */
interface IntervalLength { min: bigint; max: bigint; sign: number }

/** `n` / `d` rounded down and up (n, d >= 0). */
const divFloor = (n: bigint, d: bigint) => n / d;
const divCeil = (n: bigint, d: bigint) => (n + d - 1n) / d;

/**
 * An interval literal's length, as PostgreSQL reads it (IntervalStyle postgres): `<number> <unit>` pairs ('1 month',
 * '1.5 seconds', '0.5 day', '1 year 2 mons', '-7 days') and a time at the end ('01:30:00', '00:00:00.000001'), every part
 * of one sign; the shortest and the longest it may last (see IntervalUnit). Undefined for any other form (ISO 8601
 * 'PT1S', 'ago', '@', units of decades or more, numbers with exponents, mixed signs): not counted.
 */
function intervalLength(text: string): IntervalLength | undefined {
  let min = 0n;
  let max = 0n;
  let sign = 0;
  const part = (s: number, lo: bigint, hi: bigint): boolean => {
    if (hi === 0n) return true;
    if (sign !== 0 && s !== sign) return false;
    sign = s;
    min += lo;
    max += hi;
    return true;
  };
  let rest = text.trim().toLowerCase();
  // a time at the end: [-]H:MM[:SS[.ffffff]] (hours past 24 and a fraction's seventh digit are PostgreSQL's too)
  const time = /(?:^|\s)([+-]?)(\d{1,9}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/.exec(rest);
  if (time) {
    const [, s, h, mi, se, f = ''] = time;
    const whole = (BigInt(h) * 3_600n + BigInt(mi) * 60n + BigInt(se ?? 0)) * US_SECOND;
    const frac = BigInt(f || '0') * 10n ** BigInt(Math.max(0, 6 - f.length));
    const scale = 10n ** BigInt(Math.max(0, f.length - 6));
    if (!part(s === '-' ? -1 : 1, whole + divFloor(frac, scale), whole + divCeil(frac, scale))) return undefined;
    rest = rest.slice(0, time.index).trim();
  }
  const parts = rest === '' ? [] : rest.split(/\s+/);
  if (parts.length % 2 !== 0) return undefined;
  for (let i = 0; i < parts.length; i += 2) {
    const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(parts[i]);
    const unit = INTERVAL_UNITS.find(([re]) => re.test(parts[i + 1]))?.[1];
    if (!m || (m[2] + (m[3] ?? '')) === '' || !unit || (m[2] + (m[3] ?? '')).length > 30) return undefined;
    // the number as whole + num / den
    const whole = BigInt(m[2] || '0');
    const num = BigInt(m[3] || '0');
    const den = 10n ** BigInt((m[3] ?? '').length);
    let lo = whole * unit.min;
    let hi = whole * unit.max;
    if (num > 0n) {
      if (unit.fraction === 'months') {
        // a year's fraction: whole months, rounded
        lo += divFloor(num * unit.per, den) * MONTH.min;
        hi += divCeil(num * unit.per, den) * MONTH.max;
      } else if (unit.fraction === 'days') {
        // days of 30 (a month) or 7 (a week), the rest as time: at the shortest all of them days of 23 hours
        lo += divFloor(num * unit.per * DAY.min, den);
        hi += divCeil(num * unit.per * DAY.max, den);
      } else {
        // time, to the microsecond (rounded): a day's 24 hours
        lo += divFloor(num * unit.per, den);
        hi += divCeil(num * unit.per, den);
      }
    }
    if (!part(m[1] === '-' ? -1 : 1, lo, hi)) return undefined;
  }
  return { min, max, sign };
}

/**
 * A series step's shortest length (microseconds) as PostgreSQL may read it: 0 only for a step that is exactly zero (an
 * error of generate_series', no rows). A step whose shortest reading rounds down to 0 but is not zero lasts at least a
 * microsecond: PostgreSQL rounds a fraction of a microsecond to the nearest ('0.6 us', '0.0000006 sec', '00:00:00.0000006'
 * are 1 µs) and a fraction of a year to the nearest month ('0.06 year' is 1 mon); counted as one row, a series of them
 * by the microsecond over a day made 8.6 x 10^10 rows (5.15 GB).
 */
const stepMin = (step: IntervalLength): bigint => (step.min === 0n && step.max > 0n ? 1n : step.min);

/** A literal step of a time series: interval '1 day', '1 day'::interval, '1 day' (read as an interval), -interval '1 day'. */
function seriesStep(node: any): IntervalLength | undefined {
  if (node?.A_Expr && node.A_Expr.kind === 'AEXPR_OP' && !node.A_Expr.lexpr && nameOf(node.A_Expr.name).pop() === '-') {
    const v = seriesStep(node.A_Expr.rexpr);
    return v && { ...v, sign: -v.sign };
  }
  if (node?.TypeCast) {
    const t = node.TypeCast.typeName;
    if ((t?.arrayBounds ?? []).length || (t?.typmods ?? []).length || nameOf(t?.names).pop()?.toLowerCase() !== 'interval') return undefined;
    node = node.TypeCast.arg;
  }
  const text = node?.A_Const?.sval?.sval;
  return typeof text === 'string' ? intervalLength(text) : undefined;
}

/** A number written exactly: n / 10^scale. */
interface Decimal { n: bigint; scale: number }
/** The most digits (and the largest exponent) of a number counted: a bound of more is not counted (refused). */
const DECIMAL_MAX_DIGITS = 1000;
/**
 * A number as written (an integer, 0.1, 1e30, 0x1F, ' 2.5 ' as numeric text), exactly; undefined for anything else
 * (NaN, Infinity, more than DECIMAL_MAX_DIGITS digits or an exponent past them).
 */
function exactDecimal(text: string): Decimal | undefined {
  const t = text.trim();
  const negative = t.startsWith('-');
  const body = t.replace(/^[+-]/, '');
  let n: bigint;
  let scale = 0;
  if (/^0[xob]/i.test(body)) {
    if (!/^0(x[0-9a-f]+|o[0-7]+|b[01]+)$/i.test(body) || body.length > DECIMAL_MAX_DIGITS) return undefined;
    n = BigInt(body.toLowerCase());
  } else {
    const m = /^(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(body);
    const digits = m ? m[1] + (m[2] ?? '') : '';
    if (!m || digits === '' || digits.length > DECIMAL_MAX_DIGITS || Math.abs(Number(m[3] ?? 0)) > DECIMAL_MAX_DIGITS) return undefined;
    n = BigInt(digits);
    scale = (m[2] ?? '').length - Number(m[3] ?? 0);
    if (scale < 0) {
      n *= 10n ** BigInt(-scale);
      scale = 0;
    }
  }
  return { n: negative ? -n : n, scale };
}

const INTEGER_TYPES = new Set(['int2', 'int4', 'int8', 'smallint', 'integer', 'int', 'bigint']);
/**
 * A number bound or step of generate_series: a number literal, numeric text, either negated or cast to numeric or an
 * integer type (without a precision: numeric(2, 1) rounds); a cast of a fraction to an integer rounds (1.6::int is 2):
 * not counted. Undefined for anything else.
 */
function seriesNumber(node: any): Decimal | undefined {
  if (node?.A_Expr && node.A_Expr.kind === 'AEXPR_OP' && !node.A_Expr.lexpr && nameOf(node.A_Expr.name).pop() === '-') {
    const v = seriesNumber(node.A_Expr.rexpr);
    return v && { n: -v.n, scale: v.scale };
  }
  if (node?.TypeCast) {
    const t = node.TypeCast.typeName;
    const type = nameOf(t?.names).pop()?.toLowerCase() ?? '';
    if ((t?.arrayBounds ?? []).length || (t?.typmods ?? []).length) return undefined;
    const v = NUMERIC_TYPES.has(type) || INTEGER_TYPES.has(type) ? seriesNumber(node.TypeCast.arg) : undefined;
    return v && INTEGER_TYPES.has(type) && v.n % 10n ** BigInt(v.scale) !== 0n ? undefined : v;
  }
  const c = node?.A_Const;
  if (!c || c.isnull) return undefined;
  if (c.ival) return { n: BigInt(c.ival.ival ?? 0), scale: 0 };
  const text = c.fval?.fval ?? c.sval?.sval;
  return typeof text === 'string' ? exactDecimal(text) : undefined;
}

/** A date, timestamp or timestamptz literal as written: its wall-clock time (microseconds from 1970-01-01 00:00), its UTC offset if it has one. */
interface TimeLiteral { local: bigint; offset?: bigint }
/**
 * A time literal of years 0001-9999 AD: 'YYYY-MM-DD', with a time of day 'HH:MM[:SS[.ffffff]]' (to the microsecond:
 * a seventh digit, which PostgreSQL rounds, is not read) and after it a UTC offset (Z, UTC, +HH, +HH:MM, +HHMM);
 * undefined for any other form (BC, 'infinity', 'epoch', 'now', 'today', a named time zone...: not counted).
 */
function timeLiteral(text: string): TimeLiteral | undefined {
  const m = /^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(?:\s*(?:(z|utc)|([+-])(\d{1,2})(?::?(\d{2}))?))?)?\s*$/i.exec(text);
  if (!m) return undefined;
  // (not Date.UTC: it reads the years 0-99 as 1900-1999, so that '0099-12-31' was counted 1,900 years late)
  const date = new Date(0);
  date.setUTCFullYear(+m[1], +m[2] - 1, +m[3]);
  const ms = date.getTime();
  if (!Number.isFinite(ms)) return undefined;
  const time = (BigInt(m[4] ?? 0) * 3_600n + BigInt(m[5] ?? 0) * 60n + BigInt(m[6] ?? 0)) * US_SECOND + BigInt((m[7] ?? '').padEnd(6, '0'));
  const offset = m[8] ? 0n : m[9] ? (m[9] === '-' ? -1n : 1n) * (BigInt(m[10]) * 60n + BigInt(m[11] ?? 0)) * 60n * US_SECOND : undefined;
  return { local: BigInt(ms) * 1_000n + time, offset };
}

type TimeType = 'date' | 'timestamp' | 'timestamptz';
const TIME_TYPES = new Set<string>(['date', 'timestamp', 'timestamptz']);
/**
 * A time value (microseconds), within [lo, hi] where the guard cannot tell it exactly: of a date or timestamp its
 * wall-clock time; of a timestamptz its UTC time, or (zoned) a wall-clock time of the session's time zone.
 */
interface TimeValue { lo: bigint; hi: bigint; zoned: boolean }
const floorDay = (us: bigint) => (us >= 0n ? us / US_DAY : -((-us + US_DAY - 1n) / US_DAY)) * US_DAY;

/** The type of a time bound: its cast's (date, timestamp, timestamptz), 'unknown' for a string literal; undefined for anything else. */
function timeTypeOf(node: any): TimeType | 'unknown' | undefined {
  if (node?.A_Const?.sval) return 'unknown';
  const t = node?.TypeCast?.typeName;
  const type = nameOf(t?.names).pop()?.toLowerCase() ?? '';
  return t && !(t.arrayBounds ?? []).length && TIME_TYPES.has(type) ? (type as TimeType) : undefined;
}

/**
 * The value of a time bound (a literal, possibly cast, casts of casts too) as PostgreSQL reads it as `type`: a date
 * drops the time of day and a UTC offset, a timestamp ignores the offset, a timestamptz honours it (without one, a time
 * of the session's zone); a cast moves it as the session's time zone may (see MAX_ZONE_OFFSET, ZONE_SHIFT), a precision
 * (timestamp(0)) rounds it. Undefined for anything else.
 */
function timeValue(node: any, type: TimeType): TimeValue | undefined {
  const from = timeTypeOf(node);
  if (from === 'unknown') {
    const lit = timeLiteral(node.A_Const.sval.sval ?? '');
    if (!lit) return undefined;
    if (type === 'date') return { lo: floorDay(lit.local), hi: floorDay(lit.local), zoned: false };
    if (type === 'timestamptz' && lit.offset !== undefined) return { lo: lit.local - lit.offset, hi: lit.local - lit.offset, zoned: false };
    return { lo: lit.local, hi: lit.local, zoned: type === 'timestamptz' };
  }
  if (!from) return undefined;
  let v = timeValue(node.TypeCast.arg, from);
  if (!v) return undefined;
  const typmods: any[] = node.TypeCast.typeName?.typmods ?? [];
  if (typmods.length) {
    // timestamp(p): rounded to 10^(6 - p) microseconds
    const p = typmods[0]?.A_Const?.ival?.ival ?? 0;
    if (from === 'date' || typmods.length > 1 || typeof p !== 'number') return undefined;
    const unit = 10n ** BigInt(Math.max(0, 6 - p));
    v = { ...v, lo: v.lo - unit, hi: v.hi + unit };
  }
  if (from === type) return v;
  if (type === 'timestamptz') return from === 'date' || from === 'timestamp' ? { ...v, zoned: true } : v;
  // a timestamptz read as a wall-clock time of the session's zone
  if (from === 'timestamptz') {
    const by = v.zoned ? ZONE_SHIFT : MAX_ZONE_OFFSET;
    v = { lo: v.lo - by, hi: v.hi + by, zoned: false };
  }
  return type === 'date' ? { lo: floorDay(v.lo), hi: floorDay(v.hi), zoned: false } : v;
}

/**
 * How many rows generate_series(start, stop[, step[, time zone]]) makes: its bounds literal numbers counted exactly, or
 * literal dates / timestamps (read as PostgreSQL reads them: timeValue) with a literal interval step at its shortest, or
 * both offsets of one anchor of the statement's time (anchoredSpan) with such a step. An upper bound; refused otherwise.
 */
function seriesRows(args: unknown[]): number {
  const refuseBounds = () => refuse(`generate_series's start, stop and step must be literals (numbers, counted exactly, of at most ${DECIMAL_MAX_DIGITS} digits, not cast to an integer type from a fraction nor to numeric(p, s); or dates / timestamps 'YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][+HH[:MM]]' of years 0001-9999 AD with an interval step such as interval '1 month' or '1.5 hours'; not 'infinity', 'epoch', 'now', BC, a named time zone or an ISO 8601 interval), or start and stop the same anchor (current_date, now(), current_timestamp, localtimestamp, date_trunc('<unit up to year>', or a cast to date or a timestamp of, one of those)) plus or minus literal integers (days) or intervals with a literal interval step, as in generate_series(current_date - 30, current_date, interval '1 day'), so that its rows can be counted (a span from a literal date to one of those is not); at most ${MAX_SERIES_ROWS} rows are allowed (MAX_SERIES_ROWS)`);
  if (args.length < 2 || args.length > 4) throw refuseBounds();
  // (the fourth argument of PostgreSQL 16's is the time zone of the steps, a string literal: either bound may move by a day)
  if (args.length === 4 && literalText(args[3]) === undefined) throw refuseBounds();
  const zone = args.length === 4 ? 2n * US_DAY : 0n;
  const count = (span: bigint, step: bigint): number => (step === 0n ? 1 : Number(span / step + 1n));
  const anchored = anchoredSpan(args[0], args[1]);
  if (anchored !== undefined) {
    // a date spine relative to today: its span that of the offsets (each unit at its longest), its step at its shortest
    const step = args.length > 2 ? seriesStep(args[2]) : undefined;
    if (!step) throw refuseBounds();
    return count(anchored + zone, stepMin(step));
  }
  const types = [timeTypeOf(args[0]), timeTypeOf(args[1])];
  // PostgreSQL's choice: timestamptz if a bound is one or neither is a timestamp (dates, string literals: its preferred type)
  const type: TimeType = types.includes('timestamptz') || !types.includes('timestamp') || args.length === 4 ? 'timestamptz' : 'timestamp';
  const a = types[0] && types[1] ? timeValue(args[0], type) : undefined;
  const b = a ? timeValue(args[1], type) : undefined;
  if (a && b) {
    const step = args.length > 2 ? seriesStep(args[2]) : undefined;
    if (!step) throw refuseBounds();
    const abs = (x: bigint) => (x < 0n ? -x : x);
    let span = [b.hi - a.lo, a.hi - b.lo].map(abs).reduce((x, y) => (x > y ? x : y));
    // a wall-clock time of the session's zone: within MAX_ZONE_OFFSET of UTC, two of them within ZONE_SHIFT of each other's
    if (a.zoned && b.zoned) span += ZONE_SHIFT;
    else if (a.zoned || b.zoned) span += MAX_ZONE_OFFSET;
    return count(span + zone, stepMin(step));
  }
  const start = seriesNumber(args[0]);
  const stop = seriesNumber(args[1]);
  const by = args.length > 2 ? seriesNumber(args[2]) : { n: 1n, scale: 0 };
  if (!start || !stop || !by || args.length > 3) throw refuseBounds();
  // exactly: (stop - start) / step + 1, all three at one scale (PostgreSQL adds the step to the start in numeric, exact)
  const scale = Math.max(start.scale, stop.scale, by.scale);
  const at = (d: Decimal) => d.n * 10n ** BigInt(scale - d.scale);
  const span = at(stop) - at(start);
  const step = at(by);
  return count(span < 0n ? -span : span, step < 0n ? -step : step);
}

/**
 * A bound of generate_series relative to the statement's time: an anchor (current_date, now() or current_timestamp,
 * localtimestamp: its key; current_timestamp(p) and localtimestamp(p) are the same rounded, a second of slack) plus or
 * minus literal integers (days: date - 30) and intervals, possibly truncated (date_trunc('<unit>', ...): up to a unit
 * earlier, a year at most) or cast to date (a day earlier) or a timestamp (the time zone's offset: two days); with the
 * least and most microseconds of its offset (each unit at its shortest and longest) and the `slack` either way that
 * truncations and casts may move it. Undefined for anything else.
 */
interface AnchoredBound { key: string; lo: bigint; hi: bigint; slack: bigint }
const ANCHORS: Record<string, [string, bigint]> = {
  SVFOP_CURRENT_DATE: ['current_date', 0n], SVFOP_CURRENT_TIMESTAMP: ['now()', 0n], SVFOP_CURRENT_TIMESTAMP_N: ['now()', US_SECOND],
  SVFOP_LOCALTIMESTAMP: ['localtimestamp', 0n], SVFOP_LOCALTIMESTAMP_N: ['localtimestamp', US_SECOND],
};
/** date_trunc's units (up to a year), each at its longest: what a truncation may take away. */
const TRUNC_UNITS: [RegExp, bigint][] = [
  [/^(microseconds?|us|usecs?)$/, 1n], [/^(milliseconds?|ms|msecs?)$/, 1_000n], [/^(seconds?|s|secs?)$/, US_SECOND],
  [/^(minutes?|m|mins?)$/, 60n * US_SECOND], [/^(hours?|h|hrs?)$/, US_HOUR], [/^(days?|d)$/, DAY.max], [/^(weeks?|w)$/, 7n * DAY.max],
  [/^(months?|mons?)$/, MONTH.max], [/^(quarters?|qtr)$/, 92n * US_DAY + US_HOUR], [/^(years?|y|yrs?)$/, 366n * US_DAY + US_HOUR],
];
function anchoredBound(node: any): AnchoredBound | undefined {
  if (node?.SQLValueFunction) {
    const anchor = ANCHORS[node.SQLValueFunction.op];
    return anchor && { key: anchor[0], lo: 0n, hi: 0n, slack: anchor[1] };
  }
  if (node?.FuncCall) {
    const f = node.FuncCall;
    const parts = nameOf(f.funcname).map((p) => p.toLowerCase());
    if (parts.length > 1 && parts[0] !== 'pg_catalog') return undefined;
    const name = parts[parts.length - 1];
    const args: any[] = f.args ?? [];
    if (f.agg_star || f.agg_distinct || f.over || f.agg_filter || f.agg_order || f.func_variadic) return undefined;
    if ((name === 'now' || name === 'transaction_timestamp') && args.length === 0) return { key: 'now()', lo: 0n, hi: 0n, slack: 0n };
    if (name === 'date_trunc' && args.length === 2) {
      const unit = literalText(args[0])?.trim().toLowerCase();
      const by = unit === undefined ? undefined : TRUNC_UNITS.find(([re]) => re.test(unit))?.[1];
      const inner = anchoredBound(args[1]);
      // truncated: the same anchor, up to a unit earlier
      return by !== undefined && inner ? { ...inner, slack: inner.slack + by } : undefined;
    }
    return undefined;
  }
  if (node?.TypeCast) {
    const t = node.TypeCast.typeName;
    const type = nameOf(t?.names).pop()?.toLowerCase() ?? '';
    if ((t?.arrayBounds ?? []).length || !TIME_TYPES.has(type) || (t?.typmods ?? []).length > (type === 'date' ? 0 : 1)) return undefined;
    const inner = anchoredBound(node.TypeCast.arg);
    // a cast to date drops the time of day, a cast between timestamps moves it by the time zone's offset (a precision rounds it)
    return inner && { ...inner, slack: inner.slack + (type === 'date' ? DAY.max : 2n * US_DAY + ((t?.typmods ?? []).length ? US_SECOND : 0n)) };
  }
  const e = node?.A_Expr;
  if (!e || e.kind !== 'AEXPR_OP' || !e.lexpr || !e.rexpr) return undefined;
  const op = nameOf(e.name);
  if (op.length !== 1 || (op[0] !== '+' && op[0] !== '-')) return undefined;
  // anchor +/- offset, or offset + anchor
  const [base, offsetNode] = op[0] === '+' && !anchoredBound(e.lexpr) ? [e.rexpr, e.lexpr] : [e.lexpr, e.rexpr];
  const inner = anchoredBound(base);
  if (!inner) return undefined;
  let lo: bigint;
  let hi: bigint;
  const days = offsetNode?.A_Const?.ival ? BigInt(offsetNode.A_Const.ival.ival ?? 0) : undefined;
  const interval = days === undefined ? seriesStep(offsetNode) : undefined;
  if (days !== undefined) {
    // date +/- integer: days (each of 23 to 25 hours where the series runs as timestamptz)
    [lo, hi] = days < 0n ? [days * DAY.max, days * DAY.min] : [days * DAY.min, days * DAY.max];
  } else if (interval) {
    [lo, hi] = interval.sign < 0 ? [-interval.max, -interval.min] : [interval.min, interval.max];
  } else {
    return undefined;
  }
  if (op[0] === '-') [lo, hi] = [-hi, -lo];
  return { key: inner.key, lo: inner.lo + lo, hi: inner.hi + hi, slack: inner.slack };
}

/** The most microseconds between two bounds of one anchor (see anchoredBound); undefined unless both are such bounds of the same one. */
function anchoredSpan(start: unknown, stop: unknown): bigint | undefined {
  const a = anchoredBound(start);
  const b = anchoredBound(stop);
  if (!a || !b || a.key !== b.key) return undefined;
  const abs = (x: bigint) => (x < 0n ? -x : x);
  const x = abs(b.hi - a.lo);
  const y = abs(a.hi - b.lo);
  return (x > y ? x : y) + a.slack + b.slack;
}

const refuseGrowth = (what: string, weight: number) =>
  refuse(`${what} can build a value up to ${weight > 1e9 ? "over 10^9" : Math.ceil(weight)} times the largest value a query starts from (a semantic view's value or row, or the query's own text); at most ${MAX_GROWTH} is allowed (each concat / || / replace of a value multiplies its size, printing an array or row as text doubles it, JSON escaping up to 6x, and CTEs and subqueries reading each other multiply again)`);

/** Refuses a query whose values could grow past MAX_GROWTH times its inputs', or whose SELECTs nest deeper than MAX_DEPTH. */
function boundGrowth(select: Sel): void {
  shapeOf(select, { ctes: new Map(), outerValue: 0, outerRow: 0, outerNames: new Set(), outerSources: [], outerGen: 1, budget: { bytes: 0, enclosing: 0 } }, true);
}

/**
 * A subquery (scalar, IN, ARRAY(SELECT ...), EXISTS, LATERAL in FROM) weighed in `ctx`, the query that reads it. One
 * that reads a column of an enclosing query (correlated) is run again for each of that query's rows, and every result is
 * held where that query sorts or hashes them (ORDER BY of a correlated string_agg of 10 MB over 1,000 series rows: 1.6 GB
 * of temp in 5 s): the constant bytes its values built across rows spend are counted once for each row `ctx` makes of
 * no view (ctx.gen; a view's rows are bounded by reading them), but those of an enclosing query's aggregates.
 */
function weighSubquery(s: Sel, env: Env, ctx: Ctx, array = false): Shape {
  const correlated = { yes: false };
  const budget = ctx.env.budget;
  const before = budget.bytes - budget.enclosing;
  const shape = shapeOf(s, { ...env, correlated });
  const spent = budget.bytes - budget.enclosing - before;
  if (correlated.yes && spent > 0 && ctx.gen > 1) {
    spendAcrossRows('a correlated subquery (run again for each row of the query that reads it: what it builds across rows, once for each of that query\'s rows made of no view)', spent * (ctx.gen - 1) * BYTE, ctx);
  }
  if (correlated.yes) checkCorrelatedViewAcross(s, shape, ctx, array);
  return shape;
}

/**
 * A correlated subquery whose value is built across rows of a view (string_agg, array_agg, json(b)_agg, ARRAY(SELECT
 * ...) of a view's values) is built again for each row of the query reading it, and each result is held in that row
 * (the answer's rows, a sort, a hash): up to the view's rows times the outer rows. A view's rows have no static bound
 * here (only the statement timeout's reading speed), so neither has that product, which passes any statement budget:
 * `SELECT (SELECT string_agg(x.memo, ',') FROM v x WHERE x.id >= j.id) FROM v j` made 3 GB of temp in 10 s of 3,000
 * rows. Refused unless the query reading it makes one row, or the subquery is tied to each outer row by an equality
 * between its own column and an enclosing query's column (correlatedByEquality: each view row is then aggregated for
 * the outer rows of its value only, as a join on that column reads it, or once a value of a series). A count, a sum,
 * a lookup by key (one small value a row) builds nothing across rows and is not concerned.
 */
function checkCorrelatedViewAcross(s: Sel, shape: Shape, ctx: Ctx, array: boolean): void {
  const cols = shape.cols ?? [{ across: shape.across, rep: shape.rep }];
  // (ARRAY(SELECT ...): its rows' view values, each an element)
  if (!cols.some((c) => (array || (c.across ?? Across.NONE) !== Across.NONE) && c.rep > 0)) return;
  const own = ctx.sources.slice(ctx.env.outerSources.length);
  if (ctx.gen <= 1 && (ctx.sets ?? 1) <= 1 && own.every((src) => src.shape.one) && (!ctx.rows || rowsOne(ctx.rows))) return;
  if (!readsOuterColumn(s, ctx) || correlatedByEquality(s, ctx)) return;
  throw refuse('a correlated subquery (reading an enclosing query\'s column) builds a value across rows of a view (string_agg, array_agg, json(b)_agg, ARRAY(SELECT ...)) again for each row of the query that reads it, and each of those rows holds its whole value: up to a view\'s rows times the outer rows, which no bound here limits (a correlation such as x.id >= j.id aggregates most of the view again for every row); tie the subquery to the outer row by an equality of its own column and the outer column (WHERE x.customer_id = c.customer_id), or aggregate the view once in a grouped subquery and join it');
}

/**
 * Whether a subquery surely reads an enclosing query's column (Env.correlated also counts a name a view of its own may
 * have, `memo`, as an enclosing one's): a name qualified by an enclosing FROM item's name that no FROM item of the
 * subquery has, or an unqualified name that is a known column of an enclosing FROM item (a series' `x`, a CTE's column).
 */
function readsOuterColumn(s: Sel, ctx: Ctx): boolean {
  const inner = new Set<string>();
  walk(s, (n, type) => {
    const name = type === 'RangeVar' ? n.alias?.aliasname ?? n.relname : type === 'RangeSubselect' || type === 'RangeFunction' || type === 'JoinExpr' ? n.alias?.aliasname : undefined;
    if (name) inner.add(name);
    if (type === 'CommonTableExpr') inner.add(n.ctename);
  });
  let found = false;
  walk(s, (n, type) => {
    if (found || type !== 'ColumnRef') return;
    const parts = (n.fields ?? []).map((f: any) => f?.String?.sval as string | undefined);
    const star = !!n.fields?.[n.fields.length - 1]?.A_Star;
    const rel = parts.length === 2 || (star && parts.length === 2) ? parts[0] : parts.length === 1 ? parts[0] : undefined;
    if (rel === undefined || inner.has(rel)) return;
    if ((parts.length === 2 || star) && ctx.sources.some((src) => src.name === rel)) found = true;
    else if (parts.length === 1 && ctx.sources.some((src) => src.name === rel || columnIndex(src.shape).named.has(rel))) found = true;
  });
  return found;
}

/**
 * Whether a subquery's WHERE (or an inner JOIN's ON) has a conjunct `own = outer`: `outer` a column (possibly cast) of an
 * enclosing query's FROM item whose rows are a view's (each inner row then in the outer rows of its value, as a join's),
 * or of a series that holds each value once (distinctOf: a date spine's d::date, a day in two rows at most); `own` reads
 * a column of the subquery's own FROM items and none of an enclosing query's.
 */
function correlatedByEquality(s: Sel, ctx: Ctx): boolean {
  if (s.op && s.op !== 'SETOP_NONE') return false;
  const ownNames = new Set<string>();
  const quals: unknown[] = [s.whereClause];
  const visitFrom = (item: any): void => {
    if (item?.JoinExpr) {
      if (item.JoinExpr.jointype === 'JOIN_INNER') quals.push(item.JoinExpr.quals);
      if (item.JoinExpr.alias?.aliasname) ownNames.add(item.JoinExpr.alias.aliasname);
      return [item.JoinExpr.larg, item.JoinExpr.rarg].forEach(visitFrom);
    }
    const x = item?.RangeVar ?? item?.RangeSubselect ?? item?.RangeFunction;
    const name = x?.alias?.aliasname ?? item?.RangeVar?.relname;
    if (name) ownNames.add(name);
  };
  (s.fromClause ?? []).forEach(visitFrom);
  const outerItems: FromItem[] = ctx.sources.map((source) => ({ source, gen: ctx.rows?.items.find((i) => i.source === source)?.gen ?? source.shape.gen }));
  const strip = (x: any) => {
    while (x?.TypeCast) x = x.TypeCast.arg;
    return x;
  };
  /** the enclosing query's FROM item a column reference reads, where it is one (qualified by no own name) */
  const outerColumn = (x: any): boolean => {
    const fields: any[] | undefined = strip(x)?.ColumnRef?.fields;
    const parts = (fields ?? []).map((f) => f?.String?.sval as string | undefined);
    if (!parts.length || parts.length > 2 || parts.some((p) => p === undefined)) return false;
    if (parts.length === 2 && ownNames.has(parts[0]!)) return false;
    const named = itemsNamed(fields!, outerItems);
    // (a qualified name: the nearest FROM item of that name; an unqualified one: the one item that has the column)
    const item = parts.length === 2 ? named?.items[named.items.length - 1] : named?.exact.length === 1 ? named.exact[0] : undefined;
    if (!item) return false;
    if (item.source.shape === VIEW || item.gen <= 1) return true;
    const d = distinctOf(x, { items: [item], anchors: [], targetGen: 1, cache: new Map(), fullJoins: 0, setReturning: 0 });
    return d?.rows !== undefined && d.rows <= ACROSS_ROWS_MAX_VIEW_REPEATS;
  };
  const readsOwn = (x: unknown): boolean => {
    let own = false;
    let outer = false;
    walk(x, (n, type) => {
      if (type === 'SubLink') outer = true;
      if (type !== 'ColumnRef') return;
      const parts = nameOf(n.fields);
      if (parts.length === 2 && ownNames.has(parts[0])) own = true;
      else if (parts.length === 1 && !ctx.sources.some((src) => src.name === parts[0] || columnIndex(src.shape).named.has(parts[0]))) own = true;
      else outer = true;
    });
    return own && !outer;
  };
  return quals.flatMap(conjuncts).some((q: any) => {
    const e = q?.A_Expr;
    if (!e || e.kind !== 'AEXPR_OP' || nameOf(e.name).join('.') !== '=') return false;
    return (outerColumn(e.rexpr) && readsOwn(e.lexpr)) || (outerColumn(e.lexpr) && readsOwn(e.rexpr));
  });
}

/**
 * Marks the subqueries a column reference reads an enclosing query's column of (Env.correlated): the nearest FROM item
 * that may have it (its qualifier's, or one with that column or columns not known here: a view's), a subquery's own
 * items before those of the queries enclosing it; each enclosing level's items are a prefix of ctx.sources.
 */
function markCorrelated(fields: any[], ctx: Ctx): void {
  if (!ctx.env.outerSources.length) return;
  // (`o.*`: the whole row of the FROM item o; a bare `*` is the query's own items')
  const star = !!fields[fields.length - 1]?.A_Star;
  const parts = (star ? fields.slice(0, -1) : fields).map((f) => f?.String?.sval as string | undefined);
  if (!parts.length || parts.length > 2 || parts.some((p) => p === undefined)) return;
  const [rel, name] = star ? [parts[parts.length - 1], undefined] : parts.length === 2 ? parts : [undefined, parts[0]];
  const has = (src: Source) => columnIndex(src.shape).named.has(name!);
  let at = -1;
  let unknown = false;
  for (let i = ctx.sources.length - 1; i >= 0 && at < 0; i--) {
    const src = ctx.sources[i];
    if (rel !== undefined ? src.name === rel : has(src) || !!columnIndex(src.shape).any) {
      at = i;
      unknown = rel === undefined && !has(src);
    }
  }
  // a name found only among a view's columns (not known here) may be an enclosing query's column instead: counted as that
  // (the farthest item before it that has, or may have, that name)
  for (let i = 0; unknown && i < at; i++) {
    if (has(ctx.sources[i]) || columnIndex(ctx.sources[i].shape).any) at = i;
  }
  // (a lone name of no column may be a FROM item's whole row)
  for (let i = ctx.sources.length - 1; i >= 0 && at < 0 && rel === undefined; i--) if (ctx.sources[i].name === name) at = i;
  for (let c: Ctx | undefined = ctx; c && at >= 0 && at < c.env.outerSources.length; c = c.env.outerCtx) {
    if (c.env.correlated) c.env.correlated.yes = true;
  }
}

/** The SELECT whose FROM list a RowsOf is (checkViewsJoined reads its WHERE and joins). */
const ROWS_SELECT = new WeakMap<RowsOf, Sel>();
/** The SELECTs whose FROM list joins views' rows by no equality (viewsUnjoined, `direct`): a query sorting their rows holds them too. */
const UNJOINED_SELECTS = new WeakSet<Sel>();

/**
 * A value built across rows of a view's values, in a SELECT joining two or more FROM items of views' rows (a view, a
 * CTE or subquery of one) where some are joined to the others by no equality (a cross join, ON b.id >= a.id): each
 * view value is appended once for every row of the other view it meets, up to a view's rows times a view's rows, which
 * no bound here limits (string_agg(b.memo, ',') FROM v a JOIN v b ON b.line_no >= a.line_no GROUP BY a.line_no wrote
 * 2.4 GB of temp in 11 s of 3,000 rows; a correlated subquery doing so: checkCorrelatedViewAcross). Items joined by an
 * equality of their columns (WHERE a.k = b.k, ON, USING, NATURAL) are accepted: each value meets the rows of its key.
 */
function checkViewsJoined(what: string, ctx: Ctx): void {
  if (!viewsUnjoined(ctx)) return;
  throw refuse(`${what} builds a value across rows of a view's values over a join of views (or of CTEs and subqueries of them, or of unnest of an array of a view's rows) some of which are joined to the others by no equality of their columns (a cross join, or ON b.id >= a.id): each view value is appended once for every row of the other view it meets, up to a view's rows times a view's rows, which no bound here limits; join them by an equality (ON a.customer_id = b.customer_id, USING (...)), or aggregate each view in a grouped subquery first`);
}

/**
 * The same join of views' rows by no equality, whose rows the SELECT holds: sorted (ORDER BY, GROUP BY, DISTINCT, a
 * window, an aggregate's ORDER BY or DISTINCT), a view's rows times a view's rows written to temp at the disk's speed
 * (3,000 rows of 1 KB memos: a self-join ON b.line_no >= a.line_no sorted wrote 2.9 GB in 11 s; an array_agg of them
 * unnested twice, sorted 6 GB, grouped 7.5 GB). Streamed (no ORDER BY...), its rows are cut by the answer's row cap.
 */
function checkViewsJoinedHeld(s: Sel, ctx: Ctx): void {
  const unjoined = viewsUnjoined(ctx, true);
  if (unjoined) UNJOINED_SELECTS.add(s);
  let held = !!(s.sortClause?.length || s.groupClause?.length || s.distinctClause?.length || s.windowClause?.length);
  walk([s.targetList, s.havingClause], (n, type) => {
    if (type === 'FuncCall' && (n.over || n.agg_order?.length || n.agg_distinct)) held = true;
  });
  if (!held) return;
  // (such a join read as a derived table, or a CTE of this SELECT's WITH, and sorted here: held all the same)
  const ctes = new Map<string, Sel>((s.withClause?.ctes ?? []).map((c: any) => [c.CommonTableExpr?.ctename, c.CommonTableExpr?.ctequery?.SelectStmt]));
  const readsUnjoined = (s.fromClause ?? []).some(function reads(item: any): boolean {
    if (item?.JoinExpr) return reads(item.JoinExpr.larg) || reads(item.JoinExpr.rarg);
    const inner = item?.RangeSubselect?.subquery?.SelectStmt ?? (item?.RangeVar && !item.RangeVar.schemaname ? ctes.get(item.RangeVar.relname) : undefined);
    return !!inner && UNJOINED_SELECTS.has(inner);
  });
  if (!unjoined && !readsUnjoined) return;
  throw refuse('a SELECT sorts, groups or windows the rows of a join of views (or of CTEs and subqueries of them, or of unnest of an array of a view\'s rows) some of which are joined to the others by no equality of their columns (a cross join, or ON b.id >= a.id): up to a view\'s rows times a view\'s rows, held in a sort or hash, which no bound here limits; join them by an equality (ON a.customer_id = b.customer_id, USING (...)), use a window function over one view (sum(...) OVER (ORDER BY ...)) instead of a self-join, or aggregate each view in a grouped subquery first');
}

/**
 * Whether a SELECT's FROM list joins two or more items of views' rows some of which no equality of their columns ties to
 * the others. `direct`: only views and functions (unnest of a view's array) count, not CTEs and subqueries, whose rows
 * may be few (a self-join of a monthly CTE, ON b.month <= a.month, is a running total of a few rows).
 */
function viewsUnjoined(ctx: Ctx, direct = false): boolean {
  const rows = ctx.rows;
  const s = rows && ROWS_SELECT.get(rows);
  if (!rows || !s) return false;
  const indirect = new Set<string>();
  walk(s.fromClause, (n, type) => {
    if (type === 'RangeSubselect' && n.alias?.aliasname) indirect.add(n.alias.aliasname);
    if (type === 'RangeVar' && !n.schemaname) indirect.add(n.alias?.aliasname ?? n.relname);
  });
  const views = rows.items.filter((i) => i.gen <= 1 && !i.source.shape.one && !(direct && i.source.name !== undefined && indirect.has(i.source.name))).map((i) => i.source);
  if (views.length < 2) return false;
  const group = new Map<Source, Source>(views.map((v) => [v, v]));
  const root = (x: Source): Source => (group.get(x) === x ? x : root(group.get(x)!));
  const unite = (a: Source, b: Source) => group.set(root(a), root(b));
  const single = (node: unknown): Source | undefined => {
    const deps = localDeps(node, rows.items);
    const [only] = deps?.size === 1 ? [...deps] : [];
    return only && group.has(only) ? only : undefined;
  };
  const named = (item: any): Source[] => {
    if (item?.JoinExpr) return [...named(item.JoinExpr.larg), ...named(item.JoinExpr.rarg)];
    const x = item?.RangeVar ?? item?.RangeSubselect ?? item?.RangeFunction;
    const name = x?.alias?.aliasname ?? item?.RangeVar?.relname;
    return views.filter((v) => name !== undefined && v.name === name);
  };
  const quals: unknown[] = [s.whereClause];
  const visit = (item: any): void => {
    const j = item?.JoinExpr;
    if (!j) return;
    visit(j.larg);
    visit(j.rarg);
    quals.push(j.quals);
    // (USING, NATURAL: equalities of the columns of both sides)
    if (j.usingClause?.length || j.isNatural) for (const l of named(j.larg)) for (const r of named(j.rarg)) unite(l, r);
  };
  (s.fromClause ?? []).forEach(visit);
  for (const q of quals.flatMap(conjuncts)) {
    const e = q?.A_Expr;
    if (!e || e.kind !== 'AEXPR_OP' || nameOf(e.name).join('.') !== '=') continue;
    const [l, r] = [single(e.lexpr), single(e.rexpr)];
    if (l && r && l !== r) unite(l, r);
  }
  return !views.every((v) => root(v) === root(views[0]));
}

/** `outermost`: the statement's own SELECT, whose rows the wrapper holds again (WRAPPER_ROW_COPIES). */
function shapeOf(s: Sel, env: Env, outermost = false): Shape {
  let ctes = env.ctes;
  if (s.withClause) {
    const inScope = new Map(ctes);
    for (const c of s.withClause.ctes ?? []) {
      const cte = c.CommonTableExpr;
      if (!cte) continue;
      inScope.set(cte.ctename, renamed(shapeOf(cte.ctequery.SelectStmt, { ...env, ctes: inScope }), cte.aliascolnames));
    }
    ctes = inScope;
  }
  const own: Env = { ...env, ctes };
  let shape: Shape;
  /** the weights of the values built to evaluate one row (Ctx.work); a set operation's arms are checked on their own */
  let work = 0;
  if (s.op && s.op !== 'SETOP_NONE') {
    const l = shapeOf(s.larg, own);
    const r = shapeOf(s.rarg, own);
    // INTERSECT and EXCEPT (ALL too) hash each arm's rows in memory, never spilled (HashSetOp: EXCEPT of 100,000 rows of a
    // 20 KB literal, 1.9 GB): each arm's rows are held as ARRAY(SELECT ...)'s are (UNION's hash aggregate spills to disk)
    if (s.op === 'SETOP_INTERSECT' || s.op === 'SETOP_EXCEPT') {
      const what = `an arm of ${s.op === 'SETOP_INTERSECT' ? 'INTERSECT' : 'EXCEPT'} (its rows hashed in memory)`;
      const armCtx: Ctx = { env: own, value: env.outerValue, row: env.outerRow, names: env.outerNames, depth: 0, sources: env.outerSources, work: 0, gen: 1 };
      for (const [arm, armShape] of [[s.larg, l], [s.rarg, r]] as const) checkHeldRows(what, armShape, [arm], armShape.konst * Math.max(1, armShape.gen), armCtx);
    }
    // a value built across rows in one row of each arm is in a row of every arm (1,000 arms of SELECT big FROM s
    // aggregated again: 1,000 times it): no longer in one row (REPEATED)
    const armsAcross = (a: Across | undefined, b: Across | undefined): Across => (Math.max(a ?? 0, b ?? 0) ? Across.REPEATED : Across.NONE);
    // the columns: the left arm's names, each the heavier of the two arms' (JSON if both are)
    const cols = l.cols && r.cols && l.cols.length === r.cols.length
      ? l.cols.map((c, i) => ({ name: c.name, weight: Math.max(c.weight, r.cols![i].weight), json: c.json && r.cols![i].json, konst: Math.max(c.konst, r.cols![i].konst), rep: c.rep + r.cols![i].rep, elems: Math.max(c.elems ?? Infinity, r.cols![i].elems ?? Infinity), across: armsAcross(c.across, r.cols![i].across) }))
      : undefined;
    // (UNION ALL: the rows of both arms)
    shape = { value: Math.max(l.value, r.value), row: Math.max(l.row, r.row), depth: Math.max(l.depth, r.depth), cols, konst: Math.max(l.konst, r.konst), gen: l.gen + r.gen, rep: l.rep + r.rep, elems: Math.max(l.elems ?? Infinity, r.elems ?? Infinity), across: armsAcross(l.across, r.across) };
    if (shape.gen > MAX_SERIES_ROWS) throw refuseSeries('a set operation (UNION, INTERSECT, EXCEPT)', shape.gen);
    // (the ORDER BY of a set operation names its output columns: it builds nothing; LIMIT and OFFSET are evaluated once)
    const ctx: Ctx = { env: own, value: Math.max(shape.value, env.outerValue), row: Math.max(shape.row, env.outerRow), names: env.outerNames, depth: 0, sources: env.outerSources, work: 0, gen: 1 };
    weigh([s.sortClause, s.limitCount, s.limitOffset], ctx);
    shape.depth = Math.max(shape.depth, ctx.depth);
  } else if (s.valuesLists) {
    const ctx: Ctx = { env: own, value: env.outerValue, row: env.outerRow, names: env.outerNames, depth: 0, sources: env.outerSources, work: 0, gen: 1 };
    let value = 0;
    let row = 0;
    let konst = 0;
    const cols: Col[] = [];
    // each VALUES row may hold the same view value (of a LATERAL reference): once for every row
    const lists = (s.valuesLists as any[]).length;
    for (const list of s.valuesLists) {
      const items: unknown[] = list.List?.items ?? [];
      if (items.length > MAX_COLUMNS) throw refuseColumns('a VALUES row', items.length);
      // each VALUES row is evaluated on its own: its work is the most any one of them builds
      ctx.work = 0;
      const w = items.map((i) => weigh(i, ctx));
      const k = items.map((i) => konstOf(i, ctx));
      const r = items.map((i) => viewRepeats(i, ctx) * lists);
      konst = Math.max(konst, k.reduce((a, b) => a + b, 0));
      value = Math.max(value, ...w);
      row = Math.max(row, w.reduce((a, b) => a + b + 3 * BYTE, 0));
      work = Math.max(work, ctx.work + 3 * BYTE * items.length);
      w.forEach((x, i) => {
        const json = jsonRead(items[i]);
        const elems = arrayElems(items[i], ctx);
        const across = acrossOf(items[i], ctx);
        cols[i] = cols[i]
          ? { name: `column${i + 1}`, weight: Math.max(cols[i].weight, x), json: cols[i].json && json, konst: Math.max(cols[i].konst, k[i]), rep: Math.max(cols[i].rep, r[i]), elems: Math.max(cols[i].elems ?? Infinity, elems), across: Math.max(cols[i].across ?? 0, across) as Across }
          : { name: `column${i + 1}`, weight: x, json, konst: k[i], rep: r[i], elems, across };
      });
    }
    weigh([s.sortClause, s.limitCount, s.limitOffset], ctx);
    // `t.*` / `(t).*` in a VALUES list expands to t's columns: positions not followed
    const star = (s.valuesLists as any[]).some((l) => (l.List?.items ?? []).some(expandsColumns));
    // each VALUES row is a row made of no view
    const gen = (s.valuesLists as any[]).length * ctx.gen;
    if (gen > MAX_SERIES_ROWS) throw refuseSeries('a VALUES list', gen);
    const reps = star ? [(s.valuesLists as any[]).reduce((m: number, l: any) => Math.max(m, viewRepeats(l, ctx) * lists), 0)] : cols.map((c) => c.rep);
    // (a whole row `t` or `t.*` of a LATERAL reference: its across-rows values)
    const across = Math.max(acrossOf(s.valuesLists, ctx), ...cols.map((c) => c.across ?? 0)) as Across;
    const one = (s.valuesLists as any[]).length === 1 && countSetReturning(s.valuesLists) === 0;
    shape = { value, row, depth: 1 + ctx.depth, cols: star ? undefined : cols, konst, gen, rep: Math.max(0, ...reps), elems: star ? undefined : Math.max(0, ...cols.map((c) => c.elems ?? Infinity)), across, one };
  } else {
    // before any work in proportion to them (every column name read is looked up in every FROM item in scope)
    const fromItems = countFromItems(s.fromClause ?? []);
    if (fromItems > MAX_FROM_ITEMS) throw refuse(`a SELECT reads ${fromItems} FROM items (tables, views, CTEs, subqueries, functions; each side of a join counts); at most ${MAX_FROM_ITEMS} are allowed`);
    if ((s.targetList ?? []).length > MAX_COLUMNS) throw refuseColumns('a SELECT', s.targetList.length);
    const sources: Source[] = [...env.outerSources];
    const read: Shape[] = [];
    const names = new Set(env.outerNames);
    // every value built for a row adds to ctx.work: the FROM list's functions and join conditions, the output columns,
    // WHERE, GROUP BY, HAVING, window, DISTINCT and ORDER BY expressions (those not output are held in the row as hidden
    // columns, sorted with it), and the values their expressions build on the way
    const ctx: Ctx = { env: own, value: env.outerValue, row: env.outerRow, names, depth: 0, sources, work: 0, gen: 1 };
    const items: FromItem[] = [];
    const joins: Join[] = [];
    let fullJoins = 0;
    const add = (shape: Shape, name?: string, what = 'a FROM item', gen = shape.gen): Source => {
      read.push(shape);
      // FROM items cross-join: the rows they make of no view multiply (a CTE of generate_series read twice: its square)
      multiplyRows(ctx, shape.gen, what);
      const source = { name, shape };
      sources.push(source);
      items.push({ source, gen });
      if (name) names.add(name);
      ctx.value = Math.max(ctx.value, shape.value);
      ctx.row = Math.max(ctx.row, shape.row);
      ctx.depth = Math.max(ctx.depth, shape.depth);
      return source;
    };
    /** reads a FROM item; its sources (both sides' of a join) */
    const from = (item: any): Source[] => {
      if (item.RangeVar) {
        const rv = item.RangeVar;
        return [add(renamed(rv.schemaname ? VIEW : (ctes.get(rv.relname) ?? VIEW), rv.alias?.colnames), rv.alias?.aliasname ?? rv.relname, `the CTE ${rv.relname}`)];
      } else if (item.RangeSubselect) {
        const rs = item.RangeSubselect;
        // earlier FROM items are readable by a LATERAL subquery: counted for every subquery (an upper bound)
        return [add(renamed(weighSubquery(rs.subquery.SelectStmt, { ctes, outerValue: ctx.value, outerRow: ctx.row, outerNames: names, outerSources: [...sources], outerGen: ctx.gen, outerCtx: ctx, budget: own.budget }, ctx), rs.alias?.colnames), rs.alias?.aliasname, 'a subquery in FROM')];
      } else if (item.RangeFunction) {
        // (its rows, generate_series' or unnest's, multiply ctx.gen as it is weighed)
        const before = ctx.gen;
        const w = weigh(item.RangeFunction.functions, ctx);
        const made = ctx.gen / before;
        // ROWS FROM (f(...), g(...)): one row of all of them
        if (w > MAX_ROW_GROWTH) throw refuseRow('a function in FROM (ROWS FROM)', w);
        // (unnest(ARRAY[...]) makes one element a row: the constant part of its heaviest element, not of the whole array)
        const fns: any[] = item.RangeFunction.functions ?? [];
        const perElement = fns.map((f) => {
          const call = f?.List?.items?.[0]?.FuncCall;
          return unnestElement(nameOf(call?.funcname).pop()?.toLowerCase(), call?.args ?? [], (e) => konstOf(e, ctx));
        });
        const k = fns.length && perElement.every((x) => x !== undefined) ? perElement.reduce((a: number, x) => a + x!, 0) : konstOf(fns, ctx);
        // (unnest of an array of view values: each of its rows holds one, the same one in as many rows as it repeats)
        const r = viewRepeats(item.RangeFunction.functions, ctx) * made;
        // (its columns: unnest's elements, generate_series' values, regexp_match's groups)
        const elems = Math.max(0, ...(item.RangeFunction.functions ?? []).map((f: any) => arrayElems(f?.List?.items?.[0], ctx)));
        // (unnest of an array built across rows, or of values that are: its elements may be too)
        const across = acrossOf(item.RangeFunction.functions, ctx);
        return [add({ value: w, row: w, depth: 0, konst: k, gen: 1, rep: r, cols: seriesColumns(item.RangeFunction, w, k, r), elems, across }, item.RangeFunction.alias?.aliasname, undefined, made)];
      } else if (item.JoinExpr) {
        const j = item.JoinExpr;
        const left = from(j.larg);
        const right = from(j.rarg);
        if (j.alias?.aliasname) {
          names.add(j.alias.aliasname);
          // its columns may be renamed (`AS j(x, y)`): any name read may be any of them
          sources.push({ name: j.alias.aliasname, shape: { value: ctx.value, row: ctx.row, depth: 0, konst: rowKonst(ctx), gen: 1, rep: [...left, ...right].reduce((m, x) => Math.max(m, x.shape.rep), 0), across: Math.max(Across.NONE, ...[...left, ...right].map((x) => x.shape.across ?? Across.NONE)) as Across } });
        }
        weigh(j.quals, ctx);
        // a FULL JOIN keeps the unmatched rows of both sides: up to both sides' rows (of one-row items, two), counted as
        // twice their product (an upper bound: 8 comma-joined chains of 12 FULL JOINed one-row items made 12^8 rows, 2.8 GB)
        if (j.jointype === 'JOIN_FULL') {
          fullJoins++;
          multiplyRows(ctx, 2, 'a FULL JOIN (its unmatched rows of both sides kept: counted as twice the rows of its sides)');
        }
        // (USING and NATURAL: their equalities are not read, the join anchors nothing)
        if (!j.usingClause?.length && !j.isNatural) joins.push({ kind: j.jointype, left, right, quals: j.quals });
        return [...left, ...right];
      } else {
        weigh(item, ctx);
        return [];
      }
    };
    for (const item of s.fromClause ?? []) from(item);
    const targets: any[] = (s.targetList ?? []).map((t: any) => t.ResTarget?.val);
    // PostgreSQL runs set-returning functions in ORDER BY, GROUP BY and DISTINCT ON too (columns of the row, hidden or
    // not): each repeats the rows (ORDER BY generate_series(1, 100000) of a one-row SELECT made 1.9 GB aggregated)
    const srfs = countSetReturning(targets);
    const setReturning = srfs + countSetReturning([s.sortClause, s.groupClause, s.distinctClause]);
    ctx.rows = { items, anchors: anchorsOf(items, joins, s.whereClause), targetGen: 1, cache: new Map(), fullJoins, setReturning };
    ROWS_SELECT.set(ctx.rows, s);
    checkViewsJoinedHeld(s, ctx);
    // GROUPING SETS, CUBE and ROLLUP group the rows once for each grouping set: a row (and its view values) in each, an
    // aggregate of the target list, HAVING or ORDER BY built once for each (checkAcrossRows' repeats)
    const sets = groupingSets(s.groupClause ?? []);
    ctx.sets = sets;
    const fromGen = ctx.gen;
    // PostgreSQL runs the set-returning functions of GROUP BY, and those of target-list columns GROUP BY names (by position
    // or output name), BEFORE it aggregates: each row of the FROM list, and every view value in it, is fed into the
    // aggregates once for each of their rows (GROUP BY generate_series(1, 100000) * 0 made one string_agg of a view's memos
    // 1 GB). So those are weighed first and their rows repeat the FROM list's (targetGen) for every aggregate weighed after
    // them; the other target-list set-returning functions of a grouped SELECT run after aggregating (counted at the end).
    const groupedTargets = groupedTargetIndexes(s.groupClause ?? [], s.targetList ?? []);
    weigh(s.groupClause, ctx);
    const order = [...(s.targetList ?? []).keys()].sort((a, b) => Number(!groupedTargets.has(a)) - Number(!groupedTargets.has(b)));
    let value = 0;
    let row = 0;
    let konst = 0;
    let star = false;
    const colAt: Col[] = [];
    let across: Across = Across.NONE;
    let grouped = false;
    const groupedRows = (rows: RowsOf) => {
      grouped = true;
      rows.targetGen = ctx.gen / fromGen;
      rows.cache.clear();
    };
    for (const index of order) {
      if (!grouped && !groupedTargets.has(index)) groupedRows(ctx.rows);
      const t = s.targetList[index];
      const val = t.ResTarget?.val;
      const fields: any[] | undefined = val?.ColumnRef?.fields;
      if (fields && fields[fields.length - 1]?.A_Star) {
        across = Math.max(across, acrossOf(val, ctx)) as Across;
        // `*` / `t.*` as output columns: each column is one input column (which ones, in which order: not followed)
        value = Math.max(value, ctx.value);
        const all = fields.length === 1 ? read.reduce((a, x) => a + x.row, 0) : ctx.row;
        row += all;
        konst += fields.length === 1 ? read.reduce((a, x) => a + x.konst, 0) : rowKonst(ctx);
        ctx.work += all;
        star = true;
      } else {
        const w = weigh(val, ctx);
        const k = konstOf(val, ctx);
        konst += k;
        value = Math.max(value, w);
        // (the row printed as a record quotes each column and adds a comma)
        row += w + 3 * BYTE;
        ctx.work += 3 * BYTE;
        const last = fields?.[fields.length - 1]?.String?.sval;
        // `(t).*`, `(expr).*`: several output columns, which ones not followed
        if (expandsColumns(val)) star = true;
        const a = acrossOf(val, ctx);
        across = Math.max(across, a) as Across;
        colAt[index] = { name: t.ResTarget?.name ?? last, weight: w, json: jsonRead(val), konst: k, rep: 0, elems: arrayElems(val, ctx), across: a };
      }
    }
    // (every target named by GROUP BY, or none: its set-returning functions still repeat the rows HAVING and ORDER BY aggregate)
    if (!grouped) groupedRows(ctx.rows);
    const cols: Col[] | undefined = star ? undefined : colAt;
    weigh([s.whereClause, s.havingClause, s.sortClause, s.windowClause, s.distinctClause, s.limitCount, s.limitOffset], ctx);
    if (sets > 1) multiplyRows(ctx, sets, 'GROUPING SETS / CUBE / ROLLUP (each grouping set groups every row again)');
    checkMadeRows((s.targetList ?? []).map((t: any) => t.ResTarget), [s.whereClause, joins.map((j) => j.quals), s.groupClause, s.havingClause, s.sortClause, s.windowClause, s.distinctClause, (s.targetList ?? []).map((t: any) => t.ResTarget?.val?.FuncCall?.over)], ctx);
    // the target list's set-returning functions repeat each row of the FROM list (and the view values in it)
    groupedRows(ctx.rows);
    // which output columns repeat view values, and which hold each value once (a date spine's): see viewRepeats
    let i = 0;
    for (const val of cols ? targets : []) {
      const col = cols![i++];
      col.rep = viewRepeats(val, ctx);
      // (grouping sets: a value in one row of each, NULL in the others)
      const d = sets > 1 ? undefined : items.length === 1 && ctx.rows.targetGen === 1 ? distinctOf(val, ctx.rows)
        : items.length === 0 && srfs === 1 ? distinctSeries(val) : undefined;
      if (d) Object.assign(col, { distinct: d.rows, perDay: d.perDay });
    }
    const rep = cols ? Math.max(0, ...cols.map((c) => c.rep)) : viewRepeats(targets, ctx);
    // at most one row: an aggregate of its own (no GROUP BY, no set-returning function anywhere), LIMIT 0 or 1, or a
    // FROM list of one row (rowsOne: none, SELECT of expressions, too) without grouping sets
    const limit = s.limitCount?.A_Const;
    const one = (setReturning === 0 && !(s.groupClause ?? []).length && aggregatesOwn([s.targetList, s.havingClause], ctx))
      || (!!limit?.ival && Number(limit.ival.ival ?? 0) <= 1 && s.limitOption !== 'LIMIT_OPTION_WITH_TIES')
      || (sets <= 1 && rowsOne(ctx.rows));
    shape = { value, row, depth: 1 + ctx.depth, cols, konst, gen: ctx.gen, rep, elems: cols ? Math.max(0, ...cols.map((c) => c.elems ?? Infinity)) : undefined, across, one };
    work = ctx.work;
  }
  if (shape.depth > MAX_DEPTH) throw refuse(`the query nests ${shape.depth} SELECTs (subqueries, and CTEs reading CTEs); at most ${MAX_DEPTH} are allowed`);
  // a row is held whole (formed, sorted, materialized as one tuple): its columns add up, and so does every value built to
  // evaluate it (work: at least the row, each column having been built or read)
  work = Math.max(work, shape.row) + (outermost ? WRAPPER_ROW_COPIES * shape.row : 0);
  if (work > MAX_ROW_GROWTH) throw refuseRow(s.valuesLists ? 'a VALUES row' : outermost ? 'the row of the statement\'s SELECT (its copies in the answer counted)' : 'the row of a SELECT', work);
  return shape;
}

/**
 * The target-list columns (their indexes) a GROUP BY names: by position (GROUP BY 1) or by output name (GROUP BY g, where
 * a target is `... AS g`: counted even where a FROM item's column of that name would be PostgreSQL's choice), in
 * GROUPING SETS, CUBE and ROLLUP too. PostgreSQL evaluates them below the aggregation, set-returning functions included.
 */
function groupedTargetIndexes(groupClause: unknown[], targetList: any[]): Set<number> {
  const found = new Set<number>();
  const visit = (item: any): void => {
    if (item?.GroupingSet) return (item.GroupingSet.content ?? []).forEach(visit);
    // (a parenthesized list of a grouping set: its items)
    if (item?.RowExpr) return (item.RowExpr.args ?? []).forEach(visit);
    if (item?.A_Const?.ival) {
      const position = Number(item.A_Const.ival.ival ?? 0);
      if (position >= 1 && position <= targetList.length) found.add(position - 1);
      return;
    }
    const fields: any[] | undefined = item?.ColumnRef?.fields;
    const name = fields?.length === 1 ? fields[0]?.String?.sval : undefined;
    if (name === undefined) return;
    targetList.forEach((t, i) => {
      const val = t?.ResTarget?.val;
      const own = t?.ResTarget?.name ?? val?.ColumnRef?.fields?.[val.ColumnRef.fields.length - 1]?.String?.sval;
      if (own === name) found.add(i);
    });
  };
  groupClause.forEach(visit);
  return found;
}

/**
 * How many grouping sets a GROUP BY makes (PostgreSQL groups the rows once for each): the product over its items of a
 * plain expression's 1, ROLLUP(n items)'s n + 1, CUBE(n items)'s 2^n, GROUPING SETS (...)'s sum of its items' own.
 */
function groupingSets(items: unknown[]): number {
  const of = (item: any): number => {
    const g = item?.GroupingSet;
    if (!g) return 1;
    const content: unknown[] = g.content ?? [];
    switch (g.kind) {
      case 'GROUPING_SET_ROLLUP': return content.length + 1;
      case 'GROUPING_SET_CUBE': return 2 ** content.length;
      case 'GROUPING_SET_SETS': return content.reduce((a: number, c) => a + of(c), 0);
      default: return 1;
    }
  };
  return items.reduce((a: number, item) => a * of(item), 1);
}

/** The FROM items of a FROM list, each side of a join counted (a join itself, and its alias, not). */
function countFromItems(items: any[]): number {
  let n = 0;
  const stack = [...items];
  while (stack.length) {
    const item = stack.pop();
    if (item?.JoinExpr) stack.push(item.JoinExpr.larg, item.JoinExpr.rarg);
    else n++;
  }
  return n;
}

const refuseColumns = (what: string, n: number) =>
  refuse(`${what} has ${n} output columns; at most ${MAX_COLUMNS} are allowed (PostgreSQL's own limit of a target list)`);

const refuseRow = (what: string, weight: number) =>
  refuse(`${what} can hold up to ${weight > 1e9 ? 'over 10^9' : Math.ceil(weight)} times the largest value a query starts from (a semantic view's value or row, or the query's own text) in one row: every value it evaluates for a row is held until the row is done, so they add up (its columns; its WHERE, JOIN ... ON, GROUP BY, HAVING, ORDER BY, DISTINCT and window expressions; and every value built on the way, the arguments of a comparison, AND / OR / NOT or a function such as length or num_nonnulls too); at most ${MAX_ROW_GROWTH} is allowed (the statement's own row counts ${WRAPPER_ROW_COPIES + 1} times: the answer holds it again, and its text; evaluate fewer or lighter expressions per row, or split the work over CTEs)`);

/** An upper bound of the size of the value `node` builds, in units of the largest value it reads; refuses past MAX_GROWTH. */
function weigh(node: unknown, ctx: Ctx): number {
  if (Array.isArray(node)) return node.reduce((a: number, n) => a + weigh(n, ctx), 0);
  if (!node || typeof node !== 'object') return 0;
  const keys = Object.keys(node);
  if (keys.length !== 1 || !/^[A-Z]/.test(keys[0])) {
    // a plain object (a node's body): the sum of its parts
    return Object.values(node).reduce((a: number, v) => a + weigh(v, ctx), 0);
  }
  const type = keys[0];
  const n = (node as Record<string, any>)[type];
  const w = weighNode(type, n, ctx);
  if (ctx.konst) return w;
  // a List is not a value (IN (...) lists, FROM functions): its items are checked one by one
  if (w > MAX_GROWTH && type !== 'List') throw refuseGrowth(describe(type, n), w);
  if (BUILT.has(type)) ctx.work += w;
  return w;
}

/**
 * The nodes whose value PostgreSQL builds (or, for a column of a view, may detoast: a copy) while it evaluates a row, held
 * in the row's memory until the row is done, out of the statement timeout's reach: each adds its weight to the row's
 * work, the arguments of a function of a fixed-size result (length, num_nonnulls), a comparison or AND / OR too. Not:
 * a list or a clause that holds expressions (their items count), and CASE, COALESCE, GREATEST / LEAST and COLLATE, which
 * return one of their arguments (counted) as it is.
 */
const BUILT = new Set([
  'A_Const', 'SQLValueFunction', 'GroupingFunc', 'ColumnRef', 'TypeCast', 'A_Indirection', 'SubLink', 'A_ArrayExpr', 'RowExpr',
  'A_Expr', 'BoolExpr', 'NullTest', 'BooleanTest', 'FuncCall',
]);

function weighNode(type: string, n: any, ctx: Ctx): number {
  switch (type) {
    case 'String': case 'Integer': case 'Float': case 'Boolean': case 'BitString': case 'A_Star':
      return 0;
    case 'A_Const':
      return literalWeight(n);
    case 'SQLValueFunction': case 'GroupingFunc': case 'ParamRef':
      return ctx.konst ? SMALL_KONST : 1;
    case 'ColumnRef': {
      const fields: any[] = n.fields ?? [];
      const last = fields[fields.length - 1];
      // (a whole row, `o` or `o.*`, of an enclosing query's FROM item is a correlated reference too)
      if (!ctx.konst) markCorrelated(fields, ctx);
      if (last?.A_Star) return printedRow(ctx.konst ? rowKonst(ctx) : ctx.row);
      // a lone name that is also a FROM item's name may be that item's whole row
      if (fields.length === 1 && ctx.names.has(last?.String?.sval)) return ctx.konst ? printedRow(rowKonst(ctx)) : Math.max(printedRow(ctx.row), ctx.value);
      const col = columnRead(fields, ctx);
      if (!col) return ctx.konst ? rowKonst(ctx) : ctx.value;
      if (col.json) JSON_READS.add(n);
      return ctx.konst ? col.konst : col.weight;
    }
    case 'TypeCast':
      return weighCast(n, ctx);
    case 'CollateClause':
      return weigh(n.arg, ctx);
    case 'A_Indirection':
      weigh(n.indirection, ctx);
      return weigh(n.arg, ctx);
    case 'SubLink': {
      if (ctx.konst) {
        // the subquery was weighed (its shape kept) before its constant part is asked for
        const inner = SUBLINK_SHAPES.get(n) ?? VIEW;
        const col = (onlyColumn(inner) ?? inner).konst;
        // (one row's, checkMadeRows: a value built across rows, held to the statement's budget, once for each row of the
        // query that reads it where it is correlated, weighSubquery)
        if (n.subLinkType === 'EXPR_SUBLINK') return col;
        // one element of each row it reads: the rows it makes of no view count
        if (n.subLinkType === 'ARRAY_SUBLINK') return (2 * col + 3 * BYTE) * inner.gen;
        return 0;
      }
      const inner = weighSubquery(n.subselect.SelectStmt, { ctes: ctx.env.ctes, outerValue: ctx.value, outerRow: ctx.row, outerNames: ctx.names, outerSources: ctx.sources, outerGen: ctx.gen, outerCtx: ctx, budget: ctx.env.budget }, ctx, n.subLinkType === 'ARRAY_SUBLINK');
      SUBLINK_SHAPES.set(n, inner);
      ctx.depth = Math.max(ctx.depth, inner.depth);
      weigh(n.testexpr, ctx);
      if (n.subLinkType === 'EXPR_SUBLINK') {
        if (onlyColumn(inner)?.json) JSON_READS.add(n);
        return inner.value;
      }
      // ARRAY(SELECT ...) is built across rows, and printed as text it escapes its elements
      if (n.subLinkType === 'ARRAY_SUBLINK') {
        // (its constant part: one element of each row it reads that no view gave, as konstOf counts it)
        checkHeldRows('ARRAY(SELECT ...)', inner, [n.subselect.SelectStmt], weighNode('SubLink', n, { ...ctx, konst: true, work: 0 }), ctx);
        return Math.max(1, 2 * inner.value + 3 * BYTE);
      }
      // x IN / NOT IN / op ANY (SELECT ...): PostgreSQL hashes the subquery's whole result in memory, never spilled (a
      // hashed SubPlan: NOT IN of 100,000 rows of a 20 KB literal, 2 GB); op ALL (SELECT ...) materializes it
      if (n.subLinkType === 'ANY_SUBLINK' || n.subLinkType === 'ALL_SUBLINK') {
        const what = n.subLinkType === 'ANY_SUBLINK' ? 'IN / NOT IN / ANY (SELECT ...)' : 'ALL (SELECT ...)';
        checkHeldRows(what, inner, [n.subselect.SelectStmt], (onlyColumn(inner) ?? inner).konst * Math.max(1, inner.gen), ctx);
      }
      return 1;
    }
    case 'A_ArrayExpr': case 'RowExpr': {
      // printed as text ('{"a","b"}', '("a","b")'): each element quoted, '"' and '\' escaped (x2), a comma
      const items: unknown[] = n.elements ?? n.args ?? [];
      return 2 * weigh(items, ctx) + 3 * BYTE * (items.length + 1);
    }
    case 'A_Expr': {
      const l = weigh(n.lexpr, ctx);
      const r = weigh(n.rexpr, ctx);
      const op = nameOf(n.name).pop();
      if (n.kind === 'AEXPR_OP' && op === '||') return l + r;
      // a part of JSON: jsonb prints a space after each ',' and ':' ('[1,1]' -> '[1, 1]')
      if (n.kind === 'AEXPR_OP' && op && PART_OPERATORS.has(op)) return isJsonValued(n.lexpr) ? l : 1.5 * l;
      if (ctx.konst) {
        // arithmetic: at most the digits of both operands (a ^ b: a numeric of up to 131,072 digits of two short ones);
        // a comparison: a boolean of the values it reads
        if (n.kind === 'AEXPR_OP' && op === '^') return 1;
        if (n.kind === 'AEXPR_OP' && op && ['+', '-', '*', '/', '%'].includes(op)) return l + r;
        return n.kind === 'AEXPR_NULLIF' ? l : 0;
      }
      // jsonb - key: the rest of its left argument (numbers: at most a numeric, 1)
      if (n.kind === 'AEXPR_OP' && op === '-') return Math.max(1, l);
      if (n.kind === 'AEXPR_NULLIF') return l;
      return 1;
    }
    case 'BoolExpr': case 'NullTest': case 'BooleanTest':
      weigh(n.args ?? n.arg, ctx);
      return ctx.konst ? 0 : 1;
    case 'CaseExpr': {
      weigh(n.arg, ctx);
      let w = weigh(n.defresult, ctx);
      for (const when of n.args ?? []) {
        weigh(when.CaseWhen?.expr, ctx);
        w = Math.max(w, weigh(when.CaseWhen?.result, ctx));
      }
      return w;
    }
    case 'CoalesceExpr': case 'MinMaxExpr':
      return AT_MOST_ONE(...(n.args ?? []).map((a: unknown) => weigh(a, ctx)));
    case 'FuncCall':
      return weighCall(n, ctx);
    case 'WindowDef': case 'SortBy':
      if (!ctx.konst) weigh(Object.values(n), ctx);
      return 0;
    default:
      // anything else (a function's named argument...): the sum of its parts
      return Object.values(n).reduce((a: number, v) => a + weigh(v, ctx), 0);
  }
}

/** A whole row printed as a record: '("a","b")', each column quoted with '"' and '\' doubled (its columns carry the rest). */
const printedRow = (row: number) => 2 * row + 2 * BYTE;

function weighCall(n: any, ctx: Ctx): number {
  const parts = nameOf(n.funcname);
  const name = parts[parts.length - 1]?.toLowerCase();
  const args: unknown[] = n.args ?? [];
  const w = args.map((a) => weigh(a, ctx));
  if (n.agg_within_group) {
    // mode() / percentile_disc(f) WITHIN GROUP (ORDER BY x): the value is one of the x
    for (const s of n.agg_order ?? []) w.push(weigh(s?.SortBy?.node, ctx));
  }
  const sum = (from = 0) => w.slice(from).reduce((a, b) => a + b, 0);
  if (!ctx.konst) {
    weigh([n.agg_within_group ? undefined : n.agg_order, n.agg_filter, n.over], ctx);
    // a row source: its rows multiply the FROM list's
    if ((name === 'round' || name === 'trunc') && args.length > 1) roundScale(name, args[1]);
    if (name === 'generate_series') multiplyRows(ctx, seriesRows(args), 'generate_series(...)');
    else if (name === 'unnest') multiplyRows(ctx, unnestRows(args, ctx), 'unnest(...)');
    // (as a window function too: each row's value is that of all the rows of its frame)
    if (ACROSS_ROWS.has(name)) {
      checkAcrossRows(`${name}(...)`, args.reduce((a: number, arg) => a + konstOf(arg, ctx), 0), sum(), args);
      // (once for each grouping set: GROUPING SETS ((), (), ...) of 4,096 sets grouped 3,000 rows of a view into 788 MB)
      const repeats = viewRepeats([args, n.agg_filter], ctx) * (ctx.sets ?? 1);
      if (repeats > ACROSS_ROWS_MAX_VIEW_REPEATS) throw refuseRepeats(`${name}(...)`, repeats, ctx.sets);
      // a value already built across rows, aggregated again: each row adds all of it (see Across)
      const across = acrossOf([args, n.agg_within_group ? n.agg_order : undefined], ctx);
      // an aggregate whose arguments read only an enclosing query's columns is that query's (PostgreSQL): weighed in its
      // rows and grouping sets too (SELECT (SELECT array_agg(v.memo)) FROM v, generate_series(1, 100000): 5.87 GB)
      const levels = n.over ? [] : aggregateLevels(n, ctx);
      if ((across === Across.REPEATED || (across === Across.DISJOINT && n.over)) && !(oneRow(ctx) && (n.over || levels.every(oneRow)))) {
        throw refuseAcrossAgain(`${name}(...)${n.over ? ' (a window aggregate: each row holds all of its frame)' : ''}`);
      }
      // its constant bytes (those of each row, times the rows of no view it reads: konstOf), once for each grouping set,
      // count toward the statement's budget
      const before = ctx.env.budget.bytes;
      spendAcrossRows(`${name}(...)`, weighCall(n, { ...ctx, konst: true, work: 0 }) * Math.max(ctx.sets ?? 1, ...levels.map((c) => c.sets ?? 1)), ctx);
      // (an enclosing query's aggregate is built once, in its rows: not again for each row of the subquery it is in)
      if (levels.length) ctx.env.budget.enclosing += ctx.env.budget.bytes - before;
      for (const outer of levels) {
        const r = viewRepeats([args, n.agg_filter], outer) * (outer.sets ?? 1);
        if (r > ACROSS_ROWS_MAX_VIEW_REPEATS) throw refuseRepeats(`${name}(...) (an aggregate of an enclosing query: its arguments read only that query's columns, or may: qualify a subquery's own columns, f.memo)`, r, outer.sets);
      }
      // (after the checks above, whose reasons say more where they refuse too)
      if (repeats > 0) checkViewsJoined(`${name}(...)`, ctx);
    }
  }
  // (the rows an aggregate reads: its own query's, or an enclosing query's; see aggregateLevels)
  const gen = ctx.perRow && !n.over ? 0 : ACROSS_ROWS.has(name) && ctx.konst && !n.over ? Math.max(ctx.gen, ...aggregateLevels(n, ctx).map((c) => c.gen)) : ctx.gen;
  // (a row of unnest(ARRAY[...]) holds one element: the constant part of its heaviest, checkMadeRows)
  const element = ctx.perRow ? unnestElement(name, args, (e) => weigh(e, ctx)) : undefined;
  if (element !== undefined) return element;
  const literal = (i: number, what: string): number => literalLength(args[i]) ?? refuseLiteral(name, what);
  switch (name) {
    case 'replace': case 'regexp_replace': {
      // output <= input x replacement length (replace); each match may also repeat itself (\1, \&) in regexp_replace
      const length = literal(2, 'replacement (third argument)');
      return (w[0] ?? 0) * (name === 'replace' ? Math.max(1, length) : 2 * length + 1);
    }
    case 'array_to_string':
      // the separator comes after every element (at most one per byte of the array as text), the null string for each NULL
      return (w[0] ?? 0) * (1 + literal(1, 'separator (second argument)') + (args.length > 2 ? literal(2, 'null string (third argument)') : 0));
    case 'concat_ws':
      // the separator comes between every two arguments: VARIADIC would make that every two elements of an array
      if (n.func_variadic) throw refuse('concat_ws with VARIADIC is not allowed (the separator would repeat once per element of the array)');
      return (w[0] ?? 0) * Math.max(1, w.length - 2) + sum(1);
    case 'regexp_match': {
      // text[] of the capturing groups (each at most the string, one per '(' of the pattern), printed escaped (x2)
      const groups = (literalText(args[1]) ?? refuseLiteral(name, 'pattern (second argument)')).split('(').length;
      return 2 * (w[0] ?? 0) * groups + 3 * BYTE * (groups + 1);
    }
    case 'translate':
      // each character may become one of up to 4 bytes
      return 4 * (w[0] ?? 0);
    case 'to_char':
      // each pattern of the format prints at most 8 times its length ('RN': 15 characters, 'J': 7)
      return 8 * (w[1] ?? 0);
    case 'jsonb_extract_path_text': case 'json_extract_path_text':
      return 1.5 * AT_MOST_ONE(...w);
  }
  if (JSON_VALUED.has(name)) {
    // a JSON argument is copied as it is, however deep the nesting (jsonb reprints it once: its spaces after ',' and ':'
    // are counted where compact JSON enters, a literal or ->); any other is escaped, up to 6x
    // (the constant part: a string literal escaped as JSON escapes it, not up to 6x)
    const json = args.reduce((a: number, arg, i) => {
      const c = ctx.konst ? (arg as any)?.A_Const : undefined;
      const escaped = !c ? (jsonRead(arg) ? 1 : 6) * w[i] : c.sval ? Buffer.byteLength(JSON.stringify(c.sval.sval ?? ''), 'utf8') * BYTE : w[i];
      return a + escaped + 5 * BYTE;
    }, 5 * BYTE);
    if (ctx.konst) return ACROSS_ROWS.has(name) ? json * gen : json;
    return ACROSS_ROWS.has(name) ? Math.max(1, json) : json;
  }
  // the constant part of a value built across rows: that of each row, for every row made of no view
  if (name === 'array_agg') return ctx.konst ? (2 * sum() + 3 * BYTE) * gen : Math.max(1, 2 * sum() + 3 * BYTE);
  if (ACROSS_ROWS.has(name)) return ctx.konst ? sum() * gen : Math.max(1, sum());
  if (BOUNDED_RESULT.has(name)) {
    if (!ctx.konst) return 1;
    // a number, date or fixed-size text of its arguments (power and exp: a numeric of 131,072 digits of short ones)
    if (name === 'power' || name === 'exp') return 1;
    // round(x, s) / trunc(x, s) print s digits after the point, whatever x (round(1, 16383): 16,385 bytes)
    if ((name === 'round' || name === 'trunc') && args.length > 1) return (w[0] ?? 0) + (Math.max(0, roundScale(name, args[1])) + 3) * BYTE;
    return args.length ? AT_MOST_ONE(...w) : SMALL_KONST;
  }
  if (ONE_OF_ARGS.has(name)) return AT_MOST_ONE(...w);
  return sum();
}

/**
 * The enclosing queries an aggregate call may belong to. PostgreSQL gives an aggregate the level of the variables its
 * arguments (ORDER BY and FILTER too) read, the nearest of them: one whose arguments read only an enclosing query's
 * columns (SELECT (SELECT array_agg(v.memo)) FROM v GROUP BY GROUPING SETS (...)) aggregates that query's rows, once for
 * each of its grouping sets; with no variable, its own query's. A column's level: the nearest query with a FROM item of
 * its qualifier, or one that has (or may have: a view's columns are not known here) its name; a reference inside a
 * subquery may be that subquery's own (not counted) or any level. The contexts of every level (1 = the enclosing
 * query) that may be the aggregate's, as an upper bound: none if a column of its own query is read.
 */
function aggregateLevels(n: any, ctx: Ctx): Ctx[] {
  const chain: Ctx[] = [];
  for (let c: Ctx | undefined = ctx; c && chain.length <= MAX_DEPTH + 1; c = c.env.outerCtx) chain.push(c);
  if (chain.length < 2) return [];
  const locals = chain.map((c) => c.sources.filter((src) => !c.env.outerSources.includes(src)));
  // each reference's possible levels; `bound`: the nearest level an aggregate may have (the least of the references' farthest)
  const possible = new Set<number>();
  let bound = Infinity;
  const read = (fields: any[], inSubquery: boolean) => {
    const parts = fields.map((f) => f?.String?.sval as string | undefined);
    const star = !!fields[fields.length - 1]?.A_Star;
    const levels: number[] = [];
    for (let i = 0; i < chain.length; i++) {
      const local = locals[i];
      let could: boolean;
      let definite = false;
      if (parts.length === 2 && parts[0] !== undefined) {
        could = definite = local.some((src) => src.name === parts[0]);
      } else if (parts.length === 1 && parts[0] !== undefined && !star) {
        const name = parts[0];
        // a column of that name at any level first (PostgreSQL), a FROM item's alias of it (a whole row) only if none has
        // one: an alias match may be this level's, never surely (`array_agg(memo) FROM (VALUES (1)) AS memo(x)` read the
        // enclosing view's memo, 4.31 GB)
        definite = local.some((src) => columnIndex(src.shape).named.has(name));
        could = definite || local.some((src) => src.name === name || !!columnIndex(src.shape).any);
      } else {
        could = local.length > 0;
      }
      if (could) levels.push(i);
      if (definite && !inSubquery) break;
    }
    if (!levels.length) levels.push(0);
    for (const l of levels) possible.add(l);
    if (!inSubquery) bound = Math.min(bound, levels[levels.length - 1]);
  };
  const visit = (v: unknown, inSubquery: boolean): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach((x) => visit(x, inSubquery));
    const keys = Object.keys(v);
    const node = (v as Record<string, any>)[keys[0]];
    if (keys.length === 1 && keys[0] === 'ColumnRef') return read(node.fields ?? [], inSubquery);
    if (keys.length === 1 && keys[0] === 'SubLink') return visit(Object.values(node), true);
    Object.values(v).forEach((x) => visit(x, inSubquery));
  };
  visit([n.args, n.agg_order, n.agg_filter], false);
  return [...possible].filter((l) => l >= 1 && l <= bound).map((l) => chain[l]);
}

/** The most digits after the point round(x, s) and trunc(x, s) may be asked for (a literal s). */
const MAX_ROUND_SCALE = 100;
/**
 * The scale of round(x, s) / trunc(x, s): an integer literal of at most MAX_ROUND_SCALE. Its value prints s digits after
 * the point whatever x is (round(g, 16383)::text aggregated over 100,000 rows: 1.63 GB), so a scale read from a column
 * or built by the query is refused, as is a larger one.
 */
function roundScale(name: string, node: any): number {
  let c = node;
  while (c?.TypeCast && INTEGER_TYPES.has(nameOf(c.TypeCast.typeName?.names).pop()?.toLowerCase() ?? '') && !(c.TypeCast.typeName?.arrayBounds ?? []).length) c = c.TypeCast.arg;
  const scale = c?.A_Const?.ival ? Number(c.A_Const.ival.ival ?? 0) : undefined;
  if (scale === undefined || scale > MAX_ROUND_SCALE) {
    throw refuse(`${name}(x, s)'s scale (second argument) must be an integer literal of at most ${MAX_ROUND_SCALE} (MAX_ROUND_SCALE): the value prints s digits after the point whatever x is (round(1, 16383) is 16,385 bytes)`);
  }
  return scale;
}

const refuseAcrossAgain = (what: string) =>
  refuse(`${what} aggregates a value that is already built across rows (string_agg, array_agg, json(b)_agg, json(b)_object_agg, a window aggregate such as string_agg(...) OVER (), ARRAY(SELECT ...), or a scalar subquery's, CTE's or subquery's column of one) over rows that may each hold all of it (a subquery's aggregate joined with a view or series, read by a scalar subquery in every row, or a window aggregate's in every row of its frame): every row would add the whole value again. Aggregate such a value again only where the rows aggregated are at most one (its FROM a single aggregate without GROUP BY, or LIMIT 1), or aggregate the view's own columns once`);

/** The aggregates of the allow-list (a SELECT with one of its own, without GROUP BY, makes one row). */
const AGGREGATES = new Set(['count', 'sum', 'avg', 'min', 'max', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp',
  'percentile_cont', 'percentile_disc', 'mode', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every', 'json_agg', 'jsonb_agg',
  'json_object_agg', 'jsonb_object_agg', 'corr', 'covar_pop', 'covar_samp', 'regr_slope', 'regr_intercept']);

/** Whether expressions of a SELECT (ctx) call an aggregate that is surely its own (not a window, not in a subquery, reading its own columns or none). */
function aggregatesOwn(node: unknown, ctx: Ctx): boolean {
  let found = false;
  const visit = (v: unknown): void => {
    if (found || !v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(visit);
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'SubLink') return;
    if (keys.length === 1 && keys[0] === 'FuncCall') {
      const f = (v as any).FuncCall;
      if (!f.over && AGGREGATES.has(nameOf(f.funcname).pop()?.toLowerCase() ?? '') && aggregateLevels(f, ctx).length === 0) found = true;
    }
    Object.values(v).forEach(visit);
  };
  visit(node);
  return found;
}

/** Whether the rows a SELECT (ctx) aggregates are at most one: its FROM list makes one row (rowsOne), in one grouping set. */
function oneRow(ctx: Ctx): boolean {
  return !!ctx.rows && (ctx.sets ?? 1) <= 1 && rowsOne(ctx.rows);
}

/**
 * Whether a SELECT's FROM list makes at most one row for each row of `except` (all of it without): every other item
 * (read) makes one row, none is FULL JOINed (a FULL JOIN of one-row items makes two: 99 of them, 99 rows) and no
 * set-returning function (target list, ORDER BY, GROUP BY, DISTINCT ON) repeats the rows. The one definition of one
 * row: of a SELECT's shape (Shape.one), of the rows it aggregates (oneRow), of a column's value in one row (acrossOf).
 */
function rowsOne(rows: RowsOf, except?: Source): boolean {
  return rows.fullJoins === 0 && rows.setReturning === 0 && rows.items.every((i) => i.source === except || i.source.shape.one);
}

/**
 * Whether an expression of a SELECT (ctx) reads a value built across rows (see Across), as it reads it: an across-rows
 * aggregate of its own is DISJOINT (REPEATED over several grouping sets; a window's, REPEATED); a FROM item's DISJOINT
 * column stays DISJOINT only where every other FROM item makes one row (REPEATED otherwise, and of an enclosing query's
 * or a join alias's); a scalar subquery of one, or ARRAY(SELECT ...), REPEATED. A function of a fixed-size result
 * (cardinality, length), a comparison or a cast to a number, date... reads none.
 */
function acrossOf(node: unknown, ctx: Ctx): Across {
  let worst: Across = Across.NONE;
  const local = new Set(ctx.rows?.items.map((i) => i.source));
  const of = (src: Source, a: Across | undefined) => {
    if (!a) return;
    if (a === Across.DISJOINT && (!local.has(src) || (ctx.sets ?? 1) > 1 || !rowsOne(ctx.rows!, src))) a = Across.REPEATED;
    worst = Math.max(worst, a) as Across;
  };
  const visit = (v: unknown): void => {
    if (worst === Across.REPEATED || !v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(visit);
    const keys = Object.keys(v);
    if (keys.length !== 1 || !/^[A-Z]/.test(keys[0])) return Object.values(v).forEach(visit);
    const type = keys[0];
    const n = (v as Record<string, any>)[type];
    switch (type) {
      case 'ColumnRef': {
        const fields: any[] = n.fields ?? [];
        const parts = fields.map((f) => f?.String?.sval as string | undefined);
        const star = !!fields[fields.length - 1]?.A_Star;
        const column = columnName(fields);
        for (const src of ctx.sources) {
          if (star) {
            if (fields.length === 2 && src.name !== parts[0]) continue;
            of(src, src.shape.across);
            continue;
          }
          // a lone name may be a FROM item's whole row
          if (fields.length === 1 && src.name === parts[0]) of(src, src.shape.across);
          if (!column) {
            of(src, src.shape.across);
            continue;
          }
          if (column.rel !== undefined && src.name !== column.rel) continue;
          const index = columnIndex(src.shape);
          for (const c of [index.named.get(column.name), index.any]) if (c) of(src, c.across);
        }
        return;
      }
      case 'SubLink': {
        if (n.subLinkType === 'ARRAY_SUBLINK') worst = Across.REPEATED;
        else if (n.subLinkType === 'EXPR_SUBLINK') {
          const inner = SUBLINK_SHAPES.get(n);
          if (!inner || (onlyColumn(inner) ?? inner).across) worst = Across.REPEATED;
        }
        return;
      }
      case 'BoolExpr': case 'NullTest': case 'BooleanTest': case 'SortBy': case 'WindowDef':
        return;
      case 'A_Expr': {
        const op = nameOf(n.name).pop() ?? '';
        // an operator's result holds its operands (||, jsonb's - and #-, ->, …) unless it is a truth value: each operand is
        // looked at but for the comparisons and tests (a number built across rows is no value built across rows anyway)
        if (n.kind === 'AEXPR_OP' && !TRUTH_OPERATORS.has(op)) return visit([n.lexpr, n.rexpr]);
        if (n.kind === 'AEXPR_NULLIF') return visit(n.lexpr);
        return;
      }
      case 'A_Indirection': {
        // one element of an array_agg, (array_agg(x ORDER BY d))[1]: one of its rows' x, not the array built across them
        // (last minus first); a slice, a computed index or any other array keeps the whole value's
        const agg = n.arg?.FuncCall;
        if (!agg || nameOf(agg.funcname).pop()?.toLowerCase() !== 'array_agg' || !oneElement(n.indirection)) return Object.values(n).forEach(visit);
        // (array_agg OVER: an element is copied into every row of its frame, as by first_value)
        const before = worst;
        visit(agg.args);
        if (agg.over && worst > before) worst = Across.REPEATED;
        return;
      }
      case 'CaseExpr':
        return visit([n.defresult, ...(n.args ?? []).map((w: any) => w?.CaseWhen?.result)]);
      case 'TypeCast': {
        const type = nameOf(n.typeName?.names).pop()?.toLowerCase() ?? '';
        if (FIXED_TYPES.has(type) && !(n.typeName?.arrayBounds ?? []).length) return;
        return visit(n.arg);
      }
      case 'FuncCall': {
        const name = nameOf(n.funcname).pop()?.toLowerCase() ?? '';
        if (ACROSS_ROWS.has(name)) {
          worst = Math.max(worst, n.over || (ctx.sets ?? 1) > 1 || (ctx.rows?.setReturning ?? 0) > 0 ? Across.REPEATED : Across.DISJOINT) as Across;
          return;
        }
        if (BOUNDED_RESULT.has(name)) return;
        // a window function answering one of its arguments (first_value, last_value, nth_value, max/min OVER) copies that
        // value into every row of its frame: a value built across rows so answered is repeated. lag and lead move each
        // value to one other row by a literal offset; by a computed one (lag(big, r - 1)) they copy one row's into every row
        const shift = (name === 'lag' || name === 'lead') && ((n.args ?? []).length < 2 || isIntegerLiteral(n.args[1]));
        if (n.over && !shift) {
          const before = worst;
          visit([n.args, n.agg_within_group ? n.agg_order : undefined]);
          if (worst > before) worst = Across.REPEATED;
          return;
        }
        return visit([n.args, n.agg_within_group ? n.agg_order : undefined]);
      }
      default:
        return Object.values(n).forEach(visit);
    }
  };
  visit(node);
  return worst;
}

/** Whether subscripts take one element: each an integer literal index, no slice ([1], [1][2]; not [1:2], [n], .field). */
function oneElement(indirection: any[] | undefined): boolean {
  return !!indirection?.length && indirection.every((i) => {
    const x = i?.A_Indices;
    return !!x && !x.is_slice && !x.lidx && isIntegerLiteral(x.uidx);
  });
}

/** Whether an expression is an integer literal (lag's and lead's offset 1, -1, 12). */
function isIntegerLiteral(node: any): boolean {
  return !!node?.A_Const && 'ival' in node.A_Const;
}

const refuseLiteral = (name: string, what: string): never => {
  throw refuse(`${name}'s ${what} must be a string literal`);
};

/**
 * A cast's weight: the value it makes, as text. Text input can make more than it reads: a number's exponent
 * ('1e131071': 131,072 digits), a char(n)'s padding, a numeric(p, s)'s digits, each element of an array; JSON text
 * built by the query could hold such numbers for jsonb to print, so json/jsonb take only literals or JSON values.
 */
function weighCast(n: any, ctx: Ctx): number {
  const names = nameOf(n.typeName?.names).map((s) => s.toLowerCase());
  const type = names[names.length - 1];
  const array = (n.typeName?.arrayBounds ?? []).length > 0;
  const typmod = Number(n.typeName?.typmods?.[0]?.A_Const?.ival?.ival ?? 0);
  const literal = literalLength(n.arg) !== undefined || n.arg?.A_Const?.isnull === true;
  const w = weigh(n.arg, ctx);
  if (!literal && JSON_TYPES.has(type) && (array || !isJsonValued(n.arg))) {
    throw refuse(`a cast to ${type}${array ? '[]' : ''} must be of a string literal or a JSON value (to_json, json_build_object...): JSON text built by the query could hold a number like 1e131071, which prints as 131,072 digits`);
  }
  if (!literal && NUMERIC_TYPES.has(type) && array) throw refuse(`a cast to ${type}[] must be of a string literal (a number like 1e131071 prints as 131,072 digits)`);
  const pad = TEXT_TYPES.has(type) ? typmod : NUMERIC_TYPES.has(type) ? typmod + 2 : 0;
  if (array) return w * (10 + pad);
  if (TEXT_TYPES.has(type)) return w + pad * BYTE;
  // (a literal's weight counts the space jsonb prints after each ',' and ':')
  if (JSON_TYPES.has(type)) return type === 'jsonb' && !literal ? 1.5 * w : w;
  if (NUMERIC_TYPES.has(type)) {
    // the constant part: a view's value is a view's (w 0), a number's digits are its own; text built by the query
    // ('1e' || '131071') or a CTE's constant column may print as 131,072 digits
    if (ctx.konst && !literal && (w === 0 || isNumberExpr(n.arg))) return w + (pad + 3) * BYTE;
    return Math.max(w, (literal ? pad + 3 : NUMERIC_MAX_BYTES) * BYTE);
  }
  // a date, time, interval, integer, float, boolean or uuid, whatever its input (the constant part: its input's)
  return ctx.konst ? Math.min(w, FIXED_MAX_BYTES * BYTE) : FIXED_MAX_BYTES * BYTE;
}

/**
 * A shape read under other column names (`AS x(a, b)`, `WITH x(a, b)`): the first columns renamed in order; without
 * its columns known, nothing to rename.
 */
function renamed(shape: Shape, colnames: any[] | undefined): Shape {
  if (!colnames?.length || !shape.cols) return shape;
  const names = nameOf(colnames);
  return { ...shape, cols: shape.cols.map((c, i) => (i < names.length ? { ...c, name: names[i] } : c)) };
}

/**
 * The column `fields` (`c` or `rel.c`) may read: the heaviest of the FROM items' columns it may name (any column of an
 * item whose columns are not known, one of no known name), JSON if all of them are; undefined if none is found.
 */
function columnRead(fields: any[], ctx: Ctx): Pick<Col, 'weight' | 'json' | 'konst'> | undefined {
  const column = columnName(fields);
  if (!column) return undefined;
  const { rel, name } = column;
  let weight = -1;
  let json = true;
  let konst = 0;
  for (const src of ctx.sources) {
    if (rel !== undefined && src.name !== rel) continue;
    const index = columnIndex(src.shape);
    for (const c of [index.named.get(name), index.any]) {
      if (!c) continue;
      weight = Math.max(weight, c.weight);
      json &&= c.json;
      konst = Math.max(konst, c.konst);
    }
  }
  return weight < 0 ? undefined : { weight, json, konst };
}

/**
 * A shape's columns by name, built once per shape (a CTE read by many FROM items is one shape): the heaviest column of
 * each name, JSON if all of them are, and `any`, what every name may read (the columns of no known name; all of them,
 * at the shape's heaviest value and not JSON, when its columns are not known). A lookup is then one get per FROM item,
 * not a pass over its columns (a CTE of 1,000 columns read 1,000 times by 1,000 names took minutes).
 */
interface ColumnIndex { named: Map<string, Omit<Col, 'name'>>; any?: Omit<Col, 'name'> }
const COLUMN_INDEXES = new WeakMap<Shape, ColumnIndex>();
function columnIndex(shape: Shape): ColumnIndex {
  let index = COLUMN_INDEXES.get(shape);
  if (index) return index;
  // (two columns of one name: each value of either, in the rows of both)
  const merged = (a: Omit<Col, 'name'> | undefined, c: Omit<Col, 'name'>) => (a
    ? { weight: Math.max(a.weight, c.weight), json: a.json && c.json, konst: Math.max(a.konst, c.konst), rep: a.rep + c.rep, elems: Math.max(a.elems ?? Infinity, c.elems ?? Infinity), across: Math.max(a.across ?? Across.NONE, c.across ?? Across.NONE) as Across }
    : { weight: c.weight, json: c.json, konst: c.konst, rep: c.rep, distinct: c.distinct, perDay: c.perDay, elems: c.elems, across: c.across });
  index = { named: new Map() };
  if (!shape.cols) index.any = { weight: shape.value, json: false, konst: shape.konst, rep: shape.rep, elems: shape.elems, across: shape.across };
  for (const c of shape.cols ?? []) {
    if (c.name === undefined) index.any = merged(index.any, c);
    else index.named.set(c.name, merged(index.named.get(c.name), c));
  }
  COLUMN_INDEXES.set(shape, index);
  return index;
}

/** Whether an expression, already weighed, reads a JSON value: a JSON expression, or a column or scalar subquery of one. */
function jsonRead(node: any): boolean {
  return isJsonValued(node) || (!!node?.ColumnRef && JSON_READS.has(node.ColumnRef)) || (!!node?.SubLink && JSON_READS.has(node.SubLink));
}

/** Whether an expression's value is JSON (its text is not escaped again where JSON is built). */
function isJsonValued(node: any): boolean {
  if (node?.FuncCall) return JSON_VALUED.has(nameOf(node.FuncCall.funcname).pop()?.toLowerCase() ?? '');
  if (node?.TypeCast) {
    const names = nameOf(node.TypeCast.typeName?.names);
    return JSON_TYPES.has(names[names.length - 1]?.toLowerCase()) && !(node.TypeCast.typeName?.arrayBounds ?? []).length;
  }
  if (node?.A_Expr) return node.A_Expr.kind === 'AEXPR_OP' && ['->', '#>'].includes(nameOf(node.A_Expr.name).pop() ?? '');
  return false;
}

/**
 * A literal's weight: its share of QUERY_MAX_BYTES, so that ARRAY[1, 2, ... 500] is light and 'x' repeated 10^k times
 * by CTEs is not; as printed wherever it is read: a number in it with an exponent counts its digits (1e1000 prints
 * as 1,001 digits as a numeric or in jsonb), jsonb prints a space after each ',' and ':', X'1F' prints 4 bits a digit.
 */
function literalWeight(c: any): number {
  if (c.isnull) return 4 * BYTE;
  const text: string = c.sval?.sval ?? c.fval?.fval ?? c.bsval?.bsval ?? String(c.ival?.ival ?? c.boolval?.boolval ?? 0);
  let bytes = Math.max(1, Buffer.byteLength(text, 'utf8'));
  if (c.bsval && /^x/i.test(text)) bytes *= 4;
  // (0xFFFF... prints in decimal: 1.21 digits a hex digit)
  else if (c.fval && /^-?0x/i.test(text)) bytes *= 1.25;
  for (let i = text.indexOf(','); i >= 0; i = text.indexOf(',', i + 1)) bytes++;
  for (let i = text.indexOf(':'); i >= 0; i = text.indexOf(':', i + 1)) bytes++;
  // (a lookbehind of one character: no backtracking over long runs of digits)
  for (const m of text.matchAll(/(?<=[0-9.])[eE][+-]?0*(\d{1,7})/g)) bytes += Math.min(Number(m[1]), NUMERIC_MAX_BYTES);
  return bytes * BYTE;
}

/** The text of a string literal, possibly cast; undefined for anything else. */
function literalText(node: any): string | undefined {
  const c = node?.TypeCast ? node.TypeCast.arg?.A_Const : node?.A_Const;
  return c?.sval ? (c.sval.sval ?? '') : undefined;
}

/** The byte length of a string (or NULL) literal, possibly cast; undefined for anything else. */
function literalLength(node: any): number | undefined {
  const c = node?.TypeCast ? node.TypeCast.arg?.A_Const : node?.A_Const;
  if (!c) return undefined;
  if (c.isnull) return 0;
  return c.sval ? Buffer.byteLength(c.sval.sval ?? '', 'utf8') : undefined;
}

function describe(type: string, n: any): string {
  if (type === 'FuncCall') return `${nameOf(n.funcname).join('.')}(...)`;
  if (type === 'A_Expr') return `operator ${nameOf(n.name).join('.')}`;
  if (type === 'ColumnRef') return `column ${nameOf(n.fields).join('.') || '*'}`;
  if (type === 'TypeCast') return `a cast to ${nameOf(n.typeName?.names).join('.')}${(n.typeName?.arrayBounds ?? []).length ? '[]' : ''}`;
  if (type === 'A_ArrayExpr') return 'ARRAY[...]';
  if (type === 'A_Const') return 'a literal';
  if (type === 'RowExpr') return 'ROW(...)';
  if (type === 'SubLink') return n.subLinkType === 'ARRAY_SUBLINK' ? 'ARRAY(SELECT ...)' : '(SELECT ...)';
  return type;
}

// ---- optimization fences ----------------------------------------------------------------------------------------

const OFFSET_0 = { A_Const: { ival: {} } };

/**
 * The statement with every CTE AS MATERIALIZED and every derived table given OFFSET 0 (unless it has an OFFSET), so
 * PostgreSQL plans each on its own instead of merging them into one expression. The places come from the parse tree
 * (a CTE's name, a subquery's nodes) and the scanner's tokens (never a text search: strings and comments are tokens);
 * the result must parse to the caller's tree with exactly those fences added, or the query is refused.
 */
export async function fenceStatement(statement: string): Promise<string> {
  const tree = (await parse(statement)) as { stmts: { stmt: Record<string, any> }[] };
  const stmt = tree.stmts[0].stmt;
  const tokens = (await scan(statement)).tokens.filter((t) => t.tokenName !== 'C_COMMENT' && t.tokenName !== 'SQL_COMMENT');
  // each '(' with its ')', each token with the innermost '(' around it (-1: none), each token by its offset
  const match = new Map<number, number>();
  const around: number[] = [];
  const at = new Map<number, number>();
  const stack: number[] = [];
  tokens.forEach((t, i) => {
    at.set(t.start, i);
    if (t.text === ')' && stack.length) match.set(stack.pop()!, i);
    around.push(stack.length ? stack[stack.length - 1] : -1);
    if (t.text === '(') stack.push(i);
  });
  /** the last token starting at or before `offset` */
  const tokenAt = (offset: number): number => {
    let lo = 0;
    let hi = tokens.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (tokens[mid].start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const cannot = (why: string) => refuse(`the query could not be fenced (${why})`);
  const edits: { at: number; end: number; text: string }[] = [];
  const expected = JSON.parse(JSON.stringify(stmt)) as Record<string, any>;
  walk(expected, (node, type) => {
    if (type === 'CommonTableExpr') {
      let i = at.get(node.location) ?? -1;
      if (i < 0) throw cannot(`CTE ${node.ctename} not found`);
      i++;
      if (tokens[i]?.text === '(') i = (match.get(i) ?? -2) + 1;
      if (tokens[i]?.text.toUpperCase() !== 'AS') throw cannot(`CTE ${node.ctename} has no AS`);
      let j = i + 1;
      while (tokens[j] && /^(NOT|MATERIALIZED)$/i.test(tokens[j].text)) j++;
      if (tokens[j]?.text !== '(') throw cannot(`CTE ${node.ctename} has no query`);
      edits.push({ at: tokens[i].end, end: tokens[j].start, text: ' MATERIALIZED ' });
      node.ctematerialized = 'CTEMaterializeAlways';
    } else if (type === 'RangeSubselect') {
      const sub = node.subquery.SelectStmt;
      if (sub.limitOffset) return;
      let lo = Infinity;
      let hi = -1;
      walkLocations(sub, (at) => { lo = Math.min(lo, at); hi = Math.max(hi, at); });
      // the innermost parentheses around all of the subquery that open a query (SELECT, VALUES, WITH, TABLE or another '('):
      // outwards from the subquery's first token, never a scan of all of them (a query may have thousands of subqueries).
      // VALUES has no offset in the tree and its first row's parentheses would pass for a query's, `((SELECT 'a'))` or
      // `((1))` a query's in parentheses: a first offset behind VALUES and '('s starts at that VALUES
      let first = tokenAt(lo);
      let before = first - 1;
      while (tokens[before]?.text === '(') before--;
      if (tokens[before]?.text.toUpperCase() === 'VALUES') first = before;
      let open = -1;
      for (let o = around[first] ?? -1; o >= 0; o = around[o]) {
        const c = match.get(o);
        if (c !== undefined && tokens[c].start > hi && /^(SELECT|VALUES|WITH|TABLE|\()$/i.test(tokens[o + 1]?.text ?? '')) {
          open = o;
          break;
        }
      }
      if (open < 0) throw cannot('a derived table was not found');
      const close = tokens[match.get(open)!];
      edits.push({ at: close.start, end: close.start, text: ' OFFSET 0' });
      sub.limitOffset = OFFSET_0;
      if (sub.limitOption === 'LIMIT_OPTION_DEFAULT') sub.limitOption = 'LIMIT_OPTION_COUNT';
    }
  });
  // one pass over the text, the edits in order
  const bytes = Buffer.from(statement, 'utf8');
  const pieces: Buffer[] = [];
  let done = 0;
  for (const e of edits.sort((a, b) => a.at - b.at)) {
    pieces.push(bytes.subarray(done, e.at), Buffer.from(e.text));
    done = e.end;
  }
  pieces.push(bytes.subarray(done));
  const fenced = Buffer.concat(pieces).toString('utf8');
  // a fence put in the wrong parentheses (as a VALUES row's were) makes text PostgreSQL refuses: refused here with the
  // rest, never a parser's error thrown out of the guard
  const again = (await parse(fenced).catch(() => { throw cannot('the fenced statement does not parse'); })) as { stmts: { stmt: Record<string, any> }[] };
  if (again.stmts.length !== 1 || !sameTree(again.stmts[0].stmt, expected)) {
    throw cannot('the fenced statement is not the query');
  }
  return fenced;
}

function walkLocations(value: unknown, visit: (at: number) => void): void {
  if (Array.isArray(value)) return value.forEach((v) => walkLocations(v, visit));
  if (!value || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(value)) {
    if (key === 'location' && typeof child === 'number' && child >= 0) visit(child);
    else walkLocations(child, visit);
  }
}

/**
 * The parse tree's fields that are offsets into the text (libpg-query 18: every node's location, ARRAY[...]'s and IN
 * (...)'s list_start / list_end, A_Expr's rexpr_list_start / rexpr_list_end, JSON_TABLE's name_location): the fences
 * move them.
 */
const OFFSET_FIELDS = new Set(['location', 'list_start', 'list_end', 'rexpr_list_start', 'rexpr_list_end', 'name_location', 'stmt_location', 'stmt_len']);

/** Whether two parse trees are the same but for their offsets into the text (OFFSET_FIELDS): one pass over both. */
function sameTree(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => sameTree(v, b[i]));
  if (!a || typeof a !== 'object' || !b || typeof b !== 'object' || Array.isArray(b)) return a === b;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x).filter((k) => !OFFSET_FIELDS.has(k));
  return keys.length === Object.keys(y).filter((k) => !OFFSET_FIELDS.has(k)).length && keys.every((k) => Object.hasOwn(y, k) && sameTree(x[k], y[k]));
}

/** `t.*`, `(t).*`, `(expr).*`: an item PostgreSQL expands into several columns (in a target list or a VALUES row). */
function expandsColumns(v: any): boolean {
  const f = v?.ColumnRef?.fields;
  return (!!f && !!f[f.length - 1]?.A_Star) || (v?.A_Indirection?.indirection ?? []).some((i: any) => i?.A_Star);
}
