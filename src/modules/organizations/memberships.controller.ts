import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Query } from '@nestjs/common';
import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { PageQuery } from '../../platform/http/pagination.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { MembershipsService } from './memberships.service.js';
import { ChangeRoleDto, MemberDto, MemberPage } from './membership.dto.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import './organizations.errors.js'; // registers OrganizationsErrors
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors

const ENDS_ADMIN_GRANTS = 'A member who stops being owner or admin (leaving, removed, or demoted below admin) loses what they created with that role: their API keys of the organization are revoked (api_key.revoked), their pending invitations revoked (invitation.revoked, with the reason) and the enabled webhook endpoints whose URL they chose or whose current signing secret they received (urlSetBy, secretSetBy) disabled (webhooks.endpoint_disabled; disabledReason configurer_left, configurer_removed or configurer_demoted), and a previous signing secret they received that still signs during a rotation\'s overlap stops signing (webhooks.previous_secret_cleared).';

@ApiTags('members')
@OrgRoute()
@Controller('v1/orgs/:orgId/members')
export class MembershipsController {
  constructor(private readonly members: MembershipsService) {}

  @Get()
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  @ApiOperation({ operationId: 'listMembers', summary: 'Members of the organization with their email, name and role (members; a service key too)' })
  @ApiOkResponse({ type: MemberPage })
  @ApiErrors(400)
  list(@Tx() tx: TenantTx, @Query() q: PageQuery): Promise<MemberPage> {
    return this.members.list(tx, q.limit ?? 50, q.cursor);
  }

  // Declared before /:userId so that "me" is not taken for a user id.
  @Delete('me')
  @HttpCode(204)
  @ApiErrorCodes('organization.not_found', 'auth.user_required', 'member.not_found', 'membership.last_owner')
  @ApiOperation({ operationId: 'leaveOrganization', summary: 'Leave the organization (the last owner cannot)', description: ENDS_ADMIN_GRANTS })
  @ApiNoContentResponse()
  @ApiErrors(409)
  leave(@Tx() tx: TenantTx): Promise<void> {
    return this.members.leave(tx);
  }

  @Patch(':userId')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'member.not_found', 'membership.owner_only', 'membership.last_owner')
  @ApiOperation({ operationId: 'changeMemberRole', summary: "Change a member's role (admin, service key; only an owner or a service key grants or takes away 'owner')", description: ENDS_ADMIN_GRANTS })
  @ApiParam({ name: 'userId' })
  @ApiOkResponse({ type: MemberDto })
  @ApiErrors(400, 409)
  changeRole(@Tx() tx: TenantTx, @Param('userId') userId: string, @Body() dto: ChangeRoleDto): Promise<MemberDto> {
    return this.members.changeRole(tx, userId, dto.role);
  }

  @Delete(':userId')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'member.not_found', 'membership.owner_only', 'membership.last_owner')
  @ApiOperation({ operationId: 'removeMember', summary: 'Remove a member (admin, service key; only an owner or a service key removes an owner; never the last owner)', description: ENDS_ADMIN_GRANTS })
  @ApiParam({ name: 'userId' })
  @ApiNoContentResponse()
  @ApiErrors(409)
  remove(@Tx() tx: TenantTx, @Param('userId') userId: string): Promise<void> {
    return this.members.remove(tx, userId);
  }
}
