import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { encodeCursor } from '../../src/platform/http/pagination.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';

// Edge values that pass a loose shape check but may break the database, sent to every operation of the OpenAPI
// document: each query and path parameter gets each value of its kind (the other parameters valid or absent):
// integers past int4/int8, days that do not exist (2026-02-30, 0000-01-01, 99999-01-01), 40-digit decimals,
// limit 0/-1/1e9, an unknown enum value, an empty string, forged cursors, a parameter repeated (an array), 10,000
// characters; and the number, date and decimal fields of every write body get a huge integer, 1e308, -1, 2026-02-30,
// 40 digits. Each must be a 4xx in the error shape, never a 5xx (the test app's contract check also fails the file
// on any status or body an operation does not document). bad-input.test.ts sends bad bodies.

type Schema = {
  $ref?: string; type?: string; format?: string; nullable?: boolean; example?: unknown; enum?: unknown[]; minimum?: number;
  properties?: Record<string, Schema>; required?: string[]; items?: Schema; oneOf?: Schema[]; allOf?: Schema[];
};
interface Parameter { name: string; in: 'query' | 'path'; required?: boolean; schema?: Schema }
interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  operationId: string;
  body?: Schema;
  params: Parameter[];
  stream: boolean;
}
/** One bad value: a string, or several (the parameter repeated: ?limit=1&limit=2). */
type Value = string | string[];

const errorShape = { error: { code: expect.any(String), message: expect.any(String) }, requestId: expect.any(String) };
const SOME_ID = '00000000-0000-4000-8000-000000000000';
const LONG = 'x'.repeat(10_000);
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const DECIMAL = /^-?\d+\.\d+$/;

function resolve(doc: OpenAPIObject, schema: Schema | undefined): Schema | undefined {
  if (schema?.allOf?.length === 1) return resolve(doc, schema.allOf[0]);
  if (!schema?.$ref) return schema;
  return resolve(doc, (doc.components!.schemas as Record<string, Schema>)[schema.$ref.split('/').pop()!]);
}

function operations(doc: OpenAPIObject): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete'] as const) {
      const op = item[method];
      if (!op) continue;
      const body = (op.requestBody as { content?: Record<string, { schema?: Schema }> } | undefined)?.content?.['application/json']?.schema;
      const params = ((op.parameters ?? []) as Parameter[]).filter((p) => p.in === 'query' || p.in === 'path');
      const stream = Object.values(op.responses ?? {}).some((r) => 'text/event-stream' in ((r as { content?: object }).content ?? {}));
      ops.push({ method, path, operationId: op.operationId!, body, params, stream });
    }
  }
  return ops;
}

// Forged cursors: base64url of JSON that is not a cursor of any list, and keyset cursors with a field of the wrong kind
// (a day that does not exist, a bigint past int8, not a UUID): each a 400 pagination.cursor.
const FORGED_CURSORS = [
  'not a cursor!', '%%%', encodeCursor(null), encodeCursor('x'), encodeCursor(1e308), encodeCursor([]), encodeCursor({}),
  encodeCursor('9223372036854775808'), encodeCursor('-1'), encodeCursor(['2026-02-30T00:00:00Z', SOME_ID]), encodeCursor(['99999-01-01T00:00:00Z', SOME_ID]),
  encodeCursor({ d: '2026-02-30', i: SOME_ID, s: '1' }), encodeCursor({ d: '0000-01-01', i: SOME_ID, s: '1' }),
  encodeCursor({ d: '9999-12-31', s: '9223372036854775808', r: '1e400', i: 'not-a-uuid', n: 1 }),
];
// Cursors of each keyset shape the API writes with every field at the end of its kind (the largest bigint, the last
// day, 30+30 digits, 1,000 characters): a list may take them (an empty page), the database must too.
const EXTREME_CURSORS = [
  encodeCursor(['9999-12-31T23:59:59.999999Z', 'x'.repeat(200)]),
  encodeCursor({ d: '9999-12-31', i: SOME_ID, s: '9223372036854775807', r: `${'9'.repeat(30)}.${'9'.repeat(30)}`, c: 'ZZZ', n: 'x'.repeat(1000) }),
  encodeCursor({ s: '9999-12-31T23:59:59.999999Z', r: '0001-01-01T00:00:00Z', c: '0001-01-01T00:00:00Z', i: SOME_ID }),
];

