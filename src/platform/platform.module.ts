import { DynamicModule, Global, Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from './config/config.js';
import { DatabaseService } from './database/database.service.js';
import { PrivilegedDatabase } from './database/privileged.service.js';
import { RedisService } from './redis/redis.service.js';
import { RedisFallback } from './redis/redis-fallback.js';
import { HealthController } from './health/health.controller.js';
import { OrgPreflightInterceptor, TenantRouteCheck, TenantTransactionInterceptor } from './http/tenant.js';
import { Clock } from './clock/clock.js';
import { CallTimer, Sleeper } from './ai/llm-provider.js';
import { InFlightRequests } from './http/graceful-shutdown.js';
import { OrgRateLimits, PrincipalRateLimitInterceptor, PublicRouteRateLimitGuard, RateLimiter } from './http/rate-limit.js';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { Metrics } from './observability/metrics.js';
import { ReadinessProbes } from './health/readiness-probes.js';
import { MetricsController } from './observability/metrics.controller.js';
import { RlsCanary } from './health/rls-canary.js';

/** Shared machinery: config, the database (tenant and privileged), Redis, health, metrics, the clock. */
@Global()
@Module({})
export class PlatformModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: PlatformModule,
      controllers: [HealthController, MetricsController],
      providers: [{ provide: APP_CONFIG, useValue: config }, DatabaseService, PrivilegedDatabase, RedisService, RedisFallback, TenantTransactionInterceptor, OrgPreflightInterceptor, TenantRouteCheck, InFlightRequests, Clock, Sleeper, CallTimer, Metrics, RlsCanary,
        ReadinessProbes, RateLimiter, OrgRateLimits, { provide: APP_GUARD, useClass: PublicRouteRateLimitGuard },
        { provide: APP_INTERCEPTOR, useClass: PrincipalRateLimitInterceptor }],
      exports: [APP_CONFIG, DatabaseService, PrivilegedDatabase, RedisService, RedisFallback, TenantTransactionInterceptor, OrgPreflightInterceptor, InFlightRequests, Clock, Sleeper, CallTimer, Metrics, ReadinessProbes, RateLimiter, OrgRateLimits],
    };
  }
}
