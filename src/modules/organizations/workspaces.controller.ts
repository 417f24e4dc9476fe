import { Body, Controller, Delete, Get, HttpCode, Post, Put } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { ConsumesLimit, OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { WorkspacesService } from './workspaces.service.js';
import { WorkspaceDto, WorkspaceInputDto } from './workspace.dto.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import '../billing/billing.errors.js'; // registers BillingErrors
import './organizations.errors.js'; // registers OrganizationsErrors
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors

@ApiTags('workspaces')
@OrgRoute()
@Controller('v1/orgs/:orgId/workspaces')
export class WorkspacesController {
  constructor(private readonly workspaces: WorkspacesService) {}

  @Get()
  @ApiErrorCodes('organization.not_found')
  @ApiOperation({ operationId: 'listWorkspaces', summary: 'Workspaces of the organization' })
  @ApiOkResponse({ type: [WorkspaceDto] })
  list(@Tx() tx: TenantTx): Promise<WorkspaceDto[]> {
    return this.workspaces.list(tx);
  }

  // Declared before /:workspaceId so that "current" is not taken for an id.
  @Get('current')
  @ApiErrorCodes('organization.not_found', 'workspace.invalid', 'workspace.not_found')
  @ApiOperation({ operationId: 'getCurrentWorkspace', summary: 'The workspace this request acts in (the X-Workspace-Id header), as the database sees it' })
  @ApiOkResponse({ type: WorkspaceDto })
  current(@Tx() tx: TenantTx): Promise<WorkspaceDto> {
    return this.workspaces.current(tx);
  }

  @Get(':workspaceId')
  @ApiErrorCodes('organization.not_found', 'workspace.not_found')
  @ApiOperation({ operationId: 'getWorkspace', summary: 'Read a workspace' })
  @ApiParam({ name: 'workspaceId', format: 'uuid' })
  @ApiOkResponse({ type: WorkspaceDto })
  @ApiErrors(400)
  get(@Tx() tx: TenantTx, @IdParam('workspaceId', 'workspace') id: string): Promise<WorkspaceDto> {
    return this.workspaces.get(tx, id);
  }

  @Post()
  @RequireRole(...ADMIN_ROLES)
  @ConsumesLimit('omnizen', 'workspaces')
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'workspace.name_taken', 'billing.limit_reached')
  @ApiOperation({ operationId: 'createWorkspace', summary: 'Create a workspace (admin)' })
  @ApiCreatedResponse({ type: WorkspaceDto })
  @ApiErrors(400, 409)
  create(@Tx() tx: TenantTx, @Body() dto: WorkspaceInputDto): Promise<WorkspaceDto> {
    return this.workspaces.create(tx, dto.name);
  }

  @Put(':workspaceId')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'workspace.not_found', 'workspace.name_taken')
  @ApiOperation({ operationId: 'renameWorkspace', summary: 'Rename a workspace (admin)' })
  @ApiParam({ name: 'workspaceId', format: 'uuid' })
  @ApiOkResponse({ type: WorkspaceDto })
  @ApiErrors(400, 409)
  rename(@Tx() tx: TenantTx, @IdParam('workspaceId', 'workspace') id: string, @Body() dto: WorkspaceInputDto): Promise<WorkspaceDto> {
    return this.workspaces.rename(tx, id, dto.name);
  }

  @Delete(':workspaceId')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'workspace.not_found', 'workspace.not_empty', 'conflict.reference')
  @ApiOperation({ operationId: 'deleteWorkspace', summary: 'Delete a workspace (admin)',
    description: 'Refused (409) while the workspace holds knowledge collections (workspace.not_empty: delete them first) or journal lines or AI agents refer to it (conflict.reference).' })
  @ApiParam({ name: 'workspaceId', format: 'uuid' })
  @ApiNoContentResponse()
  @ApiErrors(400)
  delete(@Tx() tx: TenantTx, @IdParam('workspaceId', 'workspace') id: string): Promise<void> {
    return this.workspaces.delete(tx, id);
  }
}
