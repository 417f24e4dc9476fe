import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { enqueue } from '../../platform/queue/jobs.js';
import { AuditService } from '../audit/audit.service.js';
import { EntitlementsService } from '../billing/entitlements.service.js';
import { EmbeddingFailed, KnowledgeEmbeddings, spentBy } from './embedding-provider.js';
import { KnowledgeErrors } from './knowledge.errors.js';
import { knowledgeRepository as repo, searchCandidates, type SearchFilter, type StorageInfo } from './knowledge.repository.js';
import {
  SEARCH_MAX_K, type CollectionDto, type CreateCollectionDto, type CreateNoteDocumentDto, type DocumentDto, type DocumentPage,
  type DocumentQuery, type SearchResultDto, type UpdateCollectionDto, type VersionDto, type VersionWithTextDto,
} from './knowledge.dto.js';
import type { OpenTenant } from '../../platform/http/tenant.js';

/**
 * The outbox topic of ingestion: payload { documentId, version, requestedBy }, requestedBy the person whose write queued
 * it (a version added, a re-index), whose AI usage its embedding is (null: a service; absent in jobs queued before it was
 * recorded: the version's creator).
 */
export const INDEX_VERSION_JOB = 'knowledge.index_version';

/** A file as the upload route received it. */
export interface UploadedText {
  filename: string | null;
  contentType: string;
  byteSize: number;
  text: string;
}

/** What an agent's search_knowledge tool (issue 16) passes: the query, the number of results and optional filters. */
export interface KnowledgeSearch extends SearchFilter {
  query: string;
  k?: number;
}

/** The app whose plan limits the knowledge base (hub.plan_features). */
export const KNOWLEDGE_APP = 'omnizen';
/** The plan's limit of documents per organization (every collection), and of the bytes of text their versions store. */
export const DOCUMENTS_LIMIT = 'knowledge_documents';
export const STORAGE_LIMIT = 'knowledge_storage_bytes';

/** Runs `work` in a new tenant transaction of the caller (or, for an in-transaction caller, in its own). */
const userOf = (tx: TenantTx) => (tx.principal.kind === 'user' ? tx.principal.userId : null);

/**
 * A document as its audit entries hold it: ids, numbers and states, not its title, source URL, tags or a version's file
 * name. Those may name a person (a title is free text: "Sick note of J. Doe"), and the append-only audit log would keep
 * them after the document is deleted (an organization's, a person's erasure). The document's id finds the rest.
 */
function auditedDocument<T extends DocumentDto>(d: T): Omit<T, 'title' | 'sourceUrl' | 'tags'> {
  const { title: _title, sourceUrl: _sourceUrl, tags: _tags, ...rest } = d;
  return rest;
}
const auditedVersion = ({ filename: _filename, ...rest }: VersionDto) => rest;

/**
 * The role an API key reads knowledge as (the routes with the scope knowledge:read, the agents' search_knowledge tool):
 * its transactions run as the role 'service', which the policies let read every collection, admin-only ones too; a
 * key reads the collections whose read_roles name this one.
 */
export const KEY_KNOWLEDGE_ROLE = 'viewer';
/** What restricts the caller's reads besides the policies: for an API key (its scopes are set), KEY_KNOWLEDGE_ROLE. */
const readRoleOf = (tx: TenantTx) => (tx.scopes ? KEY_KNOWLEDGE_ROLE : undefined);

/** Collections, documents and their versions, and search — always inside the caller's tenant transaction(s). */
@Injectable()
export class KnowledgeService {
  private storage?: Promise<StorageInfo>;

  constructor(
    private readonly audit: AuditService,
    private readonly embeddings: KnowledgeEmbeddings,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly entitlements: EntitlementsService,
  ) {}

  /**
   * Takes the counted limits' lock (hub.limit_locks, held to the end of the transaction; 402 billing.subscription_inactive
   * on a read-only subscription) and reads the knowledge base's usage once, under it (ai.knowledge_usage: one counter row,
   * kept by triggers): concurrent writes are counted one after the other, so together they never pass a limit. The
   * checks of the write are made on this reading, before anything is written.
   */
  private async lockedUsage(tx: TenantTx): Promise<{ documents: number; textBytes: number }> {
    await this.entitlements.enforce(tx, { app: KNOWLEDGE_APP, consumes: true });
    return repo.usage(tx.db);
  }

