import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { Controller, Post, type Type } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { Observable } from 'rxjs';
import type { TenantTx } from '../../src/platform/database/database.service.js';
import {
  ConsumesLimit, OrgPreflightInterceptor, OrgPreflightRoute, OrgRoute, RequiresFeature, TenantRouteCheck, TenantTransactionInterceptor, Tx,
} from '../../src/platform/http/tenant.js';

@OrgPreflightRoute()
@Controller('v1/orgs/:orgId/uploads')
class LimitedPreflightController {
  @Post()
  @ConsumesLimit('omnizen', 'ai_agents')
  upload(): string {
    return 'ok';
  }
}

@OrgPreflightRoute()
@Controller('v1/orgs/:orgId/runs')
class FeaturePreflightController {
  @Post()
  @RequiresFeature('omnizen', 'ai_automation')
  run(): string {
    return 'ok';
  }
}

@OrgRoute()
@Controller('v1/orgs/:orgId/things')
class LimitedTenantController {
  @Post()
  @ConsumesLimit('omnizen', 'workspaces')
  create(@Tx() tx: TenantTx): string {
    return tx.orgId;
  }
}

/** Starts a module of `controllers` with the start-up check; the interceptors are stand-ins (no request is made). */
async function start(...controllers: Type[]) {
  const passThrough = { intercept: (_: unknown, next: { handle(): Observable<unknown> }) => next.handle() };
  const moduleRef = await Test.createTestingModule({ controllers, providers: [TenantRouteCheck] })
    .overrideInterceptor(OrgPreflightInterceptor).useValue(passThrough)
    .overrideInterceptor(TenantTransactionInterceptor).useValue(passThrough)
    .compile();
  return moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
}

/**
 * A preflight route's plan checks run in a short transaction of their own that commits before the handler writes: a
 * @ConsumesLimit there would release the limit's lock before the write, and concurrent requests could pass the limit
 * together. The application refuses to start with one.
 */
describe('@ConsumesLimit on a preflight route', () => {
  it('stops the application at start-up, naming the handler', async () => {
    const app = await start(LimitedPreflightController, FeaturePreflightController, LimitedTenantController);
    await expect(app.init()).rejects.toThrow(
      '@ConsumesLimit is used on a preflight route (@OrgPreflightRoute/@UserPreflightRoute), whose plan checks commit before the handler writes, '
      + 'so the limit\'s lock would not cover the write: LimitedPreflightController.upload; move the handler to an @OrgRoute controller '
      + '(one transaction) or count it in the handler\'s own transaction');
    await app.close();
  });

  it('lets a preflight route with other plan requirements, and a limit on a tenant-transaction route, start', async () => {
    const app = await start(FeaturePreflightController, LimitedTenantController);
    await expect(app.init()).resolves.toBe(app);
    await app.close();
  });
});
