import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsDateString, IsOptional, IsString, Matches } from 'class-validator';
import { OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { decodeCursor, page, PageQuery } from '../../platform/http/pagination.js';
import { PageInfo } from '../../platform/http/openapi.js';

class AuditQuery extends PageQuery {
  @ApiPropertyOptional({ example: 'organization.updated' }) @IsOptional() @IsString() action?: string;
  @ApiPropertyOptional({ example: 'organization' }) @IsOptional() @IsString() entityType?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() entityId?: string;
  @ApiPropertyOptional({ description: 'user id, or service:<name>' }) @IsOptional() @IsString() actorId?: string;
  @ApiPropertyOptional({ format: 'date-time' }) @IsOptional() @IsDateString() from?: string;
  @ApiPropertyOptional({ format: 'date-time' }) @IsOptional() @IsDateString() to?: string;
}

class AuditLogDto {
  @ApiProperty() id: string;
  @ApiProperty() occurredAt: Date;
  @ApiPropertyOptional() actorId: string | null;
  @ApiProperty({ enum: ['user', 'service', 'system', 'anonymous'] }) principalType: string;
  @ApiProperty() action: string;
  @ApiProperty() entityType: string;
  @ApiPropertyOptional() entityId: string | null;
  @ApiPropertyOptional() before: unknown;
  @ApiPropertyOptional() after: unknown;
  @ApiPropertyOptional() requestId: string | null;
  @ApiPropertyOptional() ip: string | null;
}

class AuditPage extends PageInfo {
  @ApiProperty({ type: [AuditLogDto] }) items: AuditLogDto[];
}

@ApiTags('audit')
@OrgRoute()
@Controller('v1/orgs/:orgId/audit-logs')
export class AuditController {
  @Get()
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Audit log of the organization, newest first (admins)' })
  @ApiOkResponse({ type: AuditPage })
  async list(@Tx() tx: TenantTx, @Query() q: AuditQuery): Promise<AuditPage> {
    const limit = q.limit ?? 50;
    const after = decodeCursor<string>(q.cursor);
    const rows = await tx.db.$queryRaw<any[]>`
      SELECT id::text, occurred_at, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip
      FROM core.audit_logs
      WHERE org_id = ${tx.orgId}::uuid
        AND (${after ?? null}::bigint IS NULL OR id < ${after ?? null}::bigint)
        AND (${q.action ?? null}::text IS NULL OR action = ${q.action ?? null})
        AND (${q.entityType ?? null}::text IS NULL OR entity_type = ${q.entityType ?? null})
        AND (${q.entityId ?? null}::text IS NULL OR entity_id = ${q.entityId ?? null})
        AND (${q.actorId ?? null}::text IS NULL OR actor_id = ${q.actorId ?? null})
        AND (${q.from ?? null}::timestamptz IS NULL OR occurred_at >= ${q.from ?? null}::timestamptz)
        AND (${q.to ?? null}::timestamptz IS NULL OR occurred_at < ${q.to ?? null}::timestamptz)
      ORDER BY id DESC LIMIT ${limit + 1}`;
    const items = rows.map((r) => ({
      id: r.id, occurredAt: r.occurred_at, actorId: r.actor_id, principalType: r.principal_type, action: r.action,
      entityType: r.entity_type, entityId: r.entity_id, before: r.before, after: r.after, requestId: r.request_id, ip: r.ip,
    }));
    return page(items, limit, (r) => r.id);
  }
}
