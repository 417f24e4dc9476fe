import { RequiresScope } from '../../platform/auth/api-key-scopes.js';
import { Body, Controller, Delete, Get, HttpCode, Patch, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { OrgRoute, RequireRole, Tx, UserRoute } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { OrganizationsService } from './organizations.service.js';
import { CreateOrganizationDto, OrganizationDto, UpdateOrganizationDto } from './organization.dto.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import './organizations.errors.js'; // registers OrganizationsErrors
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors
import '../auth/auth.errors.js'; // registers AuthErrors

@ApiTags('organizations')
@UserRoute()
@Controller('v1/orgs')
export class MyOrganizationsController {
  constructor(private readonly orgs: OrganizationsService) {}

  @Post()
  @ApiErrorCodes('auth.user_required', 'auth.email_unverified')
  @ApiOperation({
    operationId: 'createOrganization', summary: 'Create a business organization; you become its owner',
    description: 'Needs your e-mail verified (403 auth.email_unverified until it is: POST /v1/auth/email-verification sends a new link).',
  })
  @ApiCreatedResponse({
    type: OrganizationDto,
    example: { id: '3f0c8a2e-9b1d-4c7e-8f6a-5d4c3b2a1e0f', name: 'Acme Trading LLC', accountType: 'business', domain: null,
      ownerUserId: '9d3c1f0e-4b6a-4f2d-8e7c-6a5b4c3d2e1f', role: 'owner', createdAt: '2026-01-02T09:00:00.000Z', updatedAt: '2026-01-02T09:00:00.000Z' },
  })
  @ApiErrors(400)
  create(@Tx() tx: TenantTx, @Body() dto: CreateOrganizationDto): Promise<OrganizationDto> {
    return this.orgs.create(tx, dto);
  }

  @Get()
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({ operationId: 'listOrganizations', summary: 'Organizations you belong to, your personal one first' })
  @ApiOkResponse({ type: [OrganizationDto] })
  list(@Tx() tx: TenantTx): Promise<OrganizationDto[]> {
    return this.orgs.listMine(tx);
  }
}

@ApiTags('organizations')
@OrgRoute()
@Controller('v1/orgs/:orgId')
export class OrganizationController {
  constructor(private readonly orgs: OrganizationsService) {}

  @Get()
  @ApiErrorCodes('organization.not_found')
  @RequiresScope('org:read')
  @ApiOperation({ operationId: 'getOrganization', summary: 'Read an organization you belong to' })
  @ApiOkResponse({ type: OrganizationDto })
  get(@Tx() tx: TenantTx): Promise<OrganizationDto> {
    return this.orgs.get(tx);
  }

  @Patch()
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role')
  @ApiOperation({ operationId: 'updateOrganization', summary: 'Update an organization (admin or owner)' })
  @ApiOkResponse({ type: OrganizationDto })
  @ApiErrors(400)
  update(@Tx() tx: TenantTx, @Body() dto: UpdateOrganizationDto): Promise<OrganizationDto> {
    return this.orgs.update(tx, dto);
  }

  @Delete()
  @HttpCode(204)
  @RequireRole('owner')
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'organization.personal')
  @ApiOperation({
    operationId: 'deleteOrganization', summary: 'Delete a business organization (owner)',
    description: 'Nobody can act in the organization any more; its books stay (journal entries are kept by law). Its pending invitations are '
      + 'revoked (none is mailed or accepted afterwards; audited invitation.revoked, reason organization_deleted). Its subscriptions are canceled '
      + 'right after, in Stripe too, with no proration (event `organization.deleted`, then `subscription.canceled` for each).',
  })
  @ApiNoContentResponse()
  delete(@Tx() tx: TenantTx): Promise<void> {
    return this.orgs.delete(tx);
  }
}
