import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
import { ORG_ROLES, type OrgRole } from '../../platform/auth/principal.js';
import { PageInfo } from '../../platform/http/openapi.js';

@ApiSchema({ description: 'A member of an organization and their role' })
export class MemberDto {
  @ApiProperty({ description: 'Id of the member\'s user' }) userId: string;
  @ApiProperty({ description: 'E-mail address of the member' }) email: string;
  @ApiProperty({ description: 'Display name of the member; null when none is set', type: String, nullable: true }) name: string | null;
  @ApiProperty({ description: 'The member\'s role in the organization', enum: ORG_ROLES }) role: OrgRole;
  @ApiProperty({ description: 'When the user became a member' }) createdAt: Date;
  @ApiProperty({ description: 'When the membership (its role) was last changed' }) updatedAt: Date;
}

@ApiSchema({ description: 'A page of members' })
export class MemberPage extends PageInfo {
  @ApiProperty({ description: 'The members on this page', type: [MemberDto] }) items: MemberDto[];
}

@ApiSchema({ description: "The member's new role" })
export class ChangeRoleDto {
  @ApiProperty({ enum: ORG_ROLES, description: "Only an owner may grant or take away 'owner'" })
  @IsIn(ORG_ROLES as unknown as string[])
  role: OrgRole;
}
