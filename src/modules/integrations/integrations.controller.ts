import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query, Req } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Tx, UserRoute } from '../../platform/http/tenant.js';
import { Public } from '../../platform/auth/public.decorator.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { IntegrationsService } from './integrations.service.js';
import { ProvidersService } from './providers.service.js';
import { PublicProvidersService } from './public-providers.service.js';
import { CreateIntegrationDto, IntegrationDto, SetIntegrationSecretDto, UpdateIntegrationDto } from './integration.dto.js';
import { AvailabilityDto, AvailabilityQueryDto, ProviderDto, PublicProviderDto, UpdateProviderDto } from './provider.dto.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import './integrations.errors.js'; // registers IntegrationsErrors
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors
import './providers.errors.js'; // registers ProvidersErrors

@ApiTags('integrations')
@UserRoute()
@Controller('v1/me/integrations')
export class IntegrationsController {
  constructor(private readonly integrations: IntegrationsService) {}

  @Get()
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({ operationId: 'listIntegrations', summary: 'Your integrations; secrets are never returned, only whether one is set' })
  @ApiOkResponse({ type: [IntegrationDto] })
  list(@Tx() tx: TenantTx): Promise<IntegrationDto[]> {
    return this.integrations.list(tx);
  }

  @Post()
  @ApiErrorCodes('auth.user_required', 'integration.exists')
  @ApiOperation({ operationId: 'createIntegration', summary: 'Connect an integration (one per type)' })
  @ApiCreatedResponse({ type: IntegrationDto })
  @ApiErrors(400, 409)
  create(@Tx() tx: TenantTx, @Body() dto: CreateIntegrationDto): Promise<IntegrationDto> {
    return this.integrations.create(tx, dto);
  }

  @Get(':id')
  @ApiErrorCodes('auth.user_required', 'integration.not_found')
  @ApiOperation({ operationId: 'getIntegration', summary: 'One of your integrations' })
  @ApiOkResponse({ type: IntegrationDto })
  @ApiErrors(404)
  get(@Tx() tx: TenantTx, @IdParam('id', 'integration') id: string): Promise<IntegrationDto> {
    return this.integrations.get(tx, id);
  }

  @Patch(':id')
  @ApiErrorCodes('auth.user_required', 'integration.not_found')
  @ApiOperation({ operationId: 'updateIntegration', summary: 'Change the label or status of an integration' })
  @ApiOkResponse({ type: IntegrationDto })
  @ApiErrors(400, 404)
  update(@Tx() tx: TenantTx, @IdParam('id', 'integration') id: string, @Body() dto: UpdateIntegrationDto): Promise<IntegrationDto> {
    return this.integrations.update(tx, id, dto);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiErrorCodes('auth.user_required', 'integration.not_found')
  @ApiOperation({ operationId: 'deleteIntegration', summary: 'Disconnect an integration; its secret is deleted with it' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  delete(@Tx() tx: TenantTx, @IdParam('id', 'integration') id: string): Promise<void> {
    return this.integrations.delete(tx, id);
  }

  @Put(':id/secret')
  @ApiErrorCodes('auth.user_required', 'integration.not_found', 'integration.secret_invalid', 'secrets.not_configured')
  @ApiOperation({ operationId: 'setIntegrationSecret', summary: 'Set or replace the integration\'s secret (write-only, stored encrypted)' })
  @ApiOkResponse({ type: IntegrationDto })
  @ApiErrors(400, 404, 503)
  setSecret(@Tx() tx: TenantTx, @IdParam('id', 'integration') id: string, @Body() dto: SetIntegrationSecretDto): Promise<IntegrationDto> {
    return this.integrations.setSecret(tx, id, dto);
  }

  @Delete(':id/secret')
  @HttpCode(204)
  @ApiErrorCodes('auth.user_required', 'integration.not_found', 'integration_secret.not_found')
  @ApiOperation({ operationId: 'deleteIntegrationSecret', summary: 'Delete the integration\'s secret' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  deleteSecret(@Tx() tx: TenantTx, @IdParam('id', 'integration') id: string): Promise<void> {
    return this.integrations.deleteSecret(tx, id);
  }
}

@ApiTags('providers')
@UserRoute()
@Controller('v1/me/provider')
export class MyProviderController {
  constructor(private readonly providers: ProvidersService) {}

  @Get()
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({ operationId: 'getMyProviderProfile', summary: 'Your provider profile (defaults until first saved)' })
  @ApiOkResponse({ type: ProviderDto })
  get(@Tx() tx: TenantTx): Promise<ProviderDto> {
    return this.providers.get(tx);
  }

  @Patch()
  @ApiErrorCodes('auth.user_required', 'provider.slug_reserved', 'provider.slug_required', 'provider.slug_taken', 'provider.working_hours_invalid')
  @ApiOperation({ operationId: 'updateMyProviderProfile', summary: 'Update your provider profile: public slug, visibility, time zone, settings' })
  @ApiOkResponse({ type: ProviderDto })
  @ApiErrors(400, 409)
  update(@Tx() tx: TenantTx, @Body() dto: UpdateProviderDto): Promise<ProviderDto> {
    return this.providers.update(tx, dto);
  }
}

const metaOf = (req: FastifyRequest) => ({ requestId: req.id, ip: req.ip });

@ApiTags('public')
@Public()
@Controller('v1/public/providers')
export class PublicProvidersController {
  constructor(private readonly publicProviders: PublicProvidersService) {}

  @Get(':slug')
  @ApiErrorCodes('provider.not_found')
  @ApiOperation({ operationId: 'getPublicProviderProfile', summary: 'A public provider profile (no authentication); unknown and private slugs are both 404' })
  @ApiOkResponse({ type: PublicProviderDto })
  @ApiErrors(404)
  profile(@Param('slug') slug: string, @Req() req: FastifyRequest): Promise<PublicProviderDto> {
    return this.publicProviders.profile(slug, metaOf(req));
  }

  @Get(':slug/availability')
  @ApiErrorCodes('provider.not_found', 'availability.duration_invalid', 'availability.from_invalid', 'availability.to_invalid', 'availability.range_invalid', 'availability.range_too_long', 'availability.from_past', 'availability.to_beyond_horizon', 'availability.calendar_unavailable')
  @ApiOperation({ operationId: 'getPublicProviderAvailability', summary: 'Open slots from the working hours in the provider\'s time zone, minus calendar busy times, each with a WhatsApp booking link' })
  @ApiOkResponse({ type: AvailabilityDto })
  @ApiErrors(400, 404, 503)
  availability(@Param('slug') slug: string, @Query() q: AvailabilityQueryDto, @Req() req: FastifyRequest): Promise<AvailabilityDto> {
    return this.publicProviders.availability(slug, q, metaOf(req));
  }
}
