import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { createRedisClient } from './redis-client.js';

/**
 * The shared Redis connection, or null when REDIS_URL is not set (features then fall back to in-process). Every command
 * is time-boxed (REDIS_COMMAND_TIMEOUT_MS, by createRedisClient): a Redis that accepts connections and never answers (a
 * paused process, dropped packets) keeps the client "ready", and without the deadline a command would wait for ever,
 * inside a tenant transaction or a job; with it the command fails as it does when Redis is down, and the callers fall
 * back.
 */
@Injectable()
export class RedisService implements OnModuleDestroy {
  readonly client: Redis | null;
  /**
   * The client has been ready once: a connection it does not have now was lost, not yet made (RedisFallback waits for
   * a first connection from boot, not for one lost at a moment it did not see). Set on the client's own first 'ready'.
   */
  readyOnce = false;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.client = config.redisUrl ? createRedisClient(config, { lazyConnect: false, enableOfflineQueue: false }) : null;
    this.client?.on('error', () => undefined); // surfaced by /health/ready, not as unhandled events
    this.client?.once('ready', () => { this.readyOnce = true; });
  }

  async onModuleDestroy(): Promise<void> {
    const client = this.client;
    if (!client) return;
    // quit() waits for a reply that never comes from a server that is down: disconnect instead. But not a client that
    // has ended (its connection closed under a quit): disconnect() arms ioredis's 2 s timer to destroy the socket,
    // which a closed socket never clears, and that timer held the process open after shutdown.
    const disconnect = () => {
      if (client.status !== 'end') client.disconnect();
    };
    if (client.status === 'ready') await client.quit().catch(disconnect);
    else disconnect();
  }
}
