import { Body, Controller, Delete, Get, HttpCode, Patch, Post, Query } from '@nestjs/common';
import { ApiAcceptedResponse, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '../../platform/auth/public.decorator.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { IdParam } from '../../platform/http/id-param.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { OnlyStops, OrgRoute, RequireRole, RequiresFeature, Tx, WritesRequireSubscription } from '../../platform/http/tenant.js';
import {
  CreateWebhookEndpointDto, EventTypeDto, ReplayFailedDto, ReplayResultDto, RotateWebhookSecretDto, UpdateWebhookEndpointDto, WebhookAttemptPage,
  WebhookAttemptQuery, WebhookEndpointDto, WebhookEndpointWithSecretDto, WebhookMessageDetailDto, WebhookMessageDto, WebhookMessagePage, WebhookMessageQuery,
} from './webhooks.dto.js';
import { deliveryCallbacks } from './event-catalog.js';
import { WebhooksService } from './webhooks.service.js';

@ApiTags('webhooks')
@Public()
@Controller('v1/webhooks')
export class WebhookEventTypesController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Get('event-types')
  @ApiOperation({
    operationId: 'listWebhookEventTypes',
    summary: 'The event catalog: every event type with its versioned payload schema and an example (no authentication)',
    description: 'Each delivered body is `{ id, type, version, timestamp, organizationId, data }`; its schema per type is the component '
      + '`WebhookEvent.<type>.v<version>`. Deliveries follow Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature); '
      + 'the callback `delivery` of createWebhookEndpoint describes them.',
  })
  @ApiOkResponse({ type: [EventTypeDto] })
  @ApiErrorCodes()
  eventTypes(): EventTypeDto[] {
    return this.webhooks.eventTypes();
  }
}

/**
 * Webhook endpoints of an organization (owner, admin): an OmniZen app feature (`webhooks`, professional and up);
 * writes need a subscription that allows writing. Reading endpoints and the log stays possible on any plan, and so does
 * stopping deliveries (deleting an endpoint, or a change that only disables it, @OnlyStops): events are signed and sent
 * to an enabled endpoint whatever the plan, so a customer who lapsed or downgraded must be able to turn them off.
 */
/** A PATCH body that only disables the endpoint: `{"enabled": false}` and nothing else (as the validation pipe keeps it). */
function onlyDisables(body: unknown): boolean {
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    && Object.keys(body).length === 1 && (body as { enabled?: unknown }).enabled === false;
}