  /**
   * The plan's limit of the knowledge base's text with `added` bytes more (usage read by lockedUsage): a 402
   * billing.limit_reached past it, nothing written.
   */
  private async storageWithinPlan(tx: TenantTx, textBytes: number, added: number): Promise<void> {
    const total = textBytes + added;
    await this.entitlements.enforceWithin(tx, KNOWLEDGE_APP, STORAGE_LIMIT, total, {
      added,
      explain: (l) => `with this text (${added} more) the knowledge base would hold ${total} bytes of text, and the ${l.plan} plan allows ${l.allows}; `
        + `${l.upgradeTo ? `upgrade to ${l.upgradeTo}` : 'no plan allows more; contact sales'}, or delete documents`,
    });
  }

  // ---------------------------------------------------------------- collections
  listCollections(tx: TenantTx): Promise<CollectionDto[]> {
    return repo.listCollections(tx.db, tx.orgId, readRoleOf(tx));
  }

  async getCollection(tx: TenantTx, id: string): Promise<CollectionDto> {
    const c = await repo.getCollection(tx.db, tx.orgId, id, readRoleOf(tx));
    if (!c) throw KnowledgeErrors.notFound('knowledge_collection', id);
    return c;
  }

  async createCollection(tx: TenantTx, dto: CreateCollectionDto): Promise<CollectionDto> {
    const c = await translateDatabaseError(repo.createCollection(tx.db, tx.orgId, { ...dto, readRoles: [...new Set(dto.readRoles ?? [])] }), {
      '23505': () => KnowledgeErrors.error('knowledge.collection_name_taken', `a collection named "${dto.name}" already exists`),
      '23503': () => PlatformErrors.notFound('workspace', dto.workspaceId),
    });
    await this.audit.record(tx, { action: 'knowledge.collection_created', entityType: 'knowledge_collection', entityId: c.id, after: c });
    return c;
  }

  async updateCollection(tx: TenantTx, id: string, dto: UpdateCollectionDto): Promise<CollectionDto> {
    const before = await this.getCollection(tx, id);
    const after = await translateDatabaseError(repo.updateCollection(tx.db, tx.orgId, id, { ...dto, readRoles: dto.readRoles && [...new Set(dto.readRoles)] }), {
      '23505': () => KnowledgeErrors.error('knowledge.collection_name_taken', `a collection named "${dto.name}" already exists`),
    });
    if (!after) throw KnowledgeErrors.notFound('knowledge_collection', id); // deleted by a concurrent request since it was read
    await this.audit.record(tx, { action: 'knowledge.collection_updated', entityType: 'knowledge_collection', entityId: id, before, after });
    return after;
  }

  /**
   * Deletes the collection with its documents, versions and chunks, and emits knowledge_document.deleted for each
   * document, as deleting one does. Locks in the order every writer of a document takes them, the collection's row
   * first (a new document or version takes it FOR KEY SHARE before its document's: shareCollection), then its
   * documents': a document or version being added finishes first (and is deleted here, with its event) or waits, then
   * finds the collection or document gone (404). Locking the documents first left a window: a document committed
   * between the two locks, then given a new version (its document locked, its insert waiting for the collection's
   * row) before the DELETE, deadlocked with it.
   */
  async deleteCollection(tx: TenantTx, id: string): Promise<void> {
    const before = await this.getCollection(tx, id);
    await repo.lockCollection(tx.db, tx.orgId, id);
    await repo.lockDocumentsOf(tx.db, tx.orgId, id);
    const documents = await repo.deleteDocumentsOf(tx.db, tx.orgId, id);
    // a concurrent deletion committed while this one waited for the collection's row: nothing of it is left to delete
    if (!(await repo.deleteCollection(tx.db, tx.orgId, id))) throw KnowledgeErrors.notFound('knowledge_collection', id);
    await this.audit.record(tx, { action: 'knowledge.collection_deleted', entityType: 'knowledge_collection', entityId: id, before: { ...before, documents: documents.length } });
    for (const d of documents) await emitEvent(tx, 'knowledge_document.deleted', { documentId: d.id, collectionId: id, version: d.latestVersion });
  }

