import { Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { OrgRoute, RequireRole, RequiresFeature, Tx } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { ApiKeysService } from './api-keys.service.js';
import { ApiKeyDto, ApiKeyListQuery, CreateApiKeyDto, CreatedApiKeyDto } from './api-key.dto.js';
import '../auth/auth.errors.js'; // registers AuthErrors

/**
 * Scoped API keys (owners and admins; plans with `api_access`). No route here declares a key scope: a key cannot
 * list, mint or revoke keys.
 */
@ApiTags('api-keys')
@OrgRoute()
@Controller('v1/orgs/:orgId/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Post()
  @RequireRole('owner', 'admin')
  @RequiresFeature('omnizen', 'api_access')
  @ApiOperation({
    operationId: 'createApiKey', summary: 'Create an API key; the answer holds its secret, shown this once (owner or admin; plans with API access)',
    description: 'Business organizations only: a personal organization answers 422 api_keys.personal_organization. Needs the creator\'s e-mail '
      + 'verified (403 auth.email_unverified until it is).',
  })
  @ApiCreatedResponse({ type: CreatedApiKeyDto })
  @ApiErrors(400)
  @ApiErrorCodes('api_keys.expiry_past', 'api_keys.too_many_keys', 'api_keys.route_closed', 'api_keys.personal_organization', 'auth.email_unverified')
  create(@Tx() tx: TenantTx, @Body() dto: CreateApiKeyDto): Promise<CreatedApiKeyDto> {
    return this.keys.create(tx, dto);
  }

  @Get()
  @RequireRole('owner', 'admin')
  @ApiOperation({ operationId: 'listApiKeys', summary: 'The organization\'s API keys, newest first: those not revoked unless `status` asks for revoked ones; never their secrets (owner or admin)' })
  @ApiOkResponse({ type: [ApiKeyDto] })
  @ApiErrors(400)
  @ApiErrorCodes('api_keys.route_closed')
  list(@Tx() tx: TenantTx, @Query() q: ApiKeyListQuery): Promise<ApiKeyDto[]> {
    return this.keys.list(tx, q.status ?? 'active');
  }

  @Post(':keyId/revoke')
  @HttpCode(200)
  @RequireRole('owner', 'admin')
  @ApiOperation({ operationId: 'revokeApiKey', summary: 'Revoke an API key: it is refused from the next request on (owner or admin)' })
  @ApiParam({ name: 'keyId', format: 'uuid' })
  @ApiOkResponse({ type: ApiKeyDto })
  @ApiErrors(400)
  @ApiErrorCodes('api_keys.already_revoked', 'api_keys.route_closed')
  revoke(@Tx() tx: TenantTx, @IdParam('keyId', 'api_key') id: string): Promise<ApiKeyDto> {
    return this.keys.revoke(tx, id);
  }
}
