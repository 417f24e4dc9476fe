import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsOptional, IsString, IsUUID, Length, MaxLength } from 'class-validator';
import { emailInput } from '../../platform/http/email.js';
import { IsEmailAddress } from '../auth/email-address.validator.js';
import { PageQuery } from '../../platform/http/pagination.js';
import { PageInfo } from '../../platform/http/openapi.js';

export const INVITABLE_ROLES = ['admin', 'accountant', 'member', 'viewer'] as const;
export const INVITATION_STATUSES = ['pending', 'accepted', 'revoked', 'expired'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];
/** What became of a new invitation's e-mail: queued to be mailed, or withheld (the address's hourly cap across organizations). */
export const INVITATION_MAIL = ['queued', 'withheld'] as const;
export type InvitationMail = (typeof INVITATION_MAIL)[number];

@ApiSchema({ description: 'Who to invite, and with which role' })
export class CreateInvitationDto {
  @ApiProperty({ description: 'E-mail address to invite; trimmed, lower-cased and in Unicode NFC. Only the user with this e-mail can accept', example: 'grace@example.com' })
  @Transform(emailInput)
  @IsEmailAddress() @MaxLength(320)
  email: string;

  @ApiProperty({ description: 'Role the invitee gets on accepting (owner cannot be invited)', enum: INVITABLE_ROLES }) @IsIn(INVITABLE_ROLES as unknown as string[]) role: string;
}

export class InvitationQuery extends PageQuery {
  @ApiPropertyOptional({ enum: INVITATION_STATUSES }) @IsOptional() @IsIn(INVITATION_STATUSES as unknown as string[]) status?: InvitationStatus;
}

@ApiSchema({ description: 'An invitation to join an organization' })
export class InvitationDto {
  @ApiProperty({ description: 'The invitation id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'The organization the invitation is to', format: 'uuid' }) orgId: string;
  @ApiProperty({ description: 'E-mail address the invitation was sent to' }) email: string;
  @ApiProperty({ description: 'Role the invitee gets on accepting', enum: INVITABLE_ROLES }) role: string;
  @ApiProperty({ description: 'pending, accepted, revoked, or expired (unanswered past expiresAt)', enum: INVITATION_STATUSES }) status: InvitationStatus;
  @ApiProperty({ description: 'Id of the user who invited; null when a service invited or that user was deleted', type: String, nullable: true }) invitedBy: string | null;
  @ApiProperty({ description: 'When the invitation stops being acceptable' }) expiresAt: Date;
  @ApiProperty({ description: 'When it was accepted; null while not accepted', type: Date, nullable: true }) acceptedAt: Date | null;
  @ApiProperty({ description: 'Id of the user who accepted; null while not accepted or when that user was deleted', type: String, nullable: true }) acceptedBy: string | null;
  @ApiProperty({ description: 'When it was revoked; null while not revoked', type: Date, nullable: true }) revokedAt: Date | null;
  @ApiProperty({ description: 'When the invitation was created' }) createdAt: Date;
}

@ApiSchema({ description: 'A new invitation, with its secret token (shown only once)' })
export class CreatedInvitationDto extends InvitationDto {
  @ApiProperty({ description: 'The secret to send to the invitee. Shown once: only its SHA-256 hash is stored.' })
  token: string;

  @ApiProperty({
    description: 'The invitation e-mail: queued (handed to the mail queue: sent shortly where the server has a mailer, SMTP_URL; the organization\'s e-mail delivery log tells the outcome), or withheld (the address already had its '
      + 'hourly cap of invitations from any organizations: no e-mail goes out, its delivery is recorded not_sent; share the '
      + 'link yourself, with the orgId and the token)',
    enum: INVITATION_MAIL, example: 'withheld',
  })
  mail: InvitationMail;
}

@ApiSchema({ description: 'A page of invitations' })
export class InvitationPage extends PageInfo {
  @ApiProperty({ description: 'The invitations on this page', type: [InvitationDto] }) items: InvitationDto[];
}

@ApiSchema({ description: 'The organization and the invitation token to accept' })
export class AcceptInvitationDto {
  @ApiProperty({ description: 'The organization the invitation is to', format: 'uuid' }) @IsUUID() orgId: string;
  @ApiProperty({ description: 'The secret token from the invitation' }) @IsString() @Length(20, 200) token: string;
}

@ApiSchema({ description: 'The membership the accepted invitation created' })
export class AcceptedInvitationDto {
  @ApiProperty({ description: 'The organization joined', format: 'uuid' }) orgId: string;
  @ApiProperty({ description: 'Id of the user who joined' }) userId: string;
  @ApiProperty({ description: 'The role the user now has in the organization', enum: INVITABLE_ROLES }) role: string;
}