  // ---------------------------------------------------------------- documents
  async listDocuments(tx: TenantTx, q: DocumentQuery): Promise<DocumentPage> {
    const limit = q.limit ?? 50;
    const before = decodeKeyset(q.cursor, { c: 'timestamp', i: 'uuid' });
    const rows = await repo.listDocuments(tx.db, tx.orgId, {
      collectionId: q.collectionId, limit: limit + 1, before: before && { createdAt: before.c, id: before.i }, readRole: readRoleOf(tx),
    });
    const p = page(rows, limit, (r) => r.key);
    return { items: p.items.map((r) => r.document), nextCursor: p.nextCursor };
  }

  async getDocument(tx: TenantTx, id: string): Promise<DocumentDto> {
    const d = await repo.getDocument(tx.db, tx.orgId, id, false, readRoleOf(tx));
    if (!d) throw KnowledgeErrors.notFound('knowledge_document', id);
    return d;
  }

  /**
   * Before an upload's body is read (the collection's, or the document's for a new version): the plan's limits as they
   * stand, without the counted limits' lock. A knowledge base at its documents limit (a new document), or at or over its
   * text limit (any upload holds one byte of text at least), is refused at once, the 402 billing.limit_reached the
   * check after extraction would answer, rather than after its file was read and its text extracted (a slot of the
   * extraction queue, a worker's CPU). That check, under the lock, stays the one that counts.
   */
  async roomForUpload(tx: TenantTx, newDocument: boolean): Promise<void> {
    const { documents, textBytes } = await repo.usage(tx.db);
    if (newDocument) await this.entitlements.enforceWithin(tx, KNOWLEDGE_APP, DOCUMENTS_LIMIT, documents + 1);
    await this.entitlements.enforceWithin(tx, KNOWLEDGE_APP, STORAGE_LIMIT, textBytes + 1);
  }

  /** The checks of an upload of a new document before its body is read: the collection (404), then roomForUpload. */
  async beforeUpload(tx: TenantTx, collectionId: string): Promise<void> {
    await this.getCollection(tx, collectionId);
    await this.roomForUpload(tx, true);
  }

  /** The checks of an upload of a new version before its body is read: the document (404), then roomForUpload. */
  async beforeVersionUpload(tx: TenantTx, documentId: string): Promise<void> {
    await this.getDocument(tx, documentId);
    await this.roomForUpload(tx, false);
  }

  /** A new document from an upload (version 1); ingestion is queued in the same transaction. */
  async createFromUpload(tx: TenantTx, collectionId: string, fields: { title?: string; tags: string[] }, file: UploadedText): Promise<DocumentDto> {
    await this.getCollection(tx, collectionId);
    // (a blank file name is no title: the database holds a title of at least one character other than white space)
    const title = fields.title?.trim() || file.filename?.trim() || 'Untitled';
    return this.create(tx, { collectionId, title: title.slice(0, 300), source: 'upload', tags: fields.tags }, file);
  }

  /** A new document whose text comes in the request (a note, or the text of a URL). */
  async createNote(tx: TenantTx, dto: CreateNoteDocumentDto): Promise<DocumentDto> {
    await this.getCollection(tx, dto.collectionId);
    const text = dto.text.trim();
    if (!text) throw KnowledgeErrors.error('knowledge.no_text', 'text is empty');
    return this.create(tx, { collectionId: dto.collectionId, title: dto.title, source: dto.source ?? 'note', sourceUrl: dto.sourceUrl, tags: [...new Set(dto.tags ?? [])] },
      { filename: null, contentType: 'text/markdown', byteSize: Buffer.byteLength(text), text });
  }

