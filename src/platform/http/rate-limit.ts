import { type CallHandler, type CanActivate, type ExecutionContext, HttpStatus, Inject, Injectable, type NestInterceptor, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { IS_PUBLIC } from '../auth/public.decorator.js';
import type { FastifyReply } from 'fastify';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { RedisService } from '../redis/redis.service.js';
import { AppError } from '../errors/app-error.js';
import { Clock } from '../clock/clock.js';
import type { Db } from '../database/database.service.js';
import { rateLimitRepository } from './rate-limit.repository.js';
import { RedisTokenLeases, type Token } from './rate-limit-leases.js';
import { CounterPseudonyms } from './client-address.js';
import { RedisFallback } from '../redis/redis-fallback.js';
import type { Principal } from '../auth/principal.js';
import type { Observable } from 'rxjs';

const WINDOW_SECONDS = 60;
/**
 * How long an API key (its id and the hash of its secret) the database let in skips the refused callers' pre-check
 * (RateLimiter.keyVerified), renewed by each request it makes; and how many such keys one instance remembers.
 */
const VERIFIED_KEY_TTL_MS = 10 * 60_000;
const VERIFIED_KEYS_MAX = 10_000;

/** What one consumed request left in its bucket; sent as RateLimit-* headers on every limited response. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** seconds until the window resets */
  resetSeconds: number;
}

export const NOT_RATE_LIMITED = 'omnizen:not-rate-limited';
/** The route is never counted (health probes). */
export const NotRateLimited = () => SetMetadata(NOT_RATE_LIMITED, true);

export const LIMITED_PER_ORGANIZATION = 'omnizen:limited-per-organization';
/**
 * The route runs an organization's tenant transaction (or its preflight), which counts the request against the
 * organization's or the API key's limit (TenantTransactionInterceptor.prepare): set by @OrgRoute, @UserRoute and
 * @OrgPreflightRoute, so PrincipalRateLimitInterceptor does not count it a second time.
 */
export const LimitedPerOrganization = () => SetMetadata(LIMITED_PER_ORGANIZATION, true);

/**
 * Requests per minute per bucket (`org:<id>`, `key:<id>`, `ip:<keyed hash of the address or IPv6 /64>`: addressBucket),
 * with a per-bucket limit. With REDIS_URL
 * the counters live in Redis, shared by every API instance: an instance claims a bucket's tokens with one atomic Lua
 * call that never hands out more than the limit (RedisTokenLeases: a block of them while the bucket is far from its
 * limit, one per request near it, so 1,000 parallel requests against a limit of 5 let exactly 5 through), and a
 * request far from the limit usually costs no round trip at all. Without Redis, or while Redis does not answer (down,
 * or silent past REDIS_COMMAND_TIMEOUT_MS; then asked again at most once a second: RedisFallback), an in-process counter
 * (rate-limiter-flexible's RateLimiterMemory) decides. Fixed one-minute windows, starting at a
 * bucket's first request.
 */
