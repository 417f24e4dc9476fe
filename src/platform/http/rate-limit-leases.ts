import type { Redis } from 'ioredis';

/**
 * Claims tokens of a fixed window in Redis, atomically: the counter at KEYS[1] is the number of tokens handed out in
 * the window (the key's TTL is the window); the script never lets it pass the limit. It grants `need` tokens, or a
 * whole block when at least `headroom` tokens remain, or what remains when fewer than asked: every granted token is
 * one the limit allows, whichever instance asks. The counter is the one rate-limiter-flexible's RateLimiterRedis keeps
 * (same key, a string integer with the window as TTL), so instances of the previous release share it.
 * ARGV: limit, need, block, headroom, window in ms. Answers {tokens handed out after this grant, granted, ms left}.
 */
const LEASE_SCRIPT = `
local limit = tonumber(ARGV[1])
local need = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local headroom = tonumber(ARGV[4])
local windowMs = tonumber(ARGV[5])
local current = redis.call('get', KEYS[1])
local used = 0
if current then used = tonumber(current) end
local remaining = limit - used
local grant = need
if block > need and remaining >= headroom then grant = block end
if grant > remaining then grant = remaining end
if grant < 0 then grant = 0 end
local ttl = windowMs
if current then
  if grant > 0 then redis.call('incrby', KEYS[1], grant) end
  ttl = redis.call('pttl', KEYS[1])
  if ttl < 0 then
    redis.call('pexpire', KEYS[1], windowMs)
    ttl = windowMs
  end
else
  redis.call('set', KEYS[1], grant, 'PX', windowMs)
end
return {used + grant, grant, ttl}
`;

type LeaseCommand = (key: string, limit: number, need: number, block: number, headroom: number, windowMs: number) => Promise<[number, number, number]>;

/** A request's place in its bucket's window: the number of its token (1 = the window's first) and when the window ends. */
export interface Token {
  /** 1-based number of the token within the window, or 0: refused */
  number: number;
  /** the window's end on this instance's clock (ms since the epoch) */
  windowEnds: number;
}

interface Waiter {
  resolve: (token: Token) => void;
  reject: (err: unknown) => void;
}

/** This instance's share of one bucket's window. */
interface Lease {
  /** the number of the next token to hand out; tokens next .. end-1 are leased and unused */
  next: number;
  end: number;
  windowEnds: number;
  /** Redis has no token left in this window: refuse without asking until it ends (a counter never goes down) */
  exhausted: boolean;
  waiting: Waiter[];
  asking: boolean;
}

/** Past this many buckets, the ended and idle ones are dropped (the map is a cache: a dropped lease's unused tokens are lost, none is created). */
const MAX_BUCKETS = 20_000;

/**
 * Token leases from Redis: an instance claims a block of a bucket's tokens in one round trip and hands them out
 * locally, so a bucket far from its limit costs a round trip per block, not per request. The block is 1% of the limit
 * (at most `maxBlock`), leased only while at least ten blocks remain; closer to the limit each request takes its own
 * token, and requests arriving while a claim is in flight are claimed together in the next one (one round trip per
 * batch). Every admitted request holds a token the script granted, so an instance never admits more than the limit,
 * whatever the others do. What it costs in accuracy: tokens an instance leased and did not use before the window ends
 * are lost for that window (at most one block per instance and bucket), so a bucket can be refused up to that many
 * requests early; the RateLimit-Remaining a request sees is the limit minus its token's number, exact with one
 * instance, in token order rather than arrival order with several.
 */
export class RedisTokenLeases {
  private readonly leases = new Map<string, Lease>();
  private readonly client: Redis & { omnizenRateLimitLease: LeaseCommand };

  constructor(
    client: Redis,
    private readonly maxBlock: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {
    this.client = client as Redis & { omnizenRateLimitLease: LeaseCommand };
    // ioredis sends EVALSHA, and the script itself after a NOSCRIPT (a restarted or flushed Redis)
    if (!this.client.omnizenRateLimitLease) client.defineCommand('omnizenRateLimitLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
  }

  /**
   * One token of `key`'s window under `limit`: number 0 when the window has none left. Rejects when Redis does not
   * answer (the caller falls back to counting in memory).
   */
  take(key: string, limit: number): Token | Promise<Token> {
    const now = this.now();
    let lease = this.leases.get(key);
    if (!lease) {
      if (this.leases.size >= MAX_BUCKETS) this.sweep(now);
      lease = { next: 0, end: 0, windowEnds: 0, exhausted: false, waiting: [], asking: false };
      this.leases.set(key, lease);
    } else if (lease.windowEnds <= now && !lease.asking) {
      // the window ended: its unused tokens are worth nothing in the next one
      lease.next = lease.end = 0;
      lease.exhausted = false;
    }
    if (!lease.asking && lease.waiting.length === 0) {
      if (lease.next < lease.end) return { number: lease.next++, windowEnds: lease.windowEnds };
      if (lease.exhausted) return { number: 0, windowEnds: lease.windowEnds };
    }
    return new Promise<Token>((resolve, reject) => {
      lease.waiting.push({ resolve, reject });
      if (!lease.asking) void this.claim(key, limit, lease);
    });
  }

  /** Claims tokens for every waiting request (a block when far from the limit), hands them out, again while some wait. */
  private async claim(key: string, limit: number, lease: Lease): Promise<void> {
    lease.asking = true;
    const need = lease.waiting.length;
    const block = Math.min(this.maxBlock, Math.floor(limit / 100));
    const sentAt = this.now();
    let answer: [number, number, number];
    try {
      answer = await this.client.omnizenRateLimitLease(key, limit, need, block, block * 10, this.windowMs);
    } catch (err) {
      lease.asking = false;
      for (const waiter of lease.waiting.splice(0)) waiter.reject(err);
      return;
    }
    const [used, granted, ttl] = answer.map(Number);
    // measured from before the request left: this instance's window ends no later than Redis' key
    lease.windowEnds = sentAt + ttl;
    lease.next = used - granted + 1;
    lease.end = used + 1;
    lease.exhausted = used >= limit;
    lease.asking = false;
    const token = () => ({ number: lease.next < lease.end ? lease.next++ : 0, windowEnds: lease.windowEnds });
    // the ones counted in this claim; fewer granted than asked means the window is spent: they get number 0
    for (const waiter of lease.waiting.splice(0, need)) waiter.resolve(token());
    // the ones that came while it was in flight: from the block if any is left, else refused or claimed anew
    while (lease.waiting.length && (lease.next < lease.end || lease.exhausted)) lease.waiting.shift()!.resolve(token());
    if (lease.waiting.length) void this.claim(key, limit, lease);
  }

  private sweep(now: number): void {
    for (const [key, lease] of this.leases) {
      if (lease.windowEnds <= now && !lease.asking) this.leases.delete(key);
    }
    if (this.leases.size >= MAX_BUCKETS) {
      for (const [key, lease] of this.leases) if (!lease.asking) this.leases.delete(key);
    }
  }
}
