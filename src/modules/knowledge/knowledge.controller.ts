import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Patch, Post, Query, Req } from '@nestjs/common';
import {
  ApiBody, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags,
} from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ApiKeyScopes, RequiresScope } from '../../platform/auth/api-key-scopes.js';
import { ADMIN_ROLES, type RequestRole } from '../../platform/auth/principal.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { DatabaseService, type TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { IdParam } from '../../platform/http/id-param.js';
import { MultipartBody } from '../../platform/http/json-body.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { DoesNotWrite, OrgPreflightRoute, OrgRoute, openTenant, Preflight, type PreflightTenant, RequireRole, Tx, WritesRequireSubscription } from '../../platform/http/tenant.js';
import { KnowledgeService } from './knowledge.service.js';
import { PdfTextExtractor } from './pdf-text-extraction.js';
import { readUpload, UPLOAD_BODY } from './upload.js';
import {
  CollectionDto, CreateCollectionDto, CreateNoteDocumentDto, DocumentDto, DocumentPage, DocumentQuery, ReindexResultDto, ReindexStaleQuery, SearchKnowledgeDto,
  SearchResultDto, UpdateCollectionDto, VersionDto, VersionWithTextDto,
} from './knowledge.dto.js';

/** Who may add, change and delete documents (in collections they can read): everyone but viewers. */
const WRITER_ROLES: RequestRole[] = ['owner', 'admin', 'accountant', 'member', 'service'];
/** The plan's limits of the knowledge base (knowledge_documents, knowledge_storage_bytes): a write past either is this 402. */
const LIMIT_DESCRIPTION = 'A write past the knowledge base limits of the plan (knowledge_documents: documents of the organization; knowledge_storage_bytes: '
  + 'bytes of text of every version of every document) is a 402 billing.limit_reached whose details name the feature, the plan, its limit, the usage '
  + 'before the write and the plan that allows it (upgradeTo); nothing is stored.';
const UPLOAD_ERRORS = ['billing.limit_reached', 'knowledge.file_missing', 'knowledge.file_empty', 'knowledge.file_too_large', 'knowledge.unsupported_type',
  'knowledge.unreadable_file', 'knowledge.extraction_limit', 'knowledge.extraction_busy', 'knowledge.no_text', 'knowledge.text_too_large', 'knowledge.invalid_field'];
const MAX_VERSION_NO = 2 ** 31 - 1;
const VERSION_PARAM = { name: 'versionNo', description: 'Version number, 1 first', example: 1, schema: { type: 'integer', minimum: 1, maximum: MAX_VERSION_NO } };

/** The path's version number: a 400 validation_failed naming versionNo unless it is an integer from 1 to MAX_VERSION_NO. */
function versionNoOf(raw: string): number {
  const n = /^[1-9]\d{0,9}$/.test(raw) ? Number(raw) : NaN;
  if (!(n <= MAX_VERSION_NO)) {
    const problem = `versionNo must be an integer from 1 to ${MAX_VERSION_NO}`;
    throw PlatformErrors.error('validation_failed', problem, [{ field: 'versionNo', problems: [problem] }]);
  }
  return n;
}

// API keys: reads with knowledge:read (what a viewer reads: KnowledgeService); no key writes the knowledge base
@ApiTags('knowledge')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'knowledge:read' })
@Controller('v1/orgs/:orgId/knowledge/collections')
export class KnowledgeCollectionsController {
  constructor(private readonly knowledge: KnowledgeService) {}

  @Get()
  @ApiOperation({ operationId: 'listKnowledgeCollections', summary: 'Collections the caller may read' })
  @ApiOkResponse({ type: [CollectionDto] })
  @ApiErrorCodes('organization.not_found')
  list(@Tx() tx: TenantTx): Promise<CollectionDto[]> {
    return this.knowledge.listCollections(tx);
  }

