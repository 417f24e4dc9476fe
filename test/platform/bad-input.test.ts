import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OpenAPIObject } from '@nestjs/swagger';
import { BODY_LIMIT_BYTES } from '../../src/bootstrap.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';

// Bad input sent to every write operation the OpenAPI document lists: a NUL character in every string, null
// in every field that is not nullable, an over-long path and an over-large body. Each must be a 4xx in the
// error shape, naming the field where there is one; never a 5xx. (The contract check of the test app also
// fails the file on any status an operation does not document.)

type Schema = { $ref?: string; type?: string; nullable?: boolean; properties?: Record<string, Schema>; items?: Schema; additionalProperties?: unknown; oneOf?: Schema[]; enum?: unknown[] };
interface WriteOperation {
  method: 'post' | 'put' | 'patch' | 'delete';
  path: string;
  operationId: string;
  body?: Schema;
  params: string[];
}

const errorShape = { error: { code: expect.any(String), message: expect.any(String) }, requestId: expect.any(String) };
const SOME_ID = '00000000-0000-4000-8000-000000000000';
const NUL = 'x\u0000y';

function resolve(doc: OpenAPIObject, schema: Schema | undefined): Schema | undefined {
  if (!schema?.$ref) return schema;
  return resolve(doc, (doc.components!.schemas as Record<string, Schema>)[schema.$ref.split('/').pop()!]);
}

/** A value of the schema's shape with a NUL character in every string (and in a free-form object's values). */
function withNul(doc: OpenAPIObject, raw: Schema | undefined, depth = 0): unknown {
  const schema = resolve(doc, raw);
  if (!schema || depth > 4) return NUL;
  if (schema.oneOf) return withNul(doc, schema.oneOf[0], depth + 1);
  if (schema.type === 'array') return [withNul(doc, schema.items, depth + 1)];
  if (schema.type === 'number' || schema.type === 'integer') return 1;
  if (schema.type === 'boolean') return true;
  if (schema.type === 'object' || schema.properties) {
    if (!schema.properties) return { key: NUL };
    return Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, withNul(doc, v, depth + 1)]));
  }
  return NUL;
}

function writeOperations(doc: OpenAPIObject): WriteOperation[] {
  const ops: WriteOperation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['post', 'put', 'patch', 'delete'] as const) {
      const op = item[method];
      if (!op) continue;
      const body = (op.requestBody as { content?: Record<string, { schema?: Schema }> } | undefined)?.content?.['application/json']?.schema;
      ops.push({ method, path, operationId: op.operationId!, body, params: [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]) });
    }
  }
  return ops;
}

const fieldsOf = (body: { error?: { details?: unknown } }): string[] =>
  Array.isArray(body?.error?.details) ? body.error.details.map((d: { field: string }) => d.field) : [];

