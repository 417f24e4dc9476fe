import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { uniqueEmail } from '../support/factories.js';
import { FreezingRedisProxy } from '../support/freezing-redis-proxy.js';
import { ThrowawayRedis, until } from '../support/throwaway-servers.js';
import { CallTimer, Clock } from '../../src/platform/clock/clock.js';
import { loadConfig } from '../../src/platform/config/config.js';
import { RedisService } from '../../src/platform/redis/redis.service.js';
import { REDIS_RECONNECT_WAIT_MS, RedisFallback } from '../../src/platform/redis/redis-fallback.js';
import { RateLimiter } from '../../src/platform/http/rate-limit.js';
import { LoginThrottle } from '../../src/modules/auth/login-throttle.service.js';
import { SignInFailureAudit } from '../../src/modules/auth/sign-in-failure-audit.js';

const PASSWORD = 'correct horse battery';
const WRONG = 'wrong password!';
const LIMITS = { LOGIN_MAX_FAILURES: '5', LOGIN_LOCKOUT_SECONDS: '900', LOGIN_ACCOUNT_MAX_FAILURES: '10', LOGIN_ACCOUNT_WINDOW_SECONDS: '3600' };

/** The memory counters of a throttle (where it counts without Redis). */
const memoryOf = (throttle: LoginThrottle) => (throttle as unknown as { memory: Map<string, { count: number }> }).memory;

/** A clock that stands still: the reconnect window of a RedisFallback built on it is exactly REDIS_RECONNECT_WAIT_MS. */
class StillClock extends Clock {
  override now(): number {
    return 1_800_000_000_000;
  }
}

/** A CallTimer whose timers only the test fires (no wall time). */
const recordingTimer = () => {
  const timers: { ms: number; expire: () => void }[] = [];
  const timer: CallTimer = { start: (ms, expire) => { timers.push({ ms, expire }); return () => undefined; }, every: () => () => undefined };
  return { timers, timer };
};

/**
 * The review's probe (r2): the throttle waited up to 2 s for Redis on every call while Redis was down, not only just
 * after boot (a login that succeeds makes two calls: +4 s each; a wrong password, a registration +2 s). And r10: after
 * that fix no call waited for a reconnection at all, so during a connection reset each instance let LOGIN_MAX_FAILURES
 * more attempts at an account locked in Redis through. Now the calls share one wait per lost connection, at most
 * REDIS_RECONNECT_WAIT_MS from the loss. The waits go through the injected CallTimer, which records them here and
 * which the test fires: no wall time is measured.
 */
