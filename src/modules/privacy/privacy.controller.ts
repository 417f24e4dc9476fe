import { Body, Controller, Delete, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ADMIN_ROLES, type Principal } from '../../platform/auth/principal.js';
import { DatabaseService } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { CurrentPrincipal, OrgPreflightRoute, openTenant, Preflight, type PreflightTenant, RequireRole } from '../../platform/http/tenant.js';
import { clientInfo } from '../auth/auth.controller.js';
import { EraseMeDto, ErasureDto, PartyErasureDto } from './privacy.dto.js';
import { PartyErasureService } from './party-erasure.service.js';
import { ErasureService } from './erasure.service.js';

const ERASURE_EXAMPLE: ErasureDto = {
  userId: '9d3c1f0e-4b6a-4f2d-8e7c-6a5b4c3d2e1f',
  erasedAt: '2026-12-02T09:30:00.000Z',
  deletedOrganizationIds: ['1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6'],
  leftOrganizationIds: ['7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d'],
  sessionsRevoked: 2,
};

/** The signed-in person's own data (GDPR): erasure. Not an org route: it crosses every organization the person belongs to. */
@ApiTags('privacy')
@ApiBearerAuth()
@Controller('v1/me')
export class PrivacyController {
  constructor(private readonly erasure: ErasureService) {}

  @Delete()
  @HttpCode(200)
  @ApiOperation({
    operationId: 'eraseMe',
    summary: 'Erase the signed-in person (right to erasure); needs the password or an access token of a sign-in within the last 5 minutes (a refresh is no sign-in)',
    description: 'In one transaction: sessions and refresh tokens revoked; memberships ended; the personal organization (and business ones '
      + 'with no other member) deleted; integrations, their secrets and the provider page deleted; every personal field of the '
      + 'catalog (docs/privacy.md) erased or pseudonymized. The user row stays with e-mail `erased+<id>@invalid` and no name. Books of '
      + 'organizations the person belonged to are untouched. Audited as `user.erased` with ids and counts only. A password here counts '
      + 'like a login attempt (429 auth.locked past the limits of POST /v1/auth/login); a wrong one (403 privacy.password_incorrect) is '
      + 'audited as `auth.login_failed` in the personal organization, as a failed login is.',
  })
  @ApiOkResponse({ type: ErasureDto, example: ERASURE_EXAMPLE })
  @ApiErrors(400, 429)
  @ApiErrorCodes('privacy.user_required', 'privacy.recent_sign_in_required', 'privacy.password_incorrect', 'privacy.sole_owner', 'privacy.already_erased', 'auth.locked')
  eraseMe(@Body() dto: EraseMeDto, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<ErasureDto> {
    return this.erasure.eraseMe(principal, dto.password, clientInfo(req));
  }
}

/**
 * An organization erases a natural-person party (owner, admin, or a service key). One route per party table of the catalog, all
 * served by the same catalog-driven service. Not behind a
 * subscription: erasure is a legal duty on any plan. A preflight route: the service commits the party's erasure in its own
 * tenant transaction before the AI runs naming it are blanked on the privileged path.
 */
@ApiTags('privacy')
@OrgPreflightRoute()
@RequireRole(...ADMIN_ROLES)
@Controller('v1/orgs/:orgId/privacy')
export class PartyErasureController {
  constructor(private readonly parties: PartyErasureService, private readonly db: DatabaseService) {}

  @Post('vendors/:vendorId/erasure')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'eraseVendor',
    summary: 'Erase a natural-person vendor: contact fields blanked, name pseudonymized; its bills and payments keep amounts and numbers (owner, admin, service key)',
  })
  @ApiOkResponse({ type: PartyErasureDto })
  @ApiErrors(400)
  @ApiErrorCodes('privacy.party_not_found')
  eraseVendor(@Preflight() preflight: PreflightTenant, @IdParam('vendorId', 'vendor') vendorId: string): Promise<PartyErasureDto> {
    return this.parties.erase(openTenant(this.db, preflight), 'vendor', vendorId);
  }

  @Post('customers/:customerId/erasure')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'eraseCustomer',
    summary: 'Erase a natural-person customer: contact fields blanked, name pseudonymized; its invoices and receipts keep amounts and numbers (owner, admin, service key)',
  })
  @ApiOkResponse({ type: PartyErasureDto })
  @ApiErrors(400)
  @ApiErrorCodes('privacy.party_not_found')
  eraseCustomer(@Preflight() preflight: PreflightTenant, @IdParam('customerId', 'customer') customerId: string): Promise<PartyErasureDto> {
    return this.parties.erase(openTenant(this.db, preflight), 'customer', customerId);
  }
}
