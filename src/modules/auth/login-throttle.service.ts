import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { RedisService } from '../../platform/redis/redis.service.js';
import { RedisFallback } from '../../platform/redis/redis-fallback.js';
import { CounterPseudonyms } from '../../platform/http/client-address.js';
import { normalizeEmail } from '../../platform/http/email.js';
import { AppError } from '../../platform/errors/app-error.js';
import { AuthErrors } from './auth.errors.js';

/** A failed sign-in of one kind is audited at most once a minute per e-mail (LoginThrottle.reserveFailureAudit). */
export const FAILED_SIGN_IN_AUDIT_WINDOW_MS = 60_000;

/**
 * The in-memory counters (Redis not configured or unreachable) are bounded: at most this many, the oldest dropped past
 * it. Without a bound, counters that live 15-60 minutes grow with every new account or address an attacker tries.
 * A counter at its limit (a lockout) is not dropped but moved aside (MEMORY_LOCKOUTS_MAX): otherwise anyone could
 * unlock an account by trying enough fresh accounts or addresses, its hour-long counter being among the oldest. Any
 * other counter dropped while running (and a lockout beyond MEMORY_LOCKOUTS_MAX) leaves its count and window end in the
 * floor table (MemoryFloor), and starts from them when next tried: otherwise stopping one attempt short of the limit,
 * then flooding, would start the account's count over again and again.
 */
export const MEMORY_COUNTERS_MAX = 100_000;
/**
 * Lockouts moved out of the counters by their bound, kept until they expire (never dropped for a newer one, so a flood
 * cannot push a victim's lockout out). When this many are kept, a further lockout pushed out goes to the floor table.
 */
export const MEMORY_LOCKOUTS_MAX = 100_000;
/**
 * The slots of the floor table (MemoryFloor): what a counter dropped by the bounds had reached, kept in fixed memory
 * (12 bytes a slot: 3 MiB) so that dropping a counter forgets nothing still running.
 */
export const MEMORY_FLOOR_SLOTS = 2 ** 18;
/**
 * The failed-sign-in audit reservations (reserveFailureAudit) in this process: a map of their own, so that the one
 * each refused attempt makes for a fresh e-mail cannot push the login counters out; the oldest dropped past it (a
 * dropped one lets that e-mail's next failure be audited within its minute: harmless).
 */
export const MEMORY_AUDIT_RESERVATIONS_MAX = 10_000;
/** Expired in-memory counters are looked for (a pass over all of them) at most once per this interval. */
export const MEMORY_SWEEP_INTERVAL_MS = 60_000;

/** An in-memory counter: `count` attempts in the window ending at `reset`, against its `limit` (a lockout once reached). */
interface MemoryCounter {
  count: number;
  reset: number;
  limit: number;
}

/**
 * A fixed-size count-min table of the counters dropped from memory: each key hashes to two slots, each slot keeps the
 * largest count written to it while live and the latest window end, and a key's floor is the smaller of its two slots
 * (both live). A slot shared with another key (a collision) can only raise a key's floor or lengthen its window, never
 * lower it: a collision makes a limit stricter (rarely: MEMORY_FLOOR_SLOTS is far above the counters a flood keeps live
 * in the table at once, and a key is a keyed hash (CounterPseudonyms), so no one can aim a collision at an account).
 * A successful login cannot clear a key's floor (its slots are shared): stricter only, and only after its counter was
 * dropped. Allocated on the first write, so a process that never drops a counter (Redis up) holds none of it.
 */
class MemoryFloor {
  private counts?: Uint32Array;
  private ends?: Float64Array;

  constructor(private readonly slots: number) {}

  /** The slots allocated: none, or all of them (the tests read it). */
  get size(): number {
    return this.counts?.length ?? 0;
  }

  /** Records that `key` reached `count` attempts in a window ending at `reset` (a no-op once that window is over). */
  raise(key: string, count: number, reset: number, now: number): void {
    if (reset <= now || count <= 0) return;
    this.counts ??= new Uint32Array(this.slots);
    this.ends ??= new Float64Array(this.slots);
    for (const i of this.slotsOf(key)) {
      const live = this.ends[i] > now;
      this.counts[i] = Math.min(0xffff_ffff, Math.max(live ? this.counts[i] : 0, count));
      this.ends[i] = Math.max(live ? this.ends[i] : 0, reset);
    }
  }

