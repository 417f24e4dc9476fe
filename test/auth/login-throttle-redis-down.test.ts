import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { uniqueEmail } from '../support/factories.js';
import { ThrowawayRedis, until } from '../support/throwaway-servers.js';
import { CallTimer, Clock } from '../../src/platform/clock/clock.js';
import { loadConfig } from '../../src/platform/config/config.js';
import { RedisService } from '../../src/platform/redis/redis.service.js';
import { FIRST_CONNECTION_WAIT_MS, LoginThrottle } from '../../src/modules/auth/login-throttle.service.js';
import { SignInFailureAudit } from '../../src/modules/auth/sign-in-failure-audit.js';

const PASSWORD = 'correct horse battery';
const WRONG = 'wrong password!';
const LIMITS = { LOGIN_MAX_FAILURES: '5', LOGIN_LOCKOUT_SECONDS: '900', LOGIN_ACCOUNT_MAX_FAILURES: '10', LOGIN_ACCOUNT_WINDOW_SECONDS: '3600' };

/** The memory counters of a throttle (where it counts without Redis). */
const memoryOf = (throttle: LoginThrottle) => (throttle as unknown as { memory: Map<string, { count: number }> }).memory;

/**
 * The review's probe (r2): the throttle waited up to 2 s for Redis on every call while Redis was down, not only just
 * after boot (a login that succeeds makes two calls: +4 s each; a wrong password, a registration +2 s). The waits go
 * through the injected CallTimer, which records them here: no wall time is measured.
 */
describe('login throttle while Redis is down (a redis-server of its own)', () => {
  let redis: ThrowawayRedis;
  let t: TestApp;
  const clock = new ManualClock();
  /** every wait the app's CallTimer started (ms) */
  const waits: number[] = [];

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    t = await createTestApp({ ...LIMITS, REDIS_URL: redis.url }, { clock });
    const timer = t.app.get(CallTimer);
    const start = timer.start.bind(timer);
    timer.start = (ms, expire) => {
      waits.push(ms);
      return start(ms, expire);
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

  it('answers from memory at once (no wait) while Redis is down, still locks out there, and counts in Redis again once it is back', async () => {
    const throttle = t.app.get(LoginThrottle);
    await until('the app is connected to Redis', () => client().status === 'ready');
    const email = uniqueEmail('redis-down');
    await register(email);
    await login(email, PASSWORD, '198.51.100.60').expect(200);
    expect(await inRedis(throttle.loginKeys(email, '198.51.100.60').address)).toBe(1); // counted in Redis while it was up

    await redis.kill();
    await until('the app has lost Redis', () => client().status !== 'ready');
    waits.length = 0;

    // a login that succeeds (two throttle calls), then a lockout from one address, all from memory
    const ok = await login(email, PASSWORD, '198.51.100.61').expect(200);
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
    // no call waited for Redis: neither for the first connection (long made) nor for a reconnection
    expect(waits.filter((ms) => ms === FIRST_CONNECTION_WAIT_MS)).toEqual([]);
    expect(waits).toEqual([]);

    await redis.start();
    await until('the app is connected to Redis again', () => client().status === 'ready', 300);
    await login(email, PASSWORD, '198.51.100.63').expect(200);
    expect(await inRedis(throttle.loginKeys(email, '198.51.100.63').address)).toBe(1);
    expect(memoryOf(throttle).has(throttle.loginKeys(email, '198.51.100.63').address)).toBe(false);
  });
});

/**
 * The one wait that stays: a process whose client has never connected (just booted) waits for the first connection,
 * once, so that its first attempts are counted on the shared counters (a lock other instances wrote holds there too).
 * The throttle is built on a client of a Redis that is not there; the injected timer's expiry is fired by the test.
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

  it('waits once, at most FIRST_CONNECTION_WAIT_MS, shared by the calls meanwhile; later calls answer from memory without waiting', async () => {
    const config = loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_URL: redis.url, MIGRATE_ON_START: 'false', LOGIN_MAX_FAILURES: '2' });
    const timers: { ms: number; expire: () => void }[] = [];
    const timer: CallTimer = { start: (ms, expire) => { timers.push({ ms, expire }); return () => undefined; }, every: () => () => undefined };
    const throttle = new LoginThrottle(config, service, new Clock(), timer);
    const first = throttle.reserveLogin('boot@example.test', '198.51.100.70');
    const second = throttle.reserveLogin('boot@example.test', '198.51.100.70');
    await until('the first calls wait for the connection', () => timers.length > 0);
    expect(timers.map((w) => w.ms)).toEqual([FIRST_CONNECTION_WAIT_MS]); // one wait for both
    timers[0].expire(); // the wait is over: Redis did not come
    await Promise.all([first, second]);
    expect(memoryOf(throttle).get(throttle.loginKeys('boot@example.test', '198.51.100.70').accountAddress)?.count).toBe(2);
    // from now on no call waits: the third attempt is refused from memory, no timer started
    await expect(throttle.reserveLogin('boot@example.test', '198.51.100.70')).rejects.toMatchObject({ code: 'auth.locked' });
    expect(timers).toHaveLength(1);
  });
});
