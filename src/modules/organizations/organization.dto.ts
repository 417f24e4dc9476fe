import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Length, Matches } from 'class-validator';

export class CreateOrganizationDto {
  @ApiProperty({ example: 'Acme Trading LLC' }) @IsString() @Length(1, 200) name: string;
}

export class UpdateOrganizationDto {
  @ApiPropertyOptional({ example: 'Acme Trading LLC' }) @IsOptional() @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ example: 'acme.example' })
  @IsOptional() @IsString() @Matches(/^(?=.{1,253}$)([a-z0-9-]+\.)+[a-z]{2,}$/, { message: 'domain must be a lowercase domain name' })
  domain?: string;
}

export class OrganizationDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() name: string;
  @ApiProperty({ enum: ['personal', 'business'] }) accountType: string;
  @ApiPropertyOptional() domain: string | null;
  @ApiProperty() ownerUserId: string;
  @ApiPropertyOptional({ enum: ['owner', 'admin', 'accountant', 'member', 'viewer'], description: 'The caller\'s role' }) role?: string;
  @ApiProperty() createdAt: Date;
  @ApiProperty() updatedAt: Date;
}
