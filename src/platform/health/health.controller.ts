import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { DatabaseService } from '../database/database.service.js';
import { RedisService } from '../redis/redis.service.js';
import { Public } from '../auth/public.decorator.js';
import { InFlightRequests } from '../http/graceful-shutdown.js';
import { NotRateLimited } from '../http/rate-limit.js';

async function check(probe: () => Promise<unknown>): Promise<'up' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([probe(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), 2000)))]);
    return 'up';
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}

const READINESS_SCHEMA = {
  type: 'object' as const,
  required: ['status'],
  properties: {
    status: { type: 'string' as const, enum: ['ok', 'unavailable', 'draining'] },
    checks: { type: 'object' as const, description: 'Each dependency: up or down (absent while draining)', additionalProperties: { type: 'string' as const, enum: ['up', 'down'] } },
  },
  example: { status: 'ok', checks: { postgres: 'up', redis: 'up' } },
};

@ApiTags('health')
@Public()
@NotRateLimited()
@Controller('health')
export class HealthController {
  constructor(
    private readonly db: DatabaseService,
    private readonly redis: RedisService,
    private readonly requests: InFlightRequests,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'checkLiveness', summary: 'Liveness: the process is up' })
  @ApiOkResponse({ schema: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } }, example: { status: 'ok' } } })
  live() {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({ operationId: 'checkReadiness', summary: 'Readiness: PostgreSQL (and Redis, when configured) answer and the server is not shutting down; 503 otherwise' })
  @ApiOkResponse({ schema: READINESS_SCHEMA })
  @ApiServiceUnavailableResponse({
    description: 'A dependency is down (status unavailable), or the server is draining for shutdown (status draining)',
    schema: { ...READINESS_SCHEMA, example: { status: 'unavailable', checks: { postgres: 'up', redis: 'down' } } },
  })
  async ready(@Res({ passthrough: true }) res: FastifyReply) {
    if (this.requests.draining) {
      res.status(HttpStatus.SERVICE_UNAVAILABLE);
      return { status: 'draining' };
    }
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
