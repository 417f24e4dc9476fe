import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { RedisService } from '../../platform/redis/redis.service.js';
import { AppError } from '../../platform/errors/app-error.js';

/**
 * Failed-login limits per account and per IP. After LOGIN_MAX_FAILURES failures the key is
 * locked for LOGIN_LOCKOUT_SECONDS; the lock expires by itself. Counters live in Redis when
 * configured (shared by every API instance), in this process otherwise, and in this process
 * while Redis is unreachable (a Redis outage must not turn every login into a 500).
 */
@Injectable()
export class LoginThrottle {
  private readonly logger = new Logger(LoginThrottle.name);
  private readonly memory = new Map<string, { count: number; until: number }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
  ) {}

  private keys(email: string, ip: string | undefined): string[] {
    // the IP limit is wider: many people can share one address
    const p = this.config.redisPrefix;
    return [`${p}:login:acct:${email}`, ...(ip ? [`${p}:login:ip:${ip}`] : [])];
  }

  private limitFor(key: string): number {
    return key.includes(':login:ip:') ? this.config.auth.loginMaxFailures * 4 : this.config.auth.loginMaxFailures;
  }

  async assertAllowed(email: string, ip: string | undefined): Promise<void> {
    for (const key of this.keys(email, ip)) {
      const { count, ttl } = await this.read(key);
      if (count >= this.limitFor(key)) {
        throw new AppError(HttpStatus.TOO_MANY_REQUESTS, 'auth.locked',
          `too many failed logins for this ${key.includes(':login:ip:') ? 'address' : 'account'}; try again in ${ttl} seconds`,
          { retryAfterSeconds: ttl });
      }
    }
  }

  async recordFailure(email: string, ip: string | undefined): Promise<void> {
    const ttl = this.config.auth.loginLockoutSeconds;
    for (const key of this.keys(email, ip)) {
      await this.withRedis(
        async (redis) => { await redis.multi().incr(key).expire(key, ttl).exec(); },
        () => {
          const now = Date.now();
          const cur = this.memory.get(key);
          const live = cur && cur.until > now ? cur : { count: 0, until: 0 };
          this.memory.set(key, { count: live.count + 1, until: now + ttl * 1000 });
        },
      );
    }
  }

  async recordSuccess(email: string): Promise<void> {
    const key = `${this.config.redisPrefix}:login:acct:${email}`;
    await this.withRedis(async (redis) => { await redis.del(key); }, () => { this.memory.delete(key); });
  }

  private read(key: string): Promise<{ count: number; ttl: number }> {
    return this.withRedis(
      async (redis) => {
        const [count, ttl] = await Promise.all([redis.get(key), redis.ttl(key)]);
        return { count: Number(count ?? 0), ttl: Math.max(ttl, 1) };
      },
      () => {
        const cur = this.memory.get(key);
        if (!cur || cur.until <= Date.now()) return { count: 0, ttl: 0 };
        return { count: cur.count, ttl: Math.ceil((cur.until - Date.now()) / 1000) };
      },
    );
  }

  /**
   * Runs `op` on Redis when configured. The shared client does not queue commands while
   * (re)connecting, so wait briefly for it (just after boot); if Redis stays unreachable or
   * fails, count in this process instead.
   */
  private async withRedis<T>(op: (redis: Redis) => Promise<T>, inMemory: () => T): Promise<T> {
    const redis = this.redis.client;
    if (!redis) return inMemory();
    try {
      if (redis.status !== 'ready') await waitUntilReady(redis, 2000);
      return await op(redis);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'login throttle: Redis unavailable, counting in this process');
      return inMemory();
    }
  }
}

function waitUntilReady(redis: Redis, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { redis.off('ready', onReady); reject(new Error(`Redis not ready after ${ms} ms (${redis.status})`)); }, ms);
    const onReady = () => { clearTimeout(timer); resolve(); };
    redis.once('ready', onReady);
  });
}