@ApiTags('webhooks')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@RequireRole(...ADMIN_ROLES)
@Controller('v1/orgs/:orgId/webhooks/endpoints')
export class WebhookEndpointsController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post()
  @RequiresFeature('omnizen', 'webhooks')
  // its callback `delivery`: what the endpoint then receives (the bodies, the signature headers, the answers that count)
  @ApiOperation({ operationId: 'createWebhookEndpoint', summary: 'Create a webhook endpoint; its signing secret is in this answer only (owner, admin)', callbacks: deliveryCallbacks() })
  @ApiCreatedResponse({ type: WebhookEndpointWithSecretDto })
  @ApiErrors(400)
  @ApiErrorCodes('webhooks.url_invalid', 'webhooks.url_not_public', 'webhooks.unknown_event_type', 'webhooks.too_many_endpoints', 'secrets.not_configured')
  create(@Tx() tx: TenantTx, @Body() dto: CreateWebhookEndpointDto): Promise<WebhookEndpointWithSecretDto> {
    return this.webhooks.create(tx, dto);
  }

  @Get()
  @ApiOperation({ operationId: 'listWebhookEndpoints', summary: 'Webhook endpoints, oldest first (owner, admin)' })
  @ApiOkResponse({ type: [WebhookEndpointDto] })
  @ApiErrorCodes('organization.not_found')
  list(@Tx() tx: TenantTx): Promise<WebhookEndpointDto[]> {
    return this.webhooks.list(tx);
  }

  @Get(':endpointId')
  @ApiOperation({ operationId: 'getWebhookEndpoint', summary: 'One webhook endpoint (owner, admin)' })
  @ApiOkResponse({ type: WebhookEndpointDto })
  @ApiErrorCodes('organization.not_found', 'webhook_endpoint.not_found')
  get(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string): Promise<WebhookEndpointDto> {
    return this.webhooks.get(tx, id);
  }

  @Patch(':endpointId')
  @RequiresFeature('omnizen', 'webhooks')
  @OnlyStops('a change that only disables the endpoint (the body exactly {"enabled": false})', onlyDisables)
  @ApiOperation({
    operationId: 'updateWebhookEndpoint', summary: 'Change the URL, description or event types; enable or disable (owner, admin)',
    description: 'A change that only disables the endpoint (the body exactly `{"enabled": false}`) is open on any plan, a read-only '
      + 'subscription (canceled, trial ended, past due beyond the grace period) or one without webhooks included: deliveries can always '
      + 'be stopped. Every other change needs the webhooks feature and a subscription that allows writing (402). A new URL makes the caller '
      + 'answerable for it (urlSetBy); enabling makes the caller answerable for whichever of urlSetBy and secretSetBy is null or no longer owner '
      + 'or admin, and a service key may enable only an endpoint whose two are both owner or admin (403 webhooks.person_required otherwise). '
      + 'Enabling also ends the previous secret\'s overlap (previousSecretExpiresAt null, audited) when its receiver no longer answers for it or is unknown. '
      + 'An enabling that takes on secretSetBy leaves the secret as it is (whoever was given it could have known it; secretTakenOn true): that secret\'s rotation keeps no overlap '
      + '(rotateWebhookSecret).',
  })
  @ApiOkResponse({ type: WebhookEndpointDto })
  @ApiErrors(400)
  @ApiErrorCodes('webhooks.url_invalid', 'webhooks.url_not_public', 'webhooks.unknown_event_type', 'webhooks.person_required')
  update(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @Body() dto: UpdateWebhookEndpointDto): Promise<WebhookEndpointDto> {
    return this.webhooks.update(tx, id, dto);
  }

  @Delete(':endpointId')
  @HttpCode(204)
  @OnlyStops('deleting the endpoint')
  @ApiOperation({
    operationId: 'deleteWebhookEndpoint', summary: 'Delete a webhook endpoint and its delivery log (owner, admin)',
    description: 'Open on any plan, a read-only subscription (canceled, trial ended, past due beyond the grace period) included: '
      + 'deliveries can always be stopped.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('organization.not_found', 'webhook_endpoint.not_found')
  async remove(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string): Promise<void> {
    await this.webhooks.remove(tx, id);
  }

  @Post(':endpointId/rotate-secret')
  @RequiresFeature('omnizen', 'webhooks')
  @ApiOperation({
    operationId: 'rotateWebhookSecret', summary: 'A new signing secret, shown once; the previous one keeps signing during the overlap (owner, admin)',
    description: 'The previous secret keeps signing for overlapSeconds (default WEBHOOKS_SECRET_OVERLAP_SECONDS, 24 h), except a secret taken on: '
      + 'one the endpoint still had when a person enabled it in place of a receiver no longer owner or admin of the organization, or unknown '
      + '(secretSetBy was taken on; whoever was given the secret, that receiver or a service key whose rotation left them on record, could have '
      + 'known it; secretTakenOn true). Its rotation keeps no overlap: without overlapSeconds, or with 0, the '
      + 'new secret alone signs at once (previousSecretExpiresAt null, audited); an overlapSeconds above 0 is refused (409 webhooks.secret_taken_on, '
      + 'nothing changed). Any rotation ends the take-on: the next one keeps its overlap again.',
  })
  @ApiCreatedResponse({ type: WebhookEndpointWithSecretDto })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'webhook_endpoint.not_found', 'secrets.not_configured',
    'webhooks.secret_taken_on')
  rotate(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @Body() dto: RotateWebhookSecretDto): Promise<WebhookEndpointWithSecretDto> {
    return this.webhooks.rotateSecret(tx, id, dto.overlapSeconds);
  }

  @Post(':endpointId/ping')
  @HttpCode(202)
  @RequiresFeature('omnizen', 'webhooks')
  @ApiOperation({ operationId: 'pingWebhookEndpoint', summary: 'Send a `ping` test event to this endpoint (delivered, signed and logged like any event)' })
  @ApiAcceptedResponse({ type: WebhookMessageDto })
  @ApiErrorCodes('webhooks.endpoint_disabled')
  ping(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string): Promise<WebhookMessageDto> {
    return this.webhooks.ping(tx, id);
  }

  @Get(':endpointId/messages')
  @ApiOperation({ operationId: 'listWebhookMessages', summary: 'The endpoint\'s messages, newest first; filter by status and event type (cursor pagination)' })
  @ApiOkResponse({ type: WebhookMessagePage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'webhook_endpoint.not_found', 'pagination.cursor')
  messages(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @Query() q: WebhookMessageQuery): Promise<WebhookMessagePage> {
    return this.webhooks.messages(tx, id, q);
  }

  @Get(':endpointId/messages/:messageId')
  @ApiOperation({ operationId: 'getWebhookMessage', summary: 'One message with every attempt (time, status code, latency, truncated answer, error)' })
  @ApiOkResponse({ type: WebhookMessageDetailDto })
  @ApiErrorCodes('organization.not_found', 'webhook_endpoint.not_found', 'webhook_message.not_found')
  message(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @IdParam('messageId', 'webhook_message') messageId: string): Promise<WebhookMessageDetailDto> {
    return this.webhooks.message(tx, id, messageId);
  }

  @Post(':endpointId/messages/:messageId/replay')
  @HttpCode(202)
  @RequiresFeature('omnizen', 'webhooks')
  @ApiOperation({
    operationId: 'replayWebhookMessage', summary: 'Deliver a message again (same webhook-id, a new round of the retry schedule)',
    description: 'Refused (409 webhooks.endpoint_disabled, nothing changed) while the endpoint is disabled: enable it first.',
  })
  @ApiAcceptedResponse({ type: WebhookMessageDto })
  @ApiErrorCodes('webhooks.endpoint_disabled', 'webhooks.message_pending')
  replay(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @IdParam('messageId', 'webhook_message') messageId: string): Promise<WebhookMessageDto> {
    return this.webhooks.replay(tx, id, messageId);
  }

  @Post(':endpointId/replay-failed')
  @HttpCode(202)
  @RequiresFeature('omnizen', 'webhooks')
  @ApiOperation({
    operationId: 'replayFailedWebhookMessages', summary: 'Deliver again every failed message created since a time',
    description: 'Refused (409 webhooks.endpoint_disabled, nothing changed) while the endpoint is disabled: enable it first.',
  })
  @ApiAcceptedResponse({ type: ReplayResultDto })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'webhook_endpoint.not_found', 'webhooks.endpoint_disabled')
  replayFailed(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @Body() dto: ReplayFailedDto): Promise<ReplayResultDto> {
    return this.webhooks.replayFailed(tx, id, dto.since);
  }

  @Get(':endpointId/attempts')
  @ApiOperation({ operationId: 'listWebhookAttempts', summary: 'The delivery log: attempts, newest first; filter by outcome, event type or message (cursor pagination)' })
  @ApiOkResponse({ type: WebhookAttemptPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'webhook_endpoint.not_found', 'pagination.cursor')
  attempts(@Tx() tx: TenantTx, @IdParam('endpointId', 'webhook_endpoint') id: string, @Query() q: WebhookAttemptQuery): Promise<WebhookAttemptPage> {
    return this.webhooks.attempts(tx, id, q);
  }
}
