import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsOptional, IsString, Length } from 'class-validator';

@ApiSchema({ description: 'Re-authentication for an erasure: the password, or nothing with a recently issued access token' })
export class EraseMeDto {
  @ApiPropertyOptional({
    description: 'The account password, for re-authentication. Without it, the access token must have been issued within the last 5 minutes.',
    format: 'password', example: 'correct horse battery staple',
  })
  @IsOptional() @IsString() @Length(1, 200) password?: string;
}

@ApiSchema({ description: 'What an erasure of the signed-in person did (ids and counts; no personal data)' })
export class ErasureDto {
  @ApiProperty({ description: 'The erased person\'s user id: the row stays (other apps reference it) without personal data', example: '9d3c1f0e-4b6a-4f2d-8e7c-6a5b4c3d2e1f' })
  userId: string;
  @ApiProperty({ description: 'When the erasure happened', example: '2026-12-02T09:30:00.000Z' })
  erasedAt: string;
  @ApiProperty({
    description: 'Organizations deleted with the person (soft-deleted: the personal one, and business ones of which they were the only member); '
      + 'their books stay, unreachable, as bookkeeping law keeps them',
    example: ['1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6'], type: [String],
  })
  deletedOrganizationIds: string[];
  @ApiProperty({ description: 'Organizations the person left (their memberships ended; these books are untouched)', example: ['7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d'], type: [String] })
  leftOrganizationIds: string[];
  @ApiProperty({ description: 'Sessions revoked', example: 2 })
  sessionsRevoked: number;
}

@ApiSchema({ description: 'An erased party (vendor or customer)' })
export class PartyErasureDto {
  @ApiProperty({ description: 'The kind of party erased', enum: ['vendor', 'customer'], example: 'vendor' })
  party: string;
  @ApiProperty({ description: 'The party\'s id: its documents keep pointing to it with their amounts and numbers', format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' })
  partyId: string;
  @ApiProperty({ description: 'The name it shows from now on', example: 'Erased vendor 0b8f5f8e' })
  name: string;
  @ApiProperty({ description: 'When it was erased', example: '2026-12-02T09:30:00.000Z' })
  erasedAt: string;
}