/**
 * The edge values for one parameter, by what its schema and name say it holds: `refused` must be a 4xx; `tolerated`
 * may also be accepted (free text, an empty cursor, a forged cursor whose fields are valid, an empty path segment that
 * names the list route) but never a 5xx.
 */
function badValues(p: Parameter, doc: OpenAPIObject): { refused: Value[]; tolerated: Value[] } {
  const s = resolve(doc, p.schema) ?? {};
  const ex = typeof s.example === 'string' ? s.example : '';
  const always: Value[] = [LONG, ['1', '2'], 'x\u0000y'];
  if (p.in === 'path') {
    // an empty segment matches another route or none; 10,000 characters are over the segment limit (414)
    if (p.name === 'orgId') return { refused: ['not-a-uuid', '-1', '99999999999999999999', 'x\u0000y'], tolerated: [] };
    const refused: Value[] = [LONG, 'x\u0000y', 'not-a-uuid', '-1', '99999999999999999999', `${SOME_ID.slice(0, -1)}g`, '%25', ' '];
    if (s.type === 'integer' || s.type === 'number') refused.push('0', '1.5', '1e3', '2147483648', '9223372036854775808');
    return { refused, tolerated: [''] };
  }
  const typed = (values: Value[]) => ({ refused: [...always, '', ...values], tolerated: [] });
  if (s.enum) return typed(['nope', String(s.enum[0]).toUpperCase(), ` ${String(s.enum[0])}`]);
  if (s.type === 'number' || s.type === 'integer') return typed(['0', '-1', '1e9', '1.5', 'abc', 'NaN', 'Infinity', '2147483648', '99999999999999999999']);
  if (s.type === 'boolean') return typed(['maybe', '2', 'TRUE']);
  if (p.name === 'cursor') return { refused: [...always, ...FORGED_CURSORS], tolerated: ['', ...EXTREME_CURSORS] };
  if (s.format === 'uuid') return typed(['not-a-uuid', '99999999999999999999', `${SOME_ID}x`]);
  if (s.format === 'date-time') return typed(['2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '99999-01-01T00:00:00Z', '2026-01-01T00:00:00+23:00', 'yesterday', '1']);
  if (DATE.test(ex) || ['from', 'to', 'asOf'].includes(p.name)) return typed(['2026-02-30', '0000-01-01', '99999-01-01', '2026-1-1', '-infinity', '1']);
  if (DECIMAL.test(ex)) return typed(['1'.repeat(40), `0.${'1'.repeat(40)}`, '1e400', 'NaN', 'Infinity', 'abc']);
  if (/^\d+(,\d+)+$/.test(ex)) return typed(['0,-1', '99999999999999999999', '2147483648', '1e9', ',,', 'a,b']);
  if (/^\d+$/.test(ex)) return typed(['0', '-1', '1e9', '2147483648', '99999999999999999999', 'abc']);
  // free text (a search, a filter on a name): anything without a NUL fits, it just matches nothing
  return { refused: always, tolerated: ['', '99999999999999999999', '%', '\'', '\\'] };
}

/** A value the parameter accepts (for a required one while another is swept). */
function goodValue(p: Parameter, doc: OpenAPIObject): string {
  const s = resolve(doc, p.schema) ?? {};
  if (s.example !== undefined) return String(s.example);
  if (s.enum) return String(s.enum[0]);
  return 'x';
}

// ---- bodies ----

/** A value of the schema's shape: its example, its first enum value, or a plain value of its type; objects with their required fields. */
function sample(doc: OpenAPIObject, raw: Schema | undefined, depth = 0): unknown {
  const s = resolve(doc, raw);
  if (!s || depth > 5) return 'x';
  if (s.example !== undefined) return s.example;
  if (s.enum) return s.enum[0];
  if (s.oneOf) return sample(doc, s.oneOf[0], depth + 1);
  if (s.type === 'array') return [sample(doc, s.items, depth + 1)];
  if (s.type === 'number' || s.type === 'integer') return s.minimum ?? 1;
  if (s.type === 'boolean') return true;
  if (s.type === 'object' || s.properties) {
    return Object.fromEntries((s.required ?? []).map((k) => [k, sample(doc, s.properties?.[k], depth + 1)]));
  }
  return s.format === 'uuid' ? SOME_ID : 'x';
}

type FieldKind = 'number' | 'date' | 'timestamp' | 'decimal';
/** The number, date and decimal-string fields of a body schema, as paths (an array's item is index 0). */
function edgeFields(doc: OpenAPIObject, raw: Schema | undefined, path: (string | number)[] = [], depth = 0): { path: (string | number)[]; kind: FieldKind }[] {
  const s = resolve(doc, raw);
  if (!s || depth > 5) return [];
  if (s.oneOf) return edgeFields(doc, s.oneOf[0], path, depth + 1);
  if (s.type === 'array') return edgeFields(doc, s.items, [...path, 0], depth + 1);
  if (s.properties) return Object.entries(s.properties).flatMap(([k, v]) => edgeFields(doc, v, [...path, k], depth + 1));
  if (!path.length || s.enum) return [];
  if (s.type === 'number' || s.type === 'integer') return [{ path, kind: 'number' }];
  const ex = typeof s.example === 'string' ? s.example : '';
  if (s.type === 'string' && (s.format === 'date' || DATE.test(ex))) return [{ path, kind: 'date' }];
  if (s.type === 'string' && s.format === 'date-time') return [{ path, kind: 'timestamp' }];
  if (s.type === 'string' && DECIMAL.test(ex)) return [{ path, kind: 'decimal' }];
  return [];
}

/** A sample body with `value` at `path` (the objects on the way with their required fields). */
function bodyWith(doc: OpenAPIObject, raw: Schema | undefined, path: (string | number)[], value: unknown, depth = 0): unknown {
  if (!path.length) return value;
  const s = resolve(doc, raw)!;
  if (s.oneOf) return bodyWith(doc, s.oneOf[0], path, value, depth + 1);
  const [head, ...rest] = path;
  if (typeof head === 'number') return [bodyWith(doc, s.items, rest, value, depth + 1)];
  const base = sample(doc, s, depth) as Record<string, unknown>;
  return { ...base, [head]: bodyWith(doc, s.properties![head], rest, value, depth + 1) };
}

const EDGE_BODY_VALUES: Record<FieldKind, unknown[]> = {
  number: [99999999999999999999, 9223372036854775808, 2147483648, 1e308, -1, 0.5],
  date: ['2026-02-30', '0000-01-01', '99999-01-01', '2026-13-01'],
  timestamp: ['2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '99999-01-01T00:00:00Z', '2026-01-01T00:00:00+23:00', '2026-W01-1'],
  decimal: ['1'.repeat(40), `1${'0'.repeat(39)}.00`, `0.${'1'.repeat(40)}`, '1e400', '-0.00'],
};

/** Edge values a field may take (a bigint column holds 2^31, a signed amount -1): the others are refused wherever they go. */
const IN_RANGE: unknown[] = [2147483648, -1, 0.5, '-0.00'];

/** Runs `work` over `items`, `size` at a time. */
// thousands of requests each: Jest's 60 s default is a hang guard that a busy 2-core machine can reach (it did under
// load in CI on 2026-12-05), so these two sweeps get a wider one. Not a timing assertion.
const SWEEP_TIMEOUT_MS = 300_000;

async function inChunks<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

describe('edge values in every query parameter, path parameter and body number of the OpenAPI document', () => {
  let t: TestApp;
  let doc: OpenAPIObject;
  let owner: TestUser;
  let orgId: string;
  let ops: Operation[];

  beforeAll(async () => {
    // thousands of requests from one user: the request limiter is not what this file tests
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    doc = (await t.http.get('/docs-json').expect(200)).body;
    ops = operations(doc).filter((o) => !o.stream);
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Bad Query Ltd');
    await onEnterprisePlan(t, orgId); // every operation reaches validation (no 402 from the plan first)
  });
  afterAll(() => t.close());

  // well-formed values for every path parameter
  const VALID: Record<string, () => string> = { orgId: () => orgId, scope: () => 'org', key: () => 'timezone', flag: () => 'beta.reports', versionNo: () => '1', slug: () => 'acme' };
  const url = (op: Operation, swept?: Parameter, value?: Value): string => {
    const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) =>
      swept?.in === 'path' && swept.name === name ? encodeURIComponent(value as string) : (VALID[name]?.() ?? SOME_ID));
    const query: string[] = [];
    for (const p of op.params.filter((q) => q.in === 'query')) {
      if (p === swept) for (const v of [value!].flat()) query.push(`${p.name}=${encodeURIComponent(v)}`);
      else if (p.required) query.push(`${p.name}=${encodeURIComponent(goodValue(p, doc))}`);
    }
    return query.length ? `${path}?${query.join('&')}` : path;
  };
  const send = (op: Operation, path: string, body?: unknown) => {
    const req = t.http[op.method](path).set(owner.auth);
    return body === undefined ? req : req.send(body as object);
  };
  const show = (value: unknown) => JSON.stringify(value).slice(0, 60);

  it('reads the operations and their parameters from the document', () => {
    const withParams = ops.filter((o) => o.params.length > 0);
    expect(withParams.length).toBeGreaterThan(150);
    expect(withParams.filter((o) => o.params.some((p) => p.in === 'query')).length).toBeGreaterThan(40);
    expect(ops.map((o) => o.operationId)).toEqual(expect.arrayContaining(['listJournalEntries', 'listAuditLogs', 'getKnowledgeDocumentVersion']));
  });

  it('answers every edge value of every query and path parameter with a 4xx in the error shape, never a 5xx', async () => {
    const cases = ops.flatMap((op) => op.params.flatMap((p) => {
      const { refused, tolerated } = badValues(p, doc);
      return [...refused.map((value) => ({ op, p, value, refuse: true })), ...tolerated.map((value) => ({ op, p, value, refuse: false }))];
    }));
    expect(cases.length).toBeGreaterThan(1000);
    const failures: string[] = [];
    await inChunks(cases, 8, async ({ op, p, value, refuse }) => {
      const res = await send(op, url(op, p, value), op.body ? {} : undefined);
      const error = res.status >= 400;
      if (res.status >= 500 || (refuse && !error) || (error && !res.body?.error)) {
        failures.push(`${op.operationId} ${p.in}:${p.name}=${show(value)}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      } else if (error) {
        expect(res.body).toMatchObject(errorShape);
        expect(res.text).not.toContain(LONG.slice(0, 200));
      }
    });
    expect(failures).toEqual([]);
  }, SWEEP_TIMEOUT_MS);

  it('answers every edge value of every number, date and decimal field of a write body with a 4xx in the error shape, never a 5xx', async () => {
    const cases = ops.filter((o) => o.body).flatMap((op) =>
      edgeFields(doc, op.body).flatMap((field) => EDGE_BODY_VALUES[field.kind].map((value) => ({ op, field, value }))));
    expect(cases.length).toBeGreaterThan(50);
    const failures: string[] = [];
    await inChunks(cases, 8, async ({ op, field, value }) => {
      const res = await send(op, url(op), bodyWith(doc, op.body, field.path, value));
      // a batch of events answers 200 and refuses each bad one in `rejected`
      const accepted = res.status < 400 && !(res.body?.accepted === 0 && res.body?.rejected?.length === 1);
      if (res.status >= 500 || (accepted && !IN_RANGE.includes(value))) {
        failures.push(`${op.operationId} ${field.path.join('.')}=${show(value)}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      } else if (res.status >= 400) {
        expect(res.body).toMatchObject(errorShape);
      }
    });
    expect(failures).toEqual([]);
  }, SWEEP_TIMEOUT_MS);
});