  /** The least `key` has reached in a window still running: the count and its end, or none. */
  floorOf(key: string, now: number): { count: number; reset: number } | undefined {
    if (!this.counts || !this.ends) return undefined;
    const [a, b] = this.slotsOf(key);
    if (this.ends[a] <= now || this.ends[b] <= now) return undefined;
    const count = Math.min(this.counts[a], this.counts[b]);
    return count > 0 ? { count, reset: Math.min(this.ends[a], this.ends[b]) } : undefined;
  }

  /** Two slots from two seeds of FNV-1a, each finished by murmur3's mix (distinct whenever the table allows). */
  private slotsOf(key: string): [number, number] {
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x01000193);
    }
    const a = mix(h1) % this.slots;
    let b = mix(h2) % this.slots;
    if (b === a && this.slots > 1) b = (b + 1) % this.slots;
    return [a, b];
  }
}

/** murmur3's 32-bit finalizer: spreads every input bit over the result (unsigned). */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** One counted limit: at most `limit` attempts per `windowMs`, the window starting at the first attempt. */
interface Counter {
  key: string;
  limit: number;
  windowMs: number;
  /** how the 429 names what is limited */
  scope: string;
}

/**
 * Reserves one attempt on every counter, or on none: if any counter is at its limit nothing is
 * counted and the script answers that counter's index (1-based) and the milliseconds until it
 * resets; 0 means reserved. Check and increment are one step, so parallel attempts cannot all
 * pass the check before any of them is counted. Time comes from the caller (ARGV[1]), so every
 * instance and the in-memory fallback decide alike; Redis's own expiry only drops old keys.
 */
const RESERVE = `
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local c = redis.call('HMGET', key, 'count', 'reset')
  local count, reset = tonumber(c[1]) or 0, tonumber(c[2]) or 0
  if reset > now and count >= tonumber(ARGV[2 * i]) then return {i, reset - now} end
end
for i, key in ipairs(KEYS) do
  local c = redis.call('HMGET', key, 'count', 'reset')
  local count, reset = tonumber(c[1]) or 0, tonumber(c[2]) or 0
  if reset <= now then count = 0; reset = now + tonumber(ARGV[2 * i + 1]) end
  redis.call('HSET', key, 'count', count + 1, 'reset', reset)
  redis.call('PEXPIRE', key, reset - now)
end
return {0, 0}`;

/** Gives back one attempt on each counter (a login that succeeded was no failure). */
const REFUND = `
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('HGET', key, 'count') or '0')
  if count > 0 then redis.call('HINCRBY', key, 'count', -1) end
end
return 0`;

/**
 * Limits on password logins and registrations. A login attempt is counted before its password is
 * checked, on three counters at once:
 * - account + address: LOGIN_MAX_FAILURES per LOGIN_LOCKOUT_SECONDS (5 per 15 min): one address
 *   guessing one account, without locking the owner out from anywhere else;
 * - account: LOGIN_ACCOUNT_MAX_FAILURES per LOGIN_ACCOUNT_WINDOW_SECONDS (30 per hour): guesses
 *   spread over many addresses;
 * - address: 4 x LOGIN_MAX_FAILURES per LOGIN_LOCKOUT_SECONDS (20 per 15 min): one address
 *   spraying many accounts (wider, since many people can share an address).
 * A successful login clears its account + address counter and gives its attempt back to the
 * other two. Registrations: REGISTER_MAX_PER_ADDRESS per REGISTER_WINDOW_SECONDS per address.
 * Counters live in Redis when configured (shared by every instance), in this process otherwise
 * or while Redis is unreachable (RedisFallback, as the request limiter); both run the same reserve-or-refuse step.
 *
 * A counter's key names no person: the e-mail (lowercased) and the client address (clientAddressKey) are replaced by a
 * keyed hash (CounterPseudonyms), so neither Redis nor this process's map holds an address, and an erasure has nothing
 * there to delete (docs/privacy.md).
 */