describe('bad input to every write operation of the OpenAPI document', () => {
  let t: TestApp;
  let doc: OpenAPIObject;
  let owner: TestUser;
  let orgId: string;
  let ops: WriteOperation[];

  beforeAll(async () => {
    t = await createTestApp();
    doc = (await t.http.get('/docs-json').expect(200)).body;
    ops = writeOperations(doc);
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Bad Input Ltd');
    await onEnterprisePlan(t, orgId); // every write reaches validation (no 402 from the plan first)
  });
  afterAll(() => t.close());

  // well-formed values for every path parameter, `last` in the last one
  const VALID: Record<string, () => string> = { orgId: () => orgId, scope: () => 'org', key: () => 'timezone', flag: () => 'beta.reports' };
  const url = (op: WriteOperation, last?: string) =>
    op.path.replace(/\{(\w+)\}/g, (_, name: string) =>
      last !== undefined && name === op.params[op.params.length - 1] ? last : (VALID[name]?.() ?? SOME_ID));
  const send = (op: WriteOperation, path: string, body?: unknown) => {
    const req = t.http[op.method](path).set(owner.auth);
    return body === undefined ? req : req.send(body as object);
  };

  it('reads the write operations from the document', () => {
    expect(ops.length).toBeGreaterThan(40);
    expect(ops.map((o) => o.operationId)).toEqual(expect.arrayContaining(['createOrganization', 'postJournalEntry', 'updateIntegration']));
  });

  it('refuses a NUL character in any string of the body with 400 naming the field, and writes nothing', async () => {
    const before = (await t.db.admin.query('SELECT count(*)::int AS n FROM core.audit_logs')).rows[0].n;
    const failures: string[] = [];
    for (const op of ops.filter((o) => o.body)) {
      const body = withNul(doc, op.body);
      if (!JSON.stringify(body).includes('\\u0000')) continue; // no string to put it in (a flag's { enabled })
      const res = await send(op, url(op), body);
      const fields = fieldsOf(res.body);
      if (res.status !== 400 || !/NUL/.test(res.body?.error?.message) || fields.length === 0) {
        failures.push(`${op.operationId}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    }
    expect(failures).toEqual([]);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.audit_logs')).rows[0].n).toBe(before);
  });

  it('refuses a NUL character in a JSON key and in a path parameter', async () => {
    const key = await t.http.post('/v1/orgs').set(owner.auth).send(JSON.parse('{"name":"A","x\\u0000":1}')).expect(400);
    expect(key.body).toMatchObject(errorShape);
    const failures: string[] = [];
    for (const op of ops.filter((o) => o.params.some((p) => p !== 'orgId'))) {
      const res = await send(op, url(op, encodeURIComponent(NUL)), op.body ? {} : undefined);
      if (res.status >= 500 || res.status === 200 || !res.body?.error) failures.push(`${op.operationId}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      else if (res.status === 400) expect(res.body.error.message).toMatch(/NUL/);
    }
    expect(failures).toEqual([]);
  });

  it('refuses an unpaired UTF-16 surrogate in a string or a JSON key with 400 validation_failed naming the field (it was stored as U+FFFD); a pair is kept', async () => {
    const org = (await t.http.post('/v1/orgs').set(owner.auth).send({ name: 'Surrogate \ud83d\ude00 Co' }).expect(201)).body;
    expect(org.name).toBe('Surrogate \ud83d\ude00 Co');
    for (const name of ['\ud800', 'a\udc00b', 'x\ud83d']) {
      const res = await t.http.patch(`/v1/orgs/${org.id}`).set(owner.auth).send({ name }).expect(400);
      expect(res.body).toMatchObject({ error: { code: 'validation_failed', details: [{ field: 'name', problems: [expect.stringMatching(/unpaired UTF-16 surrogate/)] }] } });
    }
    const key = await t.http.post('/v1/orgs').set(owner.auth).send(JSON.parse('{"name":"A","x\\udfff":1}')).expect(400);
    expect(key.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'x\\udfff', problems: [expect.stringMatching(/^a key .*unpaired/)] }] });
    expect((await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [org.id])).rows[0].name).toBe('Surrogate \ud83d\ude00 Co');
  });

  it('refuses null in every field that is not nullable, naming it', async () => {
    const failures: string[] = [];
    for (const op of ops.filter((o) => o.body)) {
      const schema = resolve(doc, op.body)!;
      for (const [name, prop] of Object.entries(schema.properties ?? {})) {
        if (resolve(doc, prop)?.nullable || prop.nullable) continue;
        const res = await send(op, url(op), { [name]: null });
        const fields = fieldsOf(res.body);
        if (res.status !== 400 || !fields.includes(name)) failures.push(`${op.operationId} ${name}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('answers a path segment of 5,000 characters with 414 in the error shape, without echoing it', async () => {
    for (const op of ops.filter((o) => o.params.length > 0)) {
      const res = await send(op, url(op, 'a'.repeat(5000)), op.body ? {} : undefined);
      expect({ op: op.operationId, status: res.status }).toEqual({ op: op.operationId, status: 414 });
      expect(res.body).toEqual(errorShape);
      expect(res.text).not.toContain('aaaaaaaaaa');
      expect(res.headers['x-request-id']).toBe(res.body.requestId);
    }
  });

  it('answers a body over the limit with 413 in the error shape', async () => {
    for (const op of ops.filter((o) => o.body)) {
      const res = await send(op, url(op), { padding: 'x'.repeat(BODY_LIMIT_BYTES) });
      expect({ op: op.operationId, status: res.status }).toEqual({ op: op.operationId, status: 413 });
      expect(res.body).toEqual(errorShape);
    }
  });

  it('answers headers over Node\'s limit with 431 in the error shape', async () => {
    const server = t.app.getHttpServer();
    if (!server.listening) await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const { status, body } = await new Promise<{ status: number; body: string }>((done, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/orgs', headers: { 'x-padding': 'x'.repeat(64 * 1024) } }, (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => done({ status: res.statusCode!, body: text }));
      });
      req.on('error', fail);
      req.end();
    });
    expect(status).toBe(431);
    expect(JSON.parse(body)).toEqual({ error: { code: 'headers_too_large', message: expect.any(String) }, requestId: expect.any(String) });
  });
});
