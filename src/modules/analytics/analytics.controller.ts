import { Body, Controller, Get, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { RequiresScope } from '../../platform/auth/api-key-scopes.js';
import { CurrentPrincipal } from '../../platform/http/tenant.js';
import type { Principal } from '../../platform/auth/principal.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AnalyticsService, DAILY_COUNTS_PAGE } from './analytics.service.js';
import { AnalyticsErrors } from './analytics.errors.js';
import { FEATURE_LABEL_LIMIT } from '../../platform/observability/metrics.js';
import {
  ActiveUsersDto, AnalyticsBatchDto, AnalyticsBatchResultDto, AnalyticsCountsQuery, AnalyticsRangeQuery, AnalyticsTopQuery,
  EventDayCountDto, FeatureUsageByPlanDto, TopEventDto,
} from './analytics.dto.js';

@ApiTags('analytics')
@OrgRoute()
@Controller('v1/orgs/:orgId/analytics')
export class AnalyticsController {
  constructor(private readonly analytics: AnalyticsService) {}

  @Post('events')
  @HttpCode(200)
  @RequiresScope('analytics:write')
  @ApiOperation({ operationId: 'sendAnalyticsEvents', summary: 'Record a batch of up to 500 usage events; bad events are reported by index, the others stored (any member; keys with analytics:write)',
    description: 'An organization\'s apps may use a bounded number of distinct event names (ANALYTICS_MAX_EVENT_NAMES, 500 by default; '
      + 'names unused for the retention are forgotten): once it is reached, each event with a new name is rejected by index, naming the limit.' })
  @ApiOkResponse({ type: AnalyticsBatchResultDto })
  @ApiErrorCodes('api_keys.scope_missing')
  record(@Tx() tx: TenantTx, @Body() dto: AnalyticsBatchDto): Promise<AnalyticsBatchResultDto> {
    return this.analytics.ingest(tx, dto.events);
  }

  @Get('events/daily')
  @RequireRole(...ADMIN_ROLES)
  @RequiresScope('analytics:read')
  @ApiOperation({ operationId: 'listAnalyticsDailyCounts',
    summary: 'How often each event happened per day over a range, from the daily roll-ups, by day and event (lag up to 10 minutes; owner or admin)',
    description: `Up to ${DAILY_COUNTS_PAGE.toLocaleString('en')} rows (or ?limit=) per answer; when more follow, the X-Next-Cursor header holds the cursor of the next page (?cursor=).`,
  })
  @ApiOkResponse({ type: [EventDayCountDto], headers: { 'X-Next-Cursor': { description: 'Present when more rows follow: pass it as ?cursor= for the next page', schema: { type: 'string' } } } })
  @ApiErrors(400)
  @ApiErrorCodes('analytics.range', 'pagination.cursor', 'api_keys.scope_missing')
  async daily(@Tx() tx: TenantTx, @Query() q: AnalyticsCountsQuery, @Res({ passthrough: true }) res: FastifyReply): Promise<EventDayCountDto[]> {
    // the answer stays a list (as clients know it); the next page's cursor travels in a header
    const { items, nextCursor } = await this.analytics.dailyCounts(tx, q);
    if (nextCursor) res.header('X-Next-Cursor', nextCursor);
    return items;
  }

  @Get('events/top')
  @RequireRole(...ADMIN_ROLES)
  @RequiresScope('analytics:read')
  @ApiOperation({ operationId: 'listAnalyticsTopEvents', summary: 'The most frequent events over a range (owner or admin)' })
  @ApiOkResponse({ type: [TopEventDto] })
  @ApiErrors(400)
  @ApiErrorCodes('analytics.range', 'api_keys.scope_missing')
  top(@Tx() tx: TenantTx, @Query() q: AnalyticsTopQuery): Promise<TopEventDto[]> {
    return this.analytics.topEvents(tx, q.from, q.to, q.limit);
  }

  @Get('active-users')
  @RequireRole(...ADMIN_ROLES)
  @RequiresScope('analytics:read')
  @ApiOperation({ operationId: 'getAnalyticsActiveUsers', summary: 'Daily and monthly active users over a range (owner or admin)' })
  @ApiOkResponse({ type: ActiveUsersDto })
  @ApiErrors(400)
  @ApiErrorCodes('analytics.range', 'api_keys.scope_missing')
  activeUsers(@Tx() tx: TenantTx, @Query() q: AnalyticsRangeQuery): Promise<ActiveUsersDto> {
    return this.analytics.activeUsers(tx, q.from, q.to);
  }
}

/** For services (a service-role key): usage across organizations. */
@ApiTags('analytics')
@ApiBearerAuth()
@Controller('v1/analytics')
export class AnalyticsReportsController {
  constructor(private readonly analytics: AnalyticsService) {}

  @Get('feature-usage')
  @ApiOperation({ operationId: 'listFeatureUsageByPlan', summary: `Feature (event) usage by OmniZen plan across organizations, from the daily roll-ups: the ${FEATURE_LABEL_LIMIT} most used events of each plan, most used first (service-role key only)` })
  @ApiOkResponse({ type: [FeatureUsageByPlanDto] })
  @ApiErrors(400, 403)
  @ApiErrorCodes('analytics.range', 'analytics.service_required')
  featureUsage(@CurrentPrincipal() principal: Principal, @Query() q: AnalyticsRangeQuery): Promise<FeatureUsageByPlanDto[]> {
    if (principal.kind !== 'service') throw AnalyticsErrors.error('analytics.service_required', 'this report is for a service-role key');
    return this.analytics.featureUsageByPlan(q.from, q.to);
  }
}
