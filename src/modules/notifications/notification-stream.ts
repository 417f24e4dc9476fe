import { CanActivate, ExecutionContext, Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { Observable, Subject, filter, map } from 'rxjs';
import type { Principal } from '../../platform/auth/principal.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { retryableError } from '../../platform/errors/database-errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { createRedisClient } from '../../platform/redis/redis-client.js';
import { RedisService } from '../../platform/redis/redis.service.js';
import type { NotificationDto } from './notification.dto.js';

interface Pushed {
  userId: string;
  notification: NotificationDto;
}

/**
 * New in-app notices pushed to the users' open streams (GET /v1/me/notifications/stream). With REDIS_URL,
 * through Redis pub/sub, so the instance that routed an event reaches a stream open on any instance;
 * otherwise in-process. Best effort: a stream that missed a push still finds the notice in the inbox.
 */
@Injectable()
export class NotificationStream implements OnModuleDestroy {
  private readonly logger = new Logger(NotificationStream.name);
  private readonly local = new Subject<Pushed>();
  /** Emits once at shutdown: open streams end (their keep-alive timers with them). */
  readonly closing = new Subject<void>();
  private subscriber?: Redis;
  private readonly channel: string;
  private subscribing?: Promise<unknown>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
  ) {
    this.channel = `${config.redisPrefix}:notifications`;
  }

  /** After the routing transaction committed. */
  async publish(userId: string, notification: NotificationDto): Promise<void> {
    const message: Pushed = { userId, notification };
    if (!this.redis.client) {
      this.local.next(message);
      return;
    }
    await this.redis.client.publish(this.channel, JSON.stringify(message)).catch((err: Error) => {
      this.logger.warn(`notification push failed (the notice is in the inbox): ${err.message}`);
    });
  }

  /** The notices of one user, as they come. Resolves once this instance listens (Redis subscribed). */
  async stream(userId: string): Promise<Observable<NotificationDto>> {
    await this.listen();
    return this.local.pipe(filter((m) => m.userId === userId), map((m) => m.notification));
  }

  /** Resolves once this instance listens (Redis subscribed); rejects with 503 queue_unavailable when Redis is down. */
  listen(): Promise<unknown> {
    if (!this.config.redisUrl) return Promise.resolve();
    this.subscribing ??= (async () => {
      const subscriber = createRedisClient(this.config, { lazyConnect: true });
      subscriber.on('error', (err: Error) => this.logger.warn(`notification stream subscriber: ${err.message}`));
      subscriber.on('message', (_channel: string, raw: string) => {
        try {
          this.local.next(JSON.parse(raw) as Pushed);
        } catch {
          // not ours
        }
      });
      this.subscriber = subscriber;
      try {
        await subscriber.connect();
        await subscriber.subscribe(this.channel);
      } catch (err) {
        // a client that failed would keep reconnecting on its own, and the next stream request makes another
        subscriber.disconnect();
        if (this.subscriber === subscriber) this.subscriber = undefined;
        throw err;
      }
    })().catch((err: Error) => {
      this.subscribing = undefined;
      this.logger.warn(`notification stream: Redis is unavailable: ${err.message}`);
      throw retryableError('queue_unavailable');
    });
    return this.subscribing;
  }

  onModuleDestroy(): void {
    this.closing.next();
    this.closing.complete();
    this.local.complete();
    this.subscriber?.disconnect();
  }
}

/**
 * Refuses a caller that is not a signed-in user, then opens the subscription, before the stream route runs. A guard,
 * because only what fails before the handler is answered with a status: the handler runs inside the interceptors'
 * Observable, and by the time a Redis connection is refused Nest has sent the stream's 200 headers, and could only send
 * an `event: error`. The caller is checked first, so a service key gets its 403 whether Redis is up or not, and opens
 * no subscription.
 */
@Injectable()
export class NotificationStreamReady implements CanActivate {
  constructor(private readonly stream: NotificationStream) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const principal = context.switchToHttp().getRequest<{ user?: Principal }>().user;
    if (principal?.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    await this.stream.listen();
    return true;
  }
}
