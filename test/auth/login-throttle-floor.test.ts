import { describe, expect, it } from '@jest/globals';
import { Clock } from '../../src/platform/clock/clock.js';
import { loadConfig } from '../../src/platform/config/config.js';
import type { RedisFallback } from '../../src/platform/redis/redis-fallback.js';
import type { RedisService } from '../../src/platform/redis/redis.service.js';
import * as throttleService from '../../src/modules/auth/login-throttle.service.js';
import { LoginThrottle } from '../../src/modules/auth/login-throttle.service.js';

/** A clock the test moves. */
class SetClock extends Clock {
  at = 1_800_000_000_000;
  override now(): number {
    return this.at;
  }
}

const CAP = 300;
const LOCKOUTS_CAP = 50;

/** A throttle without Redis (its in-memory counters), its bounds small; its maps and floor table as the test reads them. */
function throttleWithoutRedis(clock: Clock) {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', REDIS_URL: undefined, MIGRATE_ON_START: 'false',
    LOGIN_MAX_FAILURES: '5', LOGIN_LOCKOUT_SECONDS: '900', LOGIN_ACCOUNT_MAX_FAILURES: '30', LOGIN_ACCOUNT_WINDOW_SECONDS: '3600',
  });
  const throttle = new LoginThrottle(config, { client: null } as unknown as RedisService, clock, {} as RedisFallback);
  Object.assign(throttle, { memoryMax: CAP, lockoutsMax: LOCKOUTS_CAP, auditReservationsMax: 40, sweepIntervalMs: 60_000 });
  const inner = throttle as unknown as { memory: Map<string, unknown>; lockouts: Map<string, unknown>; floor?: { size: number } };
  const sizes = () => ({ memory: inner.memory.size, lockouts: inner.lockouts.size, floor: inner.floor?.size });
  const holds = (key: string) => inner.memory.has(key) || inner.lockouts.has(key);
  return { throttle, sizes, holds };
}

const VICTIM = 'victim@example.test';

/** Fresh accounts from fresh /64s (three new counters an attempt), enough to push every older counter out. */
async function flood(throttle: LoginThrottle, round: number, track: () => void): Promise<void> {
  for (let i = 0; i < CAP; i++) {
    await throttle.reserveLogin(`spray${round}-${i}@example.test`, `2001:db8:f${round}:${i.toString(16)}::1`);
    track();
  }
}

/**
 * The re-review (fixrev2 probe): a counter dropped by the bound was forgotten. Stopping one guess short of the account
 * limit (29 of 30) and then flooding fresh accounts dropped the victim's account counter, so its next 29 guesses were
 * free again (116 an hour in the probe); and past a full `lockouts` map a victim's lockout was forgotten outright.
 */
describe('login throttle without Redis: a counter dropped by the bounds still counts until its window ends', () => {
  it('locks the account once its guesses reach the limit, though each round stops one short and floods', async () => {
    const clock = new SetClock();
    const { throttle, sizes, holds } = throttleWithoutRedis(clock);
    const accountKey = throttle.loginKeys(VICTIM, undefined).account;
    let largest = { memory: 0, lockouts: 0 };
    const track = () => { const s = sizes(); largest = { memory: Math.max(largest.memory, s.memory), lockouts: Math.max(largest.lockouts, s.lockouts) }; };
    let accepted = 0;
    let refusal: unknown;
    for (let round = 0; round < 4 && !refusal; round++) {
      for (let i = 0; i < 29; i++) {
        try {
          await throttle.reserveLogin(VICTIM, `2001:db8:${round}:${i.toString(16)}::1`);
          accepted++;
        } catch (err) {
          refusal = err;
          break;
        }
      }
      await flood(throttle, round, track);
      clock.at += 60_000; // the rounds a minute apart: all within the account's hour
      if (round === 0) expect(holds(accountKey)).toBe(false); // the victim's counter was pushed out: the floor holds it
    }
    expect(accepted).toBe(30);
    expect(refusal).toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account') });
    // and so it stays, however many more floods, until the hour from the first guess is over
    await flood(throttle, 9, track);
    await expect(throttle.reserveLogin(VICTIM, '2001:db8:aaaa::1')).rejects.toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account') });
    expect(largest.memory).toBeLessThanOrEqual(CAP);
    expect(largest.lockouts).toBeLessThanOrEqual(LOCKOUTS_CAP);
    expect(sizes().floor).toBe(throttleService.MEMORY_FLOOR_SLOTS); // a fixed table, whatever the flood
    clock.at = 1_800_000_000_000 + 3_600_000;
    await expect(throttle.reserveLogin(VICTIM, '2001:db8:aaaa::1')).resolves.toBeUndefined();
  });

  it('gives a success its attempt back on a counter pushed out meanwhile, and counts on from there', async () => {
    const clock = new SetClock();
    const { throttle, holds } = throttleWithoutRedis(clock);
    for (let i = 0; i < 28; i++) await throttle.reserveLogin(VICTIM, `2001:db8:5:${i.toString(16)}::1`);
    // the owner's sign-in counted (29), its password checked while a flood pushes the account's counter out
    await throttle.reserveLogin(VICTIM, '198.51.100.7');
    await flood(throttle, 0, () => {});
    expect(holds(throttle.loginKeys(VICTIM, undefined).account)).toBe(false);
    // it succeeds and gets that attempt back: 28 failures on the account, so two more guesses (not 30: forgotten)
    await throttle.loginSucceeded(VICTIM, '198.51.100.7');
    await throttle.reserveLogin(VICTIM, '2001:db8:6::1');
    await throttle.reserveLogin(VICTIM, '2001:db8:6:1::1');
    await expect(throttle.reserveLogin(VICTIM, '2001:db8:6:2::1')).rejects.toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account') });
  });

  it("keeps a victim's lockout made after the attacker's own lockouts fill the lockouts map", async () => {
    const clock = new SetClock();
    const { throttle, sizes, holds } = throttleWithoutRedis(clock);
    const track = () => {
      const s = sizes();
      expect(s.memory).toBeLessThanOrEqual(CAP);
      expect(s.lockouts).toBeLessThanOrEqual(LOCKOUTS_CAP);
    };
    // the attacker's own locked pairs (5 attempts each on a fresh account from a fresh address), pushed out: the map full
    for (let i = 0; i < LOCKOUTS_CAP * 2; i++) for (let j = 0; j < 5; j++) await throttle.reserveLogin(`atk${i}@example.test`, `2001:db8:2:${i.toString(16)}::1`);
    await flood(throttle, 0, track);
    expect(sizes().lockouts).toBe(LOCKOUTS_CAP);
    // the victim's account locked (30 guesses from 30 addresses), then pushed out by a flood
    for (let i = 0; i < 30; i++) await throttle.reserveLogin(VICTIM, `2001:db8:3:${i.toString(16)}::1`);
    await expect(throttle.reserveLogin(VICTIM, '2001:db8:aaaa::1')).rejects.toMatchObject({ status: 429, code: 'auth.locked' });
    await flood(throttle, 1, track);
    expect(holds(throttle.loginKeys(VICTIM, undefined).account)).toBe(false); // neither map has room: the floor holds it
    await expect(throttle.reserveLogin(VICTIM, '2001:db8:aaaa::1')).rejects.toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account') });
    expect(sizes()).toEqual({ memory: CAP, lockouts: LOCKOUTS_CAP, floor: throttleService.MEMORY_FLOOR_SLOTS });
    // the hour over: the lockout ends (its only way out)
    clock.at += 3_600_000;
    await expect(throttle.reserveLogin(VICTIM, '2001:db8:aaaa::1')).resolves.toBeUndefined();
  });
});
