import { Controller, Get, HttpCode, Post, Query, Req, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../../platform/auth/principal.js';
import { Public } from '../../platform/auth/public.decorator.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { IdParam } from '../../platform/http/id-param.js';
import { ApiErrors, CONTENT_DISPOSITION } from '../../platform/http/openapi.js';
import { CurrentPrincipal, OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { DataExportService } from './data-export.service.js';
import { DataExportDto, DownloadQuery } from './privacy.dto.js';

const QUEUED: DataExportDto = {
  id: '5f0c2b9e-7d4a-4c1e-9b8f-2a3d4e5f6a7b', kind: 'person', status: 'queued', progress: 0, tablesDone: 0, tablesTotal: 0, rowsWritten: 0,
  sizeBytes: null, createdAt: '2026-12-02T09:30:00.000Z', completedAt: null, expiresAt: null, downloadUrl: null, error: null,
};
const READY: DataExportDto = {
  ...QUEUED, status: 'ready', progress: 100, tablesDone: 14, tablesTotal: 14, rowsWritten: 212, sizeBytes: 18342,
  completedAt: '2026-12-02T09:30:04.000Z', expiresAt: '2026-12-03T09:30:04.000Z',
  downloadUrl: '/v1/data-exports/download?token=5f0c2b9e-7d4a-4c1e-9b8f-2a3d4e5f6a7b.1764840604000.c2lnbmF0dXJlLW9mLXRoZS1saW5rLWZvci10aGUtZXhwb3J0',
};

/** The signed-in person's export of everything about them (data portability). Not an org route: it crosses organizations. */
@ApiTags('privacy')
@ApiBearerAuth()
@Controller('v1/me')
export class MyDataExportController {
  constructor(private readonly exports: DataExportService) {}

  @Post('data-export')
  @HttpCode(202)
  @ApiOperation({
    operationId: 'requestMyDataExport',
    summary: 'Export everything about the signed-in person: one ZIP of JSON per table with a README, prepared by a job',
    description: 'Every table of the personal-data catalog that locates you (profile, memberships, sessions, audit entries where you are the actor, '
      + 'integrations without secrets, provider page, notifications, analytics events, agent runs you started, expense claims...). Follow its '
      + 'progress with GET /v1/me/data-exports/{exportId}; when ready, downloadUrl is valid for 24 hours. Audited as data_export.requested.',
  })
  @ApiAcceptedResponse({ type: DataExportDto, example: QUEUED })
  @ApiErrors(401)
  @ApiErrorCodes('privacy.user_required', 'privacy.export_in_progress')
  request(@CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<DataExportDto> {
    return this.exports.requestPersonal(principal, { requestId: req.id });
  }

  @Get('data-exports/:exportId')
  @ApiOperation({ operationId: 'getMyDataExport', summary: 'Status and progress of an export of your data; its download link once ready' })
  @ApiOkResponse({ type: DataExportDto, example: READY })
  @ApiErrors(401)
  @ApiErrorCodes('privacy.user_required', 'data_export.not_found')
  get(@CurrentPrincipal() principal: Principal, @IdParam('exportId', 'data_export') id: string): Promise<DataExportDto> {
    return this.exports.getPersonal(principal, id);
  }
}

/** An organization's export of its data (owners): one ZIP of CSV per table. */
@ApiTags('privacy')
@OrgRoute()
@RequireRole('owner')
@Controller('v1/orgs/:orgId')
export class OrganizationDataExportController {
  constructor(private readonly exports: DataExportService) {}

  @Post('data-export')
  @HttpCode(202)
  @ApiOperation({
    operationId: 'requestOrganizationDataExport',
    summary: 'Export the organization\'s data (owners): one ZIP of CSV per table (every table with its rows) with a README, prepared by a job',
    description: 'Follow it with GET /v1/orgs/{orgId}/data-exports/{exportId}; when ready, downloadUrl is valid for 24 hours. Secrets and token hashes are '
      + 'never exported. Audited as data_export.requested.',
  })
  @ApiAcceptedResponse({ type: DataExportDto, example: { ...QUEUED, kind: 'organization' } })
  @ApiErrors(400)
  @ApiErrorCodes('privacy.export_in_progress')
  request(@Tx() tx: TenantTx): Promise<DataExportDto> {
    return this.exports.requestOrganization(tx);
  }

  @Get('data-exports/:exportId')
  @ApiOperation({ operationId: 'getOrganizationDataExport', summary: 'Status and progress of an organization\'s export; its download link once ready (owners)' })
  @ApiOkResponse({ type: DataExportDto, example: { ...READY, kind: 'organization' } })
  @ApiErrorCodes('data_export.not_found')
  get(@Tx() tx: TenantTx, @IdParam('exportId', 'data_export') id: string): Promise<DataExportDto> {
    return this.exports.getOrganization(tx, id);
  }
}

/** The download link of an export: a signed token, so a browser can follow it without an access token. */
@ApiTags('privacy')
@Public()
@Controller('v1/data-exports')
export class DataExportDownloadController {
  constructor(private readonly exports: DataExportService) {}

  @Get('download')
  @ApiOperation({ operationId: 'getDataExportArchive', summary: 'Download a ready export (the link of its downloadUrl; valid 24 hours, no access token needed)' })
  @ApiOkResponse({ description: 'The ZIP archive', content: { 'application/zip': { schema: { type: 'string', format: 'binary' } } },
    headers: { 'Content-Disposition': CONTENT_DISPOSITION('attachment; filename="omnizen-organization-6c1f2b1e.zip"') } })
  @ApiErrors(400)
  @ApiErrorCodes('privacy.export_link_invalid', 'privacy.export_link_expired')
  async download(@Query() q: DownloadQuery, @Res({ passthrough: true }) res: FastifyReply) {
    const file = await this.exports.open(q.token);
    res.header('Content-Type', 'application/zip');
    res.header('Content-Length', String(file.sizeBytes));
    res.header('Content-Disposition', `attachment; filename="${file.fileName}"`);
    res.header('Cache-Control', 'no-store');
    return file.stream;
  }
}
