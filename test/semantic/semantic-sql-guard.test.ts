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

  it('accepts the everyday shapes the bounds weigh: aggregated arrays, JSON of columns, casts, and many CTEs and derived tables (fenced)', async () => {
    await acceptSemanticQuery(`SELECT array_to_string(array_agg(memo), ', '), array_to_string(ARRAY(SELECT account_code FROM semantic.v_gl_fact), ',', '-'),
      json_agg(json_build_object('memo', memo, 'code', account_code, 'amount', amount, 'date', entry_date)), to_json(ARRAY[memo, account_code])::text,
      to_jsonb(json_build_object('a', memo)), '{"a": [1, 2.5e3]}'::jsonb -> 'a', (regexp_match(memo, '(\\d+)-(\\d+)'))[1], to_char(entry_date, 'YYYY-MM'),
      translate(memo, 'ab', 'cd'), amount::numeric(12, 2), memo::varchar(20), ROW(memo, amount)::text, t::text FROM semantic.v_gl_fact t`);
    // JSON built of JSON copies it unescaped (1x, not 1.5x a level): nested builders, a CTE's JSON column, a scalar subquery's JSON
    await acceptSemanticQuery(`SELECT customer_name, json_build_object('customer', customer_name, 'docs', json_agg(json_build_object('n', number,
      'lines', json_build_array(total, open_amount, currency, due_date)))) FROM semantic.v_ar_open GROUP BY customer_name`);
    await acceptSemanticQuery(`WITH per_account AS (SELECT account_code, jsonb_agg(jsonb_build_object('date', entry_date, 'memo', memo, 'amount', amount)
      ORDER BY entry_date) AS lines FROM semantic.v_gl_fact GROUP BY account_code) SELECT jsonb_object_agg(account_code, lines) FROM per_account`);
    await acceptSemanticQuery(`SELECT json_build_object('summary', (SELECT json_agg(x) FROM (SELECT customer_name, sum(open_amount) AS open FROM semantic.v_ar_open
      GROUP BY customer_name) x), 'ap', (SELECT json_agg(y) FROM (SELECT party_name, open_amount FROM semantic.v_ap_open) y))`);
    // the columns' names may be those of types: rel.name is a column first
    await acceptSemanticQuery(`WITH a AS (SELECT memo AS name, account_code AS text FROM semantic.v_gl_fact) SELECT a.name, a.text FROM a`);
    // (at most MAX_FROM_ITEMS FROM items a SELECT: 10 subqueries of 100 derived tables each)
    const ctes = Array.from({ length: 1000 }, (_, i) => `a${i} AS (SELECT ${i} AS n)`).join(', ');
    const derived = Array.from({ length: 10 }, (_, j) => `(SELECT 1 FROM ${Array.from({ length: 100 }, (_, i) => `(VALUES (${100 * j + i})) d${i}`).join(', ')}) s${j}`).join(', ');
    const { statement } = await acceptSemanticQuery(`WITH ${ctes} SELECT 1 FROM ${derived}`);
    expect(await fences(statement)).toEqual({ ctes: Array(1000).fill('CTEMaterializeAlways'), derived: Array(1010).fill(true) });
  });

  it('accepts rows within the growth bound and the widest SELECT and FROM list allowed (1,664 columns read through 100 FROM items)', async () => {
    // 4 columns of 60, each built of 60 columns read (a row's work of 480 x the largest input), in a CTE and in a VALUES
    // row; the statement's own row counts 5 times (the answer holds it again, and its text): 1 column of 60, 80 plain columns
    const c60 = Array(4).fill(`concat(${Array(60).fill('memo').join(',')})`).join(', ');
    await acceptSemanticQuery(`WITH c AS (SELECT ${c60} FROM semantic.v_gl_fact) SELECT count(*) FROM c`);
    await acceptSemanticQuery(`SELECT count(*) FROM semantic.v_gl_fact, LATERAL (VALUES (${c60})) v`);
    await acceptSemanticQuery(`SELECT concat(${Array(60).fill('memo').join(',')}) FROM semantic.v_gl_fact`);
    await acceptSemanticQuery(`SELECT ${Array(80).fill('memo').join(', ')} FROM semantic.v_gl_fact`);
    // before: each name read was looked up in every column of every FROM item (a CTE of 1,000 columns read by 1,000 FROM items
    // and 1,000 names: 14 s of a blocked event loop); now one lookup per FROM item
    const cols = Array.from({ length: 1664 }, (_, i) => `${i} AS a${i}`).join(', ');
    const reads = Array.from({ length: 3000 }, (_, i) => `a${i % 1664}`).join(', ');
    await acceptSemanticQuery(`WITH c AS (SELECT ${cols}) SELECT count(${reads}) FROM ${Array.from({ length: 100 }, (_, i) => `c c${i}`).join(', ')}`);
  });

  it('accepts an analyst\'s report: 20 columns, a WHERE of 10 conditions, GROUP BY 5, ORDER BY 3 (every value evaluated for a row counts toward its bound)', async () => {
    const sql = `SELECT account_code, account_name, account_type, currency, date_trunc('month', entry_date) AS month,
        count(*) AS lines, sum(debit) AS debit, sum(credit) AS credit, sum(amount) AS net, sum(base_amount) AS base_net,
        avg(amount) AS avg_amount, min(entry_date) AS first_date, max(entry_date) AS last_date, count(DISTINCT entry_id) AS entries,
        sum(CASE WHEN source = 'invoice' THEN amount ELSE 0 END) AS invoiced, sum(amount) FILTER (WHERE counterparty_type = 'customer') AS customers,
        round(100.0 * sum(credit) / nullif(sum(debit) + sum(credit), 0), 2) AS credit_share, string_agg(DISTINCT source, ', ') AS sources,
        max(length(memo)) AS longest_memo, lower(min(description)) AS first_description
      FROM semantic.v_gl_fact
      WHERE entry_date >= DATE '2026-01-01' AND entry_date < DATE '2027-01-01' AND account_type IN ('revenue', 'expense') AND currency = 'EUR'
        AND amount <> 0 AND coalesce(memo, '') NOT ILIKE '%test%' AND source_ref IS NOT NULL AND period_no BETWEEN 1 AND 12
        AND account_code LIKE '4%' AND reverses_entry_id IS NULL
      GROUP BY account_code, account_name, account_type, currency, date_trunc('month', entry_date)
      ORDER BY month, net DESC, account_code`;
    const { statement, views } = await acceptSemanticQuery(sql);
    expect(statement).toBe(sql);
    expect(views).toEqual(['semantic.v_gl_fact']);
  });

  it('accepts what an analyst builds across rows and the series a report needs: date spines, lists of a column, JSON of the columns', async () => {
    const ok = [
      // date spines: months of a year, days of a year, hours of a year (8,760), weeks, years; ascending and descending
      `SELECT g::date AS month FROM generate_series(date '2026-01-01', date '2026-12-01', interval '1 month') g`,
      `SELECT d::date, coalesce(sum(f.amount), 0) FROM generate_series(DATE '2026-01-01', DATE '2026-12-31', INTERVAL '1 day') d
        LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY d ORDER BY d`,
      `SELECT count(*) FROM generate_series(timestamp '2026-01-01 00:00', timestamp '2026-12-31 23:00', interval '1 hour') h`,
      `SELECT count(*) FROM generate_series('2026-01-01'::timestamptz, '2027-01-01 00:00+02'::timestamptz, '7 days'::interval) w`,
      `SELECT count(*) FROM generate_series(timestamptz '2026-12-01', timestamptz '2016-01-01', interval '-1 year') y`,
      `SELECT count(*) FROM generate_series(date '2026-01-01', date '2026-01-02', '01:00:00'::interval) h`,
      // numbers: 100,000 rows exactly, steps, negative bounds, numerics, and a product of series at the cap
      `SELECT count(*) FROM generate_series(1, 100000) g`, `SELECT count(*) FROM generate_series(-5, 5) g, generate_series(10, 1, -2) h`,
      `SELECT count(*) FROM generate_series(0.5, 10.5, 0.5) g`, `SELECT count(*) FROM generate_series(1, 100) a, generate_series(1, 1000) b`,
      `SELECT x FROM unnest(ARRAY[1, 2, 3]) x, (VALUES (1), (2)) v(y)`,
      // lists and JSON of a view's columns, each read once a row; constants within 256 bytes a row
      `SELECT account_code, string_agg(memo, ', ' ORDER BY memo) FROM semantic.v_gl_fact GROUP BY account_code`,
      `SELECT string_agg(concat(account_code, ' ', memo, ' (', amount::text, ')'), '; ') FROM semantic.v_gl_fact`,
      `SELECT string_agg(CASE WHEN memo <> '' THEN memo ELSE account_code END, ', ') FROM semantic.v_gl_fact`,
      `SELECT json_agg(json_build_object('customer_name', customer_name, 'open_amount', open_amount, 'due_date', due_date, 'currency', currency, 'number', number)) FROM semantic.v_ar_open`,
      `SELECT jsonb_object_agg(account_code, amount::numeric(12, 2)), array_agg(entry_date::text), array_agg(length(memo)) FROM semantic.v_gl_fact`,
      `SELECT string_agg(md5(g::text), '') FROM generate_series(1, 6250) g`,
      `SELECT string_agg(to_char(d, 'YYYY-MM'), ', ') FROM generate_series(date '2026-01-01', date '2026-12-01', interval '1 month') d`,
      `SELECT ARRAY(SELECT account_code FROM semantic.v_gl_fact ORDER BY 1), ARRAY(SELECT g FROM generate_series(1, 100) g)`,
      // an operator of pg_catalog in ORDER BY ... USING
      `SELECT memo FROM semantic.v_gl_fact ORDER BY memo USING OPERATOR(pg_catalog.<), amount USING >`,
    ];
    for (const sql of ok) await expect(acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`)).resolves.toBe('accepted');
  });

  it('accepts date spines relative to today: bounds of one anchor (current_date, now(), current_timestamp, localtimestamp, date_trunc of one) plus or minus literal days or intervals', async () => {
    const ok = [
      `SELECT d::date FROM generate_series(current_date - 30, current_date, interval '1 day') d`,
      `SELECT m::date FROM generate_series(date_trunc('month', current_date) - interval '11 months', date_trunc('month', current_date), interval '1 month') m`,
      `SELECT count(*) FROM generate_series(now() - interval '7 days', now(), interval '1 hour') h`,
      `SELECT count(*) FROM generate_series(current_timestamp - interval '2 years', now(), '1 hour') h`, // 17,569 hours at most
      `SELECT count(*) FROM generate_series(localtimestamp - interval '1 week', localtimestamp, '1 hour') h`,
      `SELECT count(*) FROM generate_series(pg_catalog.date_trunc('week', now()) - interval '52 weeks', date_trunc('week', now()), interval '1 week') w`,
      `SELECT count(*) FROM generate_series((current_date - 365)::timestamp, current_date::timestamp, interval '1 day') d`,
      `SELECT count(*) FROM generate_series(current_date, current_date + 90, interval '1 day') d`,
      `SELECT count(*) FROM generate_series(interval '1 day' + current_date, current_date + interval '1 month', interval '1 day') d`,
      // a day by the second: 86,400 seconds, counted as 90,001 rows (a day of 25 hours)
      `SELECT count(*) FROM generate_series(now(), now() + interval '1 day', interval '1 second') g`,
    ];
    for (const sql of ok) await expect(acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`)).resolves.toBe('accepted');
  });

  it('accepts a view\'s values aggregated along a date spine joined to it by an equality on the series\' column (each view row is in one row of the spine)', async () => {
    const ok = [
      `SELECT d::date, string_agg(f.memo, ', '), json_agg(f.amount) FROM generate_series(DATE '2026-01-01', DATE '2026-12-31', INTERVAL '1 day') d
        LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY d ORDER BY d`,
      `SELECT d, string_agg(f.memo, ', ' ORDER BY f.memo), array_agg(f.account_code) FROM generate_series(current_date - 30, current_date, interval '1 day') d
        LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d GROUP BY d`,
      `SELECT m, json_agg(f), jsonb_object_agg(coalesce(f.account_code, '-'), f.amount) FROM generate_series(date_trunc('month', current_date) - interval '11 months', date_trunc('month', current_date), interval '1 month') m
        LEFT JOIN semantic.v_gl_fact f ON date_trunc('month', f.entry_date) = m GROUP BY m`,
      // the equality in WHERE, a spine CTE (of a FROM item or of the target list), the view on the left
      `SELECT d::date, string_agg(f.memo, ', ') FROM generate_series(DATE '2026-01-01', DATE '2026-12-31', INTERVAL '1 day') d, semantic.v_gl_fact f WHERE f.entry_date = d::date GROUP BY d`,
      `WITH spine AS (SELECT d::date AS day FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d)
        SELECT s.day, string_agg(f.memo, ',') FROM spine s LEFT JOIN semantic.v_gl_fact f ON f.entry_date = s.day GROUP BY s.day`,
      `WITH spine AS (SELECT generate_series(current_date - 90, current_date, interval '1 day')::date AS day)
        SELECT day, string_agg(f.memo, ',') FROM spine LEFT JOIN semantic.v_gl_fact f ON f.entry_date = spine.day GROUP BY day`,
      `SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f JOIN generate_series(1, 100000) g ON g = f.amount`,
      `SELECT ARRAY(SELECT f.memo FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 week') w JOIN semantic.v_gl_fact f ON f.entry_date = w::date)`,
      // the series' own values with a view's rows: constants, 256 bytes a row at most
      `SELECT string_agg(g::text, ',') FROM semantic.v_gl_fact, generate_series(1, 1000) g`,
      // views joined with each other by an equality: bounded by the statement timeout (and the queries run at once:
      // SEMANTIC_MAX_CONCURRENT_QUERIES); by none (a cross join), refused (checkViewsJoined)
      `SELECT string_agg(a.memo, '') FROM semantic.v_gl_fact a JOIN semantic.v_gl_fact b ON b.entry_id = a.entry_id`,
    ];
    for (const sql of ok) await expect(acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`)).resolves.toBe('accepted');
  });

  /** review r3's and r5's probes: y is 200 times a 90 KB literal (60x, about 18 MB); terms: y||'<i>', each 60x again */
  const probe = `WITH a AS (SELECT '${'a'.repeat(90_000)}' AS x), b AS (SELECT concat(concat(${Array(100).fill('x').join(',')}), concat(${Array(100).fill('x').join(',')})) AS y FROM a) `;
  const terms = (n: number, prefix = '') => Array.from({ length: n }, (_, i) => `y||'${prefix}${i}'`);
  const nest = (levels: number, seed: string, f: (s: string) => string) => Array.from({ length: levels }).reduce<string>((s) => f(s), seed);
  const quotes = `'${'"'.repeat(1000)}'::text`;
  it.each([
    // 65 MB from 1,276 bytes (each level escapes every '"' again), 4.5 s past a 500 ms statement timeout
    ['16 levels of to_json(x)::text', `SELECT octet_length(${nest(16, quotes, (s) => `to_json(${s})::text`)}) AS n`, /to_json\(\.\.\.\) can build a value up to 156 times/],
    ['16 levels of (ARRAY[x])::text', `SELECT octet_length(${nest(16, quotes, (s) => `(ARRAY[${s}])::text`)}) AS n`, /ARRAY\[\.\.\.\] can build a value up to \d+ times/],
    ['16 levels of ROW(x)::text', `SELECT ${nest(16, quotes, (s) => `ROW(${s}, 1)::text`)}`, /ROW\(\.\.\.\) can build a value up to \d+ times/],
    // a CTE's or subquery's columns are read at their own weight: JSON copied into JSON still adds up, text escaped again multiplies
    ['JSON columns built 4 times over through CTEs', `WITH a0 AS (SELECT json_build_array(memo) AS j FROM semantic.v_gl_fact)${Array.from({ length: 3 }, (_, i) => `, a${i + 1} AS (SELECT json_build_array(j, j, j, j) AS j FROM a${i})`).join('')} SELECT j FROM a3`, /json_build_array\(\.\.\.\) can build a value up to 97 times/],
    ['to_json(x)::text through CTE columns', `WITH a0 AS (SELECT memo AS s FROM semantic.v_gl_fact)${Array.from({ length: 3 }, (_, i) => `, a${i + 1} AS (SELECT to_json(s)::text AS s FROM a${i})`).join('')} SELECT s FROM a3`, /to_json\(\.\.\.\) can build a value up to 217 times/],
    ['a heavy CTE column renamed', `WITH a(light, heavy) AS (SELECT account_code, concat(${Array(40).fill('memo').join(', ')}) FROM semantic.v_gl_fact) SELECT concat(heavy, heavy) FROM a`, /concat\(\.\.\.\) can build a value up to 80 times/],
    ['a heavy column renamed by a join\'s alias', `SELECT concat(x, x) FROM ((SELECT concat(${Array(40).fill('memo').join(', ')}) AS h FROM semantic.v_gl_fact) a CROSS JOIN (SELECT 'y' AS x) b) j(x)`, /concat\(\.\.\.\) can build a value up to 80 times/],
    // t.* and (t).* expand to several columns, whose positions a rename or VALUES' columnN then name: 30,000,000 bytes
    // from 1 KB were accepted (review r9), each level's concat reading a heavy column under a light column's weight
    ['(t).* then CTE renames by position', `WITH a0 AS (SELECT ''::text AS l, '${'x'.repeat(30)}'::text AS h)${Array.from({ length: 3 }, (_, i) => `, b${i + 1}(p, h, z) AS (SELECT (a${i}).*, '' FROM a${i}), a${i + 1} AS (SELECT ''::text AS l, concat(${Array(100).fill('h').join(',')}) AS h FROM b${i + 1})`).join('')} SELECT octet_length(h) AS n FROM a3`, /concat\(\.\.\.\) can build a value up to \d+ times/],
    ['t.* in a LATERAL VALUES row', `WITH a0 AS (SELECT ''::text AS l, '${'x'.repeat(30)}'::text AS h)${Array.from({ length: 3 }, (_, i) => `, a${i + 1} AS (SELECT ''::text AS l, concat(${Array(100).fill('v.column2').join(',')}) AS h FROM a${i}, LATERAL (VALUES (a${i}.*, '')) v)`).join('')} SELECT octet_length(h) AS n FROM a3`, /concat\(\.\.\.\) can build a value up to \d+ times/],
    ['6 levels of json_build_array(x)::text', `SELECT ${nest(6, quotes, (s) => `json_build_array(${s})::text`)}`, /json_build_array\(\.\.\.\) can build/],
    ['a whole row as text, 6 CTEs deep', `WITH a0 AS (SELECT '${'"'.repeat(50_000)}'::text AS s)${Array.from({ length: 5 }, (_, i) => `, a${i + 1} AS (SELECT a${i}::text AS s, a${i}::text AS t FROM a${i})`).join('')} SELECT s FROM a5`, /column a4 can build a value up to 86 times/],
    // 99,900,000 bytes: the separator once per element of an array built across rows
    ['array_to_string with a 100 KB separator', `SELECT octet_length(array_to_string(ARRAY(SELECT '' FROM generate_series(1, 1000)), '${'x'.repeat(100_000)}')) AS n`, /array_to_string\(\.\.\.\) can build a value up to 100001 times/],
    ['array_to_string with a separator not a literal', `SELECT array_to_string(array_agg(memo), memo) FROM semantic.v_gl_fact`, /array_to_string's separator \(second argument\) must be a string literal/],
    ['replace of an aggregate by a 100 KB replacement', `SELECT replace(string_agg('x', ''), 'x', '${'y'.repeat(100_000)}') FROM generate_series(1, 1000)`, /replace\(\.\.\.\) can build a value up to 100000 times/],
    ['concat_ws with VARIADIC', `SELECT concat_ws('${'x'.repeat(1000)}', VARIADIC ARRAY(SELECT '' FROM generate_series(1, 100000)))`, /concat_ws with VARIADIC is not allowed/],
    ['numbers written with an exponent (131,072 digits each)', `SELECT concat(${Array(200).fill(`'1e131071'::numeric`).join(', ')})`, /concat\(\.\.\.\) can build a value up to 88 times/],
    ['JSON text built by the query cast to jsonb', `SELECT concat('[1', 'e131071]')::jsonb`, /a cast to jsonb must be of a string literal or a JSON value/],
    ['char(n) padding', `SELECT concat(${Array(3).fill(`'x'::char(10485760)`).join(', ')})`, /concat\(\.\.\.\) can build a value up to 105 times/],
    ['nested to_char formats', `SELECT ${nest(5, `'${'Day'.repeat(1000)}'`, (s) => `to_char(DATE '2027-01-04', ${s})`)}`, /to_char\(\.\.\.\) can build a value up to \d+ times/],
    // rel.fn is fn(rel): functions outside the allow-list
    ['x.row_to_json', `SELECT x.row_to_json FROM (SELECT 1 AS a) x`, /the field \.row_to_json is a call of function row_to_json on the row/],
    ['(x).pg_typeof', `SELECT (x).pg_typeof FROM semantic.v_gl_fact x`, /the field \.pg_typeof is a call of function pg_typeof/],
    // the checks' work grows with the tree: 15 s and 29 s of a blocked event loop before
    ['5,100 CTEs', `WITH ${Array.from({ length: 5100 }, (_, i) => `a${i} AS (SELECT 1)`).join(',')} SELECT 1`, /the query has more than 20000 parse-tree nodes/],
    ['7,000 derived tables', `SELECT 1 FROM ${Array.from({ length: 7000 }, (_, i) => `(VALUES(1))a${i}`).join(',')}`, /the query has more than 20000 parse-tree nodes/],
    ['700 nested coalesce', `SELECT ${nest(700, '1', (s) => `coalesce(${s}, 1, 1)`)}`, /the query nests expressions more than 200 levels deep/],
    // a 500 before (RangeError: Maximum call stack size exceeded, in the guard's walk), and past the parser's own stack
    ['1,000 nested abs', `SELECT ${nest(1000, '1', (s) => `abs(${s})`)}`, /the query nests expressions more than 200 levels deep/],
    ['1,600 nested abs', `SELECT ${nest(1600, '1', (s) => `abs(${s})`)}`, /the query nests expressions more than 200 levels deep/],
    ['7 levels of concat(s x10) (21 GB and an OOM-killed backend before)', chain(7), /concat\(\.\.\.\) can build a value up to 334 times/],
    ['3 levels of concat(s x100) from a 1 KB literal', chain(3, 100, `'${'x'.repeat(1000)}'`), /concat\(\.\.\.\) can build a value up to \d+ times/],
    ['6 levels of s || s ... (x10) from a 1 KB literal', `WITH a0 AS (SELECT '${'x'.repeat(1000)}'::text AS s)${Array.from({ length: 6 }, (_, i) => `, a${i + 1} AS (SELECT s || s || s || s || s || s || s || s || s || s AS s FROM a${i})`).join('')} SELECT length(s) FROM a6`, /operator \|\| can build a value up to \d+ times/],
    ['nested replace (10^9 bytes from one literal)', `SELECT length(${'replace('.repeat(9)}'x'${",'x','xxxxxxxxxx')".repeat(9)})`, /replace\(\.\.\.\) can build a value/],
    ['replace by the value itself (quadratic)', `SELECT length(replace(s, 'x', s)) FROM (SELECT '${'x'.repeat(50_000)}' AS s) a`, /replacement \(third argument\) must be a string literal/],
    ['a chain through derived tables', `SELECT concat(${Array(10).fill('s').join(',')}) FROM (SELECT concat(${Array(50).fill('s').join(',')}) AS s FROM (SELECT concat(${Array(50).fill('s').join(',')}) AS s FROM semantic.v_gl_fact) a) b`, /can build a value/],
    // a whole row is read as a record: printed as text, each of its 40 columns quoted and escaped (2x)
    ['a whole row repeated', `WITH a AS (SELECT ${Array.from({ length: 40 }, (_, i) => `memo AS m${i}`).join(', ')} FROM semantic.v_gl_fact) SELECT concat(a, a) FROM a`, /column a can build a value up to 81 times/],
    ['recursion', `WITH RECURSIVE r(s) AS (SELECT 'x'::text UNION ALL SELECT s || s FROM r WHERE length(s) < 1e9) SELECT max(length(s)) FROM r`, /WITH RECURSIVE is not allowed/],
    [`${MAX_DEPTH + 1} CTEs reading each other`, `WITH a0 AS (SELECT 1 AS s)${Array.from({ length: MAX_DEPTH }, (_, i) => `, a${i + 1} AS (SELECT s FROM a${i})`).join('')} SELECT s FROM a${MAX_DEPTH}`, new RegExp(`nests ${MAX_DEPTH + 1} SELECTs`)],
    ['JSON_QUERY', `SELECT json_query('{"a":[1]}', '$.a')`, /SQL\/JSON JSON_VALUE\/JSON_QUERY\/JSON_EXISTS is not allowed/],
    ['IS JSON', `SELECT '1' IS JSON`, /SQL\/JSON IS JSON is not allowed/],
    ['JSON_SERIALIZE', `SELECT json_serialize('1')`, /SQL\/JSON JSON_SERIALIZE is not allowed/],
    ['a query over the size bound', `SELECT '${'x'.repeat(300_001)}'`, /the query is 300010 bytes; at most 300000/],
    // a row's columns add up: review r3's probe (97 KB) made a backend allocate ~17 GB (1,000 columns of 18 MB each), out
    // of the statement timeout's reach; refused here, never run (each column: y read, 60, and y||'' built, 60)
    ['1,000 columns of 60x each (the 17 GB probe)', `${probe}SELECT ${Array(1000).fill(`y||''`).join(', ')} FROM b`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* at most 512 is allowed/],
    // and so does every other value evaluated for a row, held until the row is done (review r5, on PostgreSQL 15 with the
    // CTEs materialized: a 20-term WHERE reached 484 MB and ran 9 s past a 3.5 s timeout, about 17.5 MB a term; ORDER BY
    // about 35 MB a term; 1,000 terms, about 100 KB of query each, were accepted: 17 GB and 35 GB)
    ['a WHERE of 20 conditions on 60x values (484 MB, 9 s past the timeout)', `${probe}SELECT 1 FROM b WHERE ${terms(20).map((t) => `${t} <> ''`).join(' AND ')}`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* WHERE, JOIN \.\.\. ON, GROUP BY.* at most 512 is allowed/],
    ['ORDER BY 20 values of 60x', `${probe}SELECT 1 FROM b ORDER BY ${terms(20).join(', ')}`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* at most 512 is allowed/],
    ['GROUP BY 20 values of 60x', `${probe}SELECT count(*) FROM b GROUP BY ${terms(20).join(', ')}`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* at most 512 is allowed/],
    ['a window PARTITION BY 20 values of 60x', `${probe}SELECT row_number() OVER (PARTITION BY ${terms(20).join(', ')}) FROM b`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* at most 512 is allowed/],
    ['the arguments of a function of a fixed-size result (num_nonnulls of 99 values of 60x, 10 times)', `${probe}SELECT ${Array.from({ length: 10 }, (_, j) => `num_nonnulls(${terms(99, `${j}_`).join(', ')})`).join(', ')} FROM b`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* at most 512 is allowed/],
    // (each below the bound alone: the output column about 490, the join condition about 730)
    ['the arguments of length() and a join condition added up', `${probe}SELECT DISTINCT ${terms(4).map((t) => `length(${t})`).join(' + ')} FROM b JOIN (SELECT y AS z FROM b) c ON ${terms(4).map((t) => `${t} = z`).join(' OR ')}`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times .* at most 512 is allowed/],
    ['a CTE\'s row past the bound (its output small)', `WITH a AS (SELECT ${Array(20).fill(`concat(${Array(60).fill('memo').join(',')})`).join(', ')} FROM semantic.v_gl_fact) SELECT count(*) FROM a`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times/],
    ['a VALUES row past the bound', `SELECT 1 FROM semantic.v_gl_fact, LATERAL (VALUES (${Array(20).fill(`concat(${Array(60).fill('memo').join(',')})`).join(', ')})) v`, /a VALUES row can hold up to 2401 times/],
    ['* of three heavy CTEs', `WITH a AS (SELECT ${Array(8).fill(`concat(${Array(60).fill('memo').join(',')})`).join(', ')} FROM semantic.v_gl_fact) SELECT * FROM a x, a y, a z`, /the row of (?:a|the statement's) SELECT[^:]* can hold up to \d+ times/],
    ['ROWS FROM of heavy functions', `SELECT 1 FROM semantic.v_gl_fact, ROWS FROM (${Array(20).fill(`unnest(ARRAY[concat(${Array(30).fill('memo').join(',')})])`).join(', ')}) r`, /a function in FROM \(ROWS FROM\) can hold up to \d+ times/],
    // the checks' work: each name read is looked up in every FROM item in scope
    ['101 FROM items (joins count each side)', `WITH c AS (SELECT 1 AS a) SELECT count(a) FROM ${Array(99).fill('c').join(', ')}, c JOIN c ON true`, /a SELECT reads 101 FROM items .*at most 100 are allowed/],
    ['1,000 FROM items of a 1,000-column CTE (14 s before)', `WITH c AS (SELECT ${Array.from({ length: 1000 }, (_, i) => `1 a${i}`).join(', ')}) SELECT count(${Array(1000).fill('a0').join(',')}) FROM ${Array(1000).fill('c').join(', ')}`, /a SELECT reads 1000 FROM items/],
    ['1,665 output columns', `SELECT ${Array.from({ length: 1665 }, (_, i) => `${i} AS c${i}`).join(', ')}`, /a SELECT has 1665 output columns; at most 1664 are allowed/],
    ['a VALUES row of 1,665 columns', `VALUES (${Array(1665).fill('1').join(', ')})`, /a VALUES row has 1665 output columns/],
    // values built across rows: each row may add one view value and ACROSS_ROWS_MAX_CONSTANT_BYTES of constants (review:
    // the first three made one backend reach ~1 GB in 0.5 s, 20 pooled connections 20-30 GB; all were accepted)
    ['string_agg with a 99,800-byte separator (the 1 GB probe)', `SELECT length(string_agg(g::text, '${'x'.repeat(99_800)}')) FROM generate_series(1, 20000) g`, /string_agg\(\.\.\.\) adds up to 99812 bytes that are not a view's values for each row it aggregates .*at most 256 bytes a row are allowed \(ACROSS_ROWS_MAX_CONSTANT_BYTES/],
    ['string_agg of a 99 KB literal', `SELECT length(string_agg('${'x'.repeat(99_000)}', '')) FROM generate_series(1, 20000) g`, /string_agg\(\.\.\.\) adds up to 99001 bytes .*at most 256 bytes a row/],
    ['array_agg of a 99 KB literal', `SELECT cardinality(array_agg('${'x'.repeat(99_000)}'::text)) FROM generate_series(1, 20000) g`, /array_agg\(\.\.\.\) adds up to 99000 bytes .*at most 256 bytes a row/],
    ['json_agg of a 300-byte literal', `SELECT json_agg('${'x'.repeat(300)}') FROM semantic.v_gl_fact`, /json_agg\(\.\.\.\) adds up to 300 bytes .*at most 256 bytes a row/],
    ['jsonb_object_agg of a 300-byte key', `SELECT jsonb_object_agg(memo || '${'k'.repeat(300)}', amount) FROM semantic.v_gl_fact`, /jsonb_object_agg\(\.\.\.\) adds up to \d+ bytes .*at most 256 bytes a row/],
    ['ARRAY(SELECT ...) of a 1 KB literal', `SELECT cardinality(ARRAY(SELECT '${'x'.repeat(1000)}' FROM generate_series(1, 1000)))`, /^(ARRAY\(SELECT \.\.\.\) adds up to 1000 bytes .*)at most 256 bytes a row/],
    // a constant carried by a CTE's column, or an aggregate of many generated rows read as one row's value
    ['string_agg of a CTE\'s 1 KB literal column', `WITH c AS (SELECT '${'x'.repeat(1000)}' AS s) SELECT length(string_agg(s, '')) FROM c, generate_series(1, 20000)`, /string_agg\(\.\.\.\) adds up to 1001 bytes/],
    ['string_agg of string_aggs of generated rows', `SELECT length(string_agg(s, '')) FROM (SELECT string_agg('${'x'.repeat(200)}', '') AS s FROM generate_series(1, 1000)) a, generate_series(1, 50)`, /string_agg\(\.\.\.\) adds up to 201001 bytes/],
    ['a number of 100,000 digits a row', `SELECT length(string_agg(power(10::numeric, 100000)::text, '')) FROM generate_series(1, 10000)`, /string_agg\(\.\.\.\) adds up to 300001 bytes/],
    ['numeric text built of short literals', `SELECT length(string_agg(concat('1e', g)::numeric::text, '')) FROM generate_series(131000, 131071) g`, /string_agg\(\.\.\.\) adds up to 147501 bytes/],
    // a view's value more than once a row
    ['string_agg of a column concatenated with itself', `SELECT string_agg(concat(memo, memo), ',') FROM semantic.v_gl_fact`, /string_agg\(\.\.\.\) holds a view's value more than once for each row it aggregates/],
    ['string_agg of memo || memo', `SELECT string_agg(memo || ' ' || memo, ',') FROM semantic.v_gl_fact`, /string_agg\(\.\.\.\) holds a view's value more than once/],
    ['array_agg of a replace multiplying a column', `SELECT array_agg(replace(memo, 'a', 'aaaaaaaa')) FROM semantic.v_gl_fact`, /array_agg\(\.\.\.\) holds a view's value more than once/],
    ['ARRAY(SELECT ...) of a column read twice', `SELECT ARRAY(SELECT concat(memo, memo) FROM semantic.v_gl_fact)`, /ARRAY\(SELECT \.\.\.\) holds a view's value more than once/],
    // the rows made of no view: generate_series' bounds literal and its span counted, multiplied with unnest, VALUES, CTEs
    ['generate_series past MAX_SERIES_ROWS', `SELECT count(*) FROM generate_series(1, 100001) g`, /the query can make up to 100001 rows without reading a view, at generate_series\(\.\.\.\) .*at most 100000 are allowed \(MAX_SERIES_ROWS\)/],
    ['generate_series of 500 million (the timeout probe)', `SELECT count(*) FROM generate_series(1, 500000000) g`, /up to 500000000 rows without reading a view.*at most 100000/],
    ['an hourly series of 12 years', `SELECT count(*) FROM generate_series(timestamp '2026-01-01', timestamp '2037-12-31', interval '1 hour') g`, /up to 105\d{3} rows without reading a view/],
    // (two dates make a series of timestamptz in the session's time zone: 2 days and up to 26 hours of the zone's changes)
    ['a series of days by a step of 1 second', `SELECT count(*) FROM generate_series(date '2026-01-01', date '2026-01-03', interval '1 second') g`, /up to 266401 rows/],
    ['generate_series of a column', `SELECT count(*) FROM (SELECT 5 AS n) s, generate_series(1, n) g`, /generate_series's start, stop and step must be literals .*at most 100000 rows are allowed \(MAX_SERIES_ROWS\)/],
    ['generate_series of now() and now() of another anchor', `SELECT count(*) FROM generate_series(current_date - 30, now(), interval '1 day') g`, /generate_series's start, stop and step must be literals \(numbers, counted exactly, .* or dates \/ timestamps 'YYYY-MM-DD\[ HH:MM\[:SS\[\.ffffff\]\]\]\[\+HH\[:MM\]\]' of years 0001-9999 AD with an interval step .*\), or start and stop the same anchor \(current_date, now\(\), current_timestamp, localtimestamp, date_trunc\('<unit up to year>', or a cast to date or a timestamp of, one of those\)\) plus or minus literal integers \(days\) or intervals/],
    ['generate_series of now() by the second for two days', `SELECT count(*) FROM generate_series(now(), now() + interval '2 days', interval '1 second') g`, /up to 180001 rows without reading a view/],
    ['an hourly spine of 12 years before now()', `SELECT count(*) FROM generate_series(now() - interval '12 years', now(), interval '1 hour') g`, /up to 105421 rows without reading a view/],
    ['an anchor plus a subquery', `SELECT count(*) FROM generate_series(current_date - 30, current_date + (SELECT 1), interval '1 day') g`, /or start and stop the same anchor/],
    ['an anchored series without an interval step', `SELECT count(*) FROM generate_series(current_date - 30, current_date, 1) g`, /or start and stop the same anchor/],
    // a view's value joined with rows of no view repeats once for each of them (review: 100 MB a view row of 1,000-byte memos)
    ['a view joined with a series of 100,000 (the 100 MB a view row probe)', `SELECT length(string_agg(memo, '')) FROM semantic.v_gl_fact, generate_series(1, 100000)`, /string_agg\(\.\.\.\) reads a view's value that the rows it aggregates may repeat up to 100000 times .*at most 32 are allowed \(ACROSS_ROWS_MAX_VIEW_REPEATS\): join the series to the view by an equality on the series' column/],
    ['a view joined with a series through a subquery', `SELECT string_agg(s.memo, '') FROM (SELECT memo FROM semantic.v_gl_fact, generate_series(1, 100000)) s`, /string_agg\(\.\.\.\) reads a view's value that the rows it aggregates may repeat up to 100000 times/],
    ['a view read by a set-returning function of the target list', `SELECT string_agg(memo, '') FROM (SELECT memo, generate_series(1, 100000) FROM semantic.v_gl_fact) s`, /may repeat up to 100000 times/],
    ['ARRAY(SELECT ...) of a view joined with a series', `SELECT ARRAY(SELECT memo FROM semantic.v_gl_fact, generate_series(1, 100000))`, /ARRAY\(SELECT \.\.\.\) reads a view's value that the rows it aggregates may repeat up to 100000 times/],
    ['an aggregate of a view aggregated once per row of a series', `SELECT string_agg((SELECT string_agg(memo, '') FROM semantic.v_gl_fact), '') FROM generate_series(1, 100000)`, /may repeat up to 100000 times/],
    ['a view\'s row aggregated by a correlated subquery over a series', `SELECT (SELECT string_agg(f.memo, '') FROM generate_series(1, 100000)) FROM semantic.v_gl_fact f`, /may repeat up to 100000 times/],
    ['json_agg of a view\'s column joined with unnest (its values may repeat: no equality holds it)', `SELECT json_agg(f.memo) FROM semantic.v_gl_fact f, unnest('{${Array(1000).fill('1').join(',')}}'::int[]) u WHERE u = 1`, /json_agg\(\.\.\.\) reads a view's value that the rows it aggregates may repeat up to 1000 times/],
    // equalities that do not hold the series to one row of each view row
    ['an equality of the series with itself', `SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f JOIN generate_series(1, 100000) g ON g = g`, /may repeat up to 100000 times/],
    ['an equality under OR', `SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f, generate_series(1, 100000) g WHERE g = f.amount OR true`, /may repeat up to 100000 times/],
    ['an equality on the series cast to integer', `SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f JOIN generate_series(0.5, 50000, 0.5) g ON f.amount = g::int`, /may repeat up to 100000 times/],
    ['a series by the minute cast to date', `SELECT string_agg(f.memo, ',') FROM generate_series(timestamp '2026-01-01', timestamp '2026-02-01', interval '1 minute') d JOIN semantic.v_gl_fact f ON f.entry_date = d::date`, /may repeat up to 1501 times/],
    ['the preserved side of an outer join anchored to another series', `SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f, generate_series(1, 1000) a LEFT JOIN generate_series(1, 1) b ON a = b`, /may repeat up to 1000 times/],
    ['generate_series in the target list', `SELECT string_agg(g::text, '') FROM (SELECT generate_series(1, 1000000) AS g) s`, /up to 1000000 rows without reading a view/],
    ['two series cross-joined', `SELECT count(*) FROM generate_series(1, 1000) a CROSS JOIN generate_series(1, 1000) b`, /up to 1000000 rows without reading a view/],
    ['a CTE of a series read twice', `WITH c AS (SELECT g FROM generate_series(1, 1000) g) SELECT count(*) FROM c, c d`, /up to 1000000 rows without reading a view, at the CTE c/],
    ['a series joined in a subquery', `SELECT count(*) FROM generate_series(1, 1000) a, (SELECT 1 FROM generate_series(1, 1000) b) s`, /up to 1000000 rows without reading a view, at a subquery in FROM/],
    ['an aggregated series unnested twice', `SELECT count(*) FROM (SELECT array_agg(g) AS a FROM generate_series(1, 1000) g) s, unnest(s.a) x, unnest(s.a) y`, /up to 1000000 rows without reading a view, at unnest/],
    ['VALUES cross-joined', `SELECT count(*) FROM (VALUES ${Array.from({ length: 400 }, (_, i) => `(${i})`).join(',')}) a(x), (VALUES ${Array.from({ length: 400 }, (_, i) => `(${i})`).join(',')}) b(x)`, /up to 160000 rows without reading a view/],
    // mode() and percentile_disc() WITHIN GROUP return one of the ORDER BY values: they weighed nothing before
    ['mode() WITHIN GROUP repeated past the growth bound', `SELECT concat(${Array(65).fill('m').join(',')}) FROM (SELECT mode() WITHIN GROUP (ORDER BY memo) AS m FROM semantic.v_gl_fact) s`, /concat\(\.\.\.\) can build a value up to 65 times/],
    // an operator of another schema runs its function: ORDER BY ... USING too
    ['ORDER BY ... USING OPERATOR(public.<)', `SELECT 1 FROM semantic.v_gl_fact ORDER BY 1 USING OPERATOR(public.<)`, /operator public\.< is not allowed/],
    ['ORDER BY ... USING OPERATOR(x.<) in an aggregate', `SELECT string_agg(memo, ',' ORDER BY memo USING OPERATOR(x.<)) FROM semantic.v_gl_fact`, /operator x\.< is not allowed/],
    // the parser reads up to a NUL: the text after it was accepted unparsed
    ['text after a NUL character', `SELECT 1\u0000; DROP TABLE x`, /the query contains a NUL character/],
  ])('refuses %s before it runs', async (_label, sql, reason) => {
    const r = await refusal(sql);
    expect(r.code).toBe('semantic.query_refused');
    expect(r.reason).toMatch(reason);
    if (/can build/.test(r.reason)) expect(r.reason).toContain(`at most ${MAX_GROWTH} is allowed`);
  });
});

/**
 * Review r7's probes: each of these was accepted and made one backend allocate about 1 GB within a second from an
 * organization with no data (unnest of a CTE's aggregated array, CUBE, numeric bounds past a double's precision, the
 * years 0-99, a row of 48 columns of 20x), or refused a valid query as "could not be fenced".
 */
describe('semantic SQL guard: rows of arrays, grouping sets, exact series bounds, and the row bound with the answer\'s copies', () => {
  const x250 = 'x'.repeat(250);
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('semantic.query_refused');
    return ((err as AppError).details as { reason: string }).reason;
  }

  it.each([
    ['a CTE\'s column of array_agg over 100,000 rows, unnested twice (10^10 rows)', `WITH a AS (SELECT (SELECT array_agg(g) FROM generate_series(1, 100000) g) AS arr) SELECT length(string_agg('${x250}', '')) FROM a, unnest(a.arr) x, unnest(a.arr) y`, /the query can make up to over 10\^12 rows without reading a view, at unnest\(\.\.\.\).*\(MAX_SERIES_ROWS\)|up to 10000000000 rows without reading a view, at unnest/],
    ['a cast of a scalar subquery\'s array (the reviewer\'s form)', `SELECT count(*) FROM unnest((SELECT array_agg(g) FROM generate_series(1, 100000) g)::int[]) x, unnest((SELECT array_agg(g) FROM generate_series(1, 100000) g)::int[]) y`, /unnest\(\.\.\.\) reads an array whose elements cannot be counted.*\(MAX_SERIES_ROWS\)/],
    ['a cast of text built by the query to an array', `WITH c AS (SELECT string_agg(g::text, ',') AS t FROM generate_series(1, 1000) g) SELECT count(*) FROM c, unnest(('{' || c.t || '}')::int[]) x`, /unnest\(\.\.\.\) reads an array whose elements cannot be counted.*\(MAX_SERIES_ROWS\)/],
    ['COALESCE of a CTE\'s array, unnested twice', `WITH a AS (SELECT array_agg(g) AS arr FROM generate_series(1, 1000) g) SELECT count(*) FROM a, unnest(coalesce(a.arr, ARRAY[1])) x, unnest(a.arr) y`, /up to 1000000 rows without reading a view, at unnest/],
    ['ARRAY[...] of a CTE\'s array (flattened by unnest)', `WITH a AS (SELECT array_agg(g) AS arr FROM generate_series(1, 1000) g) SELECT count(*) FROM a, unnest(ARRAY[a.arr, a.arr]) x, unnest(a.arr) y`, /up to 2000000 rows without reading a view, at unnest/],
  ])('refuses unnest of %s (MAX_SERIES_ROWS)', async (_label, sql, reason) => {
    expect(await reasonOf(sql)).toMatch(reason);
  });

  it.each([
    ['CUBE of 6 over 100,000 rows (64 grouping sets)', `SELECT length(string_agg('${x250}', '')) FROM (SELECT g FROM generate_series(1, 100000) g GROUP BY CUBE(g, g, g, g, g, g)) s`, /up to 6400000 rows without reading a view, at GROUPING SETS \/ CUBE \/ ROLLUP.*\(MAX_SERIES_ROWS\)/],
    ['GROUPING SETS of 20 over 100,000 rows', `SELECT count(*) FROM (SELECT g FROM generate_series(1, 100000) g GROUP BY GROUPING SETS (${Array(20).fill('(g)').join(',')})) s`, /up to 2000000 rows without reading a view, at GROUPING SETS/],
    ['ROLLUP of 3 times CUBE of 2 over 10,000 rows (16 sets)', `SELECT count(*) FROM generate_series(1, 10000) g GROUP BY ROLLUP(g, g, g), CUBE(g, g)`, /up to 160000 rows without reading a view, at GROUPING SETS/],
  ])('refuses %s (MAX_SERIES_ROWS)', async (_label, sql, reason) => {
    expect(await reasonOf(sql)).toMatch(reason);
  });

  it('counts a grouped series\' column in each grouping set (no longer one row a value): a view joined to it repeats', async () => {
    expect(await reasonOf(`SELECT string_agg(f.memo, ',') FROM (SELECT g FROM generate_series(1, 1000) g GROUP BY ROLLUP(g)) s JOIN semantic.v_gl_fact f ON f.amount = s.g`))
      .toMatch(/string_agg\(\.\.\.\) reads a view's value that the rows it aggregates may repeat up to 2000 times.*\(ACROSS_ROWS_MAX_VIEW_REPEATS\)/);
  });

  // (counted in doubles before, refused past 2^53 or 15 significant digits; now exactly, in scaled integers)
  it.each([
    ['integers past 2^53 (10^8 + 1 rows counted as 1 in doubles)', `SELECT count(*) FROM generate_series(1000000000000000000000000000000, 1000000000000000000000100000000, 1) g`, /up to 100000001 rows without reading a view/],
    ['the same in the target list', `SELECT count(*) FROM (SELECT generate_series(1000000000000000000000000000000, 1000000000000000000000100000000, 1) AS g) s`, /up to 100000001 rows without reading a view/],
    ['numeric text of 16 significant digits, by 10^-16', `SELECT count(*) FROM generate_series('1.000000000000001'::numeric, '1.000000000010001'::numeric, '0.0000000000000001'::numeric) g`, /up to 100001 rows without reading a view/],
    ['an exponent past 2^53 (a bound not a literal)', `SELECT count(*) FROM generate_series(1e30, 1e30 + 1e13, 1) g`, /generate_series's start, stop and step must be literals \(numbers, counted exactly.*\(MAX_SERIES_ROWS\)/],
    ['a number of more than 1,000 digits', `SELECT count(*) FROM generate_series(1e1001, 1e1001, 1) g`, /generate_series's start, stop and step must be literals \(numbers, counted exactly, of at most 1000 digits.*\(MAX_SERIES_ROWS\)/],
  ])('counts generate_series of %s exactly, or refuses it', async (_label, sql, reason) => {
    expect(await reasonOf(sql)).toMatch(reason);
  });

  it('accepts generate_series of numbers it counts exactly: 16 significant digits (10,001 rows), 100,000 past 2^53', async () => {
    await acceptSemanticQuery(`SELECT count(*) FROM generate_series('1.000000000000001'::numeric, '1.000000000010001'::numeric, '0.000000000000001'::numeric) g`);
    await acceptSemanticQuery(`SELECT count(*) FROM generate_series(1000000000000000000000000000000, 1000000000000000000000000099999, 1) g`);
  });

  it.each([
    ['year 0099 to 2000 by the second (counted as one day: Date.UTC read 99 as 1999)', `SELECT count(*) FROM (SELECT generate_series('0099-12-31'::timestamp, '2000-01-01'::timestamp, interval '1 second') AS g) s`, /up to over 10\^12 rows without reading a view|up to \d{11,} rows without reading a view/],
    ['year 0001 to 0099 by the hour', `SELECT count(*) FROM generate_series(date '0001-01-01', date '0099-12-31', interval '1 hour') g`, /up to 8\d{5} rows without reading a view/],
    ['BC dates', `SELECT count(*) FROM generate_series('0001-01-01 BC'::timestamp, '0001-01-01'::timestamp, interval '1 day') g`, /generate_series's start, stop and step must be literals/],
    ['infinity', `SELECT count(*) FROM generate_series('2026-01-01'::timestamp, 'infinity'::timestamp, interval '1 day') g`, /generate_series's start, stop and step must be literals/],
    ['epoch', `SELECT count(*) FROM generate_series('epoch'::timestamp, '2026-01-01'::timestamp, interval '1 day') g`, /generate_series's start, stop and step must be literals/],
    ['now as a literal', `SELECT count(*) FROM generate_series('now'::timestamp, '2026-01-01'::timestamp, interval '1 day') g`, /generate_series's start, stop and step must be literals/],
  ])('counts or refuses time series of %s', async (_label, sql, reason) => {
    expect(await reasonOf(sql)).toMatch(reason);
  });

  it('refuses a statement row of 48 columns of 20x (990 under the old bound, 2.6 GB with the answer\'s copies), and counts the outermost row\'s copies', async () => {
    const cols = Array.from({ length: 48 }, (_, i) => `replace(x, 'x', '${'y'.repeat(64)}') AS a${i}`).join(', ');
    expect(await reasonOf(`WITH c AS (SELECT '${'x'.repeat(95_000)}'::text AS x) SELECT ${cols} FROM c`))
      .toMatch(/the row of the statement's SELECT \(its copies in the answer counted\) can hold up to \d+ times .*at most 512 is allowed/);
    // 6 columns of 20x: 120 in a CTE's row, but 600 as the statement's own (the answer holds it 4 more times)
    const five = Array.from({ length: 6 }, (_, i) => `replace(x, 'x', '${'y'.repeat(64)}') AS a${i}`).join(', ');
    await acceptSemanticQuery(`WITH c AS (SELECT '${'x'.repeat(95_000)}'::text AS x), d AS (SELECT ${five} FROM c) SELECT length(a0) FROM d`);
    expect(await reasonOf(`WITH c AS (SELECT '${'x'.repeat(95_000)}'::text AS x) SELECT ${five} FROM c`))
      .toMatch(/the row of the statement's SELECT \(its copies in the answer counted\) can hold up to 6\d\d times .*at most 512 is allowed \(the statement's own row counts 5 times/);
  });

  it('accepts arrays it can count and the queries that were refused as "could not be fenced" (ARRAY[...]\'s list offsets)', async () => {
    const ok = [
      `WITH c AS (SELECT 1 AS x) SELECT ARRAY[x] FROM c`,
      `SELECT * FROM (SELECT 1 AS x) v WHERE v.x = ANY(ARRAY[1, 2])`,
      `WITH c AS (SELECT 1 AS x) SELECT x FROM c WHERE x = ANY('{1}'::int[])`,
      `SELECT * FROM (SELECT 1 AS x) v WHERE v.x IN (1, 2)`,
      `WITH t AS (SELECT sum(amount) AS rev, count(*) AS n FROM semantic.v_gl_fact) SELECT unnest(ARRAY['rev', 'n']) AS k, unnest(ARRAY[rev, n]) AS v FROM t`,
      `SELECT count(*) FROM (SELECT array_agg(g) AS a FROM generate_series(1, 40) g) s, unnest(s.a) x, unnest(s.a) y`,
      `SELECT count(*) FROM unnest((SELECT array_agg(g) FROM generate_series(1, 1000) g)) x`,
      `SELECT count(*) FROM unnest(ARRAY(SELECT g FROM generate_series(1, 1000) g)) x, unnest('{1,2,3}'::int[]) y`,
      `SELECT d::date, sum(f.amount) FROM generate_series(date '2026-01-01', date '2026-12-01', interval '1 month') d LEFT JOIN semantic.v_gl_fact f ON date_trunc('month', f.entry_date) = d GROUP BY ROLLUP(d::date)`,
      `SELECT count(*) FROM generate_series(0.1, 100.1, 0.1) g`,
      `SELECT count(*) FROM generate_series(9007199254740000, 9007199254740991) g`,
    ];
    for (const sql of ok) await expect(acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`)).resolves.toBe('accepted');
  });
});

/**
 * Review r10's probes: each was accepted and ran 10^10 rows (1-3 GB in one backend) from an organization with no data, or
 * grouped a view's values thousands of times (788 MB of 3,000 rows), because the guard counted fewer rows or repeats
 * than PostgreSQL makes; and date spines relative to today that were refused though they are small. The PostgreSQL counts
 * below were read from PostgreSQL 15 (SELECT count(*) FROM generate_series(...)).
 */
describe('semantic SQL guard: arrays of casts and ordered-set aggregates, exact series bounds, grouping sets and view repeats, anchored spines', () => {
  const K = `'${'x'.repeat(200)}'`;
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  /** The rows the guard counts for a series: crossed with 100,000 rows so that it is refused and names its count. */
  async function counted(series: string): Promise<number> {
    const reason = await reasonOf(`SELECT count(*) FROM generate_series(1, 100000) n, ${series} s`);
    const m = /the query can make up to (\d+) rows without reading a view/.exec(reason);
    if (!m) throw new Error(`${series}: ${reason}`);
    return Number(m[1]) / 100_000;
  }

  it.each([
    // 3.13 GB: the inner ::text cast was followed as if it were the array, and counted as one element
    ['a CTE\'s text cast to text then to an array (the 3.13 GB probe)', `WITH s AS (SELECT '{' || string_agg('1', ',') || '}' AS t FROM generate_series(1, 100000)) SELECT cardinality(array_agg(${K}::text)) AS n FROM s, unnest(s.t::text::int[]) a, unnest(s.t::text::int[]) b`],
    ['a scalar subquery\'s text cast to varchar then to an array', `SELECT count(*) FROM unnest((SELECT string_agg(g::text, ',') FROM generate_series(1, 100000) g)::varchar::int[]) a`],
    ['a cast of a function\'s text to an array', `SELECT count(*) FROM unnest(concat('{1', ',2}')::text::int[]) a`],
  ])('refuses unnest of %s: its elements cannot be counted', async (_label, sql) => {
    expect(await reasonOf(sql)).toMatch(/unnest\(\.\.\.\) reads an array whose elements cannot be counted .*\(MAX_SERIES_ROWS\)/);
  });

  const fractions = `(SELECT percentile_cont(ARRAY(SELECT 0.5::float8 FROM generate_series(1, 100000))) WITHIN GROUP (ORDER BY 1))`;
  const arrays = `(SELECT array_agg(g) AS a FROM generate_series(1, 100000) g) s`;
  it.each([
    // ~2 GB: an ordered-set aggregate of an array of fractions returns an array of as many elements, counted as one
    ['percentile_cont of 100,000 fractions, unnested twice', `SELECT length(string_agg(${K}, '')) FROM unnest(${fractions}) x, unnest(${fractions}) y`],
    ['percentile_disc of 100,000 fractions, unnested twice', `SELECT count(*) FROM unnest(${fractions.replace('percentile_cont', 'percentile_disc')}) x, unnest(${fractions.replace('percentile_cont', 'percentile_disc')}) y`],
    ['percentile_disc of one fraction ordered by an array of 100,000', `SELECT count(*) FROM ${arrays}, LATERAL (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s.a) AS p) q, unnest(q.p) x, unnest(q.p) y`],
    ['mode() ordered by an array of 100,000', `SELECT count(*) FROM ${arrays}, LATERAL (SELECT mode() WITHIN GROUP (ORDER BY s.a) AS p) q, unnest(q.p) x, unnest(q.p) y`],
    ['a string literal of 100,000 elements read as an array by ||', `SELECT count(*) FROM unnest(ARRAY[1] || '{${Array(50_000).fill('1').join(',')}}') x, unnest(ARRAY[1] || '{${Array(50_000).fill('1').join(',')}}') y`],
  ])('refuses %s (MAX_SERIES_ROWS)', async (_label, sql) => {
    expect(await reasonOf(sql)).toMatch(/the query can make up to (?:over 10\^12|\d{10,}) rows without reading a view, at unnest\(\.\.\.\) .*\(MAX_SERIES_ROWS\)/);
  });

  it.each([
    // PostgreSQL reads the fraction to the microsecond: 999,999 rows, counted as 1 when it was dropped
    ['fractions of a second', `generate_series('2026-01-01 00:00:00.000001'::timestamp, '2026-01-01 00:00:00.999999'::timestamp, interval '1 microsecond')`, 999_999],
    // ::timestamp ignores a UTC offset (subtracted before: counted 1)
    ['UTC offsets a timestamp ignores', `generate_series('2026-01-01 00:00:00-12'::timestamp, '2026-01-02 02:00:00+14'::timestamp, interval '1 second')`, 93_601],
    // ::date drops the time of day (kept before: counted 2)
    ['a date of a time of day', `generate_series('2026-01-01 23:59:59'::date::timestamp, '2026-01-02 00:00:00'::date::timestamp, interval '1 second')`, 86_401],
    // (the session's time zone may be any: a bound without an offset is counted anywhere within 16 hours of UTC, two of
    // them within 26 hours of each other's offset, a zone's largest change: Samoa's 24 hours in 2011 and an hour of DST)
    ['two dates of a time of day (a series of timestamptz in the session\'s time zone)', `generate_series('2026-01-01 23:59:59'::date, '2026-01-02 00:00:00'::date, interval '1 second')`, 86_401, 180_001],
    ['timestamptz with offsets (UTC compared)', `generate_series('2026-01-01 00:00:00+14'::timestamptz, '2026-01-01 00:00:00-12'::timestamptz, interval '1 second')`, 93_601],
    ['timestamptz with and without an offset (86,401 in UTC)', `generate_series('2026-01-01 00:00:00+14'::timestamptz, '2026-01-01 10:00'::timestamptz, interval '1 second')`, 86_401, 144_001],
    // interval steps: fractions, months of 28 days at the shortest, PostgreSQL's rounding to the microsecond
    ['half a day', `generate_series('2026-01-01'::timestamp, '2026-04-11'::timestamp, interval '0.5 day')`, 201],
    ['1.5 seconds', `generate_series('2026-01-01'::timestamp, '2026-01-01 00:01'::timestamp, interval '1.5 seconds')`, 41],
    ['1 microsecond', `generate_series('2026-01-01'::timestamp, '2026-01-01 00:00:00.05'::timestamp, interval '1 microsecond')`, 50_001],
    ['0.0000015 seconds (rounded to 1 microsecond)', `generate_series('2026-01-01'::timestamp, '2026-01-01 00:00:00.05'::timestamp, interval '0.0000015 seconds')`, 50_001],
    ['a month from the 31st', `generate_series('2026-01-31'::timestamp, '2026-03-31'::timestamp, interval '1 month')`, 3],
    ['1.5 months (a month and 15 days)', `generate_series('2026-01-01'::timestamp, '2036-01-01'::timestamp, interval '1.5 months')`, 81],
    ['half a year (6 months)', `generate_series('2026-01-01'::timestamp, '2126-01-01'::timestamp, interval '0.5 years')`, 201],
    ['1.5 weeks', `generate_series('2026-01-01'::timestamp, '2027-01-01'::timestamp, interval '1.5 weeks')`, 35],
    ['a millisecond as a time', `generate_series('2026-01-01'::timestamp, '2026-01-01 00:00:00.9'::timestamp, '00:00:00.001')`, 901],
    // numeric bounds counted exactly (in doubles: (0.3 - 0.1) / 0.2 = 0.9999999999999999, 1 row)
    ['numeric bounds', `generate_series(0.1, 0.3, 0.2)`, 2],
    ['numeric text bounds', `generate_series('0.1'::numeric, '0.7'::numeric, '0.1'::numeric)`, 7],
    // (a fourth argument declared would be read by Jest as a test's done callback where a row has three: a rest parameter)
  ] as [string, string, number, number?][])('counts a series of %s as PostgreSQL does or more', async (_label, series, rows, ...most) => {
    const n = await counted(series);
    expect(n).toBeGreaterThanOrEqual(rows);
    // (conservative, but not so far that a report's series is refused)
    expect(n).toBeLessThanOrEqual(most[0] ?? Math.max(rows * 1.2, rows + 100));
  });

  it.each([
    // each counted as 1 row before: 40 of them cross-joined made 2^40
    ['numeric bounds, 40 cross-joined (refused at the 17th: 2^17)', `SELECT count(*) FROM ${Array.from({ length: 40 }, (_, i) => `generate_series(0.1, 0.3, 0.2) g${i}`).join(', ')}`, /up to 131072 rows without reading a view/],
    ['fractions of a second', `SELECT count(*) FROM generate_series('2026-01-01 00:00:00.000001'::timestamp, '2026-01-01 00:00:00.999999'::timestamp, interval '1 microsecond') a`, /up to 999999 rows without reading a view/],
    ['the UTC offsets of timestamps, cross-joined', `SELECT count(*) FROM generate_series('2026-01-01 00:00:00-12'::timestamp, '2026-01-02 02:00:00+14'::timestamp, interval '1 second') a, generate_series('2026-01-01 00:00:00-12'::timestamp, '2026-01-02 02:00:00+14'::timestamp, interval '1 second') b`, /up to 8761147201 rows without reading a view/],
    ['dates of a time of day by the second, cross-joined', `SELECT count(*) FROM generate_series('2026-01-01 23:59:59'::date, '2026-01-02 00:00:00'::date, interval '1 second') a, generate_series(1, 2) b`, /rows without reading a view/],
    // an ambiguous time of the session's time zone (a daylight saving change) may be an hour later than written
    // (in Europe/Berlin, 01:59:59 is summer time, 02:00:00 winter time: 2 rows, counted 1 before)
    ['timestamptz of the session\'s time zone, cross-joined', `SELECT count(*) FROM ${Array.from({ length: 20 }, (_, i) => `generate_series('2026-10-25 01:59:59'::timestamptz, '2026-10-25 02:00:00'::timestamptz, interval '1 hour') g${i}`).join(', ')}`, /up to (?:over 10\^12|\d+) rows without reading a view/],
    // integer casts round (1.4::int is 1, 1.6::int 2), a numeric's precision rounds too: not counted
    ['integer casts of fractions', `SELECT count(*) FROM generate_series(1.4::int, 1.6::int) g`, /generate_series's start, stop and step must be literals/],
    ['numeric(p, s) casts', `SELECT count(*) FROM generate_series(1.04::numeric(2, 1), 1.06::numeric(2, 1), 0.1) g`, /generate_series's start, stop and step must be literals/],
    ['an ISO 8601 interval', `SELECT count(*) FROM generate_series('2026-01-01'::timestamp, '2026-01-02'::timestamp, interval 'PT0.000001S') g`, /generate_series's start, stop and step must be literals/],
    ['more than 6 digits of a second', `SELECT count(*) FROM generate_series('2026-01-01 00:00:00.0000004'::timestamp, '2026-01-01 00:00:00.0000006'::timestamp, interval '1 microsecond') g`, /generate_series's start, stop and step must be literals/],
    ['a named time zone', `SELECT count(*) FROM generate_series('2026-01-01 00:00 Europe/Paris'::timestamptz, '2026-01-02'::timestamptz, interval '1 hour') g`, /generate_series's start, stop and step must be literals/],
    ['an interval of mixed signs', `SELECT count(*) FROM generate_series('2026-01-01'::timestamp, '2026-01-02'::timestamp, interval '1 day -23 hours') g`, /generate_series's start, stop and step must be literals/],
    // a span from a literal date to today is not counted (today is not known when the query is checked)
    ['a literal date to current_date', `SELECT count(*) FROM generate_series('2025-01-01'::date, current_date, interval '1 day') g`, /generate_series's start, stop and step must be literals/],
    ['a literal timestamp to now()', `SELECT count(*) FROM generate_series(timestamptz '2025-01-01', now(), interval '1 day') g`, /generate_series's start, stop and step must be literals/],
  ])('refuses or counts a series of %s', async (_label, sql, reason) => {
    expect(await reasonOf(sql)).toMatch(reason);
  });

  const sets = (n: number) => Array(n).fill('()').join(', ');
  it.each([
    // 788 MB on 3,000 rows: each grouping set aggregates every row of the view again
    ['4,096 empty grouping sets', `SELECT array_agg(memo) FROM semantic.v_gl_fact GROUP BY GROUPING SETS (${sets(4096)})`, 'array_agg', 4096],
    ['CUBE of 12 columns', `SELECT array_agg(memo) FROM semantic.v_gl_fact GROUP BY CUBE (account_code, account_name, account_type, currency, entry_date, source, period_no, entry_id, counterparty_type, memo, description, amount)`, 'array_agg', 4096],
    ['33 grouping sets of string_agg', `SELECT string_agg(memo, ',') FROM semantic.v_gl_fact GROUP BY GROUPING SETS (${sets(33)})`, 'string_agg', 33],
    ['CUBE of 6 of jsonb_agg', `SELECT jsonb_agg(memo) FROM semantic.v_gl_fact GROUP BY CUBE (account_code, account_name, account_type, currency, entry_date, source)`, 'jsonb_agg', 64],
    // (2 rows of a daily spine cast to date a view row, in 5 x 4 grouping sets)
    ['a date spine with ROLLUP of 4 and CUBE of 2', `SELECT string_agg(f.memo, ',') FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY ROLLUP (f.account_code, f.currency, f.source, f.account_type), CUBE (d, f.memo)`, 'string_agg', 40],
  ])('refuses %s: each view value repeated once a grouping set', async (_label, sql, fn, repeats) => {
    expect(await reasonOf(sql)).toMatch(new RegExp(`${fn}\\(\\.\\.\\.\\) reads a view's value that the rows it aggregates may repeat up to ${repeats} times .*GROUPING SETS / CUBE / ROLLUP.*at most 32 are allowed \\(ACROSS_ROWS_MAX_VIEW_REPEATS\\)`));
  });

  it('accepts a report\'s ROLLUP and CUBE of a few columns with values built across rows', async () => {
    for (const sql of [
      `SELECT account_type, account_code, currency, string_agg(memo, ', '), array_agg(entry_date) FROM semantic.v_gl_fact GROUP BY ROLLUP (account_type, account_code, currency)`,
      `SELECT account_type, currency, json_agg(amount), jsonb_object_agg(entry_id, memo) FROM semantic.v_gl_fact GROUP BY CUBE (account_type, currency)`,
      `SELECT account_type, string_agg(memo, ',') FROM semantic.v_gl_fact GROUP BY GROUPING SETS ((account_type), (currency), ())`,
      `SELECT string_agg(memo, ',') FROM semantic.v_gl_fact GROUP BY CUBE (account_type, account_code, currency, source, period_no)`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it('accepts date spines from a truncated or cast anchor to the same anchor (each counted with a unit of the truncation as slack)', async () => {
    for (const sql of [
      `SELECT d::date FROM generate_series(date_trunc('month', current_date), current_date, interval '1 day') d`,
      `SELECT m::date FROM generate_series(date_trunc('month', current_date - interval '23 months'), date_trunc('month', current_date), interval '1 month') m`,
      `SELECT m::date FROM generate_series((current_date - interval '1 year')::date, current_date, interval '1 month') m`,
      `SELECT count(*) FROM generate_series(date_trunc('month', current_date - 3), date_trunc('month', current_date), interval '1 month') g`,
      `SELECT d FROM generate_series(date_trunc('month', now()), now(), interval '1 day') d`,
      `SELECT m FROM generate_series(date_trunc('month', now() - interval '23 months'), date_trunc('month', now()), interval '1 month') m`,
      `SELECT m FROM generate_series((now() - interval '1 year')::date, now()::date, interval '1 month') m`,
      `SELECT h FROM generate_series(current_timestamp(0) - interval '1 day', current_timestamp(0), interval '1 hour') h`,
      `SELECT d FROM generate_series(date_trunc('year', current_date), current_date, interval '1 day') d`,
      `SELECT d::date, string_agg(f.memo, ', ') FROM generate_series(date_trunc('month', current_date), current_date, interval '1 day') d
        LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY d`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it('counts a truncated anchor with its unit of slack: a spine by the second from the start of the day or month', async () => {
    // a day by the second from date_trunc('day', now()): a day (25 hours) of slack, 90,001 rows; a day more before it, 180,001
    await expect(accepted(`SELECT count(*) FROM generate_series(date_trunc('day', now()), now(), interval '1 second') g`)).resolves.toBe('accepted');
    expect(await reasonOf(`SELECT count(*) FROM generate_series(date_trunc('day', now()) - interval '1 day', now(), interval '1 second') g`)).toMatch(/up to 180001 rows without reading a view/);
    // a month (31 days and an hour) by the second
    expect(await reasonOf(`SELECT count(*) FROM generate_series(date_trunc('month', current_date), current_date, interval '1 second') g`)).toMatch(/up to 2682001 rows without reading a view/);
    // a decade or more of truncation is not counted
    expect(await reasonOf(`SELECT count(*) FROM generate_series(date_trunc('decade', current_date), current_date, interval '1 year') g`)).toMatch(/or start and stop the same anchor/);
  });
});

describe('semantic SQL guard: steps below a microsecond, and aggregates of an enclosing query', () => {
  const K = `'${'x'.repeat(200)}'`;
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const day = `'2000-01-01'::timestamp, '2000-01-02'::timestamp`;

  it.each([
    // PostgreSQL reads each as 1 µs (rounded to the nearest): 86,400,000,001 rows, counted as 1 (5.15 GB)
    ['0.6 us (the 5.15 GB probe)', `SELECT cardinality(array_agg(${K} || g)) FROM (SELECT generate_series(${day}, '0.6 us') AS g) s`, 86400000001],
    ['0.0006 ms', `SELECT count(*) FROM generate_series(${day}, '0.0006 ms') g`, 86400000001],
    ['0.0000006 sec', `SELECT count(*) FROM generate_series(${day}, '0.0000006 sec') g`, 86400000001],
    ['a time of 0.0000006 seconds', `SELECT count(*) FROM generate_series(${day}, interval '00:00:00.0000006') g`, 86400000001],
    // a day of now() (25 hours and its slack), by the microsecond
    ['0.6 us from now()', `SELECT count(*) FROM generate_series(now() - interval '1 day', now(), '0.6 us') g`, 90000000001],
  ])('refuses a step of %s: a step that is not zero lasts at least a microsecond', async (_label, sql, rows) => {
    expect(await reasonOf(sql)).toMatch(new RegExp(`the query can make up to ${rows} rows without reading a view, at generate_series`));
  });

  it('refuses a step of 0.06 year (PostgreSQL: 1 mon), cross-joined with itself (5.21 GB); a zero-length span of such a step is one row', async () => {
    const series = `generate_series('0001-01-01'::timestamp, '9999-01-01'::timestamp, interval '0.06 year')`;
    expect(await reasonOf(`SELECT count(*) FROM ${series} a, ${series} b`)).toMatch(/the query can make up to over 10\^12 rows without reading a view/);
    await expect(accepted(`SELECT count(*) FROM generate_series('2000-01-01'::timestamp, '2000-01-01'::timestamp, '0.6 us') g`)).resolves.toBe('accepted');
    await expect(accepted(`SELECT count(*) FROM generate_series('2000-01-01'::timestamp, '2000-01-01 00:00:00.05'::timestamp, '0.6 us') g`)).resolves.toBe('accepted');
  });

  const sets = (n: number) => Array(n).fill('()').join(', ');
  it.each([
    ['4,096 empty grouping sets', `SELECT (SELECT cardinality(array_agg(v.memo))) FROM semantic.v_gl_fact v GROUP BY GROUPING SETS (${sets(4096)})`, 'array_agg', 4096],
    ['a view joined with 100,000 rows of a series', `SELECT (SELECT cardinality(array_agg(v.memo))) FROM semantic.v_gl_fact v, generate_series(1, 100000) g`, 'array_agg', 100000],
    ['string_agg, a view joined with a series', `SELECT (SELECT length(string_agg(v.memo, ','))) FROM semantic.v_gl_fact v, generate_series(1, 100000) g`, 'string_agg', 100000],
    ['CUBE of 12 columns', `SELECT (SELECT cardinality(array_agg(v.memo))) FROM semantic.v_gl_fact v GROUP BY CUBE (account_code, account_name, account_type, currency, entry_date, source, period_no, entry_id, counterparty_type, memo, description, amount)`, 'array_agg', 4096],
    ['an unqualified column the subquery\'s view may not have', `SELECT (SELECT string_agg(memo, ',') FROM semantic.v_gl_fact x WHERE x.entry_id = v.entry_id) FROM semantic.v_gl_fact v, generate_series(1, 100000) g`, 'string_agg', 100000],
    ['two levels up', `SELECT (SELECT (SELECT jsonb_agg(v.memo))) FROM semantic.v_gl_fact v, generate_series(1, 100000) g`, 'jsonb_agg', 100000],
  ])('refuses an aggregate in a subquery of the enclosing query\'s columns: %s', async (_label, sql, fn, repeats) => {
    expect(await reasonOf(sql)).toMatch(new RegExp(`^${fn}\\(\\.\\.\\.\\) \\(an aggregate of an enclosing query: its arguments read only that query's columns.*\\) reads a view's value that the rows it aggregates may repeat up to ${repeats} times .*at most 32 are allowed \\(ACROSS_ROWS_MAX_VIEW_REPEATS\\)`));
  });

  it('accepts correlated subqueries that aggregate their own FROM items', async () => {
    for (const sql of [
      `SELECT v.account_code, (SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f WHERE f.account_code = v.account_code) FROM semantic.v_gl_fact v`,
      `SELECT d, (SELECT string_agg(memo, ',') FROM semantic.v_gl_fact f WHERE f.entry_date = d::date) FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d`,
      `SELECT v.account_code, (SELECT count(*) FROM semantic.v_gl_fact f WHERE f.account_code = v.account_code), (SELECT array_agg(f.memo) FROM semantic.v_gl_fact f WHERE f.account_code = v.account_code) FROM semantic.v_gl_fact v GROUP BY ROLLUP (v.account_code, v.currency)`,
      `SELECT g, (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x) FROM semantic.v_gl_fact v, generate_series(1, 100000) g`,
      `SELECT v.account_code, (SELECT jsonb_agg(f.amount ORDER BY f.entry_date) FROM semantic.v_gl_fact f WHERE f.account_code = v.account_code AND f.currency = v.currency) FROM semantic.v_gl_fact v, generate_series(1, 1000) g`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});

describe('semantic SQL guard: an alias is not a column, values aggregated across rows twice, round / trunc scales', () => {
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const outer = `FROM semantic.v_gl_fact v, generate_series(1, 100000) g`;
  const cube = 'GROUP BY CUBE (account_code, account_name, account_type, currency, entry_date, source, period_no, entry_id, counterparty_type, memo, description, amount)';

  it.each([
    ['VALUES aliased memo(x) (the 4.31 GB probe)', `SELECT (SELECT cardinality(array_agg(memo)) FROM (VALUES (1)) AS memo(x)) ${outer}`, 'array_agg', 100000],
    ['a subquery aliased memo', `SELECT (SELECT cardinality(array_agg(memo)) FROM (SELECT 1 AS x) AS memo) ${outer}`, 'array_agg', 100000],
    ['jsonb_agg', `SELECT (SELECT jsonb_array_length(jsonb_agg(memo)) FROM (SELECT 1 AS x) AS memo) ${outer}`, 'jsonb_agg', 100000],
    ['string_agg in HAVING', `SELECT count(*) ${outer} HAVING (SELECT length(string_agg(memo, ',')) FROM (SELECT 1 AS x) AS memo) > 0`, 'string_agg', 100000],
    ['in ORDER BY', `SELECT 1 ${outer} ORDER BY (SELECT cardinality(array_agg(memo)) FROM (VALUES (1)) AS memo(x))`, 'array_agg', 100000],
    ['in DISTINCT ON', `SELECT DISTINCT ON ((SELECT cardinality(array_agg(memo)) FROM (VALUES (1)) AS memo(x))) 1 ${outer}`, 'array_agg', 100000],
    ['CUBE of 12', `SELECT (SELECT cardinality(array_agg(memo)) FROM (VALUES (1)) AS memo(x)) FROM semantic.v_gl_fact v ${cube}`, 'array_agg', 4096],
  ])('refuses an aggregate of a name that is an inner FROM item\'s alias but a column of the enclosing view: %s', async (_label, sql, fn, repeats) => {
    expect(await reasonOf(sql)).toMatch(new RegExp(`^${fn}\\(\\.\\.\\.\\) \\(an aggregate of an enclosing query: .* reads a view's value that the rows it aggregates may repeat up to ${repeats} times`));
  });

  it('accepts an aggregate of a subquery\'s own column named as its alias', async () => {
    await expect(accepted(`SELECT (SELECT cardinality(array_agg(memo)) FROM (SELECT 1 AS memo) AS memo) ${outer}`)).resolves.toBe('accepted');
  });

  const big = `(SELECT string_agg(memo, '') AS big FROM semantic.v_gl_fact)`;
  it.each([
    ['a subquery\'s string_agg joined with the view (6 GB at 2,000 rows)', `SELECT cardinality(array_agg(s.big)) FROM semantic.v_gl_fact v, ${big} s`, 'array_agg'],
    ['a scalar subquery of one', `SELECT cardinality(array_agg((SELECT string_agg(x.memo, '') FROM semantic.v_gl_fact x))) FROM semantic.v_gl_fact v`, 'array_agg'],
    ['a CTE of one', `WITH s AS ${big} SELECT length(string_agg(s.big, '')) FROM semantic.v_gl_fact v, s`, 'string_agg'],
    ['a window aggregate\'s column', `SELECT cardinality(array_agg(w)) FROM (SELECT string_agg(memo, '') OVER () AS w FROM semantic.v_gl_fact) s`, 'array_agg'],
    ['the whole row of one, as JSON', `SELECT jsonb_array_length(jsonb_agg(s)) FROM semantic.v_gl_fact v, ${big} s`, 'jsonb_agg'],
    ['a derived table passing one on', `SELECT cardinality(array_agg(s.big)) FROM (SELECT v.memo, t.big FROM semantic.v_gl_fact v, ${big} t) s`, 'array_agg'],
    ['an aggregate of the enclosing query, in a subquery', `SELECT (SELECT cardinality(array_agg(s.big))) FROM semantic.v_gl_fact v, ${big} s`, 'array_agg'],
  ])('refuses an across-rows aggregate of a value already built across rows: %s', async (_label, sql, fn) => {
    expect(await reasonOf(sql)).toMatch(new RegExp(`^${fn}\\(\\.\\.\\.\\) aggregates a value that is already built across rows .*every row would add the whole value again`));
  });

  it('refuses a window aggregate and ARRAY(SELECT ...) of such values', async () => {
    expect(await reasonOf(`SELECT length(string_agg(s.big, '') OVER ()) FROM (SELECT account_code, string_agg(memo, '') AS big FROM semantic.v_gl_fact GROUP BY 1) s`))
      .toMatch(/^string_agg\(\.\.\.\) \(a window aggregate: each row holds all of its frame\) aggregates a value that is already built across rows/);
    expect(await reasonOf(`SELECT cardinality(ARRAY(SELECT s.big FROM semantic.v_gl_fact v, ${big} s))`)).toMatch(/^ARRAY\(SELECT \.\.\.\) aggregates a value that is already built across rows/);
  });

  it('accepts values built across rows read once: final, of one row, or of a grouped subquery aggregated again', async () => {
    for (const sql of [
      `SELECT string_agg(x, ',') FROM (SELECT account_code AS x FROM semantic.v_gl_fact GROUP BY 1) t`,
      `SELECT * FROM (SELECT string_agg(memo, ',') FROM semantic.v_gl_fact) t`,
      `SELECT * FROM semantic.v_gl_fact v, ${big} s`,
      `SELECT array_agg(s.big) FROM ${big} s`,
      `SELECT array_agg((SELECT string_agg(memo, '') FROM semantic.v_gl_fact))`,
      `SELECT json_agg(json_build_object('account', a, 'memos', m)) FROM (SELECT account_code a, json_agg(memo) m FROM semantic.v_gl_fact GROUP BY 1) t`,
      `SELECT jsonb_agg(t) FROM (SELECT account_code, array_agg(memo) m, count(*) n FROM semantic.v_gl_fact GROUP BY 1) t`,
      `SELECT account_code, string_agg(memo, ','), array_agg(amount), count(*) FROM semantic.v_gl_fact GROUP BY 1`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it.each([
    ['round(g, 16383) over a series (1.63 GB)', `SELECT cardinality(array_agg(round(g, 16383)::text)) FROM generate_series(1, 100000) g`, 'round'],
    ['round(1, 16383) over a view self-join (4.85 GB)', `SELECT cardinality(array_agg(round(1, 16383)::text)) FROM semantic.v_gl_fact a, semantic.v_gl_fact b`, 'round'],
    ['a view\'s number', `SELECT cardinality(array_agg(round(v.amount::numeric, 16383)::text)) FROM semantic.v_gl_fact v`, 'round'],
    ['a column scale', `SELECT cardinality(array_agg(round(1, v.period_no)::text)) FROM semantic.v_gl_fact v`, 'round'],
    ['trunc past 100', `SELECT trunc(amount, 101) FROM semantic.v_gl_fact`, 'trunc'],
  ])('refuses a scale of round / trunc that is not an integer literal of at most 100: %s', async (_label, sql, fn) => {
    expect(await reasonOf(sql)).toBe(`${fn}(x, s)'s scale (second argument) must be an integer literal of at most 100 (MAX_ROUND_SCALE): the value prints s digits after the point whatever x is (round(1, 16383) is 16,385 bytes)`);
  });

  it('refuses a value built across rows behind jsonb\'s - operator, and a FETCH FIRST 1 ROW WITH TIES taken for one row (3.6 and 2.1 GB)', async () => {
    const jsonb = `(SELECT jsonb_agg(memo) j FROM semantic.v_gl_fact)`;
    expect(await reasonOf(`SELECT cardinality(array_agg(s.j - 'x')) FROM semantic.v_gl_fact v, ${jsonb} s`))
      .toMatch(/^array_agg\(\.\.\.\) aggregates a value that is already built across rows/);
    expect(await reasonOf(`SELECT cardinality(array_agg(s.big)) FROM (SELECT string_agg(memo, '') OVER () big FROM semantic.v_gl_fact w ORDER BY 1 FETCH FIRST 1 ROW WITH TIES) s`))
      .toMatch(/^array_agg\(\.\.\.\) aggregates a value that is already built across rows/);
    // one row for sure: LIMIT 1 without ties; a comparison of such a value is a truth value
    for (const sql of [
      `SELECT cardinality(array_agg(s.big)) FROM (SELECT string_agg(memo, '') OVER () big FROM semantic.v_gl_fact w ORDER BY 1 LIMIT 1) s`,
      `SELECT count(*) FILTER (WHERE s.j = '[]') FROM semantic.v_gl_fact v, ${jsonb} s`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it('refuses such a value aggregated over a FULL JOIN of one-row items (2^k rows: 3.1 GB at 10), or copied by first_value OVER into every row of its frame (2.3 GB)', async () => {
    const t = (i: number) => `(SELECT 1 FROM (SELECT 1) a FULL JOIN (SELECT 1) b ON false) t${i}`;
    // (each FULL JOIN now counted as doubling the rows made of no view: the 2^10 rows' constants are past the bound too)
    expect(await reasonOf(`SELECT cardinality(array_agg((SELECT string_agg(memo, '') FROM semantic.v_gl_fact))) FROM ${[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(t).join(', ')}`))
      .toMatch(/^array_agg\(\.\.\.\) (aggregates a value that is already built across rows|adds up to 2048 bytes that are not a view's values)/);
    expect(await reasonOf(`SELECT cardinality(array_agg(w.fv)) FROM (SELECT first_value(t.big) OVER (ORDER BY length(t.big) DESC) fv FROM (SELECT string_agg(memo, '') big FROM semantic.v_gl_fact GROUP BY account_code) t) w`))
      .toMatch(/^array_agg\(\.\.\.\) aggregates a value that is already built across rows/);
    // lag moves each value to one other row; one-row items cross-joined stay one row
    for (const sql of [
      `SELECT cardinality(array_agg(w.prev)) FROM (SELECT lag(t.big) OVER (ORDER BY t.a) prev FROM (SELECT account_code a, string_agg(memo, '') big FROM semantic.v_gl_fact GROUP BY 1) t) w`,
      `SELECT cardinality(array_agg((SELECT string_agg(memo, '') FROM semantic.v_gl_fact))) FROM (SELECT 1) a, (SELECT 2) b`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it('fences a derived VALUES table at its own parentheses, not its first row\'s (a scalar subquery or a value in parentheses was refused as "could not be fenced")', async () => {
    for (const [sql, statement] of [
      [`SELECT s.a FROM (VALUES ((SELECT 'a'))) s(a)`, `SELECT s.a FROM (VALUES ((SELECT 'a')) OFFSET 0) s(a)`],
      [`SELECT * FROM (VALUES ((1)), (((2)))) AS v(x)`, `SELECT * FROM (VALUES ((1)), (((2))) OFFSET 0) AS v(x)`],
      [`SELECT * FROM (VALUES ((SELECT max(q.x) FROM (SELECT 1 AS x) q)), (2)) v(y)`, `SELECT * FROM (VALUES ((SELECT max(q.x) FROM (SELECT 1 AS x OFFSET 0) q)), (2) OFFSET 0) v(y)`],
      [`SELECT * FROM ((VALUES ((SELECT 1))) UNION ALL (SELECT 2)) u(x), (((VALUES ((3))))) w(z)`, `SELECT * FROM ((VALUES ((SELECT 1))) UNION ALL (SELECT 2) OFFSET 0) u(x), (((VALUES ((3)) OFFSET 0))) w(z)`],
    ]) expect((await acceptSemanticQuery(sql)).statement).toBe(statement);
  });

  it('accepts one element of an array_agg by a literal index (last minus first), aggregated again too; its slice, a computed index, the array and an element built across rows stay refused', async () => {
    const change = `(array_agg(amount ORDER BY entry_date DESC))[1] - (array_agg(amount ORDER BY entry_date))[1]`;
    const perAccount = `(SELECT account_code, ${change} AS d, (array_agg(memo ORDER BY entry_date DESC))[1] AS last_memo FROM semantic.v_gl_fact GROUP BY 1) t`;
    for (const sql of [
      `SELECT ${change} FROM semantic.v_gl_fact`,
      `SELECT t.account_code, t.d, sum(t.d) OVER (), cardinality(array_agg(t.last_memo) OVER ()) FROM ${perAccount}`,
      `SELECT cardinality(array_agg(t.d)), length(string_agg(t.last_memo, ',')) FROM ${perAccount}, generate_series(1, 2) g`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
    const again = /^array_agg\(\.\.\.\) \(a window aggregate: each row holds all of its frame\) aggregates a value that is already built across rows/;
    for (const e of [`(array_agg(memo))[1:1000]`, `(array_agg(memo))[count(*)]`, `array_agg(memo)`, `(array_agg(memo))[1:1]`]) {
      expect(await reasonOf(`SELECT cardinality(array_agg(t.e) OVER ()) FROM (SELECT account_code, ${e} AS e FROM semantic.v_gl_fact GROUP BY 1) t`)).toMatch(again);
    }
    // one element of an array of values built across rows is such a value
    expect(await reasonOf(`SELECT cardinality(array_agg(t.e) OVER ()) FROM (SELECT s.account_code, (array_agg(s.big))[1] AS e FROM (SELECT account_code, string_agg(memo, '') AS big FROM semantic.v_gl_fact GROUP BY 1) s GROUP BY 1) t`)).toMatch(again);
  });

  it('counts a literal scale\'s digits as constants of a value built across rows', async () => {
    // 2 x (100 + 3) bytes of digits a row, and the separator's and the series' text: past 256 bytes
    expect(await reasonOf(`SELECT length(string_agg(round(g, 100)::text || round(g, 100)::text || round(g, 100)::text, ',')) FROM generate_series(1, 1000) g`))
      .toMatch(/^string_agg\(\.\.\.\) adds up to \d+ bytes that are not a view's values/);
    for (const sql of [
      `SELECT round(amount, 2), trunc(amount, -2), round(amount), round(amount, 2::int), trunc(amount) FROM semantic.v_gl_fact`,
      `SELECT string_agg(round(g, 2)::text, ',') FROM generate_series(1, 100000) g`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});

describe('semantic SQL guard: rows made by FULL JOIN, set-returning functions and set operations; lag / lead by a computed offset', () => {
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const again = (fn: string) => new RegExp(`^${fn}\\(\\.\\.\\.\\) aggregates a value that is already built across rows .*every row would add the whole value again`);
  const big = `WITH s AS (SELECT string_agg(memo, '') AS big FROM semantic.v_gl_fact)`;
  /** a value built across rows of no view value (its rows repeat none): only the across-rows rule holds it */
  const bigx = `WITH s AS (SELECT string_agg('x', '') AS big FROM semantic.v_gl_fact a, semantic.v_gl_fact b)`;
  /** `k` one-row items FULL JOINed ON false: k rows */
  const fullChain = (k: number, p = 'a') => Array.from({ length: k }, (_, i) => `(SELECT ${i} ${p}c${i}) ${p}${i}`).reduce((acc, x) => `${acc} FULL JOIN ${x} ON false`);
  /** an ordinary period comparison: this year's and last year's totals by account, FULL JOINed */
  const periods = `SELECT coalesce(t.account_code, l.account_code) AS account_code, t.total AS this_year, l.total AS last_year, t.total - l.total AS change
    FROM (SELECT account_code, sum(amount) AS total FROM semantic.v_gl_fact WHERE entry_date >= date_trunc('year', current_date) GROUP BY 1) t
    FULL JOIN (SELECT account_code, sum(amount) AS total FROM semantic.v_gl_fact WHERE entry_date >= date_trunc('year', current_date) - interval '1 year' AND entry_date < date_trunc('year', current_date) GROUP BY 1) l
    ON l.account_code = t.account_code`;

  it.each([
    ['a CTE\'s column beside a FULL JOIN (99^4 bytes, 2.25 GB from no data)', `WITH s0 AS (SELECT string_agg('x', '') v FROM ${fullChain(3)}), s1 AS (SELECT string_agg(s0.v, '') v FROM s0, ${fullChain(3)}) SELECT length(s1.v) FROM s1`, 'string_agg'],
    ['a scalar subquery aggregated over a FULL JOIN', `${big} SELECT cardinality(array_agg((SELECT big FROM s))) FROM ${fullChain(2)}`, 'array_agg'],
    ['a scalar subquery aggregated over a NATURAL FULL JOIN', `${big} SELECT cardinality(array_agg((SELECT big FROM s))) FROM (SELECT 1 c) a NATURAL FULL JOIN (SELECT 2 c) b`, 'array_agg'],
    ['a subquery\'s column passed on beside a FULL JOIN', `${big} SELECT cardinality(array_agg(t.big)) FROM (SELECT s.big FROM s, ${fullChain(2)}) t`, 'array_agg'],
  ])('refuses a value built across rows aggregated again over a FULL JOIN of one-row items (up to one row of each side): %s', async (_label, sql, fn) => {
    expect(await reasonOf(sql)).toMatch(again(fn));
  });

  it('counts each FULL JOIN as doubling the rows made of no view (8 chains of 12 one-row items: 12^8 rows, 2.8 GB) and the view values repeated', async () => {
    const chains = Array.from({ length: 8 }, (_, i) => `(${fullChain(12, `q${i}x`)})`).join(', ');
    expect(await reasonOf(`SELECT cardinality(array_agg('xxxxxxxxxxxxxxxx'::text)) FROM ${chains}`))
      .toMatch(/^the query can make up to \d+ rows without reading a view, at a FULL JOIN .* at most 100000 are allowed \(MAX_SERIES_ROWS\)/);
    expect(await reasonOf(`SELECT count(*) FROM ${chains}`)).toMatch(/^the query can make up to \d+ rows without reading a view, at a FULL JOIN/);
    // each view row beside 7 one-row items FULL JOINed: counted 2^6 times
    expect(await reasonOf(`SELECT length(string_agg(f.memo, '')) FROM semantic.v_gl_fact f, ${fullChain(7)}`))
      .toMatch(/^string_agg\(\.\.\.\) reads a view's value that the rows it aggregates may repeat up to 64 times/);
    await expect(accepted(`SELECT length(string_agg(f.memo, '')) FROM semantic.v_gl_fact f, ${fullChain(3)}`)).resolves.toBe('accepted');
  });

  it.each([
    ['in the target list (1.9 GB)', `WITH s AS (SELECT string_agg('x', '') big FROM semantic.v_gl_fact a, semantic.v_gl_fact b) SELECT cardinality(array_agg(t.big)) FROM (SELECT big, generate_series(1, 100000) g FROM s) t`, 'array_agg'],
    ['in ORDER BY (1.9 GB)', `WITH s AS (SELECT string_agg('x', '') big FROM semantic.v_gl_fact a, semantic.v_gl_fact b) SELECT cardinality(array_agg((SELECT big FROM s))) FROM (SELECT 1 one FROM s ORDER BY generate_series(1, 100000)) t`, 'array_agg'],
    ['in GROUP BY', `${bigx} SELECT cardinality(array_agg(t.big)) FROM (SELECT big FROM s GROUP BY big, generate_series(1, 1000)) t`, 'array_agg'],
    ['in DISTINCT ON', `${big} SELECT cardinality(array_agg((SELECT big FROM s))) FROM (SELECT DISTINCT ON (unnest('{1,2,3}'::int[])) 1 one) t`, 'array_agg'],
    ['beside an aggregate of its own', `SELECT cardinality(array_agg(t.big)) FROM (SELECT string_agg('x', '') big, generate_series(1, 1000) g FROM semantic.v_gl_fact a, semantic.v_gl_fact b) t`, 'array_agg'],
    ['UNION ALL of its arms (1,000 arms: 1,000 times the value)', `${big} SELECT length(string_agg(big, '')) FROM (SELECT big FROM s UNION ALL SELECT big FROM s UNION ALL SELECT big FROM s) u`, 'string_agg'],
    ['UNION of aggregates', `SELECT length(string_agg(u.x, '')) FROM (SELECT string_agg(memo, '') x FROM semantic.v_gl_fact UNION SELECT string_agg(memo, ',') FROM semantic.v_gl_fact) u`, 'string_agg'],
  ])('refuses a value built across rows repeated by a set-returning function or a set operation, aggregated again: %s', async (_label, sql, fn) => {
    expect(await reasonOf(sql)).toMatch(again(fn));
  });

  it('refuses ARRAY(SELECT ...) of a one-row SELECT whose ORDER BY runs a set-returning function', async () => {
    expect(await reasonOf(`${bigx} SELECT cardinality(ARRAY(SELECT (SELECT big FROM s) FROM s ORDER BY generate_series(1, 1000)))`))
      .toMatch(/^ARRAY\(SELECT \.\.\.\) aggregates a value that is already built across rows/);
  });

  it('refuses lag / lead by a computed offset (one row\'s value copied into every row: 1.5 GB), as first_value', async () => {
    const rows = `(SELECT row_number() OVER (ORDER BY k) r, big FROM (SELECT 0 k, string_agg(memo, '') big FROM semantic.v_gl_fact UNION ALL SELECT 1, memo FROM semantic.v_gl_fact) u) s2`;
    expect(await reasonOf(`SELECT cardinality(array_agg(fv)) FROM (SELECT lag(big, (r - 1)::int) OVER (ORDER BY r) fv FROM ${rows}) t`)).toMatch(again('array_agg'));
    const grouped = `(SELECT account_code k, string_agg(memo, '') big FROM semantic.v_gl_fact GROUP BY 1) g`;
    expect(await reasonOf(`SELECT cardinality(array_agg(fv)) FROM (SELECT lead(big, length(k)) OVER (ORDER BY k) fv FROM ${grouped}) t`)).toMatch(again('array_agg'));
    // a literal offset moves each value to one other row; a default (third argument) is that row's own
    for (const sql of [
      `SELECT cardinality(array_agg(fv)) FROM (SELECT lag(big) OVER (ORDER BY k) fv FROM ${grouped}) t`,
      `SELECT cardinality(array_agg(fv)) FROM (SELECT lag(big, 1, big) OVER (ORDER BY k) fv FROM ${grouped}) t`,
      `SELECT cardinality(array_agg(fv)) FROM (SELECT lead(big, -1) OVER (ORDER BY k) fv FROM ${grouped}) t`,
      `SELECT cardinality(array_agg(fv)) FROM (SELECT lead(big, 12, '') OVER (ORDER BY k) fv FROM ${grouped}) t`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it('accepts an analyst\'s reports: lag over months, top-N, a date spine, first_value with a moving average, lists and JSON per customer, a period comparison', async () => {
    for (const sql of [
      `SELECT month, customer, sum(amount) AS revenue, lag(sum(amount)) OVER (PARTITION BY customer ORDER BY month) AS prev,
         sum(amount) - lag(sum(amount), 12) OVER (PARTITION BY customer ORDER BY month) AS yoy
       FROM (SELECT date_trunc('month', entry_date)::date AS month, account_code AS customer, amount FROM semantic.v_gl_fact) x GROUP BY month, customer ORDER BY month, revenue DESC`,
      `SELECT * FROM (SELECT account_code, sum(amount) s, rank() OVER (ORDER BY sum(amount) DESC) r FROM semantic.v_gl_fact GROUP BY account_code) t WHERE r <= 10`,
      `SELECT d::date AS month, coalesce(sum(f.amount), 0) FROM generate_series(date_trunc('month', current_date) - interval '23 months', date_trunc('month', current_date), interval '1 month') d
       LEFT JOIN semantic.v_gl_fact f ON date_trunc('month', f.entry_date) = d GROUP BY 1 ORDER BY 1`,
      `WITH m AS (SELECT date_trunc('month', entry_date) m, account_code, sum(amount) s FROM semantic.v_gl_fact GROUP BY 1, 2)
       SELECT m, account_code, s, first_value(s) OVER (PARTITION BY account_code ORDER BY m), avg(s) OVER (PARTITION BY account_code ORDER BY m ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM m`,
      `SELECT account_code, string_agg(memo, '; ' ORDER BY entry_date) FROM semantic.v_gl_fact GROUP BY account_code`,
      `SELECT account_code, json_agg(json_build_object('m', m, 's', s) ORDER BY m) FROM (SELECT date_trunc('month', entry_date) m, account_code, sum(amount) s FROM semantic.v_gl_fact GROUP BY 1, 2) x GROUP BY account_code`,
      periods,
      `SELECT json_agg(json_build_object('account', p.account_code, 'change', p.change)) FROM (${periods}) p`,
      `SELECT unnest(array_agg(memo)) FROM semantic.v_gl_fact`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});

describe('semantic SQL guard: set-returning functions of GROUP BY, and one budget of constants built across rows a statement', () => {
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const repeats = (fn: string, n: number) => new RegExp(`^${fn}\\(\\.\\.\\.\\)( \\(an aggregate of an enclosing query[^)]*\\))? reads a view's value that the rows it aggregates may repeat up to ${n} times`);
  /** 236 bytes of a literal and the series' number: about 243 bytes a row with the separator, 24 MB over 100,000 rows */
  const x236 = `'${'x'.repeat(236)}'`;
  const agg = (i: number) => `length(string_agg(${x236} || g, '${i % 10}'))`;
  const sub = (i: number) => `(SELECT ${agg(i)} FROM generate_series(1, 100000) g)`;
  /** refused at the third 24 MB: about 73 MB */
  const budget = () => new RegExp(`^the values the query builds across rows .* add up to 7\\d MB of bytes that are not a view's values .*at most 64 MB a statement are allowed \\(ACROSS_ROWS_MAX_STATEMENT_BYTES\\)`);

  it.each([
    ['GROUP BY of a series (1 GB string, 2 GB peak from 10 KB of memos)', `SELECT length(string_agg(memo, '')) FROM semantic.v_gl_fact GROUP BY generate_series(1, 100000) * 0`, 'string_agg'],
    ['a target-list series GROUP BY names by position', `SELECT generate_series(1, 100000) * 0 AS g, length(string_agg(memo, '')) FROM semantic.v_gl_fact GROUP BY 1`, 'string_agg'],
    ['a target-list series GROUP BY names by its output name', `SELECT generate_series(1, 100000) * 0 AS g, length(string_agg(memo, '')) FROM semantic.v_gl_fact GROUP BY g`, 'string_agg'],
    ['a whole row aggregated by a target-list series GROUP BY names', `SELECT generate_series(1, 100000) * 0 AS g, length(json_agg(f)::text) FROM semantic.v_gl_fact f GROUP BY 1`, 'json_agg'],
    ['an enclosing query\'s aggregate in a scalar subquery', `SELECT (SELECT length(string_agg(f.memo, ''))) FROM semantic.v_gl_fact f GROUP BY generate_series(1, 100000) * 0`, 'string_agg'],
    ['an aggregate of HAVING', `SELECT count(*) FROM semantic.v_gl_fact GROUP BY generate_series(1, 100000) * 0 HAVING length(string_agg(memo, '')) > 0`, 'string_agg'],
    ['a series in GROUPING SETS', `SELECT length(string_agg(memo, '')) FROM semantic.v_gl_fact GROUP BY GROUPING SETS ((generate_series(1, 100000) * 0))`, 'string_agg'],
  ])('refuses a set-returning function run before the aggregation, each view row fed into the aggregate once for each of its rows: %s', async (_label, sql, fn) => {
    expect(await reasonOf(sql)).toMatch(repeats(fn, 100000));
  });

  it('accepts a grouped SELECT\'s set-returning function GROUP BY does not name (run after aggregating), and a few rows of one it names', async () => {
    for (const sql of [
      `SELECT account_code, sum(base_amount), generate_series(1, 3) FROM semantic.v_gl_fact GROUP BY 1`,
      `SELECT account_code, string_agg(memo, ', '), generate_series(1, 100000) FROM semantic.v_gl_fact GROUP BY 1`,
      `SELECT unnest(ARRAY['debit', 'credit']) AS side, count(*), string_agg(memo, ', ') FROM semantic.v_gl_fact GROUP BY 1`,
      `SELECT account_code, unnest(ARRAY[1, 2]) k, sum(amount) FROM semantic.v_gl_fact GROUP BY account_code, k`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it('refuses constants built across rows past 64 MB a statement: 40 string_agg of 24 MB each in one SELECT (1.9 GB), in 40 scalar subqueries (3.8 GB), in CTEs, in ARRAY(SELECT ...), in grouping sets', async () => {
    const forty = Array.from({ length: 40 }, (_, i) => i);
    expect(await reasonOf(`SELECT ${forty.map(agg).join(', ')} FROM generate_series(1, 100000) g`)).toMatch(budget());
    expect(await reasonOf(`SELECT ${forty.map(sub).join(', ')}`)).toMatch(budget());
    expect(await reasonOf(`SELECT ${forty.map((i) => `${sub(i)} + ${sub(i + 1)}`).slice(0, 2).join(', ')}`)).toMatch(budget());
    expect(await reasonOf(`WITH ${[0, 1, 2].map((i) => `c${i} AS (SELECT ${agg(i)} n FROM generate_series(1, 100000) g)`).join(', ')} SELECT c0.n, c1.n, c2.n FROM c0, c1, c2`)).toMatch(budget());
    expect(await reasonOf(`SELECT ${[0, 1, 2].map(() => `cardinality(ARRAY(SELECT ${x236} || g FROM generate_series(1, 100000) g))`).join(', ')}`)).toMatch(/ACROSS_ROWS_MAX_STATEMENT_BYTES/);
    // 3,000 rows (32 grouping sets: 96,000 rows of no view) of 250 bytes, 3 aggregates: 72 MB
    const sets = `GROUPING SETS (${Array(32).fill('()').join(', ')})`;
    expect(await reasonOf(`SELECT ${[0, 1, 2].map(agg).join(', ')} FROM generate_series(1, 3000) g GROUP BY ${sets}`)).toMatch(/ACROSS_ROWS_MAX_STATEMENT_BYTES/);
    await expect(accepted(`SELECT ${[0, 1].map(agg).join(', ')} FROM generate_series(1, 3000) g GROUP BY ${sets}`)).resolves.toBe('accepted');
  });

  it('accepts values built across rows of a statement within the budget: two of 24 MB, and an analyst\'s lists and JSON', async () => {
    for (const sql of [
      `SELECT ${sub(0)}, ${sub(1)}`,
      `SELECT ${[0, 1].map(agg).join(', ')} FROM generate_series(1, 100000) g`,
      `SELECT d::date, string_agg(f.memo, ', '), json_agg(json_build_object('a', f.account_code, 'v', f.amount)) FROM generate_series(date '2024-01-01', date '2024-12-31', interval '1 day') d LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY 1 ORDER BY 1`,
      `SELECT string_agg(to_char(d, 'YYYY-MM-DD'), ',') FROM generate_series(date '2000-01-01', date '2099-12-31', interval '1 day') d`,
      `SELECT account_code, string_agg(DISTINCT memo, ', '), array_agg(entry_date ORDER BY entry_date) FROM semantic.v_gl_fact GROUP BY 1`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});

describe('semantic SQL guard: rows held in memory by IN / NOT IN / ANY (SELECT ...) and INTERSECT / EXCEPT, correlated subqueries run for each row', () => {
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const x20k = `'${'x'.repeat(20_000)}'`;
  const x105 = `'${'x'.repeat(105)}'`;
  const perRow = (what: string) => new RegExp(`^${what.replace(/[()./]/g, '\\$&')} adds up to \\d+ bytes that are not a view's values for each row`);

  it.each([
    ['NOT IN of 100,000 rows of a 20 KB literal (hashed in memory: 2 GB)', `SELECT x, x::text NOT IN (SELECT ${x20k} || o.x FROM generate_series(1, 100000) o(x)) FROM generate_series(1, 100) q(x)`, 'IN / NOT IN / ANY (SELECT ...)'],
    ['IN of the same', `SELECT count(*) FROM generate_series(1, 100) q(x) WHERE x::text IN (SELECT ${x20k} || o.x FROM generate_series(1, 100000) o(x))`, 'IN / NOT IN / ANY (SELECT ...)'],
    ['= ANY of the same', `SELECT x::text = ANY (SELECT ${x20k} || o.x FROM generate_series(1, 100000) o(x)) FROM generate_series(1, 100) q(x)`, 'IN / NOT IN / ANY (SELECT ...)'],
    ['<> ALL of the same', `SELECT x::text <> ALL (SELECT ${x20k} || o.x FROM generate_series(1, 100000) o(x)) FROM generate_series(1, 100) q(x)`, 'ALL (SELECT ...)'],
    ['EXCEPT of 99,999 rows of a 20 KB literal (HashSetOp: 1.9 GB)', `SELECT length(v) FROM (SELECT ${x20k} || o.x v FROM generate_series(1, 99999) o(x) EXCEPT SELECT 'a') t`, 'an arm of EXCEPT (its rows hashed in memory)'],
    ['INTERSECT of the same, its right arm', `SELECT length(v) FROM (SELECT 'a' INTERSECT ALL SELECT ${x20k} || o.x v FROM generate_series(1, 99999) o(x)) t(v)`, 'an arm of INTERSECT (its rows hashed in memory)'],
  ])('refuses a subquery\'s or set operation arm\'s rows hashed in memory past 256 bytes of constants a row: %s', async (_label, sql, what) => {
    // (or refused where its rows are made: a SELECT of rows of no view whose constants, all its rows, pass MADE_ROWS_MAX_CONSTANT_BYTES)
    expect(await reasonOf(sql)).toMatch(new RegExp(`${perRow(what).source}|^a row of a SELECT of rows made of no view .* computes up to 200\\d\\d bytes that are not a view's values .*MADE_ROWS_MAX_CONSTANT_BYTES`));
  });

  it('refuses IN (SELECT ...) and EXCEPT of view values repeated by a series (2.2 GB from 100 KB), or of values built across rows in every row', async () => {
    const repeats = (what: string) => new RegExp(`^${what.replace(/[()./]/g, '\\$&')} reads a view's value that the rows it aggregates may repeat up to 100000 times`);
    expect(await reasonOf(`SELECT x, x::text NOT IN (SELECT f.memo || o.x FROM semantic.v_gl_fact f, generate_series(1, 100000) o(x)) FROM generate_series(1, 100) q(x)`)).toMatch(repeats('IN / NOT IN / ANY (SELECT ...)'));
    expect(await reasonOf(`SELECT count(*) FROM (SELECT f.memo || o.x FROM semantic.v_gl_fact f, generate_series(1, 100000) o(x) EXCEPT SELECT 'a') t`)).toMatch(repeats('an arm of EXCEPT (its rows hashed in memory)'));
    expect(await reasonOf(`SELECT x, x::text NOT IN (SELECT (SELECT string_agg(f.memo, '') FROM semantic.v_gl_fact f WHERE o.x IS NOT NULL) || o.x FROM generate_series(1, 100000) o(x)) FROM generate_series(1, 100) q(x)`)).toMatch(/^IN \/ NOT IN \/ ANY \(SELECT \.\.\.\) (aggregates a value that is already built across rows|reads a view's value that the rows it aggregates may repeat)|^a correlated subquery \(reading an enclosing query's column\) builds a value across rows of a view/);
  });

  it('refuses IN (SELECT ...) rows past the statement\'s 64 MB of constants (three of 100,000 rows of 236 bytes)', async () => {
    const x236 = `'${'x'.repeat(236)}'`;
    const sql = `SELECT count(*) FROM generate_series(1, 10) q(x) WHERE ${[0, 1, 2].map(() => `x::text NOT IN (SELECT ${x236} || g FROM generate_series(1, 100000) g)`).join(' AND ')}`;
    expect(await reasonOf(sql)).toMatch(/ACROSS_ROWS_MAX_STATEMENT_BYTES/);
  });

  it('refuses a correlated subquery\'s string_agg of 10 MB held for each of 1,000 outer rows (ORDER BY: 1.6 GB of temp in 5 s), in a LATERAL subquery too', async () => {
    const budget = /^the values the query builds across rows .* add up to \d+ MB .* at a correlated subquery .*ACROSS_ROWS_MAX_STATEMENT_BYTES/;
    expect(await reasonOf(`SELECT (SELECT string_agg(${x105}, '') FROM generate_series(1, 100000) WHERE o.x IS NOT NULL) v FROM generate_series(1, 1000) o(x) ORDER BY v`)).toMatch(budget);
    expect(await reasonOf(`SELECT l.v FROM generate_series(1, 1000) o(x), LATERAL (SELECT string_agg(${x105}, '') v FROM generate_series(1, 100000) g WHERE g > o.x) l ORDER BY 1`)).toMatch(budget);
    expect(await reasonOf(`SELECT (SELECT length(string_agg(${x105} || g, '')) FROM generate_series(1, 100000) g WHERE g > x) v FROM generate_series(1, 1000) o(x)`)).toMatch(budget);
    // NOT IN of such a subquery's string_agg, one for each of its 1,000 rows (2.4 GB)
    expect(await reasonOf(`SELECT x, x::text NOT IN (SELECT (SELECT string_agg(${`'${'x'.repeat(250)}'`}, '') FROM generate_series(1, 100000) WHERE o.x IS NOT NULL) || o.x FROM generate_series(1, 1000) o(x)) FROM generate_series(1, 100) q(x)`)).toMatch(budget);
  });

  it('accepts an analyst\'s IN / NOT IN (SELECT ...) over views, NOT IN a literal list, EXCEPT / INTERSECT of views, uncorrelated and view-correlated subqueries', async () => {
    for (const sql of [
      `SELECT account_code, sum(base_amount) FROM semantic.v_gl_fact WHERE account_code IN (SELECT account_code FROM semantic.v_gl_fact WHERE amount > 100) GROUP BY account_code`,
      `SELECT account_code FROM semantic.v_gl_fact WHERE account_code NOT IN ('1000', '2000', '3000')`,
      `SELECT account_code FROM semantic.v_gl_fact f WHERE f.account_code NOT IN (SELECT DISTINCT g.account_code FROM semantic.v_gl_fact g WHERE g.entry_date >= date '2026-01-01')`,
      `SELECT d FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d WHERE d::date NOT IN (SELECT entry_date FROM semantic.v_gl_fact)`,
      `SELECT account_code FROM semantic.v_gl_fact WHERE entry_date < date '2026-01-01' EXCEPT SELECT account_code FROM semantic.v_gl_fact WHERE entry_date >= date '2026-01-01'`,
      `SELECT account_code, currency FROM semantic.v_gl_fact INTERSECT SELECT account_code, currency FROM semantic.v_gl_fact WHERE amount > 0`,
      `SELECT g FROM generate_series(1, 99999) g EXCEPT SELECT 5`,
      `SELECT d, (SELECT string_agg(memo, ',') FROM semantic.v_gl_fact f WHERE f.entry_date = d::date) FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d ORDER BY 2`,
      `SELECT o.x, (SELECT string_agg(g::text, ',') FROM generate_series(1, 100) g WHERE g <= o.x) FROM generate_series(1, 100) o(x)`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});

describe('semantic SQL guard: constants of rows made of no view held by joins, EXISTS and sorts; correlation by a whole row or a name a view may have', () => {
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const x20k = `'${'x'.repeat(20_000)}'`;
  const x400 = `'${'x'.repeat(400)}'`;
  const k105 = `'${'k'.repeat(105)}'`;
  const madeRows = /^a row of a SELECT of rows made of no view \(generate_series, unnest, VALUES\) computes up to \d+ bytes that are not a view's values .* for each of up to \d+ rows, (\d+|over 10\^12) bytes in all, which a sort, hash, join or EXISTS holds; at most 33554432 bytes are allowed \(MADE_ROWS_MAX_CONSTANT_BYTES: /;

  it.each([
    ['NOT EXISTS of 100,000 rows of a 20 KB literal (a hash anti-join: 1.95 GB of memory, 1.9 GB of temp in 5 s)', `SELECT count(*) FROM semantic.v_gl_fact a WHERE NOT EXISTS (SELECT 1 FROM (SELECT g::text || ${x20k} big, 4 k FROM generate_series(1, 100000) g) b WHERE b.k = a.id AND b.big <> a.memo)`],
    ['ORDER BY of the same (1.9 GB of temp in 5 s)', `SELECT g::text || ${x20k} v FROM generate_series(1, 100000) g ORDER BY 1`],
    ['a join of them with a view', `SELECT count(*) FROM semantic.v_gl_fact a JOIN generate_series(1, 100000) g ON a.memo = g::text || ${x400}`],
    ['EXISTS of them, its WHERE', `SELECT count(*) FROM semantic.v_gl_fact a WHERE EXISTS (SELECT 1 FROM generate_series(1, 100000) g WHERE g::text || ${x400} = a.memo)`],
    ['sorted by a hidden column', `SELECT g FROM generate_series(1, 100000) g ORDER BY g::text || ${x400}`],
    ['DISTINCT and GROUP BY of them', `SELECT DISTINCT g::text || ${x400} FROM generate_series(1, 100000) g`],
    ['a LATERAL subquery\'s column of them, sorted', `SELECT l.v FROM generate_series(1, 100000) g, LATERAL (SELECT g::text || ${x400} v) l ORDER BY 1`],
    ['a scalar subquery\'s value of them, sorted', `SELECT (SELECT g::text || ${x400}) v FROM generate_series(1, 100000) g ORDER BY 1`],
    ['a window\'s ORDER BY of them', `SELECT row_number() OVER (ORDER BY g::text || ${x400}) FROM generate_series(1, 100000) g`],
  ])('refuses a SELECT of rows made of no view computing more than 32 MB of constants in all its rows: %s', async (_label, sql) => {
    expect(await reasonOf(sql)).toMatch(madeRows);
  });

  it('accepts date spines, labels and lists of a series (to_char, short literals, a small unnest), and a view\'s rows with long literals', async () => {
    for (const sql of [
      `SELECT d::date, to_char(d, 'YYYY-MM') m, 'Week ' || to_char(d, 'IW') || ' of ' || to_char(d, 'YYYY') label FROM generate_series(date '2020-01-01', date '2024-12-31', interval '1 day') d ORDER BY 1`,
      `SELECT d::date, coalesce(string_agg(f.memo, ', '), '-') FROM generate_series(date '2024-01-01', date '2024-12-31', interval '1 day') d LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY 1 ORDER BY 1`,
      `SELECT x FROM unnest(ARRAY[${Array.from({ length: 500 }, (_, i) => i).join(',')}]) x ORDER BY x`,
      `SELECT memo || ${x400} FROM semantic.v_gl_fact ORDER BY 1`,
      `SELECT g, v.memo FROM generate_series(1, 1000) g JOIN semantic.v_gl_fact v ON v.id = g WHERE v.memo <> 'n/a' || g ORDER BY v.memo`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it.each([
    ['a whole-row reference `o IS NOT NULL`', `SELECT (SELECT string_agg(${k105}, '') FROM generate_series(1, 100000) WHERE o IS NOT NULL) v FROM generate_series(1, 1000) o(x) ORDER BY v`],
    ['a whole-row reference `o.* IS NOT NULL`', `SELECT (SELECT string_agg(${k105}, '') FROM generate_series(1, 100000) WHERE o.* IS NOT NULL) v FROM generate_series(1, 1000) o(x) ORDER BY v`],
    ['an outer column\'s unqualified name, with a view in the subquery\'s FROM', `SELECT (SELECT string_agg(${k105}, '') FROM generate_series(1, 100000) g, semantic.v_gl_fact f WHERE f.id = 1 AND x IS NOT NULL) v FROM generate_series(1, 1000) o(x) ORDER BY v`],
  ])('counts a subquery as correlated (run again for each outer row: 10 MB each of 1,000) by %s', async (_label, sql) => {
    expect(await reasonOf(sql)).toMatch(/^the values the query builds across rows .* add up to \d+ MB .* at a correlated subquery .*ACROSS_ROWS_MAX_STATEMENT_BYTES/);
  });

  // (the review of 6503b3d: each of these wrote 2 GB of temp in ~3 s from no data; a cap of 256 bytes an expression let
  // them through, and refused a long note on a few rows)
  const y = (n: number) => `'${'y'.repeat(n)}'`;
  it.each([
    ['1,000 columns of a 245-byte literal each, sorted (245 KB a row)', `SELECT g, ${Array.from({ length: 1000 }, (_, i) => `${y(245)}::text AS c${i}`).join(', ')} FROM generate_series(1, 100000) g ORDER BY g DESC`, 245_000],
    ['a window string_agg of a 230-byte literal, sorted by it (row n holds n x 230 bytes)', `SELECT g, string_agg(${y(230)}, '') OVER (ORDER BY g) s FROM generate_series(1, 100000) g ORDER BY s`, 23_000_000],
    ['an uncorrelated scalar subquery\'s string_agg of 100,000 rows of 250 bytes, sorted (a copy in every row)', `SELECT g, (SELECT string_agg(${y(250)}, '') FROM generate_series(1, 100000) s) x FROM generate_series(1, 100000) g ORDER BY x, g`, 25_000_000],
    ['an uncorrelated ARRAY(SELECT ...) of 100,000 rows of 120 bytes, sorted', `SELECT g, ARRAY(SELECT ${y(120)}::text FROM generate_series(1, 100000)) x FROM generate_series(1, 100000) g ORDER BY x, g`, 24_000_000],
    // (was accepted: 10 MB in each of 1,000 rows, 10 GB in a sort)
    ['an uncorrelated scalar subquery\'s string_agg of 10 MB in each of 1,000 sorted rows', `SELECT (SELECT string_agg(${k105}, '') FROM generate_series(1, 100000)) v FROM generate_series(1, 1000) o(x) ORDER BY v`, 10_500_000],
  ])('refuses the constants of a whole row, times its rows made of no view, past MADE_ROWS_MAX_CONSTANT_BYTES: %s', async (_label, sql, atLeast) => {
    const reason = await reasonOf(sql);
    expect(reason).toMatch(madeRows);
    expect(Number(/computes up to (\d+) bytes/.exec(reason)![1])).toBeGreaterThanOrEqual(atLeast);
    expect(reason).toMatch(/for each of up to 100000 rows|for each of up to 1000 rows/);
  });

  it('accepts a long note on a few rows made of no view: 12 months of a series, a 2-row VALUES, unnest of an array of a long and a short element', async () => {
    const note = `'${'n'.repeat(275)}'`;
    for (const sql of [
      `SELECT m::date AS month, ${note} AS note FROM generate_series(date '2024-01-01', date '2024-12-01', interval '1 month') m ORDER BY m`,
      `SELECT v.code, v.description FROM (VALUES ('A', ${note}), ('B', 'short')) v(code, description) ORDER BY v.description`,
      `SELECT x FROM unnest(ARRAY[${note}, 'b']) x ORDER BY x`,
      `SELECT g, unnest(ARRAY[${note}, 'b']) u FROM generate_series(1, 12) g ORDER BY 2`,
      // (one element a row: 20 of 5 KB on 100 rows, 10 MB; the whole array a row would be 200 MB)
      `SELECT g, unnest(ARRAY[${Array(20).fill(`'${'z'.repeat(5000)}'`).join(', ')}]) u FROM generate_series(1, 100) g ORDER BY 2`,
      `SELECT g, string_agg('ab', '') OVER (ORDER BY g) s FROM generate_series(1, 365) g ORDER BY s`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});

describe('semantic SQL guard: correlated subqueries and joins of a view\'s rows by no equality; an analyst\'s reports', () => {
  async function reasonOf(sql: string): Promise<string> {
    const err = await acceptSemanticQuery(sql).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('semantic.query_refused');
    const { reason } = (err as AppError).details as { reason: string };
    expect((err as AppError).message).toBe(`the query was refused: ${reason}`);
    return reason;
  }
  const accepted = (sql: string) => acceptSemanticQuery(sql).then(() => 'accepted', (e: AppError) => `${sql}: ${(e.details as { reason: string }).reason}`);
  const correlatedAcross = /^a correlated subquery \(reading an enclosing query's column\) builds a value across rows of a view .* tie the subquery to the outer row by an equality/;

  // (measured on 3,000 rows of 1 KB memos, the answer's wrapper around it, a statement timeout of 10 s)
  it.each([
    ['string_agg of the rows from the outer row on (1.2 GB of temp in 10 s; 3 GB of longer memos)', `SELECT (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no) FROM semantic.v_gl_fact j`],
    ['string_agg ordered inside', `SELECT (SELECT string_agg(x.memo, ',' ORDER BY x.memo) FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no) FROM semantic.v_gl_fact j`],
    ['a window string_agg inside, its heaviest row', `SELECT (SELECT max(w.s) FROM (SELECT string_agg(x.memo, ',') OVER (ORDER BY x.line_no) s FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no) w) FROM semantic.v_gl_fact j`],
    ['ARRAY(SELECT ... ORDER BY ...)', `SELECT ARRAY(SELECT x.memo FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no ORDER BY x.memo) FROM semantic.v_gl_fact j`],
    ['a LATERAL subquery', `SELECT j.line_no, l.s FROM semantic.v_gl_fact j, LATERAL (SELECT jsonb_agg(x.memo) s FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no) l`],
    ['a scalar subquery of one, two levels in', `SELECT j.line_no, (SELECT (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no)) FROM semantic.v_gl_fact j`],
    ['100,000 rows of a series', `SELECT (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x WHERE x.line_no >= o.x) FROM generate_series(1, 100000) o(x)`],
    ['an equality to a series\' value in many rows', `SELECT (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x WHERE x.line_no = o.x % 10) FROM generate_series(1, 100000) o(x)`],
  ])('refuses a correlated subquery building a value across a view\'s rows again for each outer row: %s', async (_label, sql) => {
    expect(await reasonOf(sql)).toMatch(correlatedAcross);
  });

  it('accepts correlated subqueries of one small value a row (a count, a sum, a lookup by key, the first by an order) and lists tied to the outer row by an equality', async () => {
    for (const sql of [
      `SELECT j.line_no, (SELECT count(*) FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no) FROM semantic.v_gl_fact j`,
      `SELECT j.entry_date, j.base_amount, (SELECT sum(x.base_amount) FROM semantic.v_gl_fact x WHERE x.account_code = j.account_code AND x.entry_date <= j.entry_date) AS running FROM semantic.v_gl_fact j ORDER BY j.entry_date`,
      `SELECT f.entry_id, f.base_amount, (SELECT o.customer_name FROM semantic.v_ar_open o WHERE o.customer_id = f.counterparty_id::uuid LIMIT 1) AS customer FROM semantic.v_gl_fact f`,
      `SELECT j.line_no, (SELECT x.memo FROM semantic.v_gl_fact x WHERE x.line_no >= j.line_no ORDER BY x.memo LIMIT 1) FROM semantic.v_gl_fact j`,
      `SELECT c.customer_id, c.customer_name, (SELECT string_agg(o.number, ', ' ORDER BY o.due_date) FROM semantic.v_ar_open o WHERE o.customer_id = c.customer_id) AS open_invoices FROM semantic.v_revenue_by_customer c WHERE c.month = date '2026-01-01'`,
      `SELECT c.customer_id, (SELECT jsonb_agg(jsonb_build_object('number', o.number, 'open', o.open_amount)) FROM semantic.v_ar_open o WHERE o.customer_id = c.customer_id AND o.days_past_due > 30) FROM semantic.v_revenue_by_customer c`,
      `SELECT e.entry_id, (SELECT string_agg(x.description, '; ') FROM semantic.v_gl_fact x WHERE x.entry_id = e.entry_id) FROM (SELECT DISTINCT entry_id FROM semantic.v_gl_fact) e`,
      `SELECT (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x WHERE x.line_no = o.x) FROM generate_series(1, 1000) o(x)`,
      `SELECT d, (SELECT string_agg(memo, ',') FROM semantic.v_gl_fact f WHERE f.entry_date = d::date) FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d ORDER BY 2`,
      `SELECT (SELECT string_agg(x.memo, ',') FROM semantic.v_gl_fact x WHERE x.line_no >= 5) FROM semantic.v_gl_fact j`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  it.each([
    ['string_agg over a self-join ON b.line_no >= a.line_no, grouped (2.4 GB of temp in 11 s)', `SELECT a.line_no, string_agg(b.memo, ',') FROM semantic.v_gl_fact a JOIN semantic.v_gl_fact b ON b.line_no >= a.line_no GROUP BY a.line_no`, /^a SELECT sorts, groups or windows the rows of a join of views/],
    ['string_agg over a cross join of views', `SELECT string_agg(b.memo, ',') FROM semantic.v_gl_fact a, semantic.v_ar_open b`, /^string_agg\(\.\.\.\) builds a value across rows of a view's values over a join of views/],
    ['the rows of such a self-join sorted (2.9 GB of temp in 11 s)', `SELECT a.memo, b.memo FROM semantic.v_gl_fact a JOIN semantic.v_gl_fact b ON b.line_no >= a.line_no ORDER BY 1, 2`, /^a SELECT sorts, groups or windows the rows of a join of views/],
    ['an array_agg of a view unnested twice, sorted (6 GB of temp in 11 s)', `SELECT x FROM (SELECT array_agg(memo) a FROM semantic.v_gl_fact) s, unnest(s.a) x, unnest(s.a) y ORDER BY 1`, /^a SELECT sorts, groups or windows the rows of a join of views/],
    ['the same grouped (7.5 GB of temp in 11 s)', `SELECT x, count(*) FROM (SELECT array_agg(memo) a FROM semantic.v_gl_fact) s, unnest(s.a) x, unnest(s.a) y GROUP BY x`, /^a SELECT sorts, groups or windows the rows of a join of views/],
    ['a cross join of views as a derived table, sorted by the query reading it', `SELECT * FROM (SELECT a.memo m FROM semantic.v_gl_fact a, semantic.v_gl_fact b) t ORDER BY m`, /^a SELECT sorts, groups or windows the rows of a join of views/],
    ['such a self-join as a CTE, grouped by the query reading it', `WITH t AS (SELECT a.memo m FROM semantic.v_gl_fact a JOIN semantic.v_gl_fact b ON b.line_no >= a.line_no) SELECT m, count(*) FROM t GROUP BY m`, /^a SELECT sorts, groups or windows the rows of a join of views/],
  ])('refuses a join of a view\'s rows by no equality, aggregated across rows or held in a sort or hash: %s', async (_label, sql, reason) => {
    expect(await reasonOf(sql)).toMatch(reason);
  });

  it('accepts views joined by an equality (ON, USING), with a one-row subquery, a self-join of a monthly CTE, and such a join streamed', async () => {
    for (const sql of [
      `SELECT c.customer_name, string_agg(o.number, ', ') FROM semantic.v_revenue_by_customer c JOIN semantic.v_ar_open o ON o.customer_id = c.customer_id GROUP BY 1 ORDER BY 1`,
      `SELECT a.line_no, string_agg(b.memo, ',') FROM semantic.v_gl_fact a JOIN semantic.v_gl_fact b USING (account_code) GROUP BY a.line_no`,
      `SELECT string_agg(f.memo, ',') FROM semantic.v_gl_fact f, (SELECT max(g.entry_date) d FROM semantic.v_gl_fact g) m WHERE f.entry_date >= m.d - 30`,
      `SELECT f.account_code, sum(f.base_amount) / t.total FROM semantic.v_gl_fact f, (SELECT sum(g.base_amount) total FROM semantic.v_gl_fact g) t GROUP BY f.account_code, t.total ORDER BY 2 DESC`,
      `WITH m AS (SELECT date_trunc('month', entry_date) mo, sum(base_amount) s FROM semantic.v_gl_fact GROUP BY 1) SELECT a.mo, sum(b.s) FROM m a JOIN m b ON b.mo <= a.mo GROUP BY a.mo ORDER BY 1`,
      `SELECT a.entry_id, a.memo FROM semantic.v_gl_fact a JOIN semantic.v_ar_open o ON o.customer_id = a.counterparty_id::uuid ORDER BY a.entry_date`,
      `SELECT count(*) FROM (SELECT array_agg(line_no) a FROM semantic.v_gl_fact) s, unnest(s.a) x, unnest(s.a) y`,
      `WITH t AS (SELECT a.memo m FROM semantic.v_gl_fact a JOIN semantic.v_gl_fact b ON b.line_no = a.line_no) SELECT m, count(*) FROM t GROUP BY m`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });

  // (the review of 75aa54a: checkMadeRows weighs every column and key of a row made of no view; none of these is refused)
  it('accepts an analyst\'s reports: monthly totals, top customers, aging buckets, joins of two views, CTEs, window ranks, spines and labels', async () => {
    for (const sql of [
      `SELECT date_trunc('month', entry_date)::date AS month, account_code, sum(base_amount) AS total, count(*) AS lines FROM semantic.v_gl_fact WHERE entry_date >= date '2026-01-01' GROUP BY 1, 2 ORDER BY 1, 2`,
      `SELECT customer_id, customer_name, sum(invoiced - credited) AS net, rank() OVER (ORDER BY sum(invoiced - credited) DESC) AS rnk FROM semantic.v_revenue_by_customer WHERE month >= date_trunc('year', current_date) GROUP BY 1, 2 ORDER BY net DESC LIMIT 10`,
      `SELECT bucket, count(*) AS documents, sum(open_amount_base) AS open_base, round(100.0 * sum(open_amount_base) / nullif(sum(sum(open_amount_base)) OVER (), 0), 1) AS pct FROM semantic.v_ar_open GROUP BY bucket ORDER BY min(days_past_due)`,
      `SELECT CASE WHEN days_past_due = 0 THEN 'current' WHEN days_past_due <= 30 THEN '1-30' WHEN days_past_due <= 60 THEN '31-60' WHEN days_past_due <= 90 THEN '61-90' ELSE '90+' END AS aging, customer_name, sum(open_amount) FROM semantic.v_ar_open GROUP BY 1, 2 ORDER BY 1, 3 DESC`,
      `SELECT r.customer_name, r.month, r.invoiced, coalesce(o.open_amount, 0) AS open_now FROM semantic.v_revenue_by_customer r LEFT JOIN (SELECT customer_id, sum(open_amount_base) open_amount FROM semantic.v_ar_open GROUP BY 1) o ON o.customer_id = r.customer_id ORDER BY r.month DESC, r.invoiced DESC`,
      `WITH monthly AS (SELECT date_trunc('month', entry_date)::date m, sum(base_amount) FILTER (WHERE account_type = 'revenue') AS revenue, sum(base_amount) FILTER (WHERE account_type = 'expense') AS expense FROM semantic.v_gl_fact GROUP BY 1), spine AS (SELECT d::date m FROM generate_series(date_trunc('month', current_date) - interval '11 months', date_trunc('month', current_date), interval '1 month') d) SELECT s.m, coalesce(monthly.revenue, 0) revenue, coalesce(monthly.expense, 0) expense, sum(coalesce(monthly.revenue, 0) - coalesce(monthly.expense, 0)) OVER (ORDER BY s.m) AS cumulative FROM spine s LEFT JOIN monthly ON monthly.m = s.m ORDER BY s.m`,
      `SELECT account_code, account_name, entry_date, base_amount, sum(base_amount) OVER (PARTITION BY account_code ORDER BY entry_date, line_no ROWS UNBOUNDED PRECEDING) AS running, row_number() OVER (PARTITION BY account_code ORDER BY base_amount DESC) AS rn FROM semantic.v_gl_fact WHERE account_type IN ('expense', 'revenue') ORDER BY account_code, entry_date`,
      `WITH top AS (SELECT customer_id, sum(invoiced) total FROM semantic.v_revenue_by_customer GROUP BY 1 ORDER BY 2 DESC LIMIT 5) SELECT t.customer_id, t.total, a.number, a.open_amount, a.days_past_due FROM top t JOIN semantic.v_ar_open a ON a.customer_id = t.customer_id ORDER BY t.total DESC, a.days_past_due DESC`,
      `SELECT m.month, m.label, coalesce(sum(f.base_amount), 0) AS amount FROM (VALUES (1, 'January'), (2, 'February'), (3, 'March'), (4, 'April'), (5, 'May'), (6, 'June'), (7, 'July'), (8, 'August'), (9, 'September'), (10, 'October'), (11, 'November'), (12, 'December')) m(month, label) LEFT JOIN semantic.v_gl_fact f ON extract(month FROM f.entry_date) = m.month GROUP BY 1, 2 ORDER BY 1`,
      `SELECT d::date AS day, count(f.*) AS lines, coalesce(sum(f.base_amount), 0) AS amount, to_char(d, 'Dy DD Mon YYYY') AS label FROM generate_series(current_date - 89, current_date, interval '1 day') d LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date GROUP BY d ORDER BY d`,
      `SELECT p.party_name, count(*) bills, sum(p.open_base_amount) open_base, max(p.days_past_due) oldest, string_agg(p.document_number, ', ' ORDER BY p.due_date) docs FROM semantic.v_ap_open p WHERE p.open_amount > 0 GROUP BY 1 HAVING sum(p.open_base_amount) > 1000 ORDER BY 3 DESC`,
      `SELECT w.week, w.net, lag(w.net) OVER (ORDER BY w.week) prev, w.net - lag(w.net) OVER (ORDER BY w.week) delta FROM (SELECT date_trunc('week', entry_date)::date week, sum(base_amount) net FROM semantic.v_gl_fact GROUP BY 1) w ORDER BY 1`,
      `SELECT q.quarter, q.label, sum(f.base_amount) FROM unnest(ARRAY[1, 2, 3, 4], ARRAY['Q1 (January to March)', 'Q2 (April to June)', 'Q3 (July to September)', 'Q4 (October to December)']) q(quarter, label) LEFT JOIN semantic.v_gl_fact f ON extract(quarter FROM f.entry_date) = q.quarter GROUP BY 1, 2 ORDER BY 1`,
      `SELECT y.y, a.code, coalesce(sum(f.base_amount), 0) FROM generate_series(2020, 2026) y(y) CROSS JOIN (VALUES ('4000'), ('5000'), ('6000')) a(code) LEFT JOIN semantic.v_gl_fact f ON f.account_code = a.code AND extract(year FROM f.entry_date) = y.y GROUP BY 1, 2 ORDER BY 1, 2`,
    ]) await expect(accepted(sql)).resolves.toBe('accepted');
  });
});
