import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import Fastify from 'fastify';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { ResponseContract } from '../support/contract.js';

// The API coverage record (test/support/contract.ts) and report (test/support/api-coverage-reporter.mjs) on a document
// of two operations, with two applications standing for two test files.

const ERROR = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } };
const THING = { 'application/json': { schema: { type: 'object', properties: { id: { type: 'string' } } } } };
const doc = {
  openapi: '3.0.0',
  info: { title: 't', version: '1' },
  paths: {
    '/v1/things/{thingId}': {
      get: {
        operationId: 'getThing',
        responses: { 200: { description: 'ok', content: THING }, 404: { description: 'not found', content: ERROR }, 410: { description: 'gone', content: ERROR } },
        'x-error-codes': [{ code: 'thing.not_found', status: 404 }, { code: 'thing.gone', status: 410 }],
      },
    },
    '/v1/things': {
      post: { operationId: 'createThing', responses: { 201: { description: 'created', content: THING }, 409: { description: 'taken', content: ERROR } }, 'x-error-codes': [{ code: 'thing.taken', status: 409 }] },
    },
  },
  components: {
    schemas: {
      ErrorResponse: {
        type: 'object', required: ['error', 'requestId'],
        properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }, requestId: { type: 'string' } },
      },
    },
  },
} as unknown as OpenAPIObject;

/** An application answering the document's two operations: thing 1 exists, thing 2 does not; creating one is taken. */
async function thingsApp() {
  const fastify = Fastify();
  new ResponseContract(doc).attach(fastify);
  fastify.get('/v1/things/:thingId', async (req, reply) => ((req.params as { thingId: string }).thingId === '1'
    ? reply.send({ id: '1' })
    : reply.code(404).send({ error: { code: 'thing.not_found', message: 'no such thing' }, requestId: 'r' })));
  fastify.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ error: { code: 'route.not_found', message: 'no such route' }, requestId: 'r' }));
  fastify.post('/v1/things', async (_req, reply) => reply.code(409).send({ error: { code: 'thing.taken', message: 'taken' }, requestId: 'r' }));
  await fastify.ready();
  return fastify;
}

// a plain ES module of the test support (Jest's reporter), loaded as it is
const reporterModule = () => import(new URL('../support/api-coverage-reporter.mjs', import.meta.url).href);

