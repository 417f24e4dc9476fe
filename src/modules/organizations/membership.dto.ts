import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
import { ORG_ROLES, type OrgRole } from '../../platform/auth/principal.js';
import { PageInfo } from '../../platform/http/openapi.js';

@ApiSchema({ description: 'A member of an organization and their role' })
export class MemberDto {
  @ApiProperty() userId: string;
  @ApiProperty() email: string;
  @ApiProperty({ type: String, nullable: true }) name: string | null;
  @ApiProperty({ enum: ORG_ROLES }) role: OrgRole;
  @ApiProperty() createdAt: Date;
  @ApiProperty() updatedAt: Date;
}

@ApiSchema({ description: 'A page of members' })
export class MemberPage extends PageInfo {
  @ApiProperty({ type: [MemberDto] }) items: MemberDto[];
}

@ApiSchema({ description: "The member's new role" })
export class ChangeRoleDto {
  @ApiProperty({ enum: ORG_ROLES, description: "Only an owner may grant or take away 'owner'" })
  @IsIn(ORG_ROLES as unknown as string[])
  role: OrgRole;
}
