import { describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import request from 'supertest';
import { PinoNestLogger, requestLogger } from '../../src/platform/logging/logger.js';
import { requestId } from '../../src/platform/http/request-id.js';

/** A pino logger writing JSON lines into an array. */
function capture() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('request log', () => {
  const serve = (status: number) => {
    const { logger, lines } = capture();
    const log = requestLogger(logger);
    const server = createServer((req, res) =>
      requestId(req as any, res as any, () => log(req as any, res, () => {
        res.statusCode = status;
        res.end('{}');
      })));
    return { server, lines };
  };

  it('writes one line per request with the request id, method, URL, status and duration, and no headers', async () => {
    const { server, lines } = serve(200);
    const res = await request(server).get('/v1/orgs?limit=5').set('authorization', 'Bearer secret-token').set('x-request-id', 'req-42');
    await settle();
    expect(res.headers['x-request-id']).toBe('req-42');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, reqId: 'req-42', method: 'GET', url: '/v1/orgs?limit=5', status: 200, msg: 'request completed' });
    expect(typeof lines[0].ms).toBe('number');
    expect(JSON.stringify(lines[0])).not.toContain('secret-token');
  });

  it('logs a 5xx answer at error level', async () => {
    const { server, lines } = serve(503);
    await request(server).get('/health/ready');
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, status: 503, msg: 'request failed' });
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
});
