import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsString, Length } from 'class-validator';

@ApiSchema({ description: 'The name of a workspace' })
export class WorkspaceInputDto {
  @ApiProperty({ example: 'EU subsidiary' })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value))
  @IsString() @Length(1, 200)
  name: string;
}

@ApiSchema({ description: 'A workspace: a named part of an organization that ledger lines and other records can be scoped to' })
export class WorkspaceDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty({ format: 'uuid' }) orgId: string;
  @ApiProperty() name: string;
  @ApiProperty() createdAt: Date;
  @ApiProperty() updatedAt: Date;
}
