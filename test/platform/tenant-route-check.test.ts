import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { Controller, Get } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { TenantTx } from '../../src/platform/database/database.service.js';
import { TenantRouteCheck, Tx } from '../../src/platform/http/tenant.js';

@Controller('v1/misplaced')
class MisplacedTxController {
  @Get()
  read(@Tx() tx: TenantTx): string {
    return tx.orgId;
  }

  @Get('plain')
  plain(): string {
    return 'ok';
  }
}

@Controller('v1/fine')
class NoTxController {
  @Get()
  read(): string {
    return 'ok';
  }
}

describe('@Tx() outside a tenant controller', () => {
  it('stops the application at start-up, naming the handler (not a 500 per request)', async () => {
    const moduleRef = await Test.createTestingModule({ controllers: [MisplacedTxController, NoTxController], providers: [TenantRouteCheck] }).compile();
    const app = moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
    await expect(app.init()).rejects.toThrow(
      '@Tx() is used outside an @OrgRoute/@UserRoute controller, where no tenant transaction exists: MisplacedTxController.read');
    await app.close();
  });

  it('lets an application without such a handler start', async () => {
    const moduleRef = await Test.createTestingModule({ controllers: [NoTxController], providers: [TenantRouteCheck] }).compile();
    const app = moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
    await expect(app.init()).resolves.toBe(app);
    await app.close();
  });
});