  /**
   * The document's row and its version 1. The collection was read just before, but a deletion of it may commit between
   * that read and this insert: its row is locked first (FOR KEY SHARE, the order deleteCollection takes: collection,
   * then documents), so a deletion under way is waited for, and then the collection is gone. The lock is taken only on a
   * collection the caller's role still reads (its read_roles changed meanwhile: false, gone); the insert's policy checks
   * it again (42501), and its key check stays (23503). Each is the 404 the read would have answered a moment later, not
   * a 403 forbidden or a 409 conflict.reference.
   */
  private async create(tx: TenantTx, d: { collectionId: string; title: string; source: string; sourceUrl?: string; tags: string[] }, file: UploadedText): Promise<DocumentDto> {
    const gone = () => KnowledgeErrors.notFound('knowledge_collection', d.collectionId);
    if (!(await repo.shareCollection(tx.db, d.collectionId))) throw gone();
    // the plan's documents (402 at the limit), then its text with this one, on one reading under the counted limits' lock
    const usage = await this.lockedUsage(tx);
    await this.entitlements.enforceWithin(tx, KNOWLEDGE_APP, DOCUMENTS_LIMIT, usage.documents + 1);
    await this.storageWithinPlan(tx, usage.textBytes, Buffer.byteLength(file.text));
    const doc = await translateDatabaseError(repo.createDocument(tx.db, tx.orgId, { ...d, createdBy: userOf(tx) }), {
      // the collection is the only row a document refers to
      '23503': gone,
      // the policy's check (the collection readable by the caller); a missing grant is not this, and stays an error
      '42501': (e) => (e.message?.startsWith('new row violates row-level security') ? gone() : undefined),
    });
    const version = await this.addVersionRow(tx, doc, 1, file, null);
    const after = await repo.setLatestVersion(tx.db, tx.orgId, doc.id, 1);
    await this.audit.record(tx, { action: 'knowledge.document_created', entityType: 'knowledge_document', entityId: doc.id, after: { ...auditedDocument(after), version: auditedVersion(version) } });
    return after;
  }

  /**
   * A new version of a document from an upload: it replaces the indexed one in search once ingested. Locks the
   * collection's row first (FOR KEY SHARE; a document never changes collection), then the document's, then the counted
   * limits' (the plan's text limit): the order deleteCollection takes them in (collection, then documents). A
   * deletion under way is waited for, and then the document is gone (404).
   */
  async addVersion(tx: TenantTx, documentId: string, file: UploadedText, restoredFrom: number | null = null): Promise<DocumentDto> {
    const seen = await repo.getDocument(tx.db, tx.orgId, documentId);
    const before = seen && (await repo.shareCollection(tx.db, seen.collectionId)) ? await repo.getDocument(tx.db, tx.orgId, documentId, true) : undefined;
    if (!before) throw KnowledgeErrors.notFound('knowledge_document', documentId);
    // a knowledge base at its text limit takes no version (402), nor one whose text would pass it: one reading under the
    // counted limits' lock, held to the end
    const { textBytes } = await this.lockedUsage(tx);
    await this.entitlements.enforceWithin(tx, KNOWLEDGE_APP, STORAGE_LIMIT, textBytes + 1);
    await this.storageWithinPlan(tx, textBytes, Buffer.byteLength(file.text));
    const no = before.latestVersion + 1;
    const version = await this.addVersionRow(tx, before, no, file, restoredFrom);
    const after = await repo.setLatestVersion(tx.db, tx.orgId, documentId, no);
    await this.audit.record(tx, {
      action: restoredFrom ? 'knowledge.version_restored' : 'knowledge.version_added', entityType: 'knowledge_document', entityId: documentId,
      before: auditedDocument(before), after: { ...auditedDocument(after), version: auditedVersion(version) },
    });
    return after;
  }

  private async addVersionRow(tx: TenantTx, doc: DocumentDto, versionNo: number, file: UploadedText, restoredFrom: number | null): Promise<VersionDto> {
    const v = await repo.insertVersion(tx.db, tx.orgId, doc.id, doc.collectionId, {
      versionNo, contentType: file.contentType, filename: file.filename, byteSize: file.byteSize, text: file.text,
      restoredFromVersionNo: restoredFrom, createdBy: userOf(tx),
    });
    await enqueue(tx, INDEX_VERSION_JOB, { documentId: doc.id, version: versionNo, requestedBy: userOf(tx) });
    return v;
  }

