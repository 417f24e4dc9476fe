import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiTags, ApiSchema } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import { Timestamp } from '../../platform/http/calendar-date.js';
import { OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { decodeCursor, isSequenceNumber, page, PageQuery } from '../../platform/http/pagination.js';
import { ApiErrors, PageInfo } from '../../platform/http/openapi.js';
import { AuditService } from './audit.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors

class AuditQuery extends PageQuery {
  @ApiPropertyOptional({ example: 'organization.updated' }) @IsOptional() @IsString() @MaxLength(200) action?: string;
  @ApiPropertyOptional({ example: 'organization' }) @IsOptional() @IsString() @MaxLength(200) entityType?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(200) entityId?: string;
  @ApiPropertyOptional({ description: 'user id, or service:<name>' }) @IsOptional() @IsString() @MaxLength(200) actorId?: string;
  @Timestamp('from') @ApiPropertyOptional({
    format: 'date-time',
    description: 'occurred at or after. An entry\'s occurredAt is when the transaction that made the change began, and the entry '
      + 'becomes visible only when that transaction commits, which may be later; ids are not in commit order either. So an '
      + 'entry can appear after newer ones were already listed: a poller asking for from = the newest occurredAt it has read '
      + 'can miss it for good. To read the log incrementally, poll with an overlap window (from = the newest occurredAt read '
      + 'minus a margin longer than a transaction lasts, a few minutes) and skip the ids already read.',
  }) @IsOptional() from?: string;
  @Timestamp('to') @ApiPropertyOptional({ format: 'date-time', description: 'occurred before' }) @IsOptional() to?: string;
}

@ApiSchema({ description: 'One audited change: who did what to which entity, with the entity before and after' })
class AuditLogDto {
  @ApiProperty({ description: 'The entry id: a bigint as a decimal string' }) id: string;
  @ApiProperty({ description: 'When the change was recorded' }) occurredAt: Date;
  @ApiProperty({ description: 'Who made the change: a user id or service:<name>; null for system jobs and anonymous callers', type: String, nullable: true }) actorId: string | null;
  @ApiProperty({ description: 'The kind of actor: user, service, system (a background job) or anonymous', enum: ['user', 'service', 'system', 'anonymous'] }) principalType: string;
  @ApiProperty({ description: 'What was done, as <entity>.<verb>' }) action: string;
  @ApiProperty({ description: 'The kind of entity changed' }) entityType: string;
  @ApiProperty({ description: 'Id of the entity changed; null when the action has no single entity', type: String, nullable: true }) entityId: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'the entity before the change (JSON)' }) before: unknown;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'the entity after the change (JSON)' }) after: unknown;
  @ApiProperty({ description: 'Id of the request that made the change; null for background jobs', type: String, nullable: true }) requestId: string | null;
  @ApiProperty({ description: 'Client IP address of the request; null when unknown or for background jobs', type: String, nullable: true }) ip: string | null;
}

@ApiSchema({ description: 'A page of audit log entries, newest first' })
class AuditPage extends PageInfo {
  @ApiProperty({ description: 'The entries of this page, newest first', type: [AuditLogDto] }) items: AuditLogDto[];
}

@ApiTags('audit')
@OrgRoute()
@Controller('v1/orgs/:orgId/audit-logs')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'pagination.cursor')
  @ApiOperation({ operationId: 'listAuditLogs', summary: 'Audit log of the organization, newest first (admins)' })
  @ApiOkResponse({ type: AuditPage })
  @ApiErrors(400)
  async list(@Tx() tx: TenantTx, @Query() q: AuditQuery): Promise<AuditPage> {
    const limit = q.limit ?? 50;
    const { cursor, limit: _, ...filter } = q;
    const rows = await this.audit.list(tx, { ...filter, limit: limit + 1 }, decodeCursor<string>(cursor, isSequenceNumber));
    return page(rows, limit, (r) => r.id);
  }
}
