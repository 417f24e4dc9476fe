import { DynamicModule, Global, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bull';
import type { AppConfig } from '../config/config.js';
import { JobRegistry } from './jobs.js';
import { JOBS_QUEUE, OutboxRelay } from './outbox-relay.service.js';
import { JobsProcessor } from './jobs.processor.js';
import { DomainEvents } from '../events/events.js';

/**
 * How long Bull's connections wait before their next attempt to reach Redis: ioredis's own default, which the app's
 * other Redis clients keep (50 ms more per attempt, at most 2 s). Bull's default (e^attempts ms, up to 20 s) left the
 * queue away for up to 20 s more once Redis was back from an outage of ten seconds or so.
 */
const bullReconnectDelayMs = (attempts: number): number => Math.min(attempts * 50, 2000);

/**
 * Options of Bull's connections. A connection being closed is destroyed at once, as the app's other Redis clients' are
 * (see createRedisClient): ioredis's 2 s timer to destroy it, armed even for a connection already gone (closed while
 * reconnecting to a Redis that is down), kept the process up 2 s after the application closed. Nothing is lost: Bull
 * closes a connection after its QUIT was answered or given up on, or to cut a blocking command.
 */
const bullRedisOptions = { retryStrategy: bullReconnectDelayMs, disconnectTimeout: 0 };

/**
 * How long (seconds) a worker's blocking wait for a new job (BRPOPLPUSH) lasts before it asks again; Bull's default is 5.
 * The JOBS_WORKER_CONCURRENCY waits share one connection, so Redis runs them one after another: when that connection was
 * being re-established (Redis restarted), the waits queued meanwhile are all sent on the new one, and the application's
 * close, which waits for each of them, took 16 x 5 = 80 s (measured: login-throttle-redis-down.test.ts's close past its
 * 60 s hook timeout on a loaded machine). At 1 s it takes at most 16 s; an idle worker asks Redis once a second.
 */
const BULL_DRAIN_DELAY_SECONDS = 1;

/** The job outbox, relayed to Bull when REDIS_URL is set and run in-process otherwise. */
@Global()
@Module({})
export class QueueModule {
  static forRoot(config: AppConfig): DynamicModule {
    const bull = config.redisUrl
      ? [BullModule.forRoot({ url: config.redisUrl, prefix: `${config.redisPrefix}:bull`, redis: bullRedisOptions }), BullModule.registerQueue({ name: JOBS_QUEUE, settings: { retryProcessDelay: config.jobs.workerRetryDelayMs, drainDelay: BULL_DRAIN_DELAY_SECONDS } })]
      : [];
    return {
      module: QueueModule,
      imports: bull,
      providers: [JobRegistry, DomainEvents, OutboxRelay, ...(config.redisUrl ? [JobsProcessor] : [])],
      exports: [JobRegistry, DomainEvents, OutboxRelay, ...(config.redisUrl ? [BullModule] : [])],
    };
  }
}
