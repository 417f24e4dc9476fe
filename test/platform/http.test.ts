import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Queue } from 'bull';
import type { Redis } from 'ioredis';
import { JOBS_QUEUE_TOKEN } from '../../src/platform/queue/outbox-relay.service.js';
import { RedisService } from '../../src/platform/redis/redis.service.js';
import { InFlightRequests } from '../../src/platform/http/graceful-shutdown.js';
import { BODY_LIMIT_BYTES } from '../../src/bootstrap.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';

/** METRICS_TOKEN of these apps: it opens the checks of /health/ready (as /metrics) */
const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef0123456789';
const operator = { Authorization: `Bearer ${METRICS_TOKEN}` };

const errorShape = {
  error: { code: expect.any(String), message: expect.any(String) },
  requestId: expect.any(String),
};

describe('platform HTTP: error shape, request ids, health, OpenAPI', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ METRICS_TOKEN });
  });
  afterAll(() => t.close());

  describe('errors', () => {
    it('answers malformed JSON with 400 in the error shape', async () => {
      const res = await t.http.post('/v1/auth/login').set('content-type', 'application/json').send('{"email": ').expect(400);
      expect(res.body).toEqual(errorShape);
      expect(res.body.error.code).toMatch(/^bad_request/);
      expect(res.body.error.message).toMatch(/JSON/);
      expect(res.body.requestId).not.toBe('');
      expect(res.headers['x-request-id']).toBe(res.body.requestId);
    });

    it('answers an empty JSON body, a body too large and a body not JSON with 4xx in the error shape', async () => {
      const empty = await t.http.post('/v1/auth/login').set('content-type', 'application/json').send('').expect(400);
      expect(empty.body).toEqual(errorShape);
      expect(empty.body.error.message).toMatch(/empty/);
      const large = await t.http.post('/v1/auth/login').send({ email: 'a@b.test', password: 'x'.repeat(BODY_LIMIT_BYTES) }).expect(413);
      expect(large.body).toEqual(errorShape);
      expect(large.body.error.code).toBe('payload_too_large');
      const xml = await t.http.post('/v1/auth/login').set('content-type', 'application/xml').send('<login/>').expect(415);
      expect(xml.body).toEqual(errorShape);
      expect(xml.body.error.message).toMatch(/application\/json/);
    });

    it('routes a path with a trailing slash like the path without it', async () => {
      const slash = await t.http.get('/health/').expect(200);
      const plain = await t.http.get('/health').expect(200);
      expect(slash.body).toEqual(plain.body);
      expect(slash.body).toEqual({ status: 'ok' });
    });

    it('takes the client address from X-Forwarded-For only from a proxy on this machine', async () => {
      const credentials = { email: `fwd.${Date.now()}@example.test`, password: 'correct horse battery' };
      await t.http.post('/v1/auth/register').send(credentials).expect(202);
      const res = await t.http.post('/v1/auth/login').set('x-forwarded-for', '203.0.113.7').send(credentials).expect(200);
      const sessions = await t.http.get('/v1/auth/sessions').set('authorization', `Bearer ${res.body.accessToken}`).expect(200);
      expect(sessions.body.map((s: { ip: string }) => s.ip)).toEqual(['203.0.113.7']);
    });

    it('answers an unknown route with 404 in the error shape', async () => {
      const res = await t.http.get('/v1/no-such-route').expect(404);
      expect(res.body).toEqual(errorShape);
      expect(res.body.error.code).toBe('not_found');
      expect(res.headers['x-request-id']).toBe(res.body.requestId);
    });

    it('echoes a well-formed x-request-id and generates one otherwise', async () => {
      const given = await t.http.get('/health').set('x-request-id', 'req-abc.123').expect(200);
      expect(given.headers['x-request-id']).toBe('req-abc.123');
      const generated = await t.http.get('/health').expect(200);
      expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      const rejected = await t.http.get('/health').set('x-request-id', 'bad id with spaces').expect(200);
      expect(rejected.headers['x-request-id']).not.toBe('bad id with spaces');
      const error = await t.http.get('/v1/no-such-route').set('x-request-id', 'req-xyz').expect(404);
      expect(error.body.requestId).toBe('req-xyz');
    });
  });

  describe('health', () => {
    it('is live', async () => {
      expect((await t.http.get('/health').expect(200)).body).toEqual({ status: 'ok' });
    });

    it('answers an anonymous caller its readiness only: no checks, no latencies (a wrong token is anonymous)', async () => {
      expect((await t.http.get('/health/ready').expect(200)).body).toEqual({ status: 'ok' });
      expect((await t.http.get('/health/ready').set('Authorization', 'Bearer not-the-token').expect(200)).body).toEqual({ status: 'ok' });
    });

    it('is ready when PostgreSQL (and Redis, when configured) answer: each check and its latency to the METRICS_TOKEN bearer', async () => {
      const res = await t.http.get('/health/ready').set(operator).expect(200);
      expect(res.body).toEqual({
        status: 'ok',
        checks: hasRedis ? { postgres: 'up', redis: 'up', rls: 'up' } : { postgres: 'up', rls: 'up' },
        latencyMs: hasRedis ? { postgres: expect.any(Number), redis: expect.any(Number) } : { postgres: expect.any(Number) },
      });
    });

    it('while draining for shutdown: not ready, and every response closes its connection', async () => {
      const requests = t.app.get(InFlightRequests);
      requests.draining = true;
      try {
        expect((await t.http.get('/health/ready').expect(503)).body).toEqual({ status: 'draining' });
        const live = await t.http.get('/health').expect(200);
        expect(live.headers.connection).toBe('close');
      } finally {
        requests.draining = false;
      }
      await t.http.get('/health/ready').expect(200);
    });
  });

  describe('with Redis configured but unreachable', () => {
    let down: TestApp;
    let clients: [string, Redis][];
    let closed = false;
    // whatever the application leaves connecting is ended here, synchronously after close: once the
    // queue is closed its clients have no 'error' listener and the next failed reconnect would throw
    const endAll = () => clients.forEach(([, c]) => c.disconnect());

    beforeAll(async () => {
      down = await createTestApp({ REDIS_URL: 'redis://127.0.0.1:1', METRICS_TOKEN });
      const queue = down.app.get<Queue>(JOBS_QUEUE_TOKEN) as unknown as { clients: Redis[] };
      clients = [['RedisService', down.app.get(RedisService).client!], ...queue.clients.map((c, i) => [`jobs queue client ${i}`, c] as [string, Redis])];
    });
    afterAll(async () => {
      if (!closed) await down.close().finally(endAll);
    });

    it('is ready (200), Redis reported down without deciding (READINESS_REQUIRES_REDIS unset)', async () => {
      const res = await down.http.get('/health/ready').set(operator).expect(200);
      expect(res.body).toEqual({ status: 'ok', checks: { postgres: 'up', redis: 'down', rls: 'up' }, latencyMs: { postgres: expect.any(Number), redis: expect.any(Number) } });
      expect((await down.http.get('/health/ready').expect(200)).body).toEqual({ status: 'ok' });
    });

    it('closes cleanly and stops reconnecting to Redis (graceful shutdown with Redis down)', async () => {
      // trying: a reconnect scheduled (ioredis keeps the timer of its next attempt in `reconnectTimeout`;
      // closing clears it), or a connection under way that was not closed on purpose (`manuallyClosing`).
      // A client closed while reconnecting may keep the status 'reconnecting' with neither: it stays quiet.
      const trying = () => clients.filter(([, c]) => {
        const internals = c as unknown as { reconnectTimeout?: unknown; manuallyClosing?: boolean };
        return internals.reconnectTimeout || (['connecting', 'connect', 'ready'].includes(c.status) && !internals.manuallyClosing);
      }).map(([name, c]) => `${name}: ${c.status}`);
      expect(trying().length).toBeGreaterThan(0); // before closing, the clients keep trying the missing Redis
      closed = true;
      await down.close();
      const after = trying();
      endAll();
      expect(after).toEqual([]);
    });
  });

  describe('OpenAPI', () => {
    let doc: any;
    beforeAll(async () => {
      doc = (await t.http.get('/docs-json').expect(200)).body;
    });

    const operations = () =>
      Object.entries<Record<string, any>>(doc.paths).flatMap(([path, item]) =>
        Object.entries(item)
          .filter(([method]) => ['get', 'post', 'put', 'patch', 'delete'].includes(method))
          .map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, path, op })));

    it('serves the document with the bearer scheme', () => {
      expect(doc.openapi).toMatch(/^3\./);
      expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
      expect(operations().map((o) => o.name)).toEqual(expect.arrayContaining(['GET /health', 'GET /v1/orgs']));
    });

    it('gives every operation a summary and at least one 2xx response', () => {
      const ops = operations();
      expect(ops.filter((o) => !o.op.summary).map((o) => `${o.name}: no summary`)).toEqual([]);
      expect(ops.filter((o) => !Object.keys(o.op.responses ?? {}).some((s) => /^2\d\d$/.test(s))).map((o) => `${o.name}: no 2xx response`)).toEqual([]);
    });

    it('declares bearer security on every route that needs a token', async () => {
      // a route is public when the API answers it without a token with something other than 401
      const missing: string[] = [];
      for (const { name, path, op } of operations()) {
        if ((op.security ?? doc.security ?? []).some((s: Record<string, unknown>) => 'bearer' in s)) continue;
        // public to users: its 401 asks for the server's METRICS_TOKEN (auth.metrics_token), not a user's token
        if (op.operationId === 'getMetrics') continue;
        const method = name.split(' ')[0].toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
        const url = path.replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');
        const res = await t.http[method](url).send({});
        if (res.status === 401) missing.push(`${name}: answers 401 without a token but declares no bearer security`);
      }
      expect(missing).toEqual([]);
    });

    it('documents the retryable 503s (with Retry-After) on every operation but the health probes', () => {
      const missing = operations().filter((o) => !o.path.startsWith('/health'))
        .filter((o) => !o.op.responses['503']?.headers?.['Retry-After'] || !o.op.responses['503'].content['application/json'].examples?.database_unavailable)
        .map((o) => o.name);
      expect(missing).toEqual([]);
      const examples = doc.paths['/v1/orgs'].post.responses['503'].content['application/json'].examples;
      expect(Object.keys(examples).sort()).toEqual(['database_timeout', 'database_unavailable', 'queue_unavailable']);
      expect(examples.database_timeout.value.error.code).toBe('database_timeout');
    });

    it('serves the UI at /docs', async () => {
      const res = await t.http.get('/docs').redirects(1).expect(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.text).toMatch(/swagger/i);
    });
  });
});
