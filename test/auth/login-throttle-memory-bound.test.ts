import { describe, expect, it } from '@jest/globals';
import { Clock } from '../../src/platform/clock/clock.js';
import { loadConfig } from '../../src/platform/config/config.js';
import type { RedisFallback } from '../../src/platform/redis/redis-fallback.js';
import type { RedisService } from '../../src/platform/redis/redis.service.js';
import { LoginThrottle } from '../../src/modules/auth/login-throttle.service.js';

/** A clock the test moves. */
class SetClock extends Clock {
  at = 1_800_000_000_000;
  override now(): number {
    return this.at;
  }
}

/** A Map that counts the entries its iterators hand out: the work of the passes over it. */
class CountingMap<K, V> extends Map<K, V> {
  visited = 0;
  private counted<T>(it: MapIterator<T>): MapIterator<T> {
    const next = it.next.bind(it);
    return Object.assign(it, { next: () => { const r = next(); if (!r.done) this.visited += 1; return r; } });
  }
  override entries(): MapIterator<[K, V]> {
    return this.counted(super.entries());
  }
  override keys(): MapIterator<K> {
    return this.counted(super.keys());
  }
  override values(): MapIterator<V> {
    return this.counted(super.values());
  }
  override [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
}

const CAP = 300;

/** A throttle without Redis (its in-memory counters), its map counted, bounded at CAP. */
function throttleWithoutRedis(clock: Clock) {
  const config = loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_URL: undefined, MIGRATE_ON_START: 'false', LOGIN_MAX_FAILURES: '5', LOGIN_LOCKOUT_SECONDS: '900', LOGIN_ACCOUNT_WINDOW_SECONDS: '3600' });
  const throttle = new LoginThrottle(config, { client: null } as unknown as RedisService, clock, {} as RedisFallback);
  const memory = new CountingMap<string, { count: number; reset: number }>();
  Object.assign(throttle, { memory, memoryMax: CAP, sweepIntervalMs: 60_000 });
  return { throttle, memory };
}

/** A new account from a new /64 of one /48: three new counters per attempt. */
const attempt = (throttle: LoginThrottle, i: number) => throttle.reserveLogin(`spray${i}@example.test`, `2001:db8:1:${i.toString(16)}::1`);

/**
 * The review's probe (throttle-scan): with Redis down the counters live in this process for 15-60 minutes; past 100k of
 * them every attempt passed over the whole map (12 ms at 192k, reachable from one IPv6 /48) and nothing bounded it.
 */
describe('login throttle without Redis: bounded counters, no pass over them per attempt', () => {
  it('keeps at most the bound, dropping the oldest, with no pass over the whole map per attempt', async () => {
    const clock = new SetClock();
    const { throttle, memory } = throttleWithoutRedis(clock);
    let largest = 0;
    for (let i = 0; i < 1000; i++) {
      await attempt(throttle, i);
      largest = Math.max(largest, memory.size);
    }
    expect(largest).toBeLessThanOrEqual(CAP);
    // the newest stayed, the oldest went
    expect(memory.has(throttle.loginKeys('spray999@example.test', '2001:db8:1:3e7::1').account)).toBe(true);
    expect(memory.has(throttle.loginKeys('spray0@example.test', '2001:db8:1:0::1').account)).toBe(false);
    // one sweep (at most CAP + 3 counters) and a few dropped per attempt: nowhere near CAP per attempt
    expect(memory.visited).toBeLessThanOrEqual(CAP + 3 + 1000 * 4);

    // once the windows are over (and the sweep interval), one pass drops every expired counter
    clock.at += 3_600_000;
    const before = memory.visited;
    await attempt(throttle, 5000);
    expect(memory.size).toBe(3);
    expect(memory.visited - before).toBeLessThanOrEqual(CAP + 3);
  });

  it('still locks an account out from an address while the counters are at the bound', async () => {
    const clock = new SetClock();
    const { throttle } = throttleWithoutRedis(clock);
    for (let i = 0; i < 1000; i++) await attempt(throttle, i);
    for (let i = 0; i < 5; i++) await throttle.reserveLogin('victim@example.test', '203.0.113.7');
    await expect(throttle.reserveLogin('victim@example.test', '203.0.113.7')).rejects.toMatchObject({ status: 429, code: 'auth.locked' });
  });
});