@Injectable()
export class RateLimiter {
  private readonly inMemory = new Map<number, RateLimiterMemory>();
  private readonly leases: RedisTokenLeases | null;
  private readonly pseudonyms: CounterPseudonyms;
  /** buckets of refused callers over their limit, until their window ends (ms): refused here without Redis or SQL */
  private readonly refusedUntil = new Map<string, { until: number; limit: number }>();
  /** `<key id>:<secret hash>` of API keys the database let in lately → until when (ms): see keyVerified */
  private readonly verifiedKeys = new Map<string, number>();
  /** RATE_LIMITS_ENABLED; switched at run time only by the benchmark (on vs off in one process: bench/api.bench.ts) */
  enabled: boolean;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    redis: RedisService,
    private readonly clock: Clock,
    private readonly fallback: RedisFallback,
  ) {
    this.enabled = config.rateLimits.enabled;
    this.leases = redis.client ? new RedisTokenLeases(redis.client, config.rateLimits.leaseMax, WINDOW_SECONDS * 1000, () => clock.now()) : null;
    this.pseudonyms = new CounterPseudonyms(config.auth.supabaseJwtSecret);
  }

  /**
   * The bucket of a client address (an IPv6 one by its /64): `ip:` and its keyed hash (CounterPseudonyms), so neither
   * Redis nor this process's counters hold the address (docs/privacy.md).
   */
  addressBucket(ip: string | undefined): string {
    return `ip:${this.pseudonyms.address(ip)}`;
  }

  /** One in-memory limiter per distinct limit (a handful: the plans' limits and the overrides). */
  private memoryFor(points: number): RateLimiterMemory {
    let limiter = this.inMemory.get(points);
    if (!limiter) {
      limiter = new RateLimiterMemory({ points, duration: WINDOW_SECONDS, keyPrefix: `${this.config.redisPrefix}:rl:${points}` });
      this.inMemory.set(points, limiter);
    }
    return limiter;
  }

  /**
   * Counts one request in `bucket` against `limit` per minute, writes the RateLimit-* headers on `reply`, and
   * throws 429 `rate_limited` (Retry-After) when the bucket is over its limit.
   */
  async consume(bucket: string, limit: number, reply: FastifyReply | undefined, what: string): Promise<RateLimitState> {
    let state: RateLimitState;
    let allowed: boolean;
    const askRedis = this.leases && this.fallback.mayAsk();
    let leased = askRedis ? this.fromRedis(bucket, limit) : null;
    if (leased instanceof Promise) leased = await leased;
    if (leased) {
      allowed = leased.number > 0;
      const resetSeconds = Math.max(1, Math.ceil((leased.windowEnds - this.clock.now()) / 1000));
      state = { limit, remaining: allowed ? limit - leased.number : 0, resetSeconds };
    } else {
      let res: RateLimiterRes;
      try {
        res = await this.memoryFor(limit).consume(bucket, 1);
        allowed = true;
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        res = rejection;
        allowed = false;
      }
      state = { limit, remaining: res.remainingPoints, resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
    }
    if (reply && !reply.sent) {
      reply.header('RateLimit-Limit', String(state.limit));
      reply.header('RateLimit-Remaining', String(state.remaining));
      reply.header('RateLimit-Reset', String(state.resetSeconds));
    }
    if (!allowed) throw this.tooMany(`too many requests: ${what} allows ${limit} requests per minute`, limit, state.resetSeconds);
    return state;
  }

  /**
   * Before a tenant transaction: 429 at once when `bucket` of callers the database refused is over its limit (see
   * countRefusal). Synchronous and local: a refused caller costs no connection, no Redis call.
   */
  assertNotRefusing(bucket: string | undefined, what: string): void {
    if (!bucket || !this.enabled) return;
    const hit = this.refusedUntil.get(bucket);
    if (!hit) return;
    const left = hit.until - this.clock.now();
    if (left <= 0) {
      this.refusedUntil.delete(bucket);
      return;
    }
    throw this.tooMany(`too many refused requests: ${what} was refused ${hit.limit} times within a minute`, hit.limit, Math.ceil(left / 1000));
  }

  /**
   * The database let this API key (id and secret) in: for VERIFIED_KEY_TTL_MS after its last such request it skips
   * assertNotRefusing, so made-up or revoked keys from the same address (a shared NAT) do not lock it out. Only the
   * pre-check is skipped: the database still verifies the key (revocation, expiry) on every request. The oldest entry
   * goes first past VERIFIED_KEYS_MAX; only keys whose secret verified can be entered.
   */
  keyVerified(key: { keyId: string; secretHash: string }): void {
    const id = `${key.keyId}:${key.secretHash}`;
    this.verifiedKeys.delete(id);
    if (this.verifiedKeys.size >= VERIFIED_KEYS_MAX) this.verifiedKeys.delete(this.verifiedKeys.keys().next().value!);
    this.verifiedKeys.set(id, this.clock.now() + VERIFIED_KEY_TTL_MS);
  }

  /** Whether this API key (id and secret) was let in within VERIFIED_KEY_TTL_MS (keyVerified). */
  keyRecentlyVerified(key: { keyId: string; secretHash: string }): boolean {
    const id = `${key.keyId}:${key.secretHash}`;
    const until = this.verifiedKeys.get(id);
    if (until === undefined) return false;
    if (until > this.clock.now()) return true;
    this.verifiedKeys.delete(id);
    return false;
  }

  /** The database refused this API key (revoked, expired, another organization's): it is pre-checked again. */
  keyRefused(key: { keyId: string; secretHash: string }): void {
    this.verifiedKeys.delete(`${key.keyId}:${key.secretHash}`);
  }

  /**
   * Counts one request the database refused (an API key that does not verify, an organization the user is no member
   * of) in `bucket`; once over `limit` a minute, this instance refuses the bucket without a transaction until the
   * window ends (assertNotRefusing). Never throws: the refusal itself is answered as it is.
   */
  async countRefusal(bucket: string | undefined, limit: number, what: string): Promise<void> {
    if (!bucket || !this.enabled) return;
    let resetSeconds: number;
    try {
      const state = await this.consume(bucket, limit, undefined, what);
      if (state.remaining > 0) return;
      resetSeconds = state.resetSeconds; // this was the last refusal the window allows
    } catch (err) {
      if (!(err instanceof AppError) || err.retryAfterSeconds === undefined) return;
      resetSeconds = err.retryAfterSeconds; // another instance spent the window
    }
    if (this.refusedUntil.size > 50_000) this.refusedUntil.clear(); // a bound, not an LRU: entries live a minute
    this.refusedUntil.set(bucket, { until: this.clock.now() + resetSeconds * 1000, limit });
  }

  private tooMany(message: string, limit: number, retryAfterSeconds: number): AppError {
    const err = new AppError(HttpStatus.TOO_MANY_REQUESTS, 'rate_limited', `${message}; retry in ${retryAfterSeconds} s`,
      { limit, windowSeconds: WINDOW_SECONDS, retryAfterSeconds });
    err.retryAfterSeconds = retryAfterSeconds;
    return err;
  }

  /**
   * A token from Redis, or null when Redis did not answer (the in-memory counter decides then). Synchronous when this
   * instance holds a leased token or knows the window spent: no promise on that path.
   */
  private fromRedis(bucket: string, limit: number): Token | Promise<Token | null> {
    const taken = this.leases!.take(`${this.config.redisPrefix}:rl:${limit}:${bucket}`, limit);
    if (!(taken instanceof Promise)) return taken;
    return taken.then((token) => {
      this.fallback.answered('rate limiter');
      return token;
    }, (err: unknown) => {
      this.fallback.failed('rate limiter', err, { bucket });
      return null;
    });
  }
}