  @Post()
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'createKnowledgeCollection', summary: 'Create a collection and name the roles that may read it (owner, admin)' })
  @ApiCreatedResponse({ type: CollectionDto })
  @ApiErrors(400)
  @ApiErrorCodes('knowledge.collection_name_taken')
  create(@Tx() tx: TenantTx, @Body() dto: CreateCollectionDto): Promise<CollectionDto> {
    return this.knowledge.createCollection(tx, dto);
  }

  @Get(':collectionId')
  @ApiOperation({ operationId: 'getKnowledgeCollection', summary: 'One collection (404 when the caller may not read it)' })
  @ApiOkResponse({ type: CollectionDto })
  @ApiErrorCodes('organization.not_found', 'knowledge_collection.not_found')
  get(@Tx() tx: TenantTx, @IdParam('collectionId', 'knowledge_collection') id: string): Promise<CollectionDto> {
    return this.knowledge.getCollection(tx, id);
  }

  @Patch(':collectionId')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'updateKnowledgeCollection', summary: 'Rename a collection or change who may read it (owner, admin)' })
  @ApiOkResponse({ type: CollectionDto })
  @ApiErrors(400)
  @ApiErrorCodes('knowledge.collection_name_taken')
  update(@Tx() tx: TenantTx, @IdParam('collectionId', 'knowledge_collection') id: string, @Body() dto: UpdateCollectionDto): Promise<CollectionDto> {
    return this.knowledge.updateCollection(tx, id, dto);
  }

  @Delete(':collectionId')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'deleteKnowledgeCollection', summary: 'Delete a collection with its documents, versions and chunks (owner, admin)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'knowledge_collection.not_found')
  remove(@Tx() tx: TenantTx, @IdParam('collectionId', 'knowledge_collection') id: string): Promise<void> {
    return this.knowledge.deleteCollection(tx, id);
  }
}

@ApiTags('knowledge')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'knowledge:read' })
@Controller('v1/orgs/:orgId/knowledge')
export class KnowledgeDocumentsController {
  constructor(private readonly knowledge: KnowledgeService) {}

  @Get('documents')
  @ApiOperation({ operationId: 'listKnowledgeDocuments', summary: 'Documents of the collections the caller may read, newest first (cursor pagination)' })
  @ApiOkResponse({ type: DocumentPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  list(@Tx() tx: TenantTx, @Query() q: DocumentQuery): Promise<DocumentPage> {
    return this.knowledge.listDocuments(tx, q);
  }

  @Post('documents')
  @RequireRole(...WRITER_ROLES)
  @ApiOperation({ operationId: 'createKnowledgeNote', summary: 'Add a document whose text is in the request (a note, or a URL reference with its text); ingestion is queued',
    description: LIMIT_DESCRIPTION })
  @ApiCreatedResponse({ type: DocumentDto })
  @ApiErrors(400)
  @ApiErrorCodes('knowledge.no_text', 'knowledge_collection.not_found', 'billing.limit_reached')
  createNote(@Tx() tx: TenantTx, @Body() dto: CreateNoteDocumentDto): Promise<DocumentDto> {
    return this.knowledge.createNote(tx, dto);
  }

  @Post('reindex')
  @HttpCode(200)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'reindexStaleKnowledge', summary: 'Re-embed documents embedded by another model or dimension than the configured one (owner, admin)',
    description: 'Queues at most `limit` documents (default 100) per call, those not already queued; `more` says whether others remain: call again until it is false.' })
  @ApiOkResponse({ type: ReindexResultDto })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive')
  reindexStale(@Tx() tx: TenantTx, @Query() q: ReindexStaleQuery): Promise<ReindexResultDto> {
    return this.knowledge.reindexStale(tx, q.limit ?? 100);
  }

  @Get('documents/:documentId')
  @ApiOperation({ operationId: 'getKnowledgeDocument', summary: 'One document with its ingestion status' })
  @ApiOkResponse({ type: DocumentDto })
  @ApiErrorCodes('organization.not_found', 'knowledge_document.not_found')
  get(@Tx() tx: TenantTx, @IdParam('documentId', 'knowledge_document') id: string): Promise<DocumentDto> {
    return this.knowledge.getDocument(tx, id);
  }

