import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import request from 'supertest';
import { pino } from 'pino';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { enqueue, JobRegistry, type Job } from '../../src/platform/queue/jobs.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { until } from '../support/throwaway-servers.js';
import { logRequests } from '../../src/platform/logging/logger.js';
import { echoRequestId, requestIdOf } from '../../src/platform/http/request-id.js';
import { activeTracing, flushTracing, requestSampling, startTracing, stopTracing, traceIdMixin, traceRequests, SpanQueue, type RequestSampling } from '../../src/platform/observability/tracing.js';
import { ConfigError, tracingConfig } from '../../src/platform/config/config.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { orgWithRoles } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { startOtlpCollectorDouble, type OtlpCollectorDouble } from '../support/doubles/otlp-collector-double.js';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { describeStatement, readableSpan, serializeSpans, statementEncoding, statementSpan, StatementSpan, type SpanRecord, type StatementRecord } from '../../src/platform/observability/span-export-worker.js';

/**
 * Traces over OTLP to a local collector double. Tracing is process-wide and must start before the application
 * is built (main.ts starts it before importing the server): this file starts it in beforeAll, before
 * createTestApp; the application's bootstrap then registers the request instrumentation.
 */
describe('tracing (OpenTelemetry over OTLP)', () => {
  let collector: OtlpCollectorDouble;
  let t: TestApp;

  beforeAll(async () => {
    collector = await startOtlpCollectorDouble();
    expect(activeTracing()).toBeNull();
    // off unless the endpoint is set: nothing starts
    expect(await startTracing({})).toBeNull();
    // every trace recorded here (the default samples a tenth of them)
    await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'omnizen-test', OTEL_TRACES_SAMPLER: 'always_on' });
    t = await createTestApp();
  });
  afterAll(async () => {
    await t?.close();
    await stopTracing();
    await collector.close();
  });

  it('validates its configuration: an http(s) endpoint, http/protobuf or http/json', () => {
    expect(tracingConfig({})).toBeUndefined();
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toEqual({
      endpoint: 'http://collector:4318', protocol: 'http/protobuf', serviceName: 'omnizen-api', sampler: { name: 'parentbased_traceidratio', ratio: 0.1 } });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'parentbased_always_on' })?.sampler).toEqual({ name: 'parentbased_always_on', ratio: 0.1 });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER_ARG: '0.25' })?.sampler).toEqual({ name: 'parentbased_traceidratio', ratio: 0.25 });
    expect(() => tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toThrow(/OTEL_TRACES_SAMPLER must be one of/);
    expect(() => tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER_ARG: '1.5' })).toThrow(/from 0 to 1/);
    expect(() => tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318 ' })).toThrow(ConfigError);
    expect(() => tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/http\/protobuf or http\/json/);
  });

  // Under Jest the outgoing-call spans are not made: the HTTP instrumentation patches modules through Node's module
  // loader, which Jest's own module registry bypasses (under `npm start` it patches; docs/observability.md)
  it('exports a span per request to the collector, with its route template and the request id as attributes', async () => {
    const org = await orgWithRoles(t, 'Traced Ltd');
    // spans are timed on the monotonic clock from the process's time origin (as the SDK times them), which drifts from
    // Date.now() by milliseconds in a long-running process: the window is read on the same clock
    const clock = () => performance.timeOrigin + performance.now();
    const before = Math.floor(clock());
    const res = await t.http.get(ledgerUrl(org.orgId, 'accounts')).set(org.users.owner.auth).set('x-request-id', 'trace-req-1').expect(200);
    const after = Math.ceil(clock());
    expect(res.headers['x-request-id']).toBe('trace-req-1');
    await flush();
    const span = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'trace-req-1');
    expect(span).toMatchObject({ service: 'omnizen-test', traceId: expect.stringMatching(/^[0-9a-f]{32}$/), spanId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    // the export worker describes this process, as the SDK's resource detectors do
    expect(span.resource).toMatchObject({ 'service.name': 'omnizen-test', 'process.pid': process.pid, 'telemetry.sdk.language': 'nodejs' });
    // timed on this thread, exported from the worker: the request's own start and end (milliseconds, truncated)
    expect(span.startMs).toBeGreaterThanOrEqual(before - 1);
    expect(span.endMs).toBeGreaterThanOrEqual(span.startMs);
    expect(span.endMs).toBeLessThanOrEqual(after);
    // every span of the request is in the same trace; the request span names the route template, not the raw path
    const ofTrace = collector.spans.filter((s) => s.traceId === span.traceId);
    expect(span.name).toBe('GET /v1/orgs/:orgId/ledger/accounts');
    expect(span.attributes['http.route']).toBe('/v1/orgs/:orgId/ledger/accounts');
    expect(JSON.stringify(ofTrace)).not.toContain(org.users.owner.auth.Authorization.slice(7));
  });

  it("gives each statement of a recorded request a span under the request's, named after the repository operation that sent it", async () => {
    const org = await orgWithRoles(t, 'Statements Ltd');
    await t.http.get(ledgerUrl(org.orgId, 'accounts')).set(org.users.owner.auth).set('x-request-id', 'trace-req-sql').expect(200);
    await flush();
    const request = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'trace-req-sql');
    const statements = collector.spans.filter((s) => s.traceId === request.traceId && s.parentSpanId === request.spanId);
    // begin_request, then the route's reads; BEGIN and COMMIT get none
    const begin = statements.find((s) => s.name === 'SELECT database.service.tenant');
    expect(begin).toMatchObject({ kind: 3 }); // SPAN_KIND_CLIENT
    expect(begin!.attributes).toMatchObject({
      'db.system.name': 'postgresql', 'db.operation.name': 'SELECT', 'omnizen.db.operation': 'database.service.tenant',
      'db.namespace': expect.any(String), 'server.port': expect.any(Number),
    });
    expect(begin!.attributes['db.query.text']).toMatch(/public\.begin_request\(\$1, \$2\)/);
    expect(statements.length).toBeGreaterThanOrEqual(2);
    for (const s of statements) expect(s.attributes['omnizen.db.operation']).toMatch(/^[a-z-]+(\.[a-z-]+)*\.[A-Za-z]+$/);
    expect(statements.map((s) => String(s.attributes['db.query.text'] ?? ''))).not.toContainEqual(expect.stringMatching(/^\s*(BEGIN|COMMIT)/));
    // the claims (with the user's id) travel as a parameter: no statement span carries a value
    expect(JSON.stringify(statements)).not.toContain(org.users.owner.id);
  });

  it('gives no span to statements outside a recorded span (a job, a privileged task)', async () => {
    const before = collector.spans.length;
    const rows = await t.app.get(PrivilegedDatabase).run('jobs.purge', async function outsideAnySpan(db) {
      return db.$queryRaw<{ n: number }[]>`SELECT 1 AS n`;
    });
    expect(rows).toEqual([{ n: 1 }]);
    await flush();
    expect(collector.spans.slice(before).filter((s) => s.attributes['db.system.name'] === 'postgresql')).toEqual([]);
  });

  it("continues the trace of the span a job was enqueued under: the job's own span under it, its statements under the job's", async () => {
    const org = await orgWithRoles(t, 'Traced Jobs Ltd');
    const handled: Job[] = [];
    t.app.get(JobRegistry).register('test.traced', async function tracedJob(job) {
      handled.push(job);
      await t.app.get(PrivilegedDatabase).run('jobs.purge', async function tracedJobRead(db) {
        return db.$queryRaw`SELECT 1 AS n`;
      });
    });
    // what a sampled request's hook makes active (traceRequests): its span context
    const traceId = randomBytes(16).toString('hex');
    const spanId = randomBytes(8).toString('hex');
    const caller = trace.wrapSpanContext({ traceId, spanId, traceFlags: TraceFlags.SAMPLED });
    await context.with(trace.setSpan(ROOT_CONTEXT, caller), () => t.app.get(DatabaseService)
      .tenant({ kind: 'service', name: 'tracing' }, org.orgId, { requestId: 'trace-job' }, (tx) => enqueue(tx, 'test.traced', { n: 1 })));
    // stored with the outbox row, outside any span: a job enqueued by a job or a scheduled task has none
    await t.app.get(DatabaseService).tenant({ kind: 'service', name: 'tracing' }, org.orgId, { requestId: 'trace-job-2' }, (tx) => enqueue(tx, 'test.traced', { n: 2 }));
    const stored = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE topic = 'test.traced' ORDER BY id`);
    expect(stored.rows.map((r) => r.payload)).toEqual([{ n: 1, _traceparent: `00-${traceId}-${spanId}-01` }, { n: 2 }]);

    await t.app.get(OutboxRelay).drain(); // to Bull (REDIS_URL), whose worker runs them
    await until('both jobs are done', async () => (await t.db.admin.query(
      `SELECT 1 FROM core.outbox WHERE topic = 'test.traced' AND processed_at IS NOT NULL AND dead_at IS NULL`)).rows.length === 2);
    // the handler is given its payload as enqueued, the traceparent apart
    expect(handled.map((j) => [j.payload, j.traceParent]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))))
      .toEqual([[{ n: 1 }, `00-${traceId}-${spanId}-01`], [{ n: 2 }, undefined]]);
    await flush();
    const job = await collector.waitForSpan((s) => s.name === 'job test.traced');
    expect(job).toMatchObject({ traceId, parentSpanId: spanId, kind: 5 }); // SPAN_KIND_CONSUMER
    expect(job.attributes).toMatchObject({ 'messaging.operation.type': 'process', 'messaging.destination.name': 'test.traced', 'messaging.message.id': expect.any(String) });
    const ofJob = collector.spans.filter((s) => s.parentSpanId === job.spanId);
    expect(ofJob.filter((s) => s.attributes['db.system.name'] === 'postgresql').length).toBeGreaterThanOrEqual(1);
    // the job enqueued outside any span has none
    expect(collector.spans.filter((s) => s.name === 'job test.traced')).toHaveLength(1);
  });

  it('records a failed statement on its span, with its SQLSTATE', async () => {
    const org = await orgWithRoles(t, 'Failing Ltd');
    // books never started: finance.post_journal_entry refuses the entry (P0001, ledger.books_not_started)
    const res = await t.http.post(ledgerUrl(org.orgId, 'journal-entries')).set(org.users.owner.auth).set('x-request-id', 'trace-req-fail')
      .send({ date: '2026-01-15', lines: [{ accountId: randomUUID(), debit: '1.00' }, { accountId: randomUUID(), credit: '1.00' }] });
    expect(res.body.error.code).toBe('ledger.books_not_started');
    await flush();
    const request = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'trace-req-fail');
    const failed = collector.spans.filter((s) => s.traceId === request.traceId && s.attributes['db.response.status_code'] !== undefined);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ name: 'SELECT ledger.repository.post', status: { code: 2 } }); // STATUS_CODE_ERROR
    expect(failed[0].attributes['db.response.status_code']).toBe('P0001');
    // the error as Span.recordException records it: its code, its message, where it was thrown
    expect(failed[0].status.message).toBe('the books of this organization are not started (no base currency)');
    expect(failed[0].events).toEqual([{ name: 'exception', attributes: {
      'exception.type': 'P0001', 'exception.message': failed[0].status.message, 'exception.stacktrace': expect.stringContaining('ledger.repository'),
    } }]);
  });

  it("exports the SDK's own spans (an instrumentation's, as an outgoing call's) under the request's span, through the same worker", async () => {
    const { fastify } = await tracedServer();
    fastify.get('/calls', async () => {
      // what instrumentation-http does for an outgoing call inside a sampled request
      const call = trace.getTracer('test-instrumentation').startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'server.address': 'upstream.example' } });
      call.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream refused' });
      call.end();
      return {};
    });
    await fastify.ready();
    await request(fastify.server).get('/calls').set('x-request-id', 'sdk-child').expect(200);
    await fastify.close();
    await flush();
    const parent = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'sdk-child');
    const call = await collector.waitForSpan((s) => s.traceId === parent.traceId && s.scope === 'test-instrumentation');
    expect(call).toMatchObject({
      name: 'GET', kind: 3, parentSpanId: parent.spanId, status: { code: 2, message: 'upstream refused' }, service: 'omnizen-test',
      attributes: { 'server.address': 'upstream.example' },
    });
  });

  it('writes the trace id on every log line of a request', async () => {
    const { lines, fastify, log } = await tracedServer();
    fastify.get('/work', async () => {
      log.info({ step: 'inside the handler' }, 'working');
      return {};
    });
    await fastify.ready();
    await request(fastify.server).get('/work').set('x-request-id', 'log-req-1').expect(200);
    await fastify.close();
    expect(lines.map((l) => l.msg)).toEqual(['working', 'request completed']);
    const traceIds = new Set(lines.map((l) => l.traceId));
    expect(traceIds.size).toBe(1);
    expect([...traceIds][0]).toMatch(/^[0-9a-f]{32}$/);
    await flush();
    const span = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'log-req-1');
    expect(span.traceId).toBe([...traceIds][0]);
  });

  it('decides sampling in the request hook as OTEL_TRACES_SAMPLER says: always_on, always_off, a draw at the ratio, the parent when parent-based', () => {
    const draws = [0.2, 0.3];
    const ratio = requestSampling({ name: 'traceidratio', ratio: 0.25 }, () => draws.shift()!);
    expect([ratio.newTrace(), ratio.newTrace(), ratio.followsParent]).toEqual([true, false, false]);
    expect(requestSampling({ name: 'always_on', ratio: 0.1 }).newTrace()).toBe(true);
    expect(requestSampling({ name: 'always_off', ratio: 0.1 }).newTrace()).toBe(false);
    const parentBased = requestSampling({ name: 'parentbased_always_off', ratio: 0.1 });
    expect([parentBased.newTrace(), parentBased.followsParent]).toEqual([false, true]);
  });

  it('makes no span for a request the sampler drops, and follows the sampled flag of a caller under parentbased_*', async () => {
    // a new trace is never drawn: only a caller's sampled traceparent is recorded
    const { fastify } = await tracedServer(requestSampling({ name: 'parentbased_traceidratio', ratio: 0 }));
    fastify.get('/items/:id', async () => ({}));
    await fastify.ready();
    const callerTrace = '0af7651916cd43dd8448eb211c80319c';
    await request(fastify.server).get('/items/1').set('x-request-id', 'dropped-new-trace').expect(200);
    await request(fastify.server).get('/items/2').set('x-request-id', 'dropped-by-caller').set('traceparent', `00-${callerTrace}-b7ad6b7169203331-00`).expect(200);
    await request(fastify.server).get('/items/3').set('x-request-id', 'kept-by-caller').set('traceparent', `00-${callerTrace}-b7ad6b7169203331-01`).expect(200);
    await fastify.close();
    await flush();
    // exported in the order they ended: once the last one is in, the two before it would be too
    expect(await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'kept-by-caller')).toMatchObject({ traceId: callerTrace, parentSpanId: 'b7ad6b7169203331' });
    expect(collector.spans.filter((s) => ['dropped-new-trace', 'dropped-by-caller'].includes(s.attributes['omnizen.request_id'] as string))).toEqual([]);
  });

  it('ends the span of a request whose client went away before the answer, marked aborted and without a status', async () => {
    const { fastify } = await tracedServer();
    let closed!: Promise<unknown>;
    let started!: () => void;
    const handlerStarted = new Promise<void>((resolve) => (started = resolve));
    let answer!: () => void;
    fastify.get('/slow', async (_req, reply) => {
      // listened to after the tracing hook's listener: once this fires, the span has ended
      closed = new Promise((resolve) => reply.raw.once('close', resolve));
      started();
      await new Promise<void>((resolve) => (answer = resolve));
      return {};
    });
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const { port } = fastify.server.address() as { port: number };
    const client = http.get({ host: '127.0.0.1', port, path: '/slow', headers: { 'x-request-id': 'trace-aborted' } });
    client.on('error', () => undefined); // the socket is destroyed on purpose
    await handlerStarted;
    client.destroy();
    await closed;
    await flush();
    const span = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'trace-aborted');
    expect(span.attributes).toMatchObject({ 'omnizen.aborted': true, 'http.route': '/slow' });
    expect(span.attributes['http.response.status_code']).toBeUndefined();
    answer();
    await fastify.close();
  });

  it("continues a caller's trace (W3C traceparent): the request span is in the caller's trace, with the route template", async () => {
    const { lines, fastify, log } = await tracedServer();
    fastify.get('/items/:id', async () => {
      log.info('working');
      return {};
    });
    await fastify.ready();
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    await request(fastify.server).get('/items/1').set('x-request-id', 'sampled-by-caller').set('traceparent', `00-${callerTrace}-00f067aa0ba902b7-01`).expect(200);
    await fastify.close();
    await flush();
    const span = await collector.waitForSpan((s) => s.attributes['omnizen.request_id'] === 'sampled-by-caller');
    expect(span).toMatchObject({ traceId: callerTrace, name: 'GET /items/:id', kind: 2 }); // SPAN_KIND_SERVER
    expect(span.attributes).toMatchObject({ 'http.route': '/items/:id', 'http.request.method': 'GET', 'url.path': '/items/1', 'http.response.status_code': 200 });
    expect(span.parentSpanId).toBe('00f067aa0ba902b7');
    expect(lines.filter((l) => l.msg === 'working').map((l) => l.traceId)).toEqual([callerTrace]);
  });

  it('loses only its spans when the export worker dies: a flush waiting for it returns, later spans are dropped (none kept), the shutdown ends', async () => {
    // a queue of its own (not the process's tracing), killed by a record naming a statement description it was never sent
    const queue = await SpanQueue.start({ spanExport: true, url: `${collector.url}/v1/traces`, protocol: 'http/json', serviceName: 'omnizen-dying' });
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      queue.pushStatement({ traceId: 'a'.repeat(32), parentSpanId: 'b'.repeat(16), statement: 99, start: Date.now(), end: Date.now(), error: undefined });
      // the worker exits while this flush waits for its answer: the flush returns instead of waiting forever
      await queue.flush();
      // spans of later requests are dropped at once: nothing piles up for the rest of the process's life
      for (let i = 0; i < 300; i++) {
        queue.push({
          traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), parentSpanId: undefined, parentRemote: false, scope: 'omnizen-http', name: 'GET /after-death', kind: SpanKind.SERVER,
          start: Date.now(), end: Date.now(), attributes: {}, status: SpanStatusCode.UNSET, message: undefined, events: [],
        });
      }
      expect(queue.queued).toBe(0);
      await queue.flush();
      await queue.shutdown();
      expect(warn.mock.calls.map(([w]) => String(w))).toEqual([expect.stringMatching(/^tracing: the span export worker failed: /)]);
    } finally {
      warn.mockRestore();
    }
  });
});

/**
 * OTLP/HTTP with protobuf (the default protocol): a statement's span is written from its description's bytes, made
 * once (span-export-worker.ts), every other span by the SDK's serializer. The bytes must be the ones the SDK's
 * serializer writes for the same span; and a whole export, decoded, must hold every span.
 */
describe('tracing: the protobuf encoding of statement spans', () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const resource = resourceFromAttributes({
    'service.name': 'omnizen-test', 'process.pid': 4242, 'an.offset': -7, 'a.ratio': 0.25, 'a.flag': true, 'process.command_args': ['node', 'main.js'], 'a.long.one': 'x'.repeat(300),
  });
  const description = describeStatement({ operation: 'ledger.post', text: 'SELECT finance.post_journal_entry($1, $2) -- “quoted”, ünïcödé', database: 'omnizen', host: '127.0.0.1', port: 5432 });
  const record = (i: number): StatementRecord => ({ traceId, parentSpanId: '00f067aa0ba902b7', statement: 0, start: 1764800000123.5 + i, end: 1764800000125.25 + i, error: undefined });
  const spanIdOf = (i: number) => `a1b2c3d4e5f6${String(i).padStart(4, '0')}`;

  it('writes the bytes the SDK serializer writes for the same spans (resource attributes of every kind, a multi-byte text, many spans)', () => {
    const encoded = statementEncoding(resource).describe(description);
    // times with fractions of a nanosecond that a double cannot hold exactly: rounded alike
    const spans = Array.from({ length: 200 }, (_, i) => new StatementSpan({ ...record(i), start: 1764800000123.4567 + i, end: 1764800000125.0001 + i }, spanIdOf(i), encoded));
    const ours = serializeSpans(spans, () => { throw new Error('no span for the SDK serializer'); });
    const sdk = ProtobufTraceSerializer.serializeRequest(spans.map((s) => readableSpan(statementSpan(s.record, s.spanId, description), resource)));
    expect(ours).toBeDefined();
    expect(Buffer.from(ours!).equals(Buffer.from(sdk!))).toBe(true);
  });

  it('appends them to what the SDK serializer writes for the other spans, as one request', () => {
    const encoded = statementEncoding(resource).describe(description);
    const request: SpanRecord = {
      traceId, spanId: '00f067aa0ba902b7', parentSpanId: undefined, parentRemote: false, scope: 'omnizen-http', name: 'POST /v1/orgs/:orgId/ledger/journal-entries', kind: SpanKind.SERVER,
      start: 1764800000120, end: 1764800000130, attributes: { 'http.route': '/v1/orgs/:orgId/ledger/journal-entries', 'http.response.status_code': 201 }, status: SpanStatusCode.UNSET, message: undefined, events: [],
    };
    const mixed = serializeSpans([readableSpan(request, resource), new StatementSpan(record(0), spanIdOf(0), encoded)], (others) => ProtobufTraceSerializer.serializeRequest(others));
    const first = ProtobufTraceSerializer.serializeRequest([readableSpan(request, resource)])!;
    const second = ProtobufTraceSerializer.serializeRequest([readableSpan(statementSpan(record(0), spanIdOf(0), description), resource)])!;
    expect(Buffer.from(mixed!).equals(Buffer.concat([first, second]))).toBe(true);
  });

  it('exports a request, its statements and a failed statement over OTLP/HTTP protobuf: one request body holding every span', async () => {
    const bodies: { type: string | undefined; body: Buffer }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({ type: req.headers['content-type'], body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const queue = await SpanQueue.start({ spanExport: true, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/traces`, protocol: 'http/protobuf', serviceName: 'omnizen-protobuf' });
    try {
      const target = { database: 'omnizen', host: '127.0.0.1', port: 5432 };
      const select = queue.statement('SELECT * FROM core.organizations WHERE id = $1', 'organization.repository.get', target);
      const insert = queue.statement('INSERT INTO core.audit_logs VALUES ($1)', 'audit.repository.insert', target);
      queue.pushStatement({ ...record(0), statement: select });
      queue.pushStatement({ ...record(1), statement: select });
      queue.pushStatement({ ...record(2), statement: insert, error: { code: '23505', type: '23505', message: 'duplicate key', stack: undefined, time: 1764800000126 } });
      queue.push({
        traceId, spanId: '00f067aa0ba902b7', parentSpanId: undefined, parentRemote: false, scope: 'omnizen-http', name: 'GET /v1/orgs/:orgId', kind: SpanKind.SERVER,
        start: 1764800000120, end: 1764800000130, attributes: { 'http.route': '/v1/orgs/:orgId' }, status: SpanStatusCode.UNSET, message: undefined, events: [],
      });
      await queue.flush();
    } finally {
      await queue.shutdown();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(bodies.map((b) => b.type)).toEqual(['application/x-protobuf']);
    const spans = decodeExport(bodies[0].body);
    expect(spans.map((s) => [s.scope, s.name, s.status]).sort()).toEqual([
      ['omnizen-http', 'GET /v1/orgs/:orgId', 0],
      ['omnizen-postgres', 'INSERT audit.repository.insert', 2],
      ['omnizen-postgres', 'SELECT organization.repository.get', 0],
      ['omnizen-postgres', 'SELECT organization.repository.get', 0],
    ]);
    for (const s of spans) {
      expect(s.service).toBe('omnizen-protobuf');
      expect(s.traceId).toBe(traceId);
      if (s.scope === 'omnizen-postgres') expect(s.parentSpanId).toBe('00f067aa0ba902b7');
    }
    const selects = spans.filter((s) => s.name.startsWith('SELECT'));
    expect(selects[0].attributes).toEqual({
      'db.system.name': 'postgresql', 'db.namespace': 'omnizen', 'server.address': '127.0.0.1', 'server.port': 5432, 'omnizen.db.operation': 'organization.repository.get',
      'db.operation.name': 'SELECT', 'db.query.text': 'SELECT * FROM core.organizations WHERE id = $1',
    });
    expect(selects[0].spanId).not.toBe(selects[1].spanId);
    expect(selects.map((s) => s.startNanos)).toEqual([1764800000123500000n, 1764800000124500000n]);
    expect(spans.find((s) => s.status === 2)!.attributes['db.response.status_code']).toBe('23505');
  });
});

