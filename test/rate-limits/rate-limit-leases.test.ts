import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { FastifyReply } from 'fastify';
import { RedisTokenLeases } from '../../src/platform/http/rate-limit-leases.js';
import { RateLimiter } from '../../src/platform/http/rate-limit.js';
import { RedisService } from '../../src/platform/redis/redis.service.js';
import { RedisFallback } from '../../src/platform/redis/redis-fallback.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import type { AppConfig } from '../../src/platform/config/config.js';
import { AppError } from '../../src/platform/errors/app-error.js';
import { hasRedis } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { ThrowawayRedis, until } from '../support/throwaway-servers.js';

const WINDOW_MS = 60_000;

/**
 * The Redis side of the request limiter: tokens claimed in blocks far from the limit, one by one near it, never more
 * than the limit across instances (each instance its own connection here, as each API process has).
 */
(hasRedis ? describe : describe.skip)('rate-limit token leases in Redis', () => {
  const clients: Redis[] = [];
  const connect = () => {
    const client = new Redis(process.env.REDIS_URL!);
    clients.push(client);
    return client;
  };
  const key = () => `test:rate-limit-leases:${randomUUID()}`;
  /** how many claims (round trips) an instance's leases sent */
  const claims = (client: Redis) => jest.spyOn(client as unknown as { omnizenRateLimitLease: () => Promise<unknown> }, 'omnizenRateLimitLease');

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit()));
  });

  it('never hands out more than the limit across instances: every token has its own number up to the limit', async () => {
    const limit = 1000; // blocks of 10 while 100 remain
    const k = key();
    const instances = [0, 1, 2].map(() => new RedisTokenLeases(connect(), 100, WINDOW_MS, () => Date.now()));
    const tokens = await Promise.all(Array.from({ length: 3000 }, (_, i) => instances[i % 3].take(k, limit)));
    const admitted = tokens.filter((t) => t.number > 0).map((t) => t.number);
    expect(new Set(admitted).size).toBe(admitted.length);
    expect(Math.max(...admitted)).toBeLessThanOrEqual(limit);
    // tokens an instance leased and its requests did not use are lost for the window: at most one block each
    expect(admitted.length).toBeGreaterThanOrEqual(limit - 3 * 10);
    expect(admitted.length).toBeLessThanOrEqual(limit);
    expect(Number(await clients[0].get(k))).toBe(limit);
    const ttl = await clients[0].pttl(k);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(WINDOW_MS);
    // refused from now on without asking Redis again, on every instance that saw the window spent
    for (const leases of instances) {
      const token = leases.take(k, limit);
      if ('then' in token) expect((await token).number).toBe(0);
      else expect(token.number).toBe(0);
    }
  });

  it('far from the limit, claims a block per round trip: 1,000 requests cost a handful of Redis calls', async () => {
    const client = connect();
    const leases = new RedisTokenLeases(client, 100, WINDOW_MS, () => Date.now());
    const spy = claims(client);
    const k = key();
    const sequential: number[] = [];
    for (let i = 0; i < 500; i++) sequential.push((await leases.take(k, 1_000_000)).number);
    expect(sequential).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(spy).toHaveBeenCalledTimes(5); // blocks of 100 (1% of the limit, at most RATE_LIMIT_LEASE_MAX)
    const parallel = await Promise.all(Array.from({ length: 500 }, () => leases.take(k, 1_000_000)));
    expect(parallel.map((t) => t.number).sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => 501 + i));
    expect(spy.mock.calls.length).toBeLessThanOrEqual(5 + 6);
  });

  it('near the limit, takes one token per request: none is leased that another instance could need', async () => {
    const [a, b] = [connect(), connect()];
    const k = key();
    const limit = 1000;
    const first = new RedisTokenLeases(a, 100, WINDOW_MS, () => Date.now());
    const second = new RedisTokenLeases(b, 100, WINDOW_MS, () => Date.now());
    await a.set(k, limit - 100, 'PX', WINDOW_MS); // 100 left = ten blocks of 10: the last block
    expect((await first.take(k, limit)).number).toBe(limit - 99);
    expect(Number(await a.get(k))).toBe(limit - 90);
    // 90 left: from now on each request claims exactly its own token
    expect((await second.take(k, limit)).number).toBe(limit - 89);
    expect(Number(await a.get(k))).toBe(limit - 89);
    // the first instance still hands out its block's tokens, without a round trip
    const spy = claims(a);
    expect(first.take(k, limit)).toEqual({ number: limit - 98, windowEnds: expect.any(Number) });
    expect(spy).not.toHaveBeenCalled();
  });

  it('drops the tokens it leased once the window ends on its clock, and claims anew', async () => {
    const client = connect();
    const clock = new ManualClock();
    const leases = new RedisTokenLeases(client, 100, WINDOW_MS, () => clock.now());
    const spy = claims(client);
    const k = key();
    const first = await leases.take(k, 1_000_000);
    expect(first.number).toBe(1);
    expect(first.windowEnds).toBeLessThanOrEqual(clock.now() + WINDOW_MS);
    expect(leases.take(k, 1_000_000)).toMatchObject({ number: 2 });
    clock.advance(WINDOW_MS);
    // Redis' key still lives (its own clock did not move): the next claim continues its count past the old block
    const next = await leases.take(k, 1_000_000);
    expect(next.number).toBe(101);
    expect(spy).toHaveBeenCalledTimes(2);
  });
});

const reply = () => {
  const headers: Record<string, string> = {};
  return { headers, reply: { sent: false, header: (name: string, value: string) => { headers[name] = value; } } as unknown as FastifyReply };
};

describe('the request limiter while Redis is down', () => {
  let redis: ThrowawayRedis;
  let service: RedisService;

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
  });
  afterAll(async () => {
    await service?.onModuleDestroy();
    await redis?.kill();
  });

  it('counts in memory while Redis does not answer, and in Redis again once it is back', async () => {
    const config = { rateLimits: { enabled: true, leaseMax: 100 }, redisPrefix: 'test:leases-down', redisUrl: redis.url, auth: { supabaseJwtSecret: 'leases-down-secret' } } as unknown as AppConfig;
    service = new RedisService(config);
    const clock = new ManualClock();
    const limiter = new RateLimiter(config, service, clock, new RedisFallback(service, clock, new CallTimer()));
    await until('the limiter\'s Redis connection is ready', () => service.client!.status === 'ready');
    const ok = reply();
    await expect(limiter.consume('org:down', 3, ok.reply, 'this organization')).resolves.toMatchObject({ limit: 3, remaining: 2 });
    expect(await service.client!.get('test:leases-down:rl:3:org:down')).toBe('1');
    await redis.kill();
    await until('the limiter sees Redis gone', () => service.client!.status !== 'ready');
    // the in-memory counter starts its own window: 3 more, then refused with the headers
    for (const remaining of [2, 1, 0]) {
      await expect(limiter.consume('org:down', 3, undefined, 'this organization')).resolves.toMatchObject({ remaining });
    }
    const refused = reply();
    const err = await limiter.consume('org:down', 3, refused.reply, 'this organization').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).retryAfterSeconds).toBeGreaterThan(0);
    expect(refused.headers).toMatchObject({ 'RateLimit-Limit': '3', 'RateLimit-Remaining': '0' });
    await redis.start();
    await until('the limiter reconnected', () => service.client!.status === 'ready');
    // a Redis without persistence came back empty: a new window there
    const back = await limiter.consume('org:down', 3, undefined, 'this organization') as { remaining: number };
    expect(back.remaining).toBe(2);
    expect(await service.client!.get('test:leases-down:rl:3:org:down')).toBe('1');
  });
});