describe('login throttle while Redis is down (a redis-server of its own)', () => {
  let redis: ThrowawayRedis;
  let t: TestApp;
  const clock = new ManualClock();
  /** every timer the app's CallTimer started: only the test fires them */
  const waits: { ms: number; expire: () => void }[] = [];
  /** login attempts waiting for Redis to reconnect (RedisFallback.whenConnected) */
  let waiting = 0;

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    t = await createTestApp({ ...LIMITS, REDIS_URL: redis.url }, { clock });
    const timer = t.app.get(CallTimer);
    timer.start = (ms, expire) => {
      waits.push({ ms, expire });
      return () => undefined;
    };
    const fallback = t.app.get(RedisFallback);
    const whenConnected = fallback.whenConnected.bind(fallback);
    fallback.whenConnected = () => {
      const wait = whenConnected();
      if (wait) {
        waiting++;
        void wait.finally(() => waiting--);
      }
      return wait;
    };
  });
  afterAll(async () => {
    await t?.close();
    await redis?.kill();
  });

  const client = () => t.app.get(RedisService).client!;
  const register = async (email: string) => {
    await t.http.post('/v1/auth/register').send({ email, password: PASSWORD, name: 'Pat' }).expect(202);
  };
  const login = (email: string, password: string, ip: string) =>
    t.http.post('/v1/auth/login').set('X-Forwarded-For', ip).send({ email, password });
  const sessionsOf = async (email: string) => (await t.db.admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM core.sessions s JOIN core."User" u ON u.id = s.user_id WHERE u.email = $1`, [email])).rows[0].n;
  const inRedis = async (key: string) => {
    const probe = new Redis(redis.url);
    try {
      return await probe.exists(key);
    } finally {
      probe.disconnect();
    }
  };

  const countInRedis = async (key: string) => {
    const probe = new Redis(redis.url);
    try {
      return Number(await probe.hget(key, 'count'));
    } finally {
      probe.disconnect();
    }
  };

  it('the login throttle and the request limiter share the one RedisFallback next to the Redis client', () => {
    const fallback = t.app.get(RedisFallback);
    // (identity compared as a boolean: Jest cannot print a Nest provider's diff)
    expect((t.app.get(LoginThrottle) as unknown as { fallback: unknown }).fallback === fallback).toBe(true);
    expect((t.app.get(RateLimiter) as unknown as { fallback: unknown }).fallback === fallback).toBe(true);
  });

  it('an account locked in Redis stays locked while the app\'s connection is reset (CLIENT KILL): the attempts wait for the reconnection, once', async () => {
    const throttle = t.app.get(LoginThrottle);
    await until('the app is connected to Redis', () => client().status === 'ready');
    const email = uniqueEmail('redis-blip');
    await register(email);
    const ip = '198.51.100.80';
    for (let i = 0; i < 5; i++) await login(email, WRONG, ip).expect(401);
    expect((await login(email, PASSWORD, ip).expect(429)).body.error).toMatchObject({ code: 'auth.locked' });
    const keys = throttle.loginKeys(email, ip);
    expect(await countInRedis(keys.accountAddress)).toBe(5);

    // the app's connection is reset, and its reconnection is held off (Redis takes no more clients) until the test lets
    // it in: the attempts below certainly arrive while the client is reconnecting
    const admin = new Redis(redis.url);
    try {
      const [, maxClients] = await admin.config('GET', 'maxclients') as [string, string];
      const connected = Number(/connected_clients:(\d+)/.exec(await admin.info('clients'))![1]);
      await admin.config('SET', 'maxclients', String(connected - 1));
      const id = await client().client('ID');
      waits.length = 0;
      await admin.client('KILL', 'ID', String(id));
      await until('the app has lost its connection', () => client().status !== 'ready', 500, 2);

      let answered = 0;
      const attempts = [PASSWORD, PASSWORD, WRONG].map((password) => login(email, password, ip).then((r) => {
        answered++;
        return r;
      }));
      await until('every attempt waits for the reconnection (or was answered)', () => waiting + answered === attempts.length);
      const waited = waiting;
      const timers = waits.map((w) => w.ms);

      await admin.config('SET', 'maxclients', maxClients);
      const answers = await Promise.all(attempts);
      for (const r of answers) {
        expect(r.status).toBe(429);
        expect(r.body.error).toMatchObject({ code: 'auth.locked', details: { retryAfterSeconds: expect.any(Number) } });
      }
      // all of them waited, on one wait bounded by what was left of the window since the connection was lost
      expect(waited).toBe(attempts.length);
      expect(timers).toHaveLength(1);
      expect(timers[0]).toBeGreaterThan(0);
      expect(timers[0]).toBeLessThanOrEqual(REDIS_RECONNECT_WAIT_MS);
    } finally {
      await admin.config('SET', 'maxclients', '10000').catch(() => undefined);
      admin.disconnect();
    }
    expect(client().status).toBe('ready');
    // nothing counted apart in this process, no session started, the lock in Redis as it was
    expect(memoryOf(throttle).has(keys.accountAddress)).toBe(false);
    expect(memoryOf(throttle).has(keys.account)).toBe(false);
    expect(await sessionsOf(email)).toBe(0);
    expect(await countInRedis(keys.accountAddress)).toBe(5);
  });

  it('answers from memory while Redis is down: the first calls wait for it once, at most REDIS_RECONNECT_WAIT_MS, then none; still locks out there, and counts in Redis again once it is back', async () => {
    const throttle = t.app.get(LoginThrottle);
    await until('the app is connected to Redis', () => client().status === 'ready');
    const email = uniqueEmail('redis-down');
    await register(email);
    await login(email, PASSWORD, '198.51.100.60').expect(200);
    expect(await inRedis(throttle.loginKeys(email, '198.51.100.60').address)).toBe(1); // counted in Redis while it was up

    waits.length = 0;
    await redis.kill();
    await until('the app has lost Redis', () => client().status !== 'ready');

    // the first login waits for the reconnection; Redis does not come back within the window (the test fires its end)
    const first = login(email, PASSWORD, '198.51.100.61').then((r) => r);
    await until('the login waits for Redis', () => waits.length > 0);
    expect(waits).toHaveLength(1);
    expect(waits[0].ms).toBeLessThanOrEqual(REDIS_RECONNECT_WAIT_MS);
    waits[0].expire();
    // a login that succeeds (two throttle calls), then a lockout from one address, all from memory, without waiting
    const ok = await first;
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ accessToken: expect.any(String), refreshToken: expect.any(String) });
    expect(await sessionsOf(email)).toBe(2);
    for (let i = 0; i < 5; i++) await login(email, WRONG, '198.51.100.62').expect(401);
    const locked = await login(email, PASSWORD, '198.51.100.62').expect(429);
    expect(locked.body.error).toMatchObject({ code: 'auth.locked', details: { retryAfterSeconds: expect.any(Number) } });
    expect(await sessionsOf(email)).toBe(2); // the locked attempt started no session
    const keys = throttle.loginKeys(email, '198.51.100.62');
    expect(memoryOf(throttle).get(keys.accountAddress)?.count).toBe(5);
    // a registration: counted in memory too
    const other = uniqueEmail('redis-down-reg');
    await register(other);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core."User" WHERE email = $1`, [other])).rows).toEqual([{ n: 1 }]);
    await t.app.get(SignInFailureAudit).settled();
    // no call waited for Redis after the window: the one wait is the first
    expect(waits).toHaveLength(1);

    await redis.start();
    await until('the app is connected to Redis again', () => client().status === 'ready', 300);
    await login(email, PASSWORD, '198.51.100.63').expect(200);
    expect(await inRedis(throttle.loginKeys(email, '198.51.100.63').address)).toBe(1);
    expect(memoryOf(throttle).has(throttle.loginKeys(email, '198.51.100.63').address)).toBe(false);
  });
});

