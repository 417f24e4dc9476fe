import { DynamicModule, Global, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bull';
import type { AppConfig } from '../config/config.js';
import { JobRegistry } from './jobs.js';
import { JOBS_QUEUE, OutboxRelay } from './outbox-relay.service.js';
import { JobsProcessor } from './jobs.processor.js';
import { DomainEvents } from '../events/events.js';

/** The job outbox, relayed to Bull when REDIS_URL is set and run in-process otherwise. */
@Global()
@Module({})
export class QueueModule {
  static forRoot(config: AppConfig): DynamicModule {
    const bull = config.redisUrl
      ? [BullModule.forRoot({ url: config.redisUrl, prefix: `${config.redisPrefix}:bull` }), BullModule.registerQueue({ name: JOBS_QUEUE, settings: { retryProcessDelay: config.jobs.workerRetryDelayMs } })]
      : [];
    return {
      module: QueueModule,
      imports: bull,
      providers: [JobRegistry, DomainEvents, OutboxRelay, ...(config.redisUrl ? [JobsProcessor] : [])],
      exports: [JobRegistry, DomainEvents, OutboxRelay, ...(config.redisUrl ? [BullModule] : [])],
    };
  }
}