/** What `decodeExport` reads of a span. */
interface DecodedSpan {
  service: unknown;
  scope: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  startNanos: bigint;
  status: number;
  attributes: Record<string, unknown>;
}

/**
 * An ExportTraceServiceRequest read with the protobuf wire format's rules (opentelemetry-proto's trace.proto field
 * numbers): every ResourceSpans, whatever their number, and the fields these tests look at.
 */
function decodeExport(body: Buffer): DecodedSpan[] {
  const fields = (buf: Buffer) => {
    const out: { field: number; value: Buffer | bigint }[] = [];
    let pos = 0;
    const varint = () => {
      let n = 0n;
      for (let shift = 0n; ; shift += 7n) {
        const byte = buf[pos++];
        n |= BigInt(byte & 0x7f) << shift;
        if (byte < 0x80) return n;
      }
    };
    while (pos < buf.length) {
      const tag = Number(varint());
      const wire = tag & 7;
      if (wire === 0) out.push({ field: tag >> 3, value: varint() });
      else if (wire === 1) out.push({ field: tag >> 3, value: buf.readBigUInt64LE((pos += 8) - 8) });
      else if (wire === 5) out.push({ field: tag >> 3, value: BigInt(buf.readUInt32LE((pos += 4) - 4)) });
      else if (wire === 2) {
        const length = Number(varint());
        out.push({ field: tag >> 3, value: buf.subarray(pos, (pos += length)) });
      } else throw new Error(`wire type ${wire}`);
    }
    return out;
  };
  const all = (buf: Buffer, n: number) => fields(buf).filter((f) => f.field === n).map((f) => f.value);
  const one = (buf: Buffer, n: number) => all(buf, n)[0];
  const anyValue = (v: Buffer): unknown => {
    const [f] = fields(v);
    return f.field === 1 ? (f.value as Buffer).toString('utf8') : f.field === 3 ? Number(f.value) : f.field === 2 ? f.value === 1n : f.value;
  };
  const attributes = (buf: Buffer, n: number) =>
    Object.fromEntries(all(buf, n).map((kv) => [(one(kv as Buffer, 1) as Buffer).toString('utf8'), anyValue(one(kv as Buffer, 2) as Buffer)]));
  const spans: DecodedSpan[] = [];
  for (const rs of all(body, 1) as Buffer[]) {
    const service = attributes(one(rs, 1) as Buffer, 1)['service.name'];
    for (const ss of all(rs, 2) as Buffer[]) {
      const scope = (one(one(ss, 1) as Buffer, 1) as Buffer).toString('utf8');
      for (const s of all(ss, 2) as Buffer[]) {
        const parent = one(s, 4) as Buffer | undefined;
        const status = one(s, 15) as Buffer;
        spans.push({
          service, scope, name: (one(s, 5) as Buffer).toString('utf8'), traceId: (one(s, 1) as Buffer).toString('hex'), spanId: (one(s, 2) as Buffer).toString('hex'),
          parentSpanId: parent?.toString('hex'), startNanos: one(s, 7) as bigint, status: Number(one(status, 3) ?? 0n), attributes: attributes(s, 9),
        });
      }
    }
  }
  return spans;
}

/**
 * A bare Fastify server with the app's request tracing, request ids and request logging; its log lines (the app's
 * logger is createLogger(config, traceIdMixin) on stdout: the same mixin) collected into `lines`.
 */
async function tracedServer(sampling?: RequestSampling) {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
  const fastify = Fastify({ genReqId: requestIdOf });
  echoRequestId(fastify);
  await traceRequests(fastify, { ...activeTracing()!, ...(sampling ? { sampling } : {}) });
  const log = pino({ level: 'info', mixin: traceIdMixin }, stream);
  logRequests(fastify, log);
  return { lines, fastify, log };
}

/** Exports the spans ended so far (the export worker batches them). */
async function flush(): Promise<void> {
  await flushTracing();
}
