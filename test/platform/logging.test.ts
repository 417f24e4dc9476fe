import { describe, expect, it } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { pino } from 'pino';
import request from 'supertest';
import { logRequests, PinoNestLogger } from '../../src/platform/logging/logger.js';
import { echoRequestId, requestIdOf } from '../../src/platform/http/request-id.js';

/** A pino logger writing JSON lines into an array; `written(n)` resolves once n lines are there. */
function capture() {
  const lines: Record<string, any>[] = [];
  let waiting: { n: number; resolve: () => void }[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      waiting = waiting.filter((w) => (lines.length >= w.n ? (w.resolve(), false) : true));
      cb();
    },
  });
  const written = (n: number) => new Promise<void>((resolve) => (lines.length >= n ? resolve() : waiting.push({ n, resolve })));
  return { logger: pino({ level: 'info' }, stream), lines, written };
}

describe('request log', () => {
  /**
   * A Fastify server with the app's request id and request log hooks; `/slow` answers when the test calls
   * `release()` (`entered` resolves once the handler runs), and `answered` resolves after its onResponse.
   */
  const serve = async (status: number) => {
    const { logger, lines, written } = capture();
    const fastify = Fastify({ genReqId: requestIdOf });
    echoRequestId(fastify);
    logRequests(fastify, logger);
    let release!: () => void;
    let entered!: () => void;
    const gates = {
      entered: new Promise<void>((r) => (entered = r)),
      released: new Promise<void>((r) => (release = r)),
    };
    fastify.get('/*', async (_req, reply) => reply.status(status).send({}));
    fastify.get('/slow', async () => {
      entered();
      await gates.released;
      return {};
    });
    await fastify.ready();
    return { fastify, server: fastify.server, lines, written, entered: gates.entered, release };
  };

  it('writes one line per request with the request id, method, URL, status and duration, and no headers', async () => {
    const { fastify, server, lines, written } = await serve(200);
    const res = await request(server).get('/v1/orgs?limit=5').set('authorization', 'Bearer secret-token').set('x-request-id', 'req-42');
    await written(1);
    expect(res.headers['x-request-id']).toBe('req-42');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, reqId: 'req-42', method: 'GET', url: '/v1/orgs?limit=5', status: 200, msg: 'request completed' });
    expect(typeof lines[0].ms).toBe('number');
    expect(JSON.stringify(lines[0])).not.toContain('secret-token');
    await fastify.close();
  });

  it('redacts credentials in the query string (a data export\'s download link), keeping the other parameters', async () => {
    const { fastify, server, lines, written } = await serve(200);
    await request(server).get('/v1/data-exports/download?token=5f1c.1767225600.c2lnbmF0dXJl&limit=5&access_token=abc&x');
    await written(1);
    expect(lines[0].url).toBe('/v1/data-exports/download?token=[redacted]&limit=5&access_token=[redacted]&x');
    expect(JSON.stringify(lines)).not.toContain('c2lnbmF0dXJl');
    await fastify.close();
  });

  it('logs a 5xx answer at error level', async () => {
    const { fastify, server, lines, written } = await serve(503);
    await request(server).get('/health/ready');
    await written(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, status: 503, msg: 'request failed' });
    await fastify.close();
  });

  it('logs a request the client abandoned once, as aborted', async () => {
    const { fastify, server, lines, written, entered, release } = await serve(200);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address() as { port: number };
    const req = httpRequest({ host: '127.0.0.1', port, path: '/slow', headers: { 'x-request-id': 'gone-1' } });
    req.on('error', () => undefined);
    req.end();
    await entered;
    req.destroy();
    await written(1);
    // the handler answers after the client left; closing waits for it, so any second line is there by then
    release();
    await fastify.close();
    expect(lines).toEqual([expect.objectContaining({ reqId: 'gone-1', url: '/slow', aborted: true, msg: 'request aborted' })]);
  });
});

describe("Nest's logger over pino", () => {
  it('keeps the context, merges an object first argument and keeps a stack', () => {
    const { logger, lines } = capture();
    const nest = new PinoNestLogger(logger);
    nest.log('database pool closed', 'Database');
    nest.error({ requestId: 'r1', err: { message: 'boom' } }, 'unhandled error', 'Errors');
    nest.error('failed to start', 'Error: at line 1', 'Bootstrap');
    nest.debug('not written at info', 'Database');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ level: 30, context: 'Database', msg: 'database pool closed' });
    expect(lines[1]).toMatchObject({ level: 50, context: 'Errors', requestId: 'r1', err: { message: 'boom' }, msg: 'unhandled error' });
    expect(lines[2]).toMatchObject({ level: 50, context: 'Bootstrap', stack: 'Error: at line 1', msg: 'failed to start' });
  });

  it("writes Nest's boot lines (modules loaded, routes mapped) at debug level, not at info", () => {
    const { logger, lines } = capture();
    const nest = new PinoNestLogger(logger);
    nest.log('Mapped {/v1/orgs, GET} route', 'RouterExplorer');
    nest.log('OrganizationsModule dependencies initialized', 'InstanceLoader');
    nest.log('listening', 'Main');
    expect(lines).toEqual([expect.objectContaining({ level: 30, msg: 'listening' })]);
    const debug = capture();
    debug.logger.level = 'debug';
    new PinoNestLogger(debug.logger).log('Mapped {/v1/orgs, GET} route', 'RouterExplorer');
    expect(debug.lines).toEqual([expect.objectContaining({ level: 20, context: 'RouterExplorer', msg: 'Mapped {/v1/orgs, GET} route' })]);
  });
});
