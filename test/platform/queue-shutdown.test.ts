import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import type { Queue } from 'bull';
import type { Redis } from 'ioredis';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { bounded, ThrowawayRedis, until } from '../support/throwaway-servers.js';
import { FreezingRedisProxy } from '../support/freezing-redis-proxy.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';

const bullClients = (queue: Queue) => (queue as unknown as { clients: Redis[] }).clients;

/**
 * Requests never call Bull: a job is an outbox row written in the request's transaction, and the relay hands it to
 * Bull outside any request, each call bounded by JOBS_ENQUEUE_TIMEOUT_MS. Bull's own close, though, waits for Redis
 * (it reconnects its blocking connection and waits for it to be ready): with Redis hung, the application's close
 * never finished. It now waits for Bull within the shutdown grace (on the injected CallTimer, fired here), then ends
 * Bull's connections.
 */
(hasRedis ? describe : describe.skip)('the jobs queue with a Redis that hangs (accepts, never answers)', () => {
  const upstream = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const graceMs = 600_000; // told apart from the app's other timers by its length
  let proxy: FreezingRedisProxy;
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let queue: Queue;
  let appClosed = false;

  beforeAll(async () => {
    proxy = new FreezingRedisProxy(upstream);
    await proxy.listen();
    t = await createTestApp({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_COMMAND_TIMEOUT_MS: '200', JOBS_ENQUEUE_TIMEOUT_MS: '200', SHUTDOWN_GRACE_MS: String(graceMs) });
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    owner = await registerUser(t, 'queue-hang-owner');
    orgId = await createOrg(t, owner, 'Queue Hang Co');
    // Bull's three connections (commands, events, the worker's blocking one) are up before Redis stops answering
    await until('Bull has its three connections ready', () => bullClients(queue).length === 3 && bullClients(queue).every((c) => c.status === 'ready'));
    proxy.frozen = true;
  });
  afterAll(async () => {
    await proxy?.close();
    if (t && !appClosed) await t.app.close();
    await t?.db.drop();
  });

  it('a request that queues jobs answers, its jobs wait in the outbox; a relay pass fails within the enqueue timeout', async () => {
    const res = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: 'invitee@example.test', role: 'member' }).expect(201);
    expect(res.body).toMatchObject({ orgId, email: 'invitee@example.test', role: 'member' });
    const rows = async () => (await t.db.admin.query<{ topic: string; processed_at: Date | null; last_error: string | null }>(
      `SELECT topic, processed_at, last_error FROM core.outbox WHERE org_id = $1 AND topic IN ('invitation.created', 'domain_event') AND payload::text LIKE '%invitee@example.test%' ORDER BY id`, [orgId])).rows;
    expect(await rows()).toEqual([
      { topic: 'invitation.created', processed_at: null, last_error: null },
      { topic: 'domain_event', processed_at: null, last_error: null },
    ]);
    // Bull's client is "ready" (nothing tells it Redis is silent): the hand-off is cut and the jobs back off
    expect(queue.client.status).toBe('ready');
    await bounded(t.app.get(OutboxRelay).drain(), 20_000, () => 'the relay pass did not finish');
    for (const row of await rows()) expect(row).toEqual({ topic: row.topic, processed_at: null, last_error: 'the job queue is unavailable; retry later' });
  });

  it('the application closes: Bull is waited for within the shutdown grace, then its connections end', async () => {
    const callTimer = t.app.get(CallTimer);
    const original = callTimer.start.bind(callTimer);
    // the shutdown grace runs out at once; the app's other timers run as they are
    let graceCut = 0;
    const timer = jest.spyOn(callTimer, 'start').mockImplementation((ms, expire) => {
      if (ms !== graceMs) return original(ms, expire);
      graceCut++;
      setImmediate(expire);
      return () => undefined;
    });
    try {
      appClosed = true;
      await bounded(t.app.close(), 20_000, () => 'the application did not close');
    } finally {
      timer.mockRestore();
    }
    expect(graceCut).toBe(1);
    // every connection of Bull's has ended (none left open, none reconnecting), though Bull's own close is still under way
    await until('Bull\'s connections have ended', () => bullClients(queue).every((c) => c.status === 'end'));
    expect(bullClients(queue).map((c) => ({ status: c.status, open: c.stream?.destroyed === false, reconnecting: Boolean((c as unknown as { reconnectTimeout?: unknown }).reconnectTimeout) })))
      .toEqual(Array(3).fill({ status: 'end', open: false, reconnecting: false }));
    // the jobs are still in the outbox, relayed by the next instance
    const open = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND processed_at IS NULL AND payload::text LIKE '%invitee@example.test%'`, [orgId]);
    expect(open.rows[0].n).toBe(2);
  });
});

/**
 * The application closed while Redis is down (its connections dropped, nothing listening): nothing of its Redis clients
 * may be left holding the process open. It runs in a child process of its own, whose timers are the app's alone (under
 * Jest the runner's own are mixed in): the child reports the timers of its Redis clients (ioredis, Bull) still pending
 * once the close is over, and its Redis connections still open. ioredis arms a 2 s timer to destroy the socket of every connection
 * closed, even one already gone (a client closed while reconnecting), and nothing cleared it: Bull's and the shared
 * client's held the process up 2 s after the close.
 */
const SCRIPT = `
import 'reflect-metadata';
import { createHook } from 'node:async_hooks';
import { connect, createServer } from 'node:net';
import { startApp } from './test/support/app.js';
import { loadConfig } from './src/platform/config/config.js';
import { JOBS_QUEUE_TOKEN } from './src/platform/queue/outbox-relay.service.js';
import { RedisService } from './src/platform/redis/redis.service.js';
const upstream = new URL(process.env.UPSTREAM_REDIS_URL);
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
const { app } = await startApp(loadConfig({ ...process.env, REDIS_URL: 'redis://127.0.0.1:' + proxy.address().port }));
const queue = app.get(JOBS_QUEUE_TOKEN);
// the shared client, and Bull's three (commands, events, the worker's blocking one: Bull's getters make each on first use)
const clients = () => [app.get(RedisService).client, queue.client, queue.eclient, queue.bclient];
// every client in \`status\`: the event each emits on getting there, awaited (no polling)
const reach = (status) => Promise.all(clients().map((c) => c.status === status ? undefined : new Promise((r) => c.once(status, r))));
await reach('ready');
const ready = clients().map((c) => c.status);
// Redis goes down: every connection dropped, none accepted
const proxyClosed = new Promise((resolve) => proxy.close(resolve));
for (const s of sockets) s.destroy();
await proxyClosed;
await reach('reconnecting');
// every timer started from here on, with the module that started it
const timers = [];
createHook({ init(id, type, trigger, resource) {
  if (type === 'Timeout') timers.push({ resource, from: /node_modules\\/((?:[^/]+\\/node_modules\\/)?[^/]+)/.exec(new Error().stack)?.[1] ?? 'app' });
} }).enable();
await app.close();
await new Promise((r) => setImmediate(r));
// (a timer of 0 ms is not counted: it runs at once)
const pending = timers.filter((t) => !t.resource._destroyed && t.resource._idleTimeout > 1 && /redis|bull/.test(t.from)).map((t) => t.from + ': ' + t.resource._idleTimeout + ' ms');
console.log(JSON.stringify({ ready, pending, open: clients().filter((c) => c.stream && !c.stream.destroyed).length }));
`;

(hasRedis ? describe : describe.skip)('the application closed while Redis is down', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('leaves no timer of its Redis clients holding the process open', async () => {
    const env: Record<string, string | undefined> = {
      ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, MIGRATE_ON_START: 'false',
      JOBS_RELAY_INTERVAL_MS: '0', REDIS_PREFIX: `test:${db.name}`, UPSTREAM_REDIS_URL: process.env.REDIS_URL,
    };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the child
    const child = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', '--input-type=module', '-e', SCRIPT], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, err: err.split('\n').filter((l) => /Error|unhandled/i.test(l)) }).toEqual({ code: 0, err: [] });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ ready: ['ready', 'ready', 'ready', 'ready'], pending: [], open: 0 });
    // the app's database sessions (its runtime login's) have all ended with it
    await until('the app\'s database sessions have ended', async () => (await db.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND usename = 'omnizen_api'`, [db.name])).rows[0].n === 0);
  });
});

