import { DynamicModule, Global, Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from './config/config.js';
import { DatabaseService } from './database/database.service.js';
import { PrivilegedDatabase } from './database/privileged.service.js';
import { RedisService } from './redis/redis.service.js';
import { HealthController } from './health/health.controller.js';
import { OrgPreflightInterceptor, TenantRouteCheck, TenantTransactionInterceptor } from './http/tenant.js';
import { Clock } from './clock/clock.js';
import { InFlightRequests } from './http/graceful-shutdown.js';

/** Shared machinery: config, the database (tenant and privileged), Redis, health, the clock. */
@Global()
@Module({})
export class PlatformModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: PlatformModule,
      controllers: [HealthController],
      providers: [{ provide: APP_CONFIG, useValue: config }, DatabaseService, PrivilegedDatabase, RedisService, TenantTransactionInterceptor, OrgPreflightInterceptor, TenantRouteCheck, InFlightRequests, Clock],
      exports: [APP_CONFIG, DatabaseService, PrivilegedDatabase, RedisService, TenantTransactionInterceptor, OrgPreflightInterceptor, InFlightRequests, Clock],
    };
  }
}
