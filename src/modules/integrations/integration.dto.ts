import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsIn, IsObject, IsOptional, IsString, Length, Matches, MaxLength, ValidateIf } from 'class-validator';
import { IsEmailAddress } from '../auth/email-address.validator.js';

export const INTEGRATION_STATUSES = ['active', 'disabled', 'error'] as const;

@ApiSchema({ description: 'A new integration of one type' })
export class CreateIntegrationDto {
  @ApiProperty({ example: 'icloud', description: 'One integration per type and user' })
  @IsString() @Matches(/^[a-z][a-z0-9_-]{1,39}$/, { message: 'integrationType must be 2-40 lowercase letters, digits, _ or -, starting with a letter' })
  integrationType: string;
  @ApiPropertyOptional({ description: 'A name for the integration, shown to the user', example: 'Personal iCloud' }) @IsOptional() @IsString() @Length(1, 200) label?: string;
  @ApiPropertyOptional({ description: 'The user\'s account name at the outside service', example: 'trainer@example.com' }) @IsOptional() @IsString() @Length(1, 320) externalUsername?: string;
  @ApiPropertyOptional({ description: 'The user\'s e-mail address at the outside service', example: 'trainer@example.com' }) @IsOptional() @IsEmailAddress() @MaxLength(320) externalEmail?: string;
}

@ApiSchema({ description: 'Changes to an integration; fields left out keep their value, null clears the label' })
export class UpdateIntegrationDto {
  @ApiPropertyOptional({ type: String, example: 'Work iCloud', nullable: true, description: 'null clears the label' })
  @ValidateIf((o) => o.label !== null) @IsOptional() @IsString() @Length(1, 200) label?: string | null;
  @ApiPropertyOptional({ description: 'active: used; disabled: kept but not used; error: marked as failing', enum: INTEGRATION_STATUSES }) @IsOptional() @IsIn(INTEGRATION_STATUSES) status?: (typeof INTEGRATION_STATUSES)[number];
}

@ApiSchema({ description: "The integration's credentials, stored encrypted" })
export class SetIntegrationSecretDto {
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: 'The credentials, write-only: never returned. CalDAV (icloud, caldav): { username, password, serverUrl? }',
    example: { username: 'trainer@example.com', password: 'abcd-efgh-ijkl-mnop' },
  })
  @IsObject() credentials: Record<string, unknown>;
}

@ApiSchema({ description: 'A connection of the signed-in user to an outside service (a calendar); its secret is never returned' })
export class IntegrationDto {
  @ApiProperty({ description: 'The integration id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'The kind of outside service (icloud, caldav, ...); one integration per type and user', example: 'icloud' }) integrationType: string;
  @ApiProperty({ description: 'A name for the integration; null when none is set', type: String, nullable: true }) label: string | null;
  @ApiProperty({ description: 'active: used (only active calendars block slots); disabled: kept but not used; error: marked as failing', enum: INTEGRATION_STATUSES }) status: string;
  @ApiProperty({ description: 'The user\'s account name at the outside service; null when not given', type: String, nullable: true }) externalUsername: string | null;
  @ApiProperty({ description: 'The user\'s e-mail address at the outside service; null when not given', type: String, nullable: true }) externalEmail: string | null;
  @ApiProperty({ description: 'Whether a secret is stored; the secret itself is never returned' }) hasSecret: boolean;
  @ApiProperty({ description: 'When the integration was created' }) createdAt: Date;
  @ApiProperty({ description: 'When the integration was last changed' }) updatedAt: Date;
}
