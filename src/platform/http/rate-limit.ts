import { type CallHandler, type CanActivate, type ExecutionContext, HttpStatus, Inject, Injectable, Logger, type NestInterceptor, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { IS_PUBLIC } from '../auth/public.decorator.js';
import type { FastifyReply } from 'fastify';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { RedisService } from '../redis/redis.service.js';
import { AppError } from '../errors/app-error.js';
import { Clock } from '../clock/clock.js';
import type { Db } from '../database/database.service.js';
import { rateLimitRepository } from './rate-limit.repository.js';
import type { Principal } from '../auth/principal.js';
import type { Observable } from 'rxjs';

const WINDOW_SECONDS = 60;

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
 * Requests per minute per bucket (`org:<id>`, `key:<id>`, `ip:<address>`), with a per-bucket limit. With REDIS_URL
 * the counters live in Redis, shared by every API instance, and each check is one atomic increment-and-read (a Lua
 * script of rate-limiter-flexible: one round trip, so 1,000 parallel requests against a limit of 5 let exactly 5
 * through). Without Redis, or while Redis is down, an in-process counter (its insurance limiter) decides.
 * Fixed one-minute windows, starting at a bucket's first request.
 */
@Injectable()
export class RateLimiter {
  private readonly logger = new Logger(RateLimiter.name);
  private readonly byLimit = new Map<number, RateLimiterAbstract>();
  /** RATE_LIMITS_ENABLED; switched at run time only by the benchmark (on vs off in one process: bench/api.bench.ts) */
  enabled: boolean;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
  ) {
    this.enabled = config.rateLimits.enabled;
  }

  /** One limiter per distinct limit (a handful: the plans' limits and the overrides). */
  private limiterFor(points: number): RateLimiterAbstract {
    let limiter = this.byLimit.get(points);
    if (!limiter) {
      const keyPrefix = `${this.config.redisPrefix}:rl:${points}`;
      const memory = new RateLimiterMemory({ points, duration: WINDOW_SECONDS, keyPrefix });
      limiter = this.redis.client
        ? new RateLimiterRedis({ storeClient: this.redis.client, points, duration: WINDOW_SECONDS, keyPrefix, insuranceLimiter: memory })
        : memory;
      this.byLimit.set(points, limiter);
    }
    return limiter;
  }

  /**
   * Counts one request in `bucket` against `limit` per minute, writes the RateLimit-* headers on `reply`, and
   * throws 429 `rate_limited` (Retry-After) when the bucket is over its limit.
   */
  async consume(bucket: string, limit: number, reply: FastifyReply | undefined, what: string): Promise<RateLimitState> {
    let res: RateLimiterRes;
    let allowed = true;
    try {
      res = await this.limiterFor(limit).consume(bucket, 1);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        // neither Redis nor the insurance limiter answered: let the request through rather than fail it
        this.logger.warn({ bucket, err: rejection instanceof Error ? rejection.message : String(rejection) }, 'rate limiter unavailable');
        return { limit, remaining: limit, resetSeconds: WINDOW_SECONDS };
      }
      res = rejection;
      allowed = false;
    }
    const state: RateLimitState = { limit, remaining: res.remainingPoints, resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
    if (reply && !reply.sent) {
      reply.header('RateLimit-Limit', String(state.limit));
      reply.header('RateLimit-Remaining', String(state.remaining));
      reply.header('RateLimit-Reset', String(state.resetSeconds));
    }
    if (!allowed) {
      const err = new AppError(HttpStatus.TOO_MANY_REQUESTS, 'rate_limited',
        `too many requests: ${what} allows ${limit} requests per minute; retry in ${state.resetSeconds} s`,
        { limit, windowSeconds: WINDOW_SECONDS, retryAfterSeconds: state.resetSeconds });
      err.retryAfterSeconds = state.resetSeconds;
      throw err;
    }
    return state;
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
  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.limiter.enabled || context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (!this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    if (this.reflector.getAllAndOverride<boolean>(NOT_RATE_LIMITED, targets)) return true;
    const http = context.switchToHttp();
    const ip: string = http.getRequest().ip ?? 'unknown';
    await this.limiter.consume(`ip:${ip}`, this.config.rateLimits.anonymousPerMinute, http.getResponse(), 'this client address');
    return true;
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

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    if (this.limiter.enabled && context.getType() === 'http' && this.isLimitedHere(context)) {
      const http = context.switchToHttp();
      const req = http.getRequest();
      const principal = req.user as Principal | undefined;
      const [bucket, what] = principal?.kind === 'user' ? [`user:${principal.userId}`, 'this user']
        : principal?.kind === 'service' ? [`service:${principal.name}`, 'this service']
          : [`ip:${req.ip ?? 'unknown'}`, 'this client address'];
      await this.limiter.consume(bucket, this.config.rateLimits.principalPerMinute, http.getResponse(), what);
    }
    return next.handle();
  }
}
