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

@ApiSchema({ description: 'A data export: a person\'s (JSON per table) or an organization\'s (CSV per table), one ZIP with a README' })
export class DataExportDto {
  @ApiProperty({ description: 'The export\'s id', format: 'uuid', example: '5f0c2b9e-7d4a-4c1e-9b8f-2a3d4e5f6a7b' })
  id: string;
  @ApiProperty({ description: 'Whose data: the signed-in person\'s, or an organization\'s', enum: ['person', 'organization'], example: 'person' })
  kind: 'person' | 'organization';
  @ApiProperty({
    description: 'queued (the job has not started), running, ready (download it from downloadUrl), failed, or expired (the link and file are gone)',
    enum: ['queued', 'running', 'ready', 'failed', 'expired'], example: 'ready',
  })
  status: 'queued' | 'running' | 'ready' | 'failed' | 'expired';
  @ApiProperty({ description: 'How far the job is, in percent of the tables written (100 when ready)', minimum: 0, maximum: 100, example: 100 })
  progress: number;
  @ApiProperty({ description: 'Tables written so far', example: 14 })
  tablesDone: number;
  @ApiProperty({ description: 'Tables the export holds (0 until the job starts)', example: 14 })
  tablesTotal: number;
  @ApiProperty({ description: 'Rows written so far', example: 212 })
  rowsWritten: number;
  @ApiProperty({ description: 'Size of the ZIP in bytes; null until ready', type: Number, nullable: true, example: 18342 })
  sizeBytes: number | null;
  @ApiProperty({ description: 'When it was asked for', format: 'date-time', example: '2026-12-02T09:30:00.000Z' })
  createdAt: string;
  @ApiProperty({ description: 'When the archive was finished; null before', type: String, format: 'date-time', nullable: true, example: '2026-12-02T09:30:04.000Z' })
  completedAt: string | null;
  @ApiProperty({ description: 'When the download link (and the file) expires; null before ready', type: String, format: 'date-time', nullable: true, example: '2026-12-03T09:30:04.000Z' })
  expiresAt: string | null;
  @ApiProperty({
    description: 'The download link while the export is ready and not expired (a signed token, no access token needed; valid until expiresAt); null '
      + 'otherwise, and while the person who asked for an organization\'s export is not its owner (the link answers 410 then; it is offered again '
      + 'once they are owner again, until expiresAt)',
    type: String, nullable: true, example: '/v1/data-exports/download?token=5f0c2b9e-7d4a-4c1e-9b8f-2a3d4e5f6a7b.1764840604000.c2lnbmF0dXJlLW9mLXRoZS1saW5rLWZvci10aGUtZXhwb3J0',
  })
  downloadUrl: string | null;
  @ApiProperty({ description: 'Why it failed; null unless failed', type: String, nullable: true, example: null })
  error: string | null;
}

export class DownloadQuery {
  @ApiProperty({ description: 'The signed token of the download link (downloadUrl)', example: '5f0c2b9e-7d4a-4c1e-9b8f-2a3d4e5f6a7b.1764840604000.c2lnbmF0dXJlLW9mLXRoZS1saW5rLWZvci10aGUtZXhwb3J0' })
  @IsString() @Length(1, 200) token: string;
}
