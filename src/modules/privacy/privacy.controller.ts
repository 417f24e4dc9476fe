import { Body, Controller, Delete, HttpCode, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../platform/auth/principal.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { CurrentPrincipal } from '../../platform/http/tenant.js';
import { clientInfo } from '../auth/auth.controller.js';
import { EraseMeDto, ErasureDto } from './privacy.dto.js';
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
    summary: 'Erase the signed-in person (right to erasure); needs the password or an access token issued within the last 5 minutes',
    description: 'In one transaction: sessions and refresh tokens revoked; memberships ended; the personal organization (and business ones '
      + 'with no other member) deleted; integrations, their secrets and the provider page deleted; every personal field of the '
      + 'catalog (docs/privacy.md) erased or pseudonymized. The user row stays with e-mail `erased+<id>@invalid` and no name. Books of '
      + 'organizations the person belonged to are untouched. Audited as `user.erased` with ids and counts only.',
  })
  @ApiOkResponse({ type: ErasureDto, example: ERASURE_EXAMPLE })
  @ApiErrors(400)
  @ApiErrorCodes('privacy.user_required', 'privacy.recent_sign_in_required', 'privacy.password_incorrect', 'privacy.sole_owner', 'privacy.session_ended', 'privacy.already_erased')
  eraseMe(@Body() dto: EraseMeDto, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<ErasureDto> {
    return this.erasure.eraseMe(principal, dto.password, clientInfo(req));
  }
}
