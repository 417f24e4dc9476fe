import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/config.js';

/**
 * The shared Redis connection, or null when REDIS_URL is not set (features then fall back to in-process). Every command
 * is time-boxed (REDIS_COMMAND_TIMEOUT_MS): a Redis that accepts connections and never answers (a paused process,
 * dropped packets) keeps the client "ready", and without the deadline a command would wait for ever, inside a tenant
 * transaction or a job; with it the command fails as it does when Redis is down, and the callers fall back.
 */
@Injectable()
export class RedisService implements OnModuleDestroy {
  readonly client: Redis | null;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.client = config.redisUrl
      ? new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false, commandTimeout: config.redisCommandTimeoutMs })
      : null;
    this.client?.on('error', () => undefined); // surfaced by /health/ready, not as unhandled events
  }

  async onModuleDestroy(): Promise<void> {
    // quit() waits for a reply that never comes from a server that is down: disconnect instead
    if (this.client?.status === 'ready') await this.client.quit().catch(() => this.client?.disconnect());
    else this.client?.disconnect();
  }
}
