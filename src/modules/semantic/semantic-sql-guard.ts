import { parse } from 'libpg-query';
import { SemanticErrors } from './semantic.errors.js';

/**
 * What a semantic query may be, decided on PostgreSQL's own parse tree (libpg-query: the server's parser
 * compiled to WebAssembly), never on the text: exactly one SELECT (CTEs allowed, each a SELECT too) that
 * reads only views of schema `semantic` (or its own CTEs) and calls only allow-listed functions. Beneath
 * this, the query runs READ ONLY under the caller's claims and is rolled back: RLS still decides the rows.
 */

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
};

export interface AcceptedQuery {
  /** the statement's own text (without a trailing semicolon), to be run as a subquery */
  statement: string;
  /** the semantic views it reads */
  views: string[];
}

const refuse = (reason: string) => SemanticErrors.error('semantic.query_refused', `the query was refused: ${reason}`, { reason });

const nameOf = (list: any[] | undefined): string[] => (list ?? []).map((n) => n?.String?.sval ?? '').filter(Boolean);

/** Parses `sql` and checks it against the rules above; throws semantic.query_refused / semantic.syntax_error naming the reason. */
export async function acceptSemanticQuery(sql: string): Promise<AcceptedQuery> {
  let tree: { stmts?: { stmt: Record<string, unknown>; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = (await parse(sql)) as typeof tree;
  } catch (err) {
    throw SemanticErrors.error('semantic.syntax_error', `the query is not valid SQL: ${(err as Error).message}`);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length === 0) throw refuse('the query is empty');
  if (stmts.length > 1) throw refuse(`only one statement is allowed, found ${stmts.length}`);
  const [{ stmt, stmt_location: at = 0, stmt_len: len = 0 }] = stmts;
  const kind = Object.keys(stmt)[0];
  if (kind !== 'SelectStmt') throw refuse(`only SELECT is allowed, found ${REFUSED_NODES[kind] ?? kind.replace(/Stmt$/, '').toUpperCase()}`);

  // an unqualified name must be a CTE in scope where it is read (PostgreSQL would resolve any other through the search path)
  checkUnqualifiedNames(stmt, new Set());
  const views = new Set<string>();
  walk(stmt, (node, type) => {
    const reason = REFUSED_NODES[type];
    if (reason) throw refuse(`${reason} is not allowed`);
    switch (type) {
      case 'SelectStmt':
        if (node.intoClause) throw refuse('SELECT ... INTO is not allowed');
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
      case 'SQLValueFunction':
        if (!ALLOWED_SQL_VALUES.has(node.op)) throw refuse(`${String(node.op).replace('SVFOP_', '').toLowerCase()} is not allowed`);
        break;
      case 'A_Expr': {
        const parts = nameOf(node.name);
        if (parts.length > 1 && parts[0].toLowerCase() !== 'pg_catalog') throw refuse(`operator ${parts.join('.')} is not allowed`);
        break;
      }
      default:
        if (type.endsWith('Stmt')) throw refuse(`${type.replace(/Stmt$/, '').toUpperCase()} is not allowed`);
    }
  });
  // the parser's offsets count UTF-8 bytes, not UTF-16 code units: 'Müller' shifts every later offset by one
  const bytes = Buffer.from(sql, 'utf8');
  const statement = (len > 0 ? bytes.subarray(at, at + len) : bytes.subarray(at)).toString('utf8');
  return { statement, views: [...views].sort() };
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
