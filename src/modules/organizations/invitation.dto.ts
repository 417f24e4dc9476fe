import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsEmail, IsIn, IsOptional, IsString, IsUUID, Length, MaxLength } from 'class-validator';
import { PageQuery } from '../../platform/http/pagination.js';
import { PageInfo } from '../../platform/http/openapi.js';

export const INVITABLE_ROLES = ['admin', 'accountant', 'member', 'viewer'] as const;
export const INVITATION_STATUSES = ['pending', 'accepted', 'revoked', 'expired'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];

@ApiSchema({ description: 'Who to invite, and with which role' })
export class CreateInvitationDto {
  @ApiProperty({ example: 'grace@example.com' })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim().toLowerCase() : value))
  @IsEmail() @MaxLength(320)
  email: string;

  @ApiProperty({ enum: INVITABLE_ROLES }) @IsIn(INVITABLE_ROLES as unknown as string[]) role: string;
}

export class InvitationQuery extends PageQuery {
  @ApiPropertyOptional({ enum: INVITATION_STATUSES }) @IsOptional() @IsIn(INVITATION_STATUSES as unknown as string[]) status?: InvitationStatus;
}

@ApiSchema({ description: 'An invitation to join an organization' })
export class InvitationDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty({ format: 'uuid' }) orgId: string;
  @ApiProperty() email: string;
  @ApiProperty({ enum: INVITABLE_ROLES }) role: string;
  @ApiProperty({ enum: INVITATION_STATUSES }) status: InvitationStatus;
  @ApiProperty({ type: String, nullable: true }) invitedBy: string | null;
  @ApiProperty() expiresAt: Date;
  @ApiProperty({ type: Date, nullable: true }) acceptedAt: Date | null;
  @ApiProperty({ type: String, nullable: true }) acceptedBy: string | null;
  @ApiProperty({ type: Date, nullable: true }) revokedAt: Date | null;
  @ApiProperty() createdAt: Date;
}

@ApiSchema({ description: 'A new invitation, with its secret token (shown only once)' })
export class CreatedInvitationDto extends InvitationDto {
  @ApiProperty({ description: 'The secret to send to the invitee. Shown once: only its SHA-256 hash is stored.' })
  token: string;
}

@ApiSchema({ description: 'A page of invitations' })
export class InvitationPage extends PageInfo {
  @ApiProperty({ type: [InvitationDto] }) items: InvitationDto[];
}

@ApiSchema({ description: 'The organization and the invitation token to accept' })
export class AcceptInvitationDto {
  @ApiProperty({ format: 'uuid' }) @IsUUID() orgId: string;
  @ApiProperty() @IsString() @Length(20, 200) token: string;
}

@ApiSchema({ description: 'The membership the accepted invitation created' })
export class AcceptedInvitationDto {
  @ApiProperty({ format: 'uuid' }) orgId: string;
  @ApiProperty() userId: string;
  @ApiProperty({ enum: INVITABLE_ROLES }) role: string;
}
