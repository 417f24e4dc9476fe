import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { DatabaseService } from '../database/database.service.js';
import { RedisService } from '../redis/redis.service.js';
import { Public } from '../auth/public.decorator.js';

async function check(probe: () => Promise<unknown>): Promise<'up' | 'down'> {
  try {
    await Promise.race([probe(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000))]);
    return 'up';
  } catch {
    return 'down';
  }
}

const READINESS_SCHEMA = {
  type: 'object' as const,
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string' as const, enum: ['ok', 'unavailable'] },
    checks: { type: 'object' as const, description: 'Each dependency: up or down', additionalProperties: { type: 'string' as const, enum: ['up', 'down'] } },
  },
  example: { status: 'ok', checks: { postgres: 'up', redis: 'up' } },
};

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly db: DatabaseService,
    private readonly redis: RedisService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'checkLiveness', summary: 'Liveness: the process is up' })
  @ApiOkResponse({ schema: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } }, example: { status: 'ok' } } })
  live() {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({ operationId: 'checkReadiness', summary: 'Readiness: PostgreSQL (and Redis, when configured) answer; 503 otherwise' })
  @ApiOkResponse({ schema: READINESS_SCHEMA })
  @ApiServiceUnavailableResponse({ description: 'A dependency is down', schema: { ...READINESS_SCHEMA, example: { status: 'unavailable', checks: { postgres: 'up', redis: 'down' } } } })
  async ready(@Res({ passthrough: true }) res: FastifyReply) {
    const checks: Record<string, 'up' | 'down'> = {
      postgres: await check(() => this.db.ping()),
    };
    const redis = this.redis.client;
    if (redis) checks.redis = await check(() => redis.ping());
    const ok = Object.values(checks).every((c) => c === 'up');
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: ok ? 'ok' : 'unavailable', checks };
  }
}