describe('API coverage: which operations the tests answered', () => {
  let dir: string;
  let callsDir: string;
  // this run's own recording directory and report switch, put back after each test
  const runEnv = { OMNIZEN_API_CALLS_DIR: process.env.OMNIZEN_API_CALLS_DIR, API_COVERAGE: process.env.API_COVERAGE };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'omnizen-api-coverage-'));
    callsDir = join(dir, 'api-calls');
    process.env.OMNIZEN_API_CALLS_DIR = callsDir;
    delete process.env.API_COVERAGE;
  });
  afterEach(() => {
    for (const [name, value] of Object.entries(runEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('records each application\'s (operation, status, code) once, in a file of its own; routes outside the document are not recorded', async () => {
    const first = await thingsApp();
    const second = await thingsApp();
    try {
      await request(first.server).get('/v1/things/1').expect(200);
      await request(first.server).get('/v1/things/1').expect(200);
      await request(first.server).get('/v1/things/2').expect(404);
      await request(first.server).get('/nowhere').expect(404);
      await request(second.server).post('/v1/things').send({}).expect(409);
    } finally {
      await first.close();
      await second.close();
    }
    const files = readdirSync(callsDir).sort();
    expect(files).toEqual([expect.stringMatching(/^calls-\d+-[0-9a-f-]{36}\.jsonl$/), expect.stringMatching(/^calls-/), `operations-${process.pid}.json`]);
    const lines = files.filter((f) => f.startsWith('calls-')).map((f) => readFileSync(join(callsDir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l)));
    expect(lines).toEqual(expect.arrayContaining([
      [{ operation: 'GET /v1/things/{thingId}', status: 200 }, { operation: 'GET /v1/things/{thingId}', status: 404, code: 'thing.not_found' }],
      [{ operation: 'POST /v1/things', status: 409, code: 'thing.taken' }],
    ]));
    expect(JSON.parse(readFileSync(join(callsDir, `operations-${process.pid}.json`), 'utf8'))).toEqual([
      { operation: 'GET /v1/things/{thingId}', operationId: 'getThing', statuses: ['200', '404', '410'], errorCodes: [{ code: 'thing.not_found', status: 404 }, { code: 'thing.gone', status: 410 }] },
      { operation: 'POST /v1/things', operationId: 'createThing', statuses: ['201', '409'], errorCodes: [{ code: 'thing.taken', status: 409 }] },
    ]);
  });

  it('records nothing without a directory named (a run without the reporter)', async () => {
    delete process.env.OMNIZEN_API_CALLS_DIR;
    const app = await thingsApp();
    try {
      await request(app.server).get('/v1/things/1').expect(200);
    } finally {
      await app.close();
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports after a full run: the summary line, the operations never answered 2xx, the detail file; nothing after a partial run', async () => {
    const app = await thingsApp();
    try {
      await request(app.server).get('/v1/things/1').expect(200);
      await request(app.server).get('/v1/things/2').expect(404);
      await request(app.server).post('/v1/things').send({}).expect(409);
    } finally {
      await app.close();
    }
    const { default: Reporter } = await reporterModule();
    const reporter = Object.assign(Object.create(Reporter.prototype), { globalConfig: {}, runDir: dir, callsDir });
    const contexts = new Set([{ config: { testMatch: ['**/*.test.ts'], rootDir: '/r', testPathIgnorePatterns: ['/node_modules/'] },
      hasteFS: { matchFilesWithGlob: () => new Set(['/r/test/a.test.ts', '/r/test/b.test.ts', '/r/node_modules/x/c.test.ts']) } }]);
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => printed.push(s) > 0) as typeof process.stdout.write;
    try {
      reporter.onRunComplete(contexts, { numTotalTestSuites: 1 }); // one of two test files: no report, recordings removed
      expect(printed).toEqual([]);
      expect(readdirSync(tmpdir())).not.toContain(dir.split('/').pop());
      // the same recordings again, then a full run
      const again = await thingsApp();
      await request(again.server).get('/v1/things/1').expect(200);
      await request(again.server).get('/v1/things/2').expect(404);
      await request(again.server).post('/v1/things').send({}).expect(409);
      await again.close();
      reporter.onRunComplete(contexts, { numTotalTestSuites: 2 });
    } finally {
      process.stdout.write = write;
    }
    const report = join(dir, 'api-coverage.json');
    expect(printed.join('')).toBe(
      '\nAPI operations: 1 of 2 answered 2xx in tests; 1 documented error codes never produced\n' +
      'never answered 2xx:\n  POST /v1/things (createThing)\n' +
      `detail: ${report}\n`);
    expect(JSON.parse(readFileSync(report, 'utf8'))).toEqual({
      testFiles: 2, of: 2, operations: 2, answered2xx: 1, errorCodesNeverProduced: 1,
      detail: [
        { operation: 'GET /v1/things/{thingId}', operationId: 'getThing', answered2xx: true, statusesSeen: [200, 404], documentedStatusesNeverSeen: ['410'],
          errorCodesSeen: ['thing.not_found'], errorCodesNeverProduced: ['410 thing.gone'] },
        { operation: 'POST /v1/things', operationId: 'createThing', answered2xx: false, statusesSeen: [409], documentedStatusesNeverSeen: ['201'],
          errorCodesSeen: ['thing.taken'], errorCodesNeverProduced: [] },
      ],
    });
    expect(readdirSync(dir)).toEqual(['api-coverage.json']); // the recordings are gone, the report stays
  });
});