/**
 * Each organization's requests-per-minute limit (plan feature `api_requests_per_minute`, or its override), cached
 * in memory for RATE_LIMIT_PLAN_CACHE_SECONDS so the limiter costs no query per request; read inside the request's
 * tenant transaction on a miss. A plan change or a new override applies within that time.
 */
@Injectable()
export class OrgRateLimits {
  private readonly cache = new Map<string, { limit: number | null; until: number }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {}

  /** The limit of the transaction's organization; null = unlimited. */
  async limitOf(tx: { db: Db; orgId: string }): Promise<number | null> {
    const now = this.clock.now();
    const hit = this.cache.get(tx.orgId);
    if (hit && hit.until > now) return hit.limit;
    const { found, requestsPerMinute } = await rateLimitRepository.requestLimit(tx.db, 'omnizen');
    const limit = found ? requestsPerMinute : this.config.rateLimits.defaultPerMinute;
    if (this.cache.size > 50_000) this.cache.clear(); // a bound, not an LRU: entries live seconds
    this.cache.set(tx.orgId, { limit, until: now + this.config.rateLimits.planCacheSeconds * 1000 });
    return limit;
  }

  /**
   * Without a transaction: the organization's limit as last read (even if older than the cache time), or
   * RATE_LIMIT_DEFAULT_PER_MINUTE when none was read yet.
   */
  lastKnownLimit(orgId: string): number | null {
    const hit = this.cache.get(orgId);
    return hit ? hit.limit : this.config.rateLimits.defaultPerMinute;
  }