/**
 * A process whose client has never connected (just booted) waits for the first connection, once, from boot, so that its
 * first attempts are counted on the shared counters (a lock other instances wrote holds there too). The throttle is
 * built on a client of a Redis that is not there; the injected timer's expiry is fired by the test.
 */
describe('login throttle before its first connection to Redis', () => {
  let redis: ThrowawayRedis;
  let service: RedisService;

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    await redis.kill(); // a port nothing answers on: the client keeps reconnecting
    const config = loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_URL: redis.url, MIGRATE_ON_START: 'false' });
    service = new RedisService(config);
  });
  afterAll(async () => {
    await service?.onModuleDestroy();
  });

  it('waits once, at most REDIS_RECONNECT_WAIT_MS, shared by the calls meanwhile; later calls answer from memory without waiting', async () => {
    const config = loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_URL: redis.url, MIGRATE_ON_START: 'false', LOGIN_MAX_FAILURES: '2' });
    const { timers, timer } = recordingTimer();
    const clock = new StillClock();
    const throttle = new LoginThrottle(config, service, clock, new RedisFallback(service, clock, timer));
    const first = throttle.reserveLogin('boot@example.test', '198.51.100.70');
    const second = throttle.reserveLogin('boot@example.test', '198.51.100.70');
    await until('the first calls wait for the connection', () => timers.length > 0);
    expect(timers.map((w) => w.ms)).toEqual([REDIS_RECONNECT_WAIT_MS]); // one wait for both
    timers[0].expire(); // the wait is over: Redis did not come
    await Promise.all([first, second]);
    expect(memoryOf(throttle).get(throttle.loginKeys('boot@example.test', '198.51.100.70').accountAddress)?.count).toBe(2);
    // from now on no call waits: the third attempt is refused from memory, no timer started
    await expect(throttle.reserveLogin('boot@example.test', '198.51.100.70')).rejects.toMatchObject({ code: 'auth.locked' });
    expect(timers).toHaveLength(1);
  });
});

