import { afterAll, describe, expect, it } from '@jest/globals';
import { hasRedis } from '../support/app.js';
import { loadConfig } from '../../src/platform/config/config.js';
import { RedisService } from '../../src/platform/redis/redis.service.js';
import { createRedisClient } from '../../src/platform/redis/redis-client.js';
import { NotificationStream } from '../../src/modules/notifications/notification-stream.js';

const config = loadConfig({ ...process.env, NODE_ENV: 'test', REDIS_PREFIX: 'test:redis-client', REDIS_COMMAND_TIMEOUT_MS: '1234' });

describe('the Redis clients of the app', () => {
  it('come from one factory: the command timeout and the retries are those of the config, whatever the caller', () => {
    const lazy = createRedisClient({ redisUrl: 'redis://127.0.0.1:1', redisCommandTimeoutMs: 321 }, { lazyConnect: true });
    expect(lazy.options).toMatchObject({ commandTimeout: 321, maxRetriesPerRequest: 1, lazyConnect: true, port: 1, host: '127.0.0.1' });
    expect(lazy.status).toBe('wait'); // lazy: nothing connected, nothing to close
    lazy.disconnect();
    expect(() => createRedisClient({ redisUrl: undefined, redisCommandTimeoutMs: 321 }, { lazyConnect: true })).toThrow('REDIS_URL is not set');
  });

  (hasRedis ? describe : describe.skip)('with REDIS_URL', () => {
    const redis = new RedisService(config);
    const stream = new NotificationStream(config, redis);
    afterAll(async () => {
      stream.onModuleDestroy();
      await redis.onModuleDestroy();
    });

    it('the shared client and the notification subscriber time-box every command with REDIS_COMMAND_TIMEOUT_MS', async () => {
      await stream.listen(); // the subscriber connects and subscribes
      const subscriber = (stream as unknown as { subscriber: typeof redis.client }).subscriber!;
      expect(subscriber.status).toBe('ready');
      expect(redis.client!.options).toMatchObject({ commandTimeout: 1234, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
      expect(subscriber.options).toMatchObject({ commandTimeout: 1234, maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: true });
      // the pair works: a publish on the shared client reaches the subscriber
      const received: unknown[] = [];
      const pushed = (await stream.stream('user-1')).subscribe({ next: (n) => received.push(n) });
      // after the stream's own listener, which hands the message on before this one runs
      const delivered = new Promise<void>((resolve) => subscriber.once('message', () => resolve()));
      // the shared client connects on its own (no offline queue: a publish before it is ready is dropped, the notice
      // staying in the inbox): on a loaded machine the subscriber can be ready first
      const shared = redis.client!;
      if (shared.status !== 'ready') await new Promise<void>((resolve) => shared.once('ready', () => resolve()));
      await stream.publish('user-1', { id: 'n-1' } as never);
      await delivered;
      pushed.unsubscribe();
      expect(received).toEqual([{ id: 'n-1' }]);
    });
  });
});