/**
 * Redis restarted, and the application closed while Bull's worker connection was reconnecting to it (CI: the close of
 * login-throttle-redis-down.test.ts, whose timers only the test fires, past its 60 s hook timeout). Bull's close cut that
 * connection and connected it again at once, which ioredis refused ("Redis is already connecting/connected", a rejection
 * Bull leaves unhandled: it ended the process); and the worker's waits for jobs, lost with the old connection and kept
 * by ioredis to be sent again once it is back, were never sent nor failed (ioredis 5 marks the closed connection ready
 * anyway): Bull's close waited for them for ever, the application's for the shutdown grace.
 */
(hasRedis ? describe : describe.skip)('the application closed while Bull\'s worker connection is reconnecting to Redis', () => {
  let redis: ThrowawayRedis;
  let t: TestApp;
  let queue: Queue;

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    t = await createTestApp({ REDIS_URL: redis.url, SHUTDOWN_GRACE_MS: '5000' });
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    await until('Bull has its three connections ready', () => bullClients(queue).length === 3 && bullClients(queue).every((c) => c.status === 'ready'));
  });
  afterAll(async () => {
    await t?.app.close();
    await t?.db.drop();
    await redis?.kill();
  });

  it('Bull closes by itself, its worker\'s waits failed, nothing connected again and nothing left unhandled', async () => {
    const worker = (queue as unknown as { bclient: Redis }).bclient;
    // the worker's attempts to reconnect are held while Redis is down, so that the test starts the one that succeeds
    const held = jest.spyOn(worker, 'connect').mockImplementation(() => Promise.resolve());
    await redis.kill();
    await until('the worker connection is reconnecting', () => worker.status === 'reconnecting');
    await redis.start();
    held.mockRestore();
    // the moment of the CI failure: the worker's reconnection started from a callback of the event loop, as ioredis's
    // retry timer starts it (no time passes here), its socket made (in a tick of ioredis's, queued before this one), not
    // yet connected
    await new Promise<void>((resolve) => setImmediate(() => {
      worker.connect().catch(() => undefined); // ended by the close
      process.nextTick(resolve);
    }));
    expect({ status: worker.status, connecting: worker.stream?.connecting }).toEqual({ status: 'connecting', connecting: true });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    // the bound on Bull's close (the shutdown grace, or 1 s) never runs out here: Bull's close must finish by itself
    const bounds: number[] = [];
    const timer = jest.spyOn(t.app.get(CallTimer), 'start').mockImplementation((ms) => {
      bounds.push(ms);
      return () => undefined;
    });
    try {
      // the queue's shutdown hook, which the application's close calls after hooks that wait on I/O (the moment would pass)
      const closeQueue = (queue as unknown as { onApplicationShutdown: () => Promise<void> }).onApplicationShutdown();
      await bounded(closeQueue, 20_000, () => 'Bull\'s close did not finish');
    } finally {
      timer.mockRestore();
      process.off('unhandledRejection', onUnhandled);
    }
    expect(bounds).toHaveLength(1);
    expect(unhandled).toEqual([]);
    // none of Bull's connections is open or about to be made again
    await until('Bull\'s connections are closed', () => bullClients(queue).every((c) => !c.stream || c.stream.destroyed));
    expect(bullClients(queue).map((c) => ({ open: c.stream?.destroyed === false, reconnecting: Boolean((c as unknown as { reconnectTimeout?: unknown }).reconnectTimeout) })))
      .toEqual(Array(3).fill({ open: false, reconnecting: false }));
  });
});
