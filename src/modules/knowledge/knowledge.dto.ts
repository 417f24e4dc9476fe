import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, IsArray, IsIn, IsInt, IsOptional, IsString, IsUrl, IsUUID, Length, Matches, Max, MaxLength, Min, ValidateBy, ValidateIf,
} from 'class-validator';
import { ORG_ROLES } from '../../platform/auth/principal.js';
import { Timestamp } from '../../platform/http/calendar-date.js';
import { PageQuery } from '../../platform/http/pagination.js';
import { CONTENT_TYPES, MAX_DOCUMENT_TEXT_CHARS } from './text-extraction.js';

/** Results per search at most. */
export const SEARCH_MAX_K = 50;
export const DOCUMENT_STATUSES = ['pending', 'ready', 'failed'] as const;
export const VERSION_STATUSES = ['pending', 'ready', 'failed', 'superseded'] as const;
const TAG = /^[a-z0-9][a-z0-9_.-]{0,49}$/;
const TAG_MSG = { each: true, message: 'each tag is 1-50 characters of a-z, 0-9, _ . - (lower case)' };

// ---------------------------------------------------------------- collections
@ApiSchema({ description: 'A new collection of documents and the organization roles that may read it' })
export class CreateCollectionDto {
  @ApiProperty({ example: 'Finance policies', description: 'Name, unique in the organization' }) @IsString() @Length(1, 200) name: string;
  @ApiPropertyOptional({ example: 'Expense, travel and approval policies', description: 'What the collection holds' })
  @IsOptional() @IsString() @MaxLength(2000) description?: string;
  @ApiPropertyOptional({ enum: ORG_ROLES, isArray: true, example: ['accountant'], default: [],
    description: 'Roles that may read (search) it besides owner and admin, who read every collection; empty: owner and admin only' })
  @IsOptional() @IsArray() @IsIn(ORG_ROLES, { each: true }) readRoles?: string[];
  @ApiPropertyOptional({ format: 'uuid', example: '1b6f3c1e-8a5e-4a8b-9a55-3c1f5e2d7a10', description: 'Workspace the collection belongs to, if any' })
  @IsOptional() @IsUUID() workspaceId?: string;
}

@ApiSchema({ description: 'Changes to a collection; omitted fields stay as they are' })
export class UpdateCollectionDto {
  @ApiPropertyOptional({ example: 'Finance policies 2027', description: 'New name' }) @IsOptional() @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ example: 'Current finance policies', description: 'New description' }) @IsOptional() @IsString() @MaxLength(2000) description?: string;
  @ApiPropertyOptional({ enum: ORG_ROLES, isArray: true, example: ['accountant', 'member'], description: 'New list of roles that may read it (besides owner and admin)' })
  @IsOptional() @IsArray() @IsIn(ORG_ROLES, { each: true }) readRoles?: string[];
}

