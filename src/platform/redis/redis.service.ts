import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/config.js';

/** The shared Redis connection, or null when REDIS_URL is not set (features then fall back to in-process). */
@Injectable()
export class RedisService implements OnModuleDestroy {
  readonly client: Redis | null;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.client = config.redisUrl
      ? new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false })
      : null;
    this.client?.on('error', () => undefined); // surfaced by /health/ready, not as unhandled events
  }

  async onModuleDestroy(): Promise<void> {
    // quit() waits for a reply that never comes from a server that is down: disconnect instead
    if (this.client?.status === 'ready') await this.client.quit().catch(() => this.client?.disconnect());
    else this.client?.disconnect();
  }
}