  /** Restores an earlier version: its text becomes a new latest version (history is never rewritten). */
  async restoreVersion(tx: TenantTx, documentId: string, versionNo: number): Promise<DocumentDto> {
    const v = await this.getVersion(tx, documentId, versionNo);
    return this.addVersion(tx, documentId, { filename: v.filename, contentType: v.contentType, byteSize: v.byteSize, text: v.text }, versionNo);
  }

  listVersions(tx: TenantTx, documentId: string): Promise<VersionDto[]> {
    return this.getDocument(tx, documentId).then(() => repo.listVersions(tx.db, tx.orgId, documentId));
  }

  async getVersion(tx: TenantTx, documentId: string, versionNo: number): Promise<VersionWithTextDto> {
    await this.getDocument(tx, documentId);
    const v = Number.isInteger(versionNo) && versionNo > 0 && versionNo < 2 ** 31 ? await repo.getVersion(tx.db, tx.orgId, documentId, versionNo) : undefined;
    if (!v) throw KnowledgeErrors.error('knowledge.version_not_found', `document ${documentId} has no version ${versionNo}`);
    return v;
  }

  /**
   * Queues ingestion of the latest version again (after a failure, or to re-embed with another model). A document
   * whose ingestion is queued already (pending) is answered as it is, nothing queued: its job embeds the latest
   * version with the configured model anyway, and each call would otherwise embed the whole document once more (as
   * POST /knowledge/reindex skips it). So is one whose latest version is indexed (ready) with the configured model and
   * dimensions: embedding it again would give the same vectors, at the organization's AI budget's expense (a member
   * looping re-indexes re-embedded up to 1M characters a call). The row lock makes concurrent calls queue one job.
   */
  async reindex(tx: TenantTx, documentId: string): Promise<DocumentDto> {
    const before = await repo.getDocument(tx.db, tx.orgId, documentId, true);
    if (!before) throw KnowledgeErrors.notFound('knowledge_document', documentId);
    if (before.status === 'pending') return before;
    if (before.status === 'ready' && before.indexedVersion === before.latestVersion
      && !(await repo.embeddedOtherwise(tx.db, tx.orgId, documentId, this.embeddings.model, this.embeddings.dimensions))) return before;
    await repo.setVersionStatus(tx.db, tx.orgId, documentId, before.latestVersion, 'pending', null);
    const after = await repo.setLatestVersion(tx.db, tx.orgId, documentId, before.latestVersion);
    await enqueue(tx, INDEX_VERSION_JOB, { documentId, version: before.latestVersion, requestedBy: userOf(tx) });
    await this.audit.record(tx, { action: 'knowledge.document_reindexed', entityType: 'knowledge_document', entityId: documentId, before: auditedDocument(before), after: auditedDocument(after) });
    return after;
  }

  /**
   * Re-indexes up to `limit` readable documents embedded by another model or dimension than the configured one (each
   * is a few writes in this transaction, so one call stays bounded); `more`: others remain, for the next call.
   */
  async reindexStale(tx: TenantTx, limit: number): Promise<{ queued: number; more: boolean }> {
    const ids = await repo.staleDocuments(tx.db, tx.orgId, this.embeddings.model, this.embeddings.dimensions, limit + 1);
    const batch = ids.slice(0, limit);
    for (const id of batch) await this.reindex(tx, id);
    return { queued: batch.length, more: ids.length > limit };
  }

  /** Deletes the document with its versions, chunks and embeddings. */
  async deleteDocument(tx: TenantTx, documentId: string): Promise<void> {
    const before = await repo.getDocument(tx.db, tx.orgId, documentId, true);
    if (!before) throw KnowledgeErrors.notFound('knowledge_document', documentId);
    await repo.deleteDocument(tx.db, tx.orgId, documentId);
    await this.audit.record(tx, { action: 'knowledge.document_deleted', entityType: 'knowledge_document', entityId: documentId, before: auditedDocument(before) });
    await emitEvent(tx, 'knowledge_document.deleted', { documentId, collectionId: before.collectionId, version: before.latestVersion });
  }

