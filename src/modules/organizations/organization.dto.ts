import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ORG_ROLES } from '../../platform/auth/principal.js';
import { IsOptional, IsString, Length, Matches, ValidateIf } from 'class-validator';

/** A name is stored trimmed (as a workspace's): one of only whitespace is empty, refused as too short (400 naming it). */
const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

@ApiSchema({ description: 'A new business organization' })
export class CreateOrganizationDto {
  @ApiProperty({ description: 'Name of the organization (1 to 200 characters, trimmed)', example: 'Acme Trading LLC' })
  @Transform(trim) @IsString() @Length(1, 200)
  name: string;
}

@ApiSchema({ description: 'Changes to an organization; fields left out keep their value' })
export class UpdateOrganizationDto {
  @ApiPropertyOptional({ description: 'New name of the organization (1 to 200 characters, trimmed)', example: 'Acme Trading LLC' })
  @Transform(trim) @IsOptional() @IsString() @Length(1, 200)
  name?: string;
  @ApiPropertyOptional({ type: String, nullable: true, example: 'acme.example', description: 'The organization\'s email or web domain; null clears it' })
  @ValidateIf((o) => o.domain !== null) @IsOptional() @IsString() @Matches(/^(?=.{1,253}$)([a-z0-9-]+\.)+[a-z]{2,}$/, { message: 'domain must be a lowercase domain name' })
  domain?: string | null;
}

@ApiSchema({ description: "An organization the caller belongs to, with the caller's role in it" })
export class OrganizationDto {
  @ApiProperty({ description: 'The organization id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'Name of the organization' }) name: string;
  @ApiProperty({ description: 'personal: the one-member organization every user gets; business: one created to share with members', enum: ['personal', 'business'] }) accountType: string;
  @ApiProperty({ description: 'The organization\'s email or web domain; null when not set', type: String, nullable: true }) domain: string | null;
  @ApiProperty({ description: 'Id of the user who created the organization (of a personal organization: its person, who is billed for it). It does not change when that user leaves; the owners are the members with role owner' }) ownerUserId: string;
  @ApiPropertyOptional({ enum: [...ORG_ROLES, 'service', 'analyst'], description: 'The caller\'s role in the organization (service: the service-role key; analyst: a mapped database login)' }) role?: string;
  @ApiProperty({ description: 'When the organization was created' }) createdAt: Date;
  @ApiProperty({ description: 'When the organization was last changed' }) updatedAt: Date;
}
