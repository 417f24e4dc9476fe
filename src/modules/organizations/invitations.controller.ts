import { Body, Controller, Delete, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { ConsumesLimit, OrgRoute, RequireRole, Tx, UserRoute } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { INVITATIONS_PER_MAILBOX_PER_HOUR, INVITATIONS_PER_ORGANIZATION_PER_HOUR, InvitationsService, SEATS_APP } from './invitations.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import './invitation.errors.js';
import {
  AcceptedInvitationDto, AcceptInvitationDto, CreatedInvitationDto, CreateInvitationDto, InvitationPage, InvitationQuery,
} from './invitation.dto.js';
import '../billing/billing.errors.js'; // registers BillingErrors
import './organizations.errors.js'; // registers OrganizationsErrors
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors
import '../auth/auth.errors.js'; // registers AuthErrors

@ApiTags('invitations')
@OrgRoute()
@RequireRole(...ADMIN_ROLES)
@Controller('v1/orgs/:orgId/invitations')
export class InvitationsController {
  constructor(private readonly invitations: InvitationsService) {}

  @Post()
  @ConsumesLimit(SEATS_APP, 'users')
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'invitation.personal_organization', 'invitation.already_member', 'invitation.pending_exists',
    'invitation.mail_limited', 'billing.limit_reached', 'auth.email_unverified')
  @ApiOperation({
    operationId: 'createInvitation', summary: 'Invite someone by email with a role (admin). The response holds the token, once.',
    description: `Each invitation mails its invitee. From one organization, at most ${INVITATIONS_PER_MAILBOX_PER_HOUR} invitations per hour to one `
      + 'address (a "+tag" of the address counts as the address, and so do the dots of a gmail.com or googlemail.com one) and '
      + `${INVITATIONS_PER_ORGANIZATION_PER_HOUR} per hour in all, revoked ones included: `
      + 'past either, 429 invitation.mail_limited (details: per = address or organization, limit, retryAfterSeconds; Retry-After header). '
      + `Once ${INVITATIONS_PER_MAILBOX_PER_HOUR} invitations to the address were made within the hour by any organizations, the invitation is `
      + 'still created (201) but not mailed (the response\'s mail is "withheld"; its e-mail is recorded not_sent, with the reason): share '
      + 'the link yourself, with the orgId and the token of this response (the invitee accepts with POST /v1/invitations/accept, from an '
      + 'account whose e-mail is verified). An invitation sent by a person needs their e-mail verified (403 auth.email_unverified until it is).',
  })
  @ApiCreatedResponse({ type: CreatedInvitationDto })
  @ApiErrors(400, 409, 422)
  create(@Tx() tx: TenantTx, @Body() dto: CreateInvitationDto): Promise<CreatedInvitationDto> {
    return this.invitations.create(tx, dto);
  }

  @Get()
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'pagination.cursor')
  @ApiOperation({ operationId: 'listInvitations', summary: 'Invitations of the organization, newest first (admin)' })
  @ApiOkResponse({ type: InvitationPage })
  @ApiErrors(400)
  list(@Tx() tx: TenantTx, @Query() q: InvitationQuery): Promise<InvitationPage> {
    return this.invitations.list(tx, q.limit ?? 50, q.status, q.cursor);
  }

  @Delete(':invitationId')
  @HttpCode(204)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'invitation.not_found', 'invitation.not_pending')
  @ApiOperation({ operationId: 'revokeInvitation', summary: 'Revoke a pending invitation (admin)' })
  @ApiParam({ name: 'invitationId', format: 'uuid' })
  @ApiNoContentResponse()
  @ApiErrors(400, 409)
  revoke(@Tx() tx: TenantTx, @IdParam('invitationId', 'invitation') id: string): Promise<void> {
    return this.invitations.revoke(tx, id);
  }
}

@ApiTags('invitations')
@UserRoute()
@Controller('v1/invitations')
export class InvitationAcceptanceController {
  constructor(private readonly invitations: InvitationsService) {}

  @Post('accept')
  @HttpCode(200)
  @ApiErrorCodes('auth.user_required', 'invitation.not_found', 'invitation.email_mismatch', 'invitation.already_member', 'invitation.email_unverified',
    'billing.limit_reached', 'billing.subscription_inactive')
  @ApiOperation({
    operationId: 'acceptInvitation', summary: 'Accept an invitation sent to your email address; you become a member',
    description: 'An account whose e-mail is not verified may accept only with the token of the mailed link (which proves the address and '
      + 'verifies it); with the token shown to the inviting admin it gets 403 invitation.email_unverified. '
      + 'When the organization\'s members already reach the users limit of its omnizen plan (invitations made before a downgrade), '
      + 'the answer is 402 billing.limit_reached (details: app, feature, plan, limit, usage = the members, upgradeTo) and the '
      + 'invitation stays pending, to be accepted once the organization upgrades or a member leaves. A new member is a write: '
      + 'while the organization\'s omnizen subscription is read-only (its trial ended, canceled, unpaid, past due beyond the grace '
      + 'period) the answer is 402 billing.subscription_inactive (details: app, plan, status) and the invitation stays pending '
      + 'until the subscription is renewed. Both are answered only for a valid invitation of the caller.',
  })
  @ApiOkResponse({ type: AcceptedInvitationDto })
  @ApiErrors(400, 404, 409)
  accept(@Tx() tx: TenantTx, @Body() dto: AcceptInvitationDto): Promise<AcceptedInvitationDto> {
    return this.invitations.accept(tx, dto);
  }
}