/**
 * r10 (LOW-2): whether the client had connected was read from its status when the throttle was built, so a client
 * that had connected and was down at that moment made the first calls wait as for a first connection. RedisService
 * records its own first 'ready'; a connection lost at a moment nobody saw is not waited for.
 */
describe('login throttle built while a client that had connected is down', () => {
  let redis: ThrowawayRedis;
  let service: RedisService;

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    service = new RedisService(loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_URL: redis.url, MIGRATE_ON_START: 'false' }));
  });
  afterAll(async () => {
    await service?.onModuleDestroy();
    await redis?.kill();
  });

  it('answers from memory at once: no wait for a first connection already made', async () => {
    await until('the client is connected', () => service.client!.status === 'ready');
    expect(service.readyOnce).toBe(true);
    await redis.kill();
    await until('the client has lost Redis', () => service.client!.status !== 'ready');
    const config = loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_URL: redis.url, MIGRATE_ON_START: 'false', LOGIN_MAX_FAILURES: '1' });
    const { timers, timer } = recordingTimer();
    const clock = new StillClock();
    const throttle = new LoginThrottle(config, service, clock, new RedisFallback(service, clock, timer));
    let answered = false;
    const first = throttle.reserveLogin('before@example.test', '198.51.100.71').finally(() => { answered = true; });
    await until('the first call is answered or waits', () => answered || timers.length > 0);
    expect(timers).toEqual([]); // no wait started
    await first;
    expect(memoryOf(throttle).get(throttle.loginKeys('before@example.test', '198.51.100.71').accountAddress)?.count).toBe(1);
    await expect(throttle.reserveLogin('before@example.test', '198.51.100.71')).rejects.toMatchObject({ code: 'auth.locked' });
    expect(timers).toEqual([]);
  });
});

/**
 * r10 (LOW-3): the request limiter and the login throttle each had a RedisFallback, so a login during a hang paid the
 * command timeout twice a second. With the one RedisFallback, a timeout the limiter met sends the throttle to memory
 * too, without asking the hung Redis.
 */
(hasRedis ? describe : describe.skip)('one RedisFallback for the request limiter and the login throttle, Redis hanging', () => {
  let proxy: FreezingRedisProxy;
  let service: RedisService;

  beforeAll(async () => {
    proxy = new FreezingRedisProxy(new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'));
    await proxy.listen();
  });
  afterAll(async () => {
    await service?.onModuleDestroy();
    await proxy?.close();
  });

  it('after the limiter\'s command timed out, the throttle counts in memory without sending Redis a command', async () => {
    const config = loadConfig({ ...process.env, NODE_ENV: 'test', MIGRATE_ON_START: 'false', REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      REDIS_COMMAND_TIMEOUT_MS: '100', REDIS_PREFIX: `test_fallback_${randomBytes(4).toString('hex')}`, LOGIN_MAX_FAILURES: '5' });
    service = new RedisService(config);
    await until('the client is connected', () => service.client!.status === 'ready');
    const clock = new StillClock();
    const fallback = new RedisFallback(service, clock, recordingTimer().timer);
    const limiter = new RateLimiter(config, service, clock, fallback);
    const throttle = new LoginThrottle(config, service, clock, fallback);
    proxy.frozen = true;
    // the limiter asks Redis, meets the command timeout, and counts in memory
    await expect(limiter.consume('org:fallback', 5, undefined, 'this organization')).resolves.toMatchObject({ limit: 5, remaining: 4 });
    const evals = jest.spyOn(service.client!, 'eval');
    await throttle.reserveLogin('hang@example.test', '198.51.100.72');
    expect(evals).not.toHaveBeenCalled();
    expect(memoryOf(throttle).get(throttle.loginKeys('hang@example.test', '198.51.100.72').accountAddress)?.count).toBe(1);
  });
});
