import { describe, expect, it } from '@jest/globals';
import { parse } from 'libpg-query';
import { acceptSemanticQuery } from '../../src/modules/semantic/semantic-sql-guard.js';
import { AppError } from '../../src/platform/errors/app-error.js';

/**
 * The guard itself, on PostgreSQL's parser, without a database: the statement it hands on is fenced (every CTE AS
 * MATERIALIZED, every derived table OFFSET 0, so PostgreSQL cannot merge the levels into one exploding expression),
 * and the queries that could build a value near PostgreSQL's 1 GB are refused before they reach the database (most
 * of these must never run: 7 levels of concat(s x10) took 21 GB and got the backend OOM-killed).
 */
describe('semantic SQL guard: fences and growth bound', () => {
  /** the guard's documented bounds (MAX_DEPTH, MAX_GROWTH; the API description states them) */
  const MAX_DEPTH = 8;
  const MAX_GROWTH = 64;
  const chain = (levels: number, fanOut = 10, seed = `'xxxxxxxxxx'::text`) => {
    let sql = `WITH a0 AS (SELECT ${seed} AS s)`;
    for (let i = 1; i <= levels; i++) sql += `, a${i} AS (SELECT concat(${Array(fanOut).fill('s').join(',')}) AS s FROM a${i - 1})`;
    return `${sql} SELECT octet_length(s) AS n FROM a${levels}`;
  };

  /** The refusal's code and reason. */
  async function refusal(sql: string): Promise<{ code: string; reason: string }> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    const { status, code, message, details } = err as AppError;
    const { reason } = details as { reason: string };
    expect(status).toBe(400);
    expect(message).toBe(`the query was refused: ${reason}`);
    return { code, reason };
  }

  /** Every CTE's materialization and whether every derived table has an OFFSET, read back from the parse tree. */
  async function fences(sql: string): Promise<{ ctes: string[]; derived: boolean[] }> {
    const ctes: string[] = [];
    const derived: boolean[] = [];
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) return v.forEach(visit);
      if (!v || typeof v !== 'object') return;
      for (const [k, c] of Object.entries(v)) {
        if (k === 'CommonTableExpr') ctes.push((c as { ctematerialized: string }).ctematerialized);
        if (k === 'RangeSubselect') derived.push(!!(c as { subquery: { SelectStmt: { limitOffset?: unknown } } }).subquery.SelectStmt.limitOffset);
        visit(c);
      }
    };
    visit(await parse(sql));
    return { ctes, derived };
  }

  it('hands on the 4-level concat chain with every CTE AS MATERIALIZED (PostgreSQL inlined them into one expression)', async () => {
    const { statement } = await acceptSemanticQuery(chain(4));
    expect(statement).toBe(chain(4).replace(/ AS \(/g, ' AS MATERIALIZED ('));
    expect(await fences(statement)).toEqual({ ctes: Array(5).fill('CTEMaterializeAlways'), derived: [] });
  });

  it('fences every CTE (NOT MATERIALIZED too) and derived table (LATERAL, VALUES, set operations, extra parentheses), keeping strings and comments', async () => {
    const sql = `WITH "Ä"(x) AS NOT /* keep? */ MATERIALIZED (SELECT 'Müller) AS (' AS x), b AS MATERIALIZED (SELECT * FROM "Ä")
      SELECT * FROM b, (SELECT DISTINCT ON (x) x FROM (((SELECT x FROM b))) q) z, (VALUES (1)) v,
        ((SELECT 1 AS one) UNION ALL (SELECT 2)) u, LATERAL (SELECT u.one + 1 AS two LIMIT 3) l, (SELECT 5 OFFSET 1) o -- the end`;
    const { statement } = await acceptSemanticQuery(sql);
    expect(statement).toBe(`WITH "Ä"(x) AS MATERIALIZED (SELECT 'Müller) AS (' AS x), b AS MATERIALIZED (SELECT * FROM "Ä")
      SELECT * FROM b, (SELECT DISTINCT ON (x) x FROM (((SELECT x FROM b OFFSET 0))) q OFFSET 0) z, (VALUES (1) OFFSET 0) v,
        ((SELECT 1 AS one) UNION ALL (SELECT 2) OFFSET 0) u, LATERAL (SELECT u.one + 1 AS two LIMIT 3 OFFSET 0) l, (SELECT 5 OFFSET 1) o -- the end`);
    expect(await fences(statement)).toEqual({ ctes: ['CTEMaterializeAlways', 'CTEMaterializeAlways'], derived: [true, true, true, true, true, true] });
  });

  it('accepts what stays small: a 6-level chain from 10 bytes (10 MB), a 50 KB literal repeated 100x, long IN lists and arrays', async () => {
    await acceptSemanticQuery(chain(6));
    await acceptSemanticQuery(chain(2, 10, `'${'x'.repeat(50_000)}'`));
    const many = Array.from({ length: 500 }, (_, i) => i).join(',');
    await acceptSemanticQuery(`SELECT x FROM unnest(ARRAY[${many}]) x WHERE x IN (${many})`);
    await acceptSemanticQuery(`SELECT concat_ws(', ', memo, account_code), replace(memo, ',', '; '), regexp_replace(memo, '\\s+', ' ', 'g') FROM semantic.v_gl_fact`);
  });

  it.each([
    ['7 levels of concat(s x10) (21 GB and an OOM-killed backend before)', chain(7), /concat\(\.\.\.\) can build a value up to 334 times/],
    ['3 levels of concat(s x100) from a 1 KB literal', chain(3, 100, `'${'x'.repeat(1000)}'`), /concat\(\.\.\.\) can build a value up to \d+ times/],
    ['6 levels of s || s ... (x10) from a 1 KB literal', `WITH a0 AS (SELECT '${'x'.repeat(1000)}'::text AS s)${Array.from({ length: 6 }, (_, i) => `, a${i + 1} AS (SELECT s || s || s || s || s || s || s || s || s || s AS s FROM a${i})`).join('')} SELECT length(s) FROM a6`, /operator \|\| can build a value up to \d+ times/],
    ['nested replace (10^9 bytes from one literal)', `SELECT length(${'replace('.repeat(9)}'x'${",'x','xxxxxxxxxx')".repeat(9)})`, /replace\(\.\.\.\) can build a value/],
    ['replace by the value itself (quadratic)', `SELECT length(replace(s, 'x', s)) FROM (SELECT '${'x'.repeat(50_000)}' AS s) a`, /replacement \(third argument\) must be a string literal/],
    ['a chain through derived tables', `SELECT concat(${Array(10).fill('s').join(',')}) FROM (SELECT concat(${Array(50).fill('s').join(',')}) AS s FROM (SELECT concat(${Array(50).fill('s').join(',')}) AS s FROM semantic.v_gl_fact) a) b`, /can build a value/],
    ['a whole row repeated', `WITH a AS (SELECT ${Array.from({ length: 40 }, (_, i) => `memo AS m${i}`).join(', ')} FROM semantic.v_gl_fact) SELECT concat(a, a) FROM a`, /concat\(\.\.\.\) can build a value up to 80 times/],
    ['recursion', `WITH RECURSIVE r(s) AS (SELECT 'x'::text UNION ALL SELECT s || s FROM r WHERE length(s) < 1e9) SELECT max(length(s)) FROM r`, /WITH RECURSIVE is not allowed/],
    [`${MAX_DEPTH + 1} CTEs reading each other`, `WITH a0 AS (SELECT 1 AS s)${Array.from({ length: MAX_DEPTH }, (_, i) => `, a${i + 1} AS (SELECT s FROM a${i})`).join('')} SELECT s FROM a${MAX_DEPTH}`, new RegExp(`nests ${MAX_DEPTH + 1} SELECTs`)],
    ['JSON_QUERY', `SELECT json_query('{"a":[1]}', '$.a')`, /SQL\/JSON JSON_VALUE\/JSON_QUERY\/JSON_EXISTS is not allowed/],
    ['IS JSON', `SELECT '1' IS JSON`, /SQL\/JSON IS JSON is not allowed/],
    ['JSON_SERIALIZE', `SELECT json_serialize('1')`, /SQL\/JSON JSON_SERIALIZE is not allowed/],
    ['a query over the size bound', `SELECT '${'x'.repeat(300_001)}'`, /the query is 300010 bytes; at most 300000/],
  ])('refuses %s before it runs', async (_label, sql, reason) => {
    const r = await refusal(sql);
    expect(r.code).toBe('semantic.query_refused');
    expect(r.reason).toMatch(reason);
    if (/can build/.test(r.reason)) expect(r.reason).toContain(`at most ${MAX_GROWTH} is allowed`);
  });
});
