import { Controller, Get, Headers, Inject, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { Public } from '../auth/public.decorator.js';
import { NotRateLimited } from '../http/rate-limit.js';
import { ApiErrorCodes, defineErrorCodes } from '../errors/catalog.js';
import { Metrics } from './metrics.js';
import { MetricsToken } from './metrics-token.js';

/** What the scrape route answers besides the metrics. */
export const MetricsErrors = defineErrorCodes({
  'auth.metrics_token': { status: 401, description: 'the bearer token is missing or is not METRICS_TOKEN' },
  'metrics.not_served': { status: 404, description: 'METRICS_TOKEN is not configured: metrics are not served' },
});

/** Prometheus' scrape target: served only when METRICS_TOKEN is configured, and only to requests bearing it. */
@ApiTags('health')
@Public()
@NotRateLimited() // Prometheus scrapes, guarded by METRICS_TOKEN
@Controller('metrics')
export class MetricsController {
  private readonly token: MetricsToken;

  constructor(@Inject(APP_CONFIG) config: AppConfig, private readonly metrics: Metrics) {
    this.token = new MetricsToken(config.observability.metricsToken);
  }

  @Get()
  @ApiOperation({ operationId: 'getMetrics', summary: 'Metrics in Prometheus text format', description: 'Send Authorization: Bearer <METRICS_TOKEN> (the server\'s configured scrape token, not a user\'s access token); 404 when no METRICS_TOKEN is configured, so metrics are never public by default.' })
  @ApiOkResponse({
    description: 'Every metric in Prometheus text exposition format 0.0.4 (docs/observability.md lists them)',
    content: { 'text/plain': { schema: { type: 'string', description: 'Prometheus text exposition format', example: '# HELP omnizen_http_requests_total HTTP requests answered\n# TYPE omnizen_http_requests_total counter\nomnizen_http_requests_total{route="/health",method="GET",status="200"} 3\n' } } },
  })
  @ApiErrorCodes('auth.metrics_token', 'metrics.not_served')
  async scrape(@Headers('authorization') authorization: string | undefined, @Res({ passthrough: true }) res: FastifyReply): Promise<string> {
    if (!this.token.configured) throw MetricsErrors.error('metrics.not_served', 'metrics are not served: METRICS_TOKEN is not configured');
    if (!this.token.borneBy(authorization)) {
      throw MetricsErrors.error('auth.metrics_token', 'send Authorization: Bearer <METRICS_TOKEN> to read the metrics');
    }
    res.header('content-type', this.metrics.registry.contentType);
    return this.metrics.scrape();
  }
}