  @Delete('documents/:documentId')
  @HttpCode(204)
  @RequireRole(...WRITER_ROLES)
  @ApiOperation({ operationId: 'deleteKnowledgeDocument', summary: 'Delete a document with its versions, chunks and embeddings' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'knowledge_document.not_found')
  remove(@Tx() tx: TenantTx, @IdParam('documentId', 'knowledge_document') id: string): Promise<void> {
    return this.knowledge.deleteDocument(tx, id);
  }

  @Post('documents/:documentId/reindex')
  @HttpCode(200)
  @RequireRole(...WRITER_ROLES)
  @ApiOperation({ operationId: 'reindexKnowledgeDocument', summary: 'Queue ingestion of the latest version again (after a failure, or a model change)',
    description: 'A document whose ingestion is queued already (status pending) is answered as it is and nothing more is queued, as POST /knowledge/reindex skips it. '
      + 'So is a document whose latest version is indexed (status ready, indexedVersion = latestVersion) with the configured embedding model and '
      + 'dimensions: embedding it again would give the same vectors, at the AI budget\'s expense (there is no forced re-embedding). Otherwise the '
      + 'document is answered pending, and its ingestion job embeds the latest version: an embedding call reserved on the organization\'s AI budget '
      + 'before it is made and reported by GET /ai/usage (embeddings, purpose knowledge_ingestion) as the caller\'s. A budget that cannot take it fails '
      + 'the ingestion: status failed, statusReason "ai.budget_exceeded: ..." (the budget and what is left), indexedVersion unchanged; re-index it once '
      + 'the budget has room.' })
  @ApiOkResponse({ type: DocumentDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'knowledge_document.not_found')
  reindex(@Tx() tx: TenantTx, @IdParam('documentId', 'knowledge_document') id: string): Promise<DocumentDto> {
    return this.knowledge.reindex(tx, id);
  }

  @Get('documents/:documentId/versions')
  @ApiOperation({ operationId: 'listKnowledgeDocumentVersions', summary: 'Versions of a document, newest first' })
  @ApiOkResponse({ type: [VersionDto] })
  @ApiErrorCodes('organization.not_found', 'knowledge_document.not_found')
  versions(@Tx() tx: TenantTx, @IdParam('documentId', 'knowledge_document') id: string): Promise<VersionDto[]> {
    return this.knowledge.listVersions(tx, id);
  }

  @Get('documents/:documentId/versions/:versionNo')
  @ApiOperation({ operationId: 'getKnowledgeDocumentVersion', summary: 'One version of a document with its extracted text' })
  @ApiParam(VERSION_PARAM)
  @ApiOkResponse({ type: VersionWithTextDto })
  @ApiErrors(400)
  @ApiErrorCodes('knowledge.version_not_found')
  version(@Tx() tx: TenantTx, @IdParam('documentId', 'knowledge_document') id: string, @Param('versionNo') versionNo: string): Promise<VersionWithTextDto> {
    return this.knowledge.getVersion(tx, id, versionNoOf(versionNo));
  }

  @Post('documents/:documentId/versions/:versionNo/restore')
  @RequireRole(...WRITER_ROLES)
  @ApiOperation({ operationId: 'restoreKnowledgeDocumentVersion', summary: 'Restore an earlier version: its text becomes a new latest version',
    description: LIMIT_DESCRIPTION })
  @ApiParam(VERSION_PARAM)
  @ApiCreatedResponse({ type: DocumentDto })
  @ApiErrors(400)
  @ApiErrorCodes('knowledge.version_not_found', 'billing.limit_reached')
  restore(@Tx() tx: TenantTx, @IdParam('documentId', 'knowledge_document') id: string, @Param('versionNo') versionNo: string): Promise<DocumentDto> {
    return this.knowledge.restoreVersion(tx, id, versionNoOf(versionNo));
  }
}

/**
 * Search, not @OrgRoute: the query's embedding is a provider call (up to AI_TIMEOUT_MS per try, retried), and no
 * transaction (nor pool connection) may wait on it. The preflight checks membership; the service reads what the call
 * needs in one short transaction and searches in another (KnowledgeService.searchWith).
 */
@ApiTags('knowledge')
@OrgPreflightRoute()
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/knowledge')
export class KnowledgeSearchController {
  constructor(
    private readonly knowledge: KnowledgeService,
    private readonly db: DatabaseService,
  ) {}

  @Post('search')
  @HttpCode(200)
  @DoesNotWrite()
  @RequiresScope('knowledge:read')
  @ApiOperation({ operationId: 'searchKnowledge',
    summary: 'Hybrid search (full text + vector, reciprocal rank fusion) over the chunks the caller may read',
    description: 'The query is embedded by the AI provider: an embedding call reserved on the organization\'s AI budget before it is made '
      + '(402 ai.budget_exceeded, naming the budget and what is left, when the budget cannot take it: no results, no keyword-only answer, as none '
      + 'when the provider fails: 503 knowledge.embedding_unavailable), then spent and reported by GET /ai/usage (embeddings, purpose '
      + 'knowledge_search) as the caller\'s.' })
  @ApiOkResponse({ type: SearchResultDto })
  @ApiErrors(400)
  @ApiErrorCodes('knowledge.query_empty', 'knowledge.k_too_large', 'knowledge.embedding_unavailable', 'ai.budget_exceeded', 'knowledge_collection.not_found', 'knowledge_document.not_found')
  search(@Preflight() preflight: PreflightTenant, @Body() dto: SearchKnowledgeDto): Promise<SearchResultDto> {
    return this.knowledge.searchWith(openTenant(this.db, preflight), dto);
  }
}

/**
 * The uploads, not @OrgRoute: reading a multipart body of up to KNOWLEDGE_MAX_UPLOAD_BYTES takes as long as the client
 * takes to send it, and no transaction (nor pool connection) may wait on a client. The preflight checks membership, the
 * role and the subscription; the collection (or document) is checked in a short transaction of its own before the body
 * is read, so a caller who may not read it learns nothing from the upload's validation; the document is written in a
 * third one once the text is in memory.
 */
@ApiTags('knowledge')
@OrgPreflightRoute()
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/knowledge')
export class KnowledgeUploadsController {
  constructor(
    private readonly knowledge: KnowledgeService,
    private readonly db: DatabaseService,
    private readonly pdf: PdfTextExtractor,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Post('collections/:collectionId/documents')
  @RequireRole(...WRITER_ROLES)
  @ApiOperation({ operationId: 'uploadKnowledgeDocument',
    summary: 'Upload a document (plain text, Markdown, HTML or PDF) to a collection; ingestion is queued',
    description: `multipart/form-data with the part \`file\` (up to KNOWLEDGE_MAX_UPLOAD_BYTES, default 10 MB) and optional \`title\` and \`tags\`. ${LIMIT_DESCRIPTION}` })
  @MultipartBody()
  @ApiBody(UPLOAD_BODY)
  @ApiCreatedResponse({ type: DocumentDto })
  @ApiErrors(400, 415)
  @ApiErrorCodes(...UPLOAD_ERRORS)
  async upload(@IdParam('collectionId', 'knowledge_collection') id: string, @Preflight() preflight: PreflightTenant, @Req() req: FastifyRequest): Promise<DocumentDto> {
    const tenant = openTenant(this.db, preflight);
    // the collection, and the plan's limits as they stand: a full knowledge base is refused before the file is read
    await tenant((tx) => this.knowledge.beforeUpload(tx, id));
    const { fields, file } = await readUpload(req, this.config.knowledge.maxUploadBytes, this.pdf, preflight.orgId);
    // createFromUpload checks the collection again: it may have gone while the body was read
    return tenant((tx) => this.knowledge.createFromUpload(tx, id, fields, file));
  }

  @Post('documents/:documentId/versions')
  @RequireRole(...WRITER_ROLES)
  @ApiOperation({ operationId: 'uploadKnowledgeDocumentVersion', summary: 'Upload a new version of a document; it replaces the indexed one in search once ingested',
    description: `multipart/form-data with the part \`file\`, as for the first upload. ${LIMIT_DESCRIPTION}` })
  @MultipartBody()
  @ApiBody(UPLOAD_BODY)
  @ApiCreatedResponse({ type: DocumentDto })
  @ApiErrors(400, 415)
  @ApiErrorCodes(...UPLOAD_ERRORS)
  async addVersion(@IdParam('documentId', 'knowledge_document') id: string, @Preflight() preflight: PreflightTenant, @Req() req: FastifyRequest): Promise<DocumentDto> {
    const tenant = openTenant(this.db, preflight);
    await tenant((tx) => this.knowledge.beforeVersionUpload(tx, id));
    const { file } = await readUpload(req, this.config.knowledge.maxUploadBytes, this.pdf, preflight.orgId);
    // addVersion locks the document and checks it again: it may have gone while the body was read
    return tenant((tx) => this.knowledge.addVersion(tx, id, file));
  }
}