  /** Forget cached limits (tests and operators after an override change). */
  clear(): void {
    this.cache.clear();
  }
}

/**
 * Global guard: anonymous and auth routes (every @Public() one: login, register, refresh, token exchange, public
 * provider pages) are limited per client IP, RATE_LIMIT_ANONYMOUS_PER_MINUTE. Health probes are exempt
 * (@NotRateLimited). Signed-in routes are limited per organization or API key in the tenant transaction, the others
 * per user or service (PrincipalRateLimitInterceptor).
 */
@Injectable()
export class PublicRouteRateLimitGuard implements CanActivate {
  /** per handler: public and not exempt (metadata does not change at run time) */
  private readonly limitedHere = new WeakMap<object, boolean>();

  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    if (!this.limiter.enabled || context.getType() !== 'http') return true;
    const handler = context.getHandler();
    let here = this.limitedHere.get(handler);
    if (here === undefined) {
      const targets = [handler, context.getClass()];
      here = Boolean(this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) && !this.reflector.getAllAndOverride<boolean>(NOT_RATE_LIMITED, targets);
      this.limitedHere.set(handler, here);
    }
    if (!here) return true;
    const http = context.switchToHttp();
    return this.limiter.consume(this.limiter.addressBucket(http.getRequest().ip), this.config.rateLimits.anonymousPerMinute, http.getResponse(), 'this client address').then(() => true);
  }
}

/**
 * Global interceptor (after the authentication guard, so the principal is known): a signed-in route that runs in no
 * organization's transaction (identities, e-mail change, the notification stream, DELETE /v1/me, service reports) is
 * limited per principal, RATE_LIMIT_PRINCIPAL_PER_MINUTE: `user:<id>`, `service:<name>`. Public routes are limited
 * per IP by PublicRouteRateLimitGuard, tenant routes per organization or key in their transaction, health is exempt.
 * The decision per handler is taken once (metadata does not change at run time).
 */
@Injectable()
export class PrincipalRateLimitInterceptor implements NestInterceptor {
  private readonly limitedHere = new WeakMap<object, boolean>();

  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private isLimitedHere(context: ExecutionContext): boolean {
    const handler = context.getHandler();
    let here = this.limitedHere.get(handler);
    if (here === undefined) {
      const targets = [handler, context.getClass()];
      here = ![IS_PUBLIC, NOT_RATE_LIMITED, LIMITED_PER_ORGANIZATION].some((key) => this.reflector.getAllAndOverride<boolean>(key, targets));
      this.limitedHere.set(handler, here);
    }
    return here;
  }

  /** Synchronous when the route is not counted here (most requests): no promise on their path. */
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> | Promise<Observable<unknown>> {
    if (!this.limiter.enabled || context.getType() !== 'http' || !this.isLimitedHere(context)) return next.handle();
    const http = context.switchToHttp();
    const req = http.getRequest();
    const principal = req.user as Principal | undefined;
    const [bucket, what] = principal?.kind === 'user' ? [`user:${principal.userId}`, 'this user']
      : principal?.kind === 'service' ? [`service:${principal.name}`, 'this service']
        : [this.limiter.addressBucket(req.ip), 'this client address'];
    return this.limiter.consume(bucket, this.config.rateLimits.principalPerMinute, http.getResponse(), what).then(() => next.handle());
  }
}