  // ---------------------------------------------------------------- search
  /**
   * Hybrid search as the caller (the route, and the agents' search_knowledge tool): only chunks of collections the caller's role may read exist for this query (the
   * policies; for an API key, only those of collections that name KEY_KNOWLEDGE_ROLE), so results, scores and ranks are computed among those alone. `open` runs work in a tenant transaction
   * of the caller: one short one reads what the provider call needs; the query's embedding is reserved on the
   * organization's AI budget (402 ai.budget_exceeded when it cannot take it: no provider call, no results: there is no
   * keyword-only answer, as there is none when the provider fails), the query is embedded with no transaction open (a
   * slow provider, up to AI_TIMEOUT_MS per try, would otherwise hold a pooled connection and starve every organization),
   * what it spent is settled and recorded as the caller's AI usage (GET /ai/usage) — both in short transactions of their
   * own (KnowledgeEmbeddings.reserve, record: the caller's may be read-only) — and a second one of the caller runs the search.
   */
  async searchWith(open: OpenTenant, s: KnowledgeSearch): Promise<SearchResultDto> {
    const query = (s.query ?? '').trim();
    if (!query) throw KnowledgeErrors.error('knowledge.query_empty', 'query is empty');
    const k = s.k ?? 10;
    if (k > SEARCH_MAX_K) throw KnowledgeErrors.error('knowledge.k_too_large', `k is ${k}; at most ${SEARCH_MAX_K} results per search`);
    if (s.from && s.to && new Date(s.from) >= new Date(s.to)) throw PlatformErrors.error('validation_failed', 'from must be before to');
    const unavailable = (err: unknown) =>
      AppError.unavailable('knowledge.embedding_unavailable', `the embedding provider did not answer: ${(err as Error).message}`, 5);
    const { info, connection, caller } = await open(async (tx) => {
      // a filter naming a collection or document the caller cannot read answers as one that does not exist
      for (const id of s.collectionIds ?? []) await this.getCollection(tx, id);
      for (const id of s.documentIds ?? []) await this.getDocument(tx, id);
      const storage = await this.storageInfo(tx);
      try {
        return { info: storage, connection: await this.embeddings.connection(tx.db, tx.orgId), caller: { orgId: tx.orgId, requestId: tx.meta.requestId, by: KnowledgeEmbeddings.by(tx) } };
      } catch (err) {
        throw unavailable(err);
      }
    });
    const reservation = await this.embeddings.reserve(caller.orgId, caller.requestId,
      { purpose: 'knowledge_search', inputs: 1, inputTokens: this.embeddings.count([query]), by: caller.by });
    let embedding: number[];
    try {
      const embedded = await this.embeddings.embed(connection, [query]);
      [embedding] = embedded.vectors;
      await this.embeddings.record(caller.orgId, caller.requestId, reservation, embedded.spent);
    } catch (err) {
      if (!(err instanceof EmbeddingFailed)) throw err;
      // released (what a request answered before the failure is spent)
      await this.embeddings.record(caller.orgId, caller.requestId, reservation, spentBy(err));
      throw unavailable(err);
    }
    // the policies decide again in this transaction: a collection made unreadable meanwhile gives no results
    const items = await open((tx) => repo.search(tx.db, info, tx.orgId, {
      ...s, query, k, embedding, readRole: readRoleOf(tx), model: this.embeddings.model, dimensions: this.embeddings.dimensions, candidates: searchCandidates(k),
      exactSearchMaxChunks: this.config.knowledge.exactSearchMaxChunks,
    }));
    return { items };
  }

  storageInfo(tx: { db: TenantTx['db'] }): Promise<StorageInfo> {
    this.storage ??= repo.storageInfo(tx.db).catch((err) => {
      this.storage = undefined;
      throw err;
    });
    return this.storage;
  }
}
