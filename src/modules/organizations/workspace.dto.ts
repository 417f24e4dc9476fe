import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsString, Length } from 'class-validator';

@ApiSchema({ description: 'The name of a workspace' })
export class WorkspaceInputDto {
  @ApiProperty({ description: 'Name of the workspace (1 to 200 characters, trimmed)', example: 'EU subsidiary' })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value))
  @IsString() @Length(1, 200)
  name: string;
}

@ApiSchema({ description: 'A workspace: a named part of an organization that ledger lines and other records can be scoped to' })
export class WorkspaceDto {
  @ApiProperty({ description: 'The workspace id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'The organization the workspace belongs to', format: 'uuid' }) orgId: string;
  @ApiProperty({ description: 'Name of the workspace' }) name: string;
  @ApiProperty({ description: 'When the workspace was created' }) createdAt: Date;
  @ApiProperty({ description: 'When the workspace was last renamed' }) updatedAt: Date;
}
