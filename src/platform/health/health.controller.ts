import { Controller, Get, Headers, HttpStatus, Inject, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { withTimeout } from '../clock/clock.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { DatabaseService } from '../database/database.service.js';
import { RedisService } from '../redis/redis.service.js';
import { Public } from '../auth/public.decorator.js';
import { InFlightRequests } from '../http/graceful-shutdown.js';
import { NotRateLimited } from '../http/rate-limit.js';
import { Metrics } from '../observability/metrics.js';
import { MetricsToken } from '../observability/metrics-token.js';
import { RlsCanary } from './rls-canary.js';
import { ReadinessProbes } from './readiness-probes.js';

/** A dependency's probe: up or down (a probe taking over 2 s is down), and how long it took in ms. */
async function check(probe: () => Promise<unknown>): Promise<{ status: 'up' | 'down'; ms: number }> {
  const started = performance.now();
  const took = () => Math.round((performance.now() - started) * 10) / 10;
  try {
    await withTimeout(probe(), 2000, () => new Error('timeout'));
    return { status: 'up', ms: took() };
  } catch {
    return { status: 'down', ms: took() };
  }
}

const READINESS_SCHEMA = {
  type: 'object' as const,
  required: ['status'],
  properties: {
    status: { type: 'string' as const, enum: ['ok', 'unavailable', 'draining'] },
    checks: {
      type: 'object' as const,
      description: 'Only with Authorization: Bearer <METRICS_TOKEN>. Each dependency (postgres, redis when configured) and the row-level-security canary (rls: no organization\'s rows visible to a principal of none): up or down; absent while draining. Redis being down makes the instance unavailable only when READINESS_REQUIRES_REDIS is set (the API serves without it; jobs wait in the outbox until it is back). Third-party services, when configured (stripe, llm), are reported too, but being down does not make the instance unavailable',
      additionalProperties: { type: 'string' as const, enum: ['up', 'down'] },
    },
    latencyMs: { type: 'object' as const, description: 'Only with Authorization: Bearer <METRICS_TOKEN>. How long each dependency took to answer its probe, in milliseconds', additionalProperties: { type: 'number' as const } },
  },
  example: { status: 'ok', checks: { postgres: 'up', redis: 'up', rls: 'up', stripe: 'up' }, latencyMs: { postgres: 0.8, redis: 0.3, stripe: 182.4 } },
};

const READINESS_DESCRIPTION = 'Public, for load balancers: an anonymous caller gets only `status` (the same HTTP status), and only the probes '
  + 'that decide it run (PostgreSQL, the row-level-security canary, Redis with READINESS_REQUIRES_REDIS). With '
  + 'Authorization: Bearer <METRICS_TOKEN> (the operators\' scrape token, as /metrics) the answer names each check and '
  + 'its latency, the reported-only ones (Redis, Stripe, the LLM provider) too. A wrong token is answered as an anonymous call.';

@ApiTags('health')
@Public()
@NotRateLimited()
@Controller('health')
export class HealthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly db: DatabaseService,
    private readonly redis: RedisService,
    private readonly requests: InFlightRequests,
    private readonly canary: RlsCanary,
    private readonly metrics: Metrics,
    private readonly providers: ReadinessProbes,
  ) {
    this.token = new MetricsToken(config.observability.metricsToken);
  }

  /** METRICS_TOKEN: who may read the checks and latencies of /health/ready */
  private readonly token: MetricsToken;

  @Get()
  @ApiOperation({ operationId: 'checkLiveness', summary: 'Liveness: the process is up' })
  @ApiOkResponse({ schema: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } }, example: { status: 'ok' } } })
  live() {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({ operationId: 'checkReadiness', summary: 'Readiness: PostgreSQL answers, row-level security still hides every organization from a principal of none, and the server is not shutting down; 503 otherwise. Redis (when configured), Stripe and the LLM provider (when configured) are reported with their latency without deciding (Redis decides too with READINESS_REQUIRES_REDIS)', description: READINESS_DESCRIPTION })
  @ApiOkResponse({ schema: READINESS_SCHEMA })
  @ApiServiceUnavailableResponse({
    description: 'A dependency is down (status unavailable), or the server is draining for shutdown (status draining)',
    schema: { ...READINESS_SCHEMA, example: { status: 'unavailable', checks: { postgres: 'down', redis: 'up' } } },
  })
  async ready(@Headers('authorization') authorization: string | undefined, @Res({ passthrough: true }) res: FastifyReply) {
    // the operators' view (METRICS_TOKEN) names the checks and their latencies; anyone else learns ready or not, and
    // costs only the probes that decide it
    const detailed = this.token.borneBy(authorization);
    if (this.requests.draining) {
      res.status(HttpStatus.SERVICE_UNAVAILABLE);
      return { status: 'draining' };
    }
    const postgres = await check(() => this.db.ping());
    const checks: Record<string, 'up' | 'down'> = { postgres: postgres.status };
    const latencyMs: Record<string, number> = { postgres: postgres.ms };
    const report = (probes: Record<string, { status: 'up' | 'down'; ms: number }>) => {
      for (const [name, p] of Object.entries(probes)) {
        checks[name] = p.status;
        latencyMs[name] = p.ms;
      }
    };
    // Redis decides only when the deployment says it needs it: the API serves without it (jobs wait in the outbox)
    const redis = this.redis.client;
    const redisProbe = redis && (detailed || this.config.observability.readinessRequiresRedis) ? await check(() => redis.ping()) : undefined;
    if (redisProbe && this.config.observability.readinessRequiresRedis) report({ redis: redisProbe });
    if (checks.postgres === 'up') checks.rls = (await this.canary.latest()).ok ? 'up' : 'down';
    const ok = Object.values(checks).every((c) => c === 'up');
    this.metrics.ready.set(ok ? 1 : 0);
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    if (!detailed) return { status: ok ? 'ok' : 'unavailable' };
    // reported, not deciding: Redis (unless required), third-party services (a provider's outage is not this instance's)
    if (redisProbe) report({ redis: redisProbe });
    report(await this.providers.run(check));
    return { status: ok ? 'ok' : 'unavailable', checks, latencyMs };
  }
}
