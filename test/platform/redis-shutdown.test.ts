import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { hasRedis } from '../support/app.js';

/**
 * RedisService's shutdown when Redis goes away at that moment (its connection closes under the QUIT): nothing of the
 * client may be left holding the process open. It runs in a child process of its own, whose active handles and
 * timers are the client's alone (under Jest the runner's own are mixed in): the child reports what is still active
 * once the shutdown is over. A disconnect() of a client whose connection had already ended arms ioredis's 2 s
 * socket-destroy timer, which nothing clears: Jest then reported that it "did not exit one second after the test run".
 */
const SCRIPT = `
import 'reflect-metadata';
import { connect, createServer } from 'node:net';
import { RedisService } from './src/platform/redis/redis.service.js';
const upstream = new URL(process.env.REDIS_URL);
const sockets = new Set();
const track = (s) => { sockets.add(s); s.on('error', () => undefined); s.on('close', () => sockets.delete(s)); };
// a pass-through proxy to the shared Redis that can drop every connection (a Redis that goes down)
const proxy = createServer((client) => {
  track(client);
  const up = connect(Number(upstream.port || 6379), upstream.hostname);
  track(up);
  client.pipe(up);
  up.pipe(client);
  client.on('close', () => up.destroy());
  up.on('close', () => client.destroy());
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const service = new RedisService({ redisUrl: 'redis://127.0.0.1:' + proxy.address().port, redisCommandTimeoutMs: 10000 });
await new Promise((resolve) => service.client.once('ready', resolve));
const closed = new Promise((resolve) => service.client.stream.once('close', resolve));
const ended = new Promise((resolve) => service.client.once('end', resolve));
// Redis goes down as the shutdown starts: the client is still "ready", its QUIT meets a closing connection
const proxyClosed = new Promise((resolve) => proxy.close(resolve));
for (const s of sockets) s.destroy();
await service.onModuleDestroy();
await closed;
await proxyClosed;
await ended;
console.log(JSON.stringify({ status: service.client.status, active: process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap') }));
`;

(hasRedis ? describe : describe.skip)('the shared Redis client at shutdown', () => {
  it('leaves nothing open when Redis goes down under its QUIT', async () => {
    const child = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', '--input-type=module', '-e', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, err: err.split('\n').filter((l) => /Error/.test(l)) }).toEqual({ code: 0, err: [] });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ status: 'end', active: [] });
  });
});
