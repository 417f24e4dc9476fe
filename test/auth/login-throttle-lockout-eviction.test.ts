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

const CAP = 300;
const LOCKOUTS_CAP = 50;
const AUDIT_CAP = 40;

/** A throttle without Redis (its in-memory counters), its bounds small. */
function throttleWithoutRedis(clock: Clock) {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', REDIS_URL: undefined, MIGRATE_ON_START: 'false',
    LOGIN_MAX_FAILURES: '5', LOGIN_LOCKOUT_SECONDS: '900', LOGIN_ACCOUNT_MAX_FAILURES: '30', LOGIN_ACCOUNT_WINDOW_SECONDS: '3600',
  });
  const throttle = new LoginThrottle(config, { client: null } as unknown as RedisService, clock, {} as RedisFallback);
  Object.assign(throttle, { memoryMax: CAP, lockoutsMax: LOCKOUTS_CAP, auditReservationsMax: AUDIT_CAP, sweepIntervalMs: 60_000 });
  const maps = throttle as unknown as { memory?: Map<string, unknown>; lockouts?: Map<string, unknown>; auditReservations?: Map<string, unknown> };
  const sizes = () => ({ memory: maps.memory?.size ?? 0, lockouts: maps.lockouts?.size ?? 0, audit: maps.auditReservations?.size ?? 0 });
  return { throttle, sizes };
}

const VICTIM = 'victim@example.test';

/** The victim's account locked for the hour: 30 failures spread over 6 addresses (5 each, the per-pair limit). */
async function lockVictim(throttle: LoginThrottle): Promise<void> {
  for (let a = 0; a < 6; a++) for (let i = 0; i < 5; i++) await throttle.reserveLogin(VICTIM, `198.51.100.${a}`);
  await expect(throttle.reserveLogin(VICTIM, '198.51.100.99')).rejects.toMatchObject({ status: 429, code: 'auth.locked' });
}

/**
 * The re-review (fixrev units): past the bound the oldest counters were dropped first, the victim's hour-long account
 * counter among them, so anyone could lift a lockout by flooding fresh accounts or addresses; even attempts refused by
 * the limits did it, each auditing auth.locked and so adding a failed-sign-in audit reservation for a fresh e-mail.
 */
describe('login throttle without Redis: a lockout outlives the bound on the counters', () => {
  it('stays locked while one refused address floods fresh e-mails (each refusal audited, as SignInFailureAudit.lockedOut does)', async () => {
    const clock = new SetClock();
    const { throttle, sizes } = throttleWithoutRedis(clock);
    await lockVictim(throttle);
    const ip = '203.0.113.5';
    let refused = 0;
    let largest = { memory: 0, lockouts: 0, audit: 0 };
    for (let i = 0; i < CAP * 2; i++) {
      const email = `flood${i}@example.test`;
      try { await throttle.reserveLogin(email, ip); } catch { refused++; }
      await throttle.reserveFailureAudit(email, 'auth.locked');
      const now = sizes();
      largest = { memory: Math.max(largest.memory, now.memory), lockouts: Math.max(largest.lockouts, now.lockouts), audit: Math.max(largest.audit, now.audit) };
    }
    await expect(throttle.reserveLogin(VICTIM, '198.51.100.99')).rejects.toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account') });
    expect(refused).toBe(CAP * 2 - 20); // the address's own 20, then refused: its own lockout held too
    expect(largest.memory).toBeLessThanOrEqual(CAP);
    expect(largest.lockouts).toBeLessThanOrEqual(LOCKOUTS_CAP);
    expect(largest.audit).toBeLessThanOrEqual(AUDIT_CAP);
    // the audit reservations still hold: a second failure of the same kind within the minute is not audited again
    expect(await throttle.reserveFailureAudit(`flood${CAP * 2 - 1}@example.test`, 'auth.locked')).toBe(false);
  });

  it('stays locked while fresh addresses flood fresh accounts (three new counters an attempt), the maps bounded; lifts on expiry', async () => {
    const clock = new SetClock();
    const { throttle, sizes } = throttleWithoutRedis(clock);
    await lockVictim(throttle);
    // the victim's own pair counter locked too (5 from 198.51.100.0)
    let largest = 0;
    for (let i = 0; i < CAP * 3; i++) {
      await throttle.reserveLogin(`spray${i}@example.test`, `2001:db8:1:${i.toString(16)}::1`);
      const now = sizes();
      largest = Math.max(largest, now.memory);
      expect(now.lockouts).toBeLessThanOrEqual(LOCKOUTS_CAP);
    }
    expect(largest).toBeLessThanOrEqual(CAP);
    await expect(throttle.reserveLogin(VICTIM, '198.51.100.99')).rejects.toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account') });
    await expect(throttle.reserveLogin(VICTIM, '198.51.100.0')).rejects.toMatchObject({ status: 429, code: 'auth.locked', message: expect.stringContaining('this account from this address') });
    // the hour over: the lockout expires (its only way out), and the account takes attempts again
    clock.at += 3_600_000;
    await expect(throttle.reserveLogin(VICTIM, '198.51.100.99')).resolves.toBeUndefined();
    expect(sizes().lockouts).toBe(0);
  });

  it('keeps at most its own bound of lockouts: the earliest kept, a further one forgotten', async () => {
    const clock = new SetClock();
    const { throttle, sizes } = throttleWithoutRedis(clock);
    await lockVictim(throttle);
    // many locked pairs (5 attempts each on a fresh account from a fresh address), then a flood that pushes them out
    for (let i = 0; i < LOCKOUTS_CAP * 2; i++) for (let j = 0; j < 5; j++) await throttle.reserveLogin(`locked${i}@example.test`, `2001:db8:2:${i.toString(16)}::1`);
    for (let i = 0; i < CAP * 3; i++) await throttle.reserveLogin(`spray${i}@example.test`, `2001:db8:1:${i.toString(16)}::1`);
    // the victim's, the first ones, are kept
    await expect(throttle.reserveLogin(VICTIM, '198.51.100.99')).rejects.toMatchObject({ status: 429, code: 'auth.locked' });
    expect(sizes().lockouts).toBe(LOCKOUTS_CAP);
    expect(sizes().memory).toBeLessThanOrEqual(CAP);
  });
});
