import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiTags, ApiSchema } from '@nestjs/swagger';
import { IsDateString, IsOptional, IsString, MaxLength } from 'class-validator';
import { OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { decodeCursor, page, PageQuery } from '../../platform/http/pagination.js';
import { ApiErrors, PageInfo } from '../../platform/http/openapi.js';
import { AuditService } from './audit.service.js';

class AuditQuery extends PageQuery {
  @ApiPropertyOptional({ example: 'organization.updated' }) @IsOptional() @IsString() @MaxLength(200) action?: string;
  @ApiPropertyOptional({ example: 'organization' }) @IsOptional() @IsString() @MaxLength(200) entityType?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(200) entityId?: string;
  @ApiPropertyOptional({ description: 'user id, or service:<name>' }) @IsOptional() @IsString() @MaxLength(200) actorId?: string;
  @ApiPropertyOptional({ format: 'date-time', description: 'occurred at or after' }) @IsOptional() @IsDateString() from?: string;
  @ApiPropertyOptional({ format: 'date-time', description: 'occurred before' }) @IsOptional() @IsDateString() to?: string;
}

@ApiSchema({ description: 'One audited change: who did what to which entity, with the entity before and after' })
class AuditLogDto {
  @ApiProperty() id: string;
  @ApiProperty() occurredAt: Date;
  @ApiProperty({ type: String, nullable: true }) actorId: string | null;
  @ApiProperty({ enum: ['user', 'service', 'system', 'anonymous'] }) principalType: string;
  @ApiProperty() action: string;
  @ApiProperty() entityType: string;
  @ApiProperty({ type: String, nullable: true }) entityId: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'the entity before the change (JSON)' }) before: unknown;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'the entity after the change (JSON)' }) after: unknown;
  @ApiProperty({ type: String, nullable: true }) requestId: string | null;
  @ApiProperty({ type: String, nullable: true }) ip: string | null;
}

@ApiSchema({ description: 'A page of audit log entries, newest first' })
class AuditPage extends PageInfo {
  @ApiProperty({ type: [AuditLogDto] }) items: AuditLogDto[];
}

@ApiTags('audit')
@OrgRoute()
@Controller('v1/orgs/:orgId/audit-logs')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'listAuditLogs', summary: 'Audit log of the organization, newest first (admins)' })
  @ApiOkResponse({ type: AuditPage })
  @ApiErrors(400)
  async list(@Tx() tx: TenantTx, @Query() q: AuditQuery): Promise<AuditPage> {
    const limit = q.limit ?? 50;
    const { cursor, limit: _, ...filter } = q;
    const rows = await this.audit.list(tx, { ...filter, limit: limit + 1 }, decodeCursor<unknown>(cursor));
    return page(rows, limit, (r) => r.id);
  }
}
