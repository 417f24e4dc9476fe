import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsIn, IsOptional, IsString, Length } from 'class-validator';
import { Timestamp } from '../../platform/http/calendar-date.js';
import { API_KEY_SCOPE_NAMES, API_KEY_SCOPES, type ApiKeyScope } from '../../platform/auth/api-key-scopes.js';

const SCOPE_LIST = API_KEY_SCOPE_NAMES.map((s) => `\`${s}\` (${API_KEY_SCOPES[s]})`).join(', ');

@ApiSchema({ description: 'A new API key: its name, scopes and optional expiry' })
export class CreateApiKeyDto {
  @ApiProperty({ description: 'A name to recognize the key by (1 to 200 characters, trimmed)', example: 'Nightly export' })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value))
  @IsString() @Length(1, 200)
  name: string;

  @ApiProperty({ description: `What the key may do, from the fixed list: ${SCOPE_LIST}`, enum: API_KEY_SCOPE_NAMES, isArray: true, example: ['ledger:read'] })
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(20) @ArrayUnique() @IsIn(API_KEY_SCOPE_NAMES, { each: true })
  scopes: ApiKeyScope[];

  @Timestamp('expiresAt') // above the ApiPropertyOptional it completes
  @ApiPropertyOptional({ description: 'When the key stops working (absent or null: never)', format: 'date-time', type: String, nullable: true, example: '2027-12-31T00:00:00.000Z' })
  @IsOptional()
  expiresAt?: string | null;
}

export const API_KEY_LIST_STATUSES = ['active', 'revoked', 'all'] as const;
export type ApiKeyListStatus = (typeof API_KEY_LIST_STATUSES)[number];

export class ApiKeyListQuery {
  @ApiPropertyOptional({ enum: API_KEY_LIST_STATUSES, default: 'active', description: 'Which keys: `active` the keys not revoked (expired ones included), `revoked` the revoked ones, `all` both' })
  @IsOptional() @IsIn(API_KEY_LIST_STATUSES)
  status?: ApiKeyListStatus;
}

@ApiSchema({ description: 'An API key as listed: never its secret' })
export class ApiKeyDto {
  @ApiProperty({ description: 'The key id', format: 'uuid', example: '0d9b7c8e-2f6a-4b1c-9e3d-5a7f1c2b3d4e' }) id: string;
  @ApiProperty({ description: 'The organization the key acts in', format: 'uuid', example: '3f0c5b2a-1d4e-4f6a-8b9c-0d1e2f3a4b5c' }) orgId: string;
  @ApiProperty({ description: 'Name of the key', example: 'Nightly export' }) name: string;
  @ApiProperty({ description: 'The public start of the secret (ozk_live_<id>), to recognize the key', example: 'ozk_live_0d9b7c8e2f6a4b1c9e3d5a7f1c2b3d4e' }) prefix: string;
  @ApiProperty({ description: 'What the key may do', enum: API_KEY_SCOPE_NAMES, isArray: true, example: ['ledger:read'] }) scopes: string[];
  @ApiProperty({ description: 'The user who created the key; null when that user was deleted', type: String, nullable: true, example: 'b3c1f2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d' }) createdBy: string | null;
  @ApiProperty({ description: 'When the key was created', example: '2026-12-02T09:00:00.000Z' }) createdAt: Date;
  @ApiProperty({ description: 'When the key expires; null: never', type: String, format: 'date-time', nullable: true, example: null }) expiresAt: Date | null;
  @ApiProperty({ description: 'When the key was last used (updated at most once a minute); null: never used', type: String, format: 'date-time', nullable: true, example: null }) lastUsedAt: Date | null;
  @ApiProperty({ description: 'When the key was revoked; null: live', type: String, format: 'date-time', nullable: true, example: null }) revokedAt: Date | null;
}

@ApiSchema({ description: 'A key just created, with its secret: shown this once, never again' })
export class CreatedApiKeyDto extends ApiKeyDto {
  @ApiProperty({ description: 'The secret, to send as `Authorization: Bearer <secret>`. Shown once; only its SHA-256 is stored', example: 'ozk_live_0d9b7c8e2f6a4b1c9e3d5a7f1c2b3d4e_Q2hhbmdlIG1lIGJlZm9yZSB1c2luZyBpbiBwcm9kdWN0aW9u' }) secret: string;
}