@ApiSchema({ description: 'A collection of documents' })
export class CollectionDto {
  @ApiProperty({ format: 'uuid', example: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f', description: 'Collection id' }) id: string;
  @ApiProperty({ example: 'Finance policies', description: 'Name' }) name: string;
  @ApiProperty({ type: String, nullable: true, example: 'Expense, travel and approval policies', description: 'Description; null when none' }) description: string | null;
  @ApiProperty({ enum: ORG_ROLES, isArray: true, example: ['accountant'], description: 'Roles that may read it besides owner and admin' }) readRoles: string[];
  @ApiProperty({ type: String, nullable: true, format: 'uuid', example: null, description: 'Workspace; null for the whole organization' }) workspaceId: string | null;
  @ApiProperty({ format: 'date-time', example: '2026-12-24T09:00:00.000Z', description: 'Created at' }) createdAt: string;
  @ApiProperty({ format: 'date-time', example: '2026-12-24T09:00:00.000Z', description: 'Last changed at' }) updatedAt: string;
}

// ---------------------------------------------------------------- documents and versions
@ApiSchema({ description: 'A document written in the request (a note) or a reference to a URL with its text' })
export class CreateNoteDocumentDto {
  @ApiProperty({ format: 'uuid', example: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f', description: 'Collection to add it to' }) @IsUUID() collectionId: string;
  @ApiProperty({ example: 'Travel expenses', description: 'Title: 1-300 characters, at least one of them not white space', pattern: '\\S' })
  @IsString() @Length(1, 300) @Matches(/\S/, { message: 'title must not be blank (it needs a character other than white space)' }) title: string;
  @ApiProperty({ example: 'Travel is reimbursed within 30 days of the expense report.', description: 'The text (Markdown allowed), up to 1 MB' })
  @IsString() @Length(1, MAX_DOCUMENT_TEXT_CHARS) text: string;
  @ApiPropertyOptional({ enum: ['note', 'url'], default: 'note', example: 'url', description: 'note: written here; url: the text of the page at sourceUrl (required then)' })
  @IsOptional() @IsIn(['note', 'url']) source?: 'note' | 'url';
  @ApiPropertyOptional({ example: 'https://intranet.example.com/policies/travel', description: 'The page the text comes from: required with source url, refused with a note' })
  @ValidateIf((o: CreateNoteDocumentDto) => o.source === 'url' || o.sourceUrl !== undefined)
  @ValidateBy({ name: 'onlyWithUrlSource', validator: {
    validate: (_v, args) => (args?.object as CreateNoteDocumentDto).source === 'url',
    defaultMessage: () => 'sourceUrl is only for source url (a note has none)',
  } })
  @IsUrl({ require_protocol: true, protocols: ['http', 'https'] }, { message: 'sourceUrl must be an http(s) URL (required with source url)' }) @MaxLength(2000) sourceUrl?: string;
  @ApiPropertyOptional({ isArray: true, type: String, example: ['travel', 'policy'], description: 'Tags to filter searches by (up to 20)' })
  @IsOptional() @IsArray() @ArrayMaxSize(20) @Matches(TAG, TAG_MSG) tags?: string[];
}

@ApiSchema({ description: 'A document of a collection' })
export class DocumentDto {
  @ApiProperty({ format: 'uuid', example: '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d', description: 'Document id' }) id: string;
  @ApiProperty({ format: 'uuid', example: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f', description: 'Collection' }) collectionId: string;
  @ApiProperty({ example: 'Travel expenses', description: 'Title' }) title: string;
  @ApiProperty({ enum: ['upload', 'url', 'note'], example: 'upload', description: 'Where the text came from' }) source: string;
  @ApiProperty({ type: String, nullable: true, example: null, description: 'Source URL of a url document; else null' }) sourceUrl: string | null;
  @ApiProperty({ type: [String], example: ['travel', 'policy'], description: 'Tags' }) tags: string[];
  @ApiProperty({ example: 2, description: 'Number of the newest version (what ingestion indexes)' }) latestVersion: number;
  @ApiProperty({ type: Number, nullable: true, example: 1, description: 'Version whose chunks search finds now; null before the first ingestion finished' }) indexedVersion: number | null;
  @ApiProperty({ enum: DOCUMENT_STATUSES, example: 'ready', description: 'Ingestion of the latest version: pending, ready or failed' }) status: string;
  @ApiProperty({ type: String, nullable: true, example: null, description: 'Why the ingestion failed ("ai.budget_exceeded: ..." when the organization\'s AI budget could not take its embedding); null otherwise' }) statusReason: string | null;
  @ApiProperty({ type: String, nullable: true, example: '0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f', description: 'User who created it; null for the system' }) createdBy: string | null;
  @ApiProperty({ format: 'date-time', example: '2026-12-24T09:00:00.000Z', description: 'Created at' }) createdAt: string;
  @ApiProperty({ format: 'date-time', example: '2026-12-24T09:00:05.000Z', description: 'Last changed at' }) updatedAt: string;
}

@ApiSchema({ description: 'Documents, newest first' })
export class DocumentPage {
  @ApiProperty({ type: [DocumentDto], description: 'This page' }) items: DocumentDto[];
  @ApiPropertyOptional({ example: 'eyJjIjoiMjAyNi0xMi0yNFQwOTowMDowMC4wMDBaIn0', description: 'Cursor of the next page; absent on the last' }) nextCursor?: string;
}

export class DocumentQuery extends PageQuery {
  @ApiPropertyOptional({ format: 'uuid', description: 'Only documents of this collection', example: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f' })
  @IsOptional() @IsUUID() collectionId?: string;
}

@ApiSchema({ description: 'One version of a document' })
export class VersionDto {
  @ApiProperty({ example: 1, description: 'Version number, 1 first' }) versionNo: number;
  @ApiProperty({ enum: CONTENT_TYPES, example: 'application/pdf', description: 'Type of the uploaded file' }) contentType: string;
  @ApiProperty({ type: String, nullable: true, example: 'travel-policy.pdf', description: 'Uploaded file name; null for notes' }) filename: string | null;
  @ApiProperty({ example: 48213, description: 'Size of the uploaded file in bytes' }) byteSize: number;
  @ApiProperty({ type: Number, nullable: true, example: null, description: 'The version this one restored; null otherwise' }) restoredFromVersion: number | null;
  @ApiProperty({ enum: VERSION_STATUSES, example: 'ready', description: 'pending, ready, failed, or superseded (a newer version came before it was indexed)' }) status: string;
  @ApiProperty({ type: String, nullable: true, example: null, description: 'Why ingestion failed ("ai.budget_exceeded: ..." when the organization\'s AI budget could not take its embedding); null otherwise' }) statusReason: string | null;
  @ApiProperty({ type: Number, nullable: true, example: 12, description: 'Chunks stored; null before ingestion' }) chunkCount: number | null;
  @ApiProperty({ type: String, nullable: true, example: 'text-embedding-3-small', description: 'Embedding model of its chunks; null before ingestion' }) embeddingModel: string | null;
  @ApiProperty({ type: Number, nullable: true, example: 1536, description: 'Embedding dimensions of its chunks; null before ingestion' }) embeddingDimensions: number | null;
  @ApiProperty({ type: String, nullable: true, example: '0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f', description: 'User who added it' }) createdBy: string | null;
  @ApiProperty({ format: 'date-time', example: '2026-12-24T09:00:00.000Z', description: 'Added at' }) createdAt: string;
  @ApiProperty({ type: String, nullable: true, format: 'date-time', example: '2026-12-24T09:00:05.000Z', description: 'Indexed at; null before' }) indexedAt: string | null;
}

@ApiSchema({ description: 'One version of a document with its extracted text' })
export class VersionWithTextDto extends VersionDto {
  @ApiProperty({ example: 'Travel is reimbursed within 30 days of the expense report.', description: 'The text extracted from the file' }) text: string;
}

// ---------------------------------------------------------------- search
@ApiSchema({ description: 'A search of the chunks the caller may read' })
export class SearchKnowledgeDto {
  @ApiProperty({ example: 'how fast is travel reimbursed', description: 'Words or a question (1-1,000 characters)' })
  @IsString() @MaxLength(1000) query: string;
  @ApiPropertyOptional({ example: 10, default: 10, minimum: 1, maximum: SEARCH_MAX_K, description: `Results wanted (at most ${SEARCH_MAX_K})` })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) k?: number;
  @ApiPropertyOptional({ type: [String], format: 'uuid', example: ['7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f'], description: 'Only these collections' })
  @IsOptional() @IsArray() @ArrayMaxSize(100) @IsUUID('all', { each: true }) collectionIds?: string[];
  @ApiPropertyOptional({ type: [String], format: 'uuid', example: ['4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d'], description: 'Only these documents' })
  @IsOptional() @IsArray() @ArrayMaxSize(100) @IsUUID('all', { each: true }) documentIds?: string[];
  @ApiPropertyOptional({ type: [String], example: ['travel'], description: 'Only documents carrying all these tags' })
  @IsOptional() @IsArray() @ArrayMaxSize(20) @Matches(TAG, TAG_MSG) tags?: string[];
  @Timestamp('from') @ApiPropertyOptional({ format: 'date-time', example: '2026-01-01T00:00:00Z', description: 'Only versions added at or after this time' })
  @IsOptional() from?: string;
  @Timestamp('to') @ApiPropertyOptional({ format: 'date-time', example: '2027-01-01T00:00:00Z', description: 'Only versions added before this time' })
  @IsOptional() to?: string;
}

@ApiSchema({ description: 'A chunk that matched, with its document and scores' })
export class SearchHitDto {
  @ApiProperty({ format: 'uuid', example: '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d', description: 'Document' }) documentId: string;
  @ApiProperty({ example: 'Travel expenses', description: 'Document title' }) documentTitle: string;
  @ApiProperty({ format: 'uuid', example: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f', description: 'Collection' }) collectionId: string;
  @ApiProperty({ example: 2, description: 'Document version the chunk belongs to' }) version: number;
  @ApiProperty({ example: 0, description: 'Position of the chunk in the version, 0 first' }) chunkNo: number;
  @ApiProperty({ example: 'Travel is reimbursed within 30 days of the expense report.', description: 'The matched text' }) text: string;
  @ApiProperty({ type: [String], example: ['travel'], description: 'Tags of the document' }) tags: string[];
  @ApiProperty({ format: 'date-time', example: '2026-12-24T09:00:00.000Z', description: 'When the version was added' }) documentDate: string;
  @ApiProperty({ example: 0.0325, description: 'Reciprocal rank fusion score: sum of 1/(60 + rank) over the vector and full-text rankings' }) score: number;
  @ApiProperty({ type: Number, nullable: true, example: 0.71, description: 'Cosine similarity to the query; null when not among the vector candidates' }) similarity: number | null;
  @ApiProperty({ type: Number, nullable: true, example: 1, description: 'Rank in the vector ranking; null when not among its candidates' }) vectorRank: number | null;
  @ApiProperty({ type: Number, nullable: true, example: 1, description: 'Rank in the full-text ranking; null when the words did not match' }) textRank: number | null;
}

@ApiSchema({ description: 'Search results, best first' })
export class SearchResultDto {
  @ApiProperty({ type: [SearchHitDto], description: 'Best first' }) items: SearchHitDto[];
}

/** Stale documents one call of POST /knowledge/reindex queues at most: each is a few writes in the request's transaction. */
export const REINDEX_MAX_LIMIT = 200;

export class ReindexStaleQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: REINDEX_MAX_LIMIT, default: 100, description: 'Documents to queue at most in this call' })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(REINDEX_MAX_LIMIT)
  limit?: number;
}

@ApiSchema({ description: 'Documents queued for re-indexing' })
export class ReindexResultDto {
  @ApiProperty({ example: 3, description: 'How many documents were queued' }) queued: number;
  @ApiProperty({ example: false, description: 'Whether stale documents remain that this call did not queue: call again' }) more: boolean;
}
