import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import type { OpenAPIObject } from '@nestjs/swagger';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';

// A body nested thousands of levels deep (a few KB) once overflowed the stack while it was turned into DTOs: a 500,
// an error log line and an error report per request, on public routes too. Input is refused past MAX_INPUT_DEPTH
// levels with a 400 naming the place, before anything recurses over it.

/** The documented limit (MAX_INPUT_DEPTH of src/platform/http/validation.ts). */
const MAX_INPUT_DEPTH = 64;

/** `levels` arrays nested in each other around the number 1: [[[1]]] for 3. */
function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

/** The same as JSON text: JSON.stringify itself overflows the stack on 5,000 levels. */
const nestedJson = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;

const tooDeep = (field: string) => ({
  error: {
    code: 'validation_failed',
    message: `${field} is nested too deeply: objects and arrays may nest at most ${MAX_INPUT_DEPTH} levels deep (the body is the first)`,
    details: [{ field, problems: [`${field} is nested too deeply: objects and arrays may nest at most ${MAX_INPUT_DEPTH} levels deep (the body is the first)`] }],
  },
  requestId: expect.any(String),
});

describe('deeply nested input', () => {
  const lines: { level: number; msg?: string }[] = [];
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l)));
        done();
      },
    });
    t = await createTestApp({ LOG_LEVEL: 'info' }, { logDestination: destination });
    owner = await registerUser(t, 'deep');
    orgId = await createOrg(t, owner, 'Deep Ltd');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(() => t.close());

  const events = (body: object | string) => t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).set('content-type', 'application/json').send(body);
  const stored = async () => (await t.db.admin.query(
    `SELECT name, properties FROM core.analytics_events WHERE org_id = $1 AND source = 'client' ORDER BY name`, [orgId])).rows;
  const errorLines = () => lines.filter((l) => l.level >= 50);

  it('refuses a login body nested 5,000 levels deep with 400 naming the field, logging no error', async () => {
    const res = await t.http.post('/v1/auth/login').set('content-type', 'application/json')
      .send(`{"email":"a@b.c","password":"x","junk":${nestedJson(5000)}}`);
    // the body is level 1, junk level 2: the array at junk[0]...[0] (63 times) is level 65
    expect({ status: res.status, body: res.body }).toEqual({ status: 400, body: tooDeep(`junk${'[0]'.repeat(MAX_INPUT_DEPTH - 1)}`) });
    expect(errorLines()).toEqual([]);
  });

  it('refuses analytics properties nested 5,000 levels deep, storing nothing', async () => {
    const res = await events(`{"events":[{"name":"deep.one","properties":{"p":${nestedJson(5000)}}}]}`);
    // body 1, events 2, events[0] 3, properties 4, p 5: p[0]...[0] (60 times) is level 65
    expect({ status: res.status, body: res.body }).toEqual({ status: 400, body: tooDeep(`events[0].properties.p${'[0]'.repeat(MAX_INPUT_DEPTH - 4)}`) });
    expect(await stored()).toEqual([]);
    expect(errorLines()).toEqual([]);
  });

  it('accepts free-form JSON (analytics properties) nested exactly as deep as allowed, and refuses one level more', async () => {
    // p holds 60 arrays: the innermost is level 64
    const deepest = nested(MAX_INPUT_DEPTH - 4);
    const ok = await events({ events: [{ name: 'deep.enough', properties: { p: deepest } }] });
    expect({ status: ok.status, body: ok.body }).toEqual({ status: 200, body: { accepted: 1, rejected: [] } });
    expect(await stored()).toEqual([{ name: 'deep.enough', properties: { p: deepest } }]);
    const over = await events({ events: [{ name: 'deep.over', properties: { p: nested(MAX_INPUT_DEPTH - 3) } }] });
    expect({ status: over.status, body: over.body }).toEqual({ status: 400, body: tooDeep(`events[0].properties.p${'[0]'.repeat(MAX_INPUT_DEPTH - 4)}`) });
    // an object nested as deeply is measured the same way
    let objects: unknown = 1;
    for (let i = 0; i < MAX_INPUT_DEPTH - 3; i++) objects = { o: objects };
    const overObjects = await events({ events: [{ name: 'deep.objects', properties: { p: objects } }] });
    expect({ status: overObjects.status, body: overObjects.body })
      .toEqual({ status: 400, body: tooDeep(`events[0].properties.p${'.o'.repeat(MAX_INPUT_DEPTH - 4)}`) });
    expect(await stored()).toEqual([{ name: 'deep.enough', properties: { p: deepest } }]);
    expect(errorLines()).toEqual([]);
  });

  it('answers a deeply nested body to every write operation of the document with a 4xx in the error shape', async () => {
    const doc: OpenAPIObject = (await t.http.get('/docs-json').expect(200)).body;
    const VALID: Record<string, string> = { orgId, scope: 'org', key: 'timezone', flag: 'beta.reports' };
    const failures: string[] = [];
    let refused = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of ['post', 'put', 'patch', 'delete'] as const) {
        const op = item[method];
        if (!(op?.requestBody as { content?: Record<string, unknown> } | undefined)?.content?.['application/json']) continue;
        const url = path.replace(/\{(\w+)\}/g, (_, name: string) => VALID[name] ?? '00000000-0000-4000-8000-000000000000');
        const res = await t.http[method](url).set(owner.auth).set('content-type', 'application/json').send(`{"junk":${nestedJson(5000)}}`);
        if (res.status < 400 || res.status >= 500 || typeof res.body?.error?.code !== 'string') {
          failures.push(`${op!.operationId}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        } else if (res.status === 400) {
          expect({ op: op!.operationId, body: res.body }).toEqual({ op: op!.operationId, body: tooDeep(`junk${'[0]'.repeat(MAX_INPUT_DEPTH - 1)}`) });
          refused++;
        }
      }
    }
    expect(failures).toEqual([]);
    expect(refused).toBeGreaterThan(40);
    expect(errorLines()).toEqual([]);
  });
});