@Injectable()
export class LoginThrottle {
  /** in the order their windows started (a counter whose window restarts is inserted anew), so the first is the oldest */
  private readonly memory = new Map<string, MemoryCounter>();
  /** the lockouts pushed out of `memory` by its bound, each until it expires */
  private readonly lockouts = new Map<string, MemoryCounter>();
  /** the failed-sign-in audit reservations: the end of each one's minute, in the order they were made */
  private readonly auditReservations = new Map<string, number>();
  /** the bounds and the sweep interval (the tests make them small) */
  private readonly memoryMax: number = MEMORY_COUNTERS_MAX;
  private readonly lockoutsMax: number = MEMORY_LOCKOUTS_MAX;
  private readonly auditReservationsMax: number = MEMORY_AUDIT_RESERVATIONS_MAX;
  private readonly sweepIntervalMs: number = MEMORY_SWEEP_INTERVAL_MS;
  /** what the counters dropped by the bounds had reached, each until its window ends (fixed size) */
  private readonly floor = new MemoryFloor(MEMORY_FLOOR_SLOTS);
  private nextSweep = -Infinity;
  private nextLockoutSweep = -Infinity;
  private nextAuditSweep = -Infinity;
  private readonly pseudonyms: CounterPseudonyms;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly clock: Clock,
    private readonly fallback: RedisFallback,
  ) {
    this.pseudonyms = new CounterPseudonyms(config.auth.supabaseJwtSecret);
  }

  /** The keys of a login's three counters (account + address, account, address); the tests read them. */
  loginKeys(email: string, ip: string | undefined): { accountAddress: string; account: string; address: string } {
    const p = `${this.config.redisPrefix}:login`;
    const account = this.accountKey(email);
    const address = this.addressKey(ip);
    return { accountAddress: `${p}:acct-ip:${account}:${address}`, account: `${p}:acct:${account}`, address: `${p}:ip:${address}` };
  }

  private loginCounters(email: string, ip: string | undefined): Counter[] {
    const a = this.config.auth;
    const keys = this.loginKeys(email, ip);
    return [
      { key: keys.accountAddress, limit: a.loginMaxFailures, windowMs: a.loginLockoutSeconds * 1000, scope: 'this account from this address' },
      { key: keys.account, limit: a.loginAccountMaxFailures, windowMs: a.loginAccountWindowSeconds * 1000, scope: 'this account' },
      { key: keys.address, limit: a.loginMaxFailures * 4, windowMs: a.loginLockoutSeconds * 1000, scope: 'this address' },
    ];
  }

  /** An e-mail as a key names it: its keyed hash (the same for any case of the address). */
  private accountKey(email: string): string {
    return this.pseudonyms.of(`email:${normalizeEmail(email)}`);
  }

  /** A client address (an IPv6 one by its /64) as a key names it: its keyed hash. */
  private addressKey(ip: string | undefined): string {
    return this.pseudonyms.address(ip);
  }

  /** Counts a login attempt, or refuses it (429 auth.locked) without counting when a limit is reached. */
  async reserveLogin(email: string, ip: string | undefined): Promise<void> {
    const counters = this.loginCounters(email, ip);
    const refused = await this.reserve(counters);
    if (refused) {
      throw tooMany('auth.locked', `too many failed logins for ${refused.counter.scope}; try again in ${refused.retryAfterSeconds} seconds`, refused.retryAfterSeconds);
    }
  }

  /** The password was right: the account + address counter starts over, the others get the attempt back. */
  async loginSucceeded(email: string, ip: string | undefined): Promise<void> {
    const [pairCounter, ...otherCounters] = this.loginCounters(email, ip);
    const pair = pairCounter.key;
    const others = otherCounters.map((c) => c.key);
    await this.withRedis(
      async (redis) => { await redis.multi().del(pair).eval(REFUND, others.length, ...others).exec(); },
      () => {
        this.memory.delete(pair);
        this.lockouts.delete(pair);
        const now = this.clock.now();
        for (const c of otherCounters) {
          const cur = this.counterInMemory(c.key) ?? this.restoreFromFloor(c, now);
          if (cur && cur.count > 0) cur.count -= 1;
        }
        this.trimMemory(now);
      },
    );
  }

  /**
   * Whether a failed sign-in of this kind for this e-mail may be audited now: at most one a minute per e-mail and kind
   * (FAILED_SIGN_IN_AUDIT_WINDOW_MS), so that guesses cannot flood an account's audit log. Shares the counters' store.
   */
  async reserveFailureAudit(email: string, kind: string): Promise<boolean> {
    const counter = { key: `${this.config.redisPrefix}:login-audit:${kind}:${this.accountKey(email)}`, limit: 1, windowMs: FAILED_SIGN_IN_AUDIT_WINDOW_MS, scope: 'audit' };
    return (await this.reserve([counter], (now) => this.reserveAuditInMemory(counter, now))) === undefined;
  }

  /** Counts a registration from this address, or refuses it (429 auth.rate_limited). */
  async reserveRegistration(ip: string | undefined): Promise<void> {
    const a = this.config.auth;
    const counter = {
      key: `${this.config.redisPrefix}:register:ip:${this.addressKey(ip)}`, limit: a.registerMaxPerAddress,
      windowMs: a.registerWindowSeconds * 1000, scope: 'this address',
    };
    const refused = await this.reserve([counter]);
    if (refused) {
      throw tooMany('auth.rate_limited', `too many registrations from this address; try again in ${refused.retryAfterSeconds} seconds`, refused.retryAfterSeconds);
    }
  }

  private async reserve(counters: Counter[], inMemory = (now: number) => this.reserveInMemory(counters, now)): Promise<{ counter: Counter; retryAfterSeconds: number } | undefined> {
    const now = this.clock.now();
    const [index, waitMs] = await this.withRedis(
      async (redis) => {
        const args = counters.flatMap((c) => [c.limit, c.windowMs]);
        const reply = await redis.eval(RESERVE, counters.length, ...counters.map((c) => c.key), now, ...args) as [number, number];
        return [Number(reply[0]), Number(reply[1])] as const;
      },
      () => inMemory(now),
    );
    if (index === 0) return undefined;
    return { counter: counters[index - 1], retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** RESERVE's semantics in this process (synchronous, so it is atomic here too). */
  private reserveInMemory(counters: Counter[], now: number): readonly [number, number] {
    for (const [i, c] of counters.entries()) {
      const cur = this.liveCounter(c, now);
      if (cur && cur.count >= c.limit) return [i + 1, cur.reset - now];
    }
    for (const c of counters) {
      const cur = this.counterInMemory(c.key);
      if (cur && cur.reset > now) {
        cur.count += 1;
      } else {
        // a new window, or one dropped and still running (its floor): inserted anew, at the end of the map's order
        const floor = this.floorOf(c, now);
        this.memory.delete(c.key);
        this.lockouts.delete(c.key);
        this.memory.set(c.key, { count: (floor?.count ?? 0) + 1, reset: floor?.reset ?? now + c.windowMs, limit: c.limit });
      }
    }
    this.trimMemory(now);
    return [0, 0];
  }

  private counterInMemory(key: string): MemoryCounter | undefined {
    return this.memory.get(key) ?? this.lockouts.get(key);
  }

  /** The counter's running window: the one kept in a map, else what the floor table keeps of it after a drop. */
  private liveCounter(c: Counter, now: number): { count: number; reset: number } | undefined {
    const cur = this.counterInMemory(c.key);
    if (cur && cur.reset > now) return cur;
    return this.floorOf(c, now);
  }

  /**
   * What the floor table keeps for this counter; its end no later than a window started now (a slot shared with a
   * longer counter's key may end later; this counter's own window cannot).
   */
  private floorOf(c: Counter, now: number): { count: number; reset: number } | undefined {
    const floor = this.floor.floorOf(c.key, now);
    return floor && { count: floor.count, reset: Math.min(floor.reset, now + c.windowMs) };
  }

  /** A counter dropped and still running, back in `memory` from its floor (to give an attempt back), or none. */
  private restoreFromFloor(c: Counter, now: number): MemoryCounter | undefined {
    const floor = this.floorOf(c, now);
    if (!floor) return undefined;
    const counter = { count: floor.count, reset: floor.reset, limit: c.limit };
    this.memory.set(c.key, counter);
    return counter;
  }

  /** RESERVE's semantics for one audit reservation (limit 1), in `auditReservations`: bounded apart from the counters. */
  private reserveAuditInMemory(counter: Counter, now: number): readonly [number, number] {
    const reset = this.auditReservations.get(counter.key);
    if (reset !== undefined && reset > now) return [1, reset - now];
    this.auditReservations.delete(counter.key);
    this.auditReservations.set(counter.key, now + counter.windowMs);
    if (this.auditReservations.size > this.auditReservationsMax) {
      if (now >= this.nextAuditSweep) {
        this.nextAuditSweep = now + this.sweepIntervalMs;
        for (const [key, end] of this.auditReservations) if (end <= now) this.auditReservations.delete(key);
      }
      for (const key of this.auditReservations.keys()) {
        if (this.auditReservations.size <= this.auditReservationsMax) break;
        this.auditReservations.delete(key);
      }
    }
    return [0, 0];
  }

  /**
   * Past MEMORY_COUNTERS_MAX: the expired counters go (a pass over them all, at most once per MEMORY_SWEEP_INTERVAL_MS),
   * then, while still too many, the oldest; one at its limit (a lockout still running) is moved to `lockouts` instead,
   * where only its expiry removes it; any other still running leaves its count in the floor table. Never a pass over the whole map on every attempt.
   */
  private trimMemory(now: number): void {
    if (this.memory.size <= this.memoryMax) return;
    if (now >= this.nextSweep) {
      this.nextSweep = now + this.sweepIntervalMs;
      for (const [key, v] of this.memory) if (v.reset <= now) this.memory.delete(key);
      for (const [key, v] of this.lockouts) if (v.reset <= now) this.lockouts.delete(key);
      if (this.memory.size <= this.memoryMax) return;
    }
    for (const [key, v] of this.memory) {
      this.memory.delete(key);
      if (v.reset > now && v.count >= v.limit) this.keepLockout(key, v, now);
      else this.floor.raise(key, v.count, v.reset, now);
      if (this.memory.size <= this.memoryMax) break;
    }
  }

  /**
   * Keeps a lockout pushed out of `memory` until it expires. With MEMORY_LOCKOUTS_MAX kept (after dropping the expired
   * ones, at most once per MEMORY_SWEEP_INTERVAL_MS) this one goes to the floor table rather than pushing an older one
   * out: it holds from there until its window ends, in fixed memory.
   */
  private keepLockout(key: string, counter: MemoryCounter, now: number): void {
    if (this.lockouts.size >= this.lockoutsMax && now >= this.nextLockoutSweep) {
      this.nextLockoutSweep = now + this.sweepIntervalMs;
      for (const [k, v] of this.lockouts) if (v.reset <= now) this.lockouts.delete(k);
    }
    if (this.lockouts.size < this.lockoutsMax) this.lockouts.set(key, counter);
    else this.floor.raise(key, counter.count, counter.reset, now);
  }

  /**
   * Runs `op` on Redis when configured; counts in this process instead when Redis fails it (down: at once, the shared
   * client queues nothing while it is not connected; silent: after the command timeout, and then without asking for a
   * while: RedisFallback). While the client is not connected (just booted, or its connection lost), a call first waits
   * for it: one wait shared by the calls, at most REDIS_RECONNECT_WAIT_MS from the moment the connection was lost
   * (RedisFallback.whenConnected). Without that wait the attempts an instance takes meanwhile (a connection reset, a
   * deploy's first seconds) would be counted apart from the shared counters, and a lock written in Redis would not hold
   * there: each instance would let LOGIN_MAX_FAILURES more guesses through. Once the window is over, no call waits
   * until Redis is back: a long outage costs a login no wait.
   */
  private async withRedis<T>(op: (redis: Redis) => Promise<T>, inMemory: () => T): Promise<T> {
    const redis = this.redis.client;
    if (!redis) return inMemory();
    const connected = this.fallback.whenConnected();
    if (connected) await connected;
    if (!this.fallback.mayAsk()) return inMemory();
    try {
      const result = await op(redis);
      this.fallback.answered(WHAT);
      return result;
    } catch (err) {
      this.fallback.failed(WHAT, err);
      return inMemory();
    }
  }
}

/** How the throttle names itself in RedisFallback's log. */
const WHAT = 'login throttle';

/** 429 with the wait in the body (details.retryAfterSeconds) and in Retry-After. */
function tooMany(code: 'auth.locked' | 'auth.rate_limited', message: string, retryAfterSeconds: number): AppError {
  const err = AuthErrors.error(code, message, { retryAfterSeconds });
  err.retryAfterSeconds = retryAfterSeconds;
  return err;
}
