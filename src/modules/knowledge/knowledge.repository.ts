import { sql, type Selectable } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { exactInstant, qb, type DB } from '../../platform/database/query-builder.js';
import type { CollectionDto, DocumentDto, SearchHitDto, VersionDto } from './knowledge.dto.js';
import { organizationDeleted } from '../organizations/organization.repository.js';

// The only place with knowledge SQL. CRUD is typed (Kysely); the chunk writes and the search are raw: their
// embedding column is pgvector's `vector` or `real[]` (the migration decided), which the generated types omit.

export type EmbeddingStorage = 'vector' | 'array';

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

const COLLECTION_COLS = ['id', 'name', 'description', 'read_roles', 'workspace_id', 'created_at', 'updated_at'] as const;
const toCollection = (r: Pick<Selectable<DB['ai.knowledge_collections']>, typeof COLLECTION_COLS[number]>): CollectionDto => ({
  id: r.id, name: r.name, description: r.description, readRoles: r.read_roles, workspaceId: r.workspace_id,
  createdAt: iso(r.created_at)!, updatedAt: iso(r.updated_at)!,
});
const DOCUMENT_COLS = ['id', 'collection_id', 'title', 'source', 'source_url', 'tags', 'latest_version_no', 'indexed_version_no',
  'status', 'status_reason', 'created_by', 'created_at', 'updated_at'] as const;
const toDocument = (r: Pick<Selectable<DB['ai.knowledge_documents']>, typeof DOCUMENT_COLS[number]>): DocumentDto => ({
  id: r.id, collectionId: r.collection_id, title: r.title, source: r.source, sourceUrl: r.source_url, tags: r.tags,
  latestVersion: r.latest_version_no, indexedVersion: r.indexed_version_no, status: r.status, statusReason: r.status_reason,
  createdBy: r.created_by, createdAt: iso(r.created_at)!, updatedAt: iso(r.updated_at)!,
});
const VERSION_COLS = ['version_no', 'content_type', 'filename', 'byte_size', 'restored_from_version_no', 'status', 'status_reason',
  'chunk_count', 'embedding_model', 'embedding_dimensions', 'created_by', 'created_at', 'indexed_at'] as const;
const toVersion = (r: Pick<Selectable<DB['ai.knowledge_versions']>, typeof VERSION_COLS[number]>): VersionDto => ({
  versionNo: r.version_no, contentType: r.content_type, filename: r.filename, byteSize: r.byte_size,
  restoredFromVersion: r.restored_from_version_no, status: r.status, statusReason: r.status_reason, chunkCount: r.chunk_count,
  embeddingModel: r.embedding_model, embeddingDimensions: r.embedding_dimensions, createdBy: r.created_by,
  createdAt: iso(r.created_at)!, indexedAt: iso(r.indexed_at),
});

export interface NewVersion {
  versionNo: number;
  contentType: string;
  filename: string | null;
  byteSize: number;
  text: string;
  restoredFromVersionNo?: number | null;
  createdBy: string | null;
}

export interface ChunkRow {
  chunkNo: number;
  content: string;
  tokenCount: number;
  embedding: number[];
}

export interface SearchFilter {
  collectionIds?: string[];
  documentIds?: string[];
  tags?: string[];
  from?: string;
  to?: string;
}

export interface SearchParams extends SearchFilter {
  query: string;
  /** only collections whose read_roles name this role (an API key's: KnowledgeService), besides what the policies allow */
  readRole?: string;
  embedding: number[];
  model: string;
  dimensions: number;
  k: number;
  /** candidates taken from each ranking before fusion */
  candidates: number;
  /**
   * Up to this many chunks matching the filters and readable by the caller (config KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS),
   * the vector ranking is exact (distance to each, no index): recall 1.0, and on a selective filter no slower than
   * an iterative HNSW scan, which visits about candidates ÷ (share of the index that matches) tuples, most of them
   * discarded by the filter or the policies. Above it, HNSW with the iterative scan.
   */
  exactSearchMaxChunks: number;
}

/** pgvector ≥ 0.8 has iterative index scans (a filtered HNSW search still returns k rows). */
export interface StorageInfo {
  storage: EmbeddingStorage;
  iterativeScan: boolean;
}

const literal = (v: number[], storage: EmbeddingStorage) => (storage === 'vector' ? `[${v.join(',')}]` : `{${v.join(',')}}`);

/**
 * The filters shared by both rankings, their parameters numbered from `first`: organization, collections,
 * documents, tags (all of), from, to.
 */
const filtersSql = (first: number) => `c.org_id = $${first}::uuid
  AND ($${first + 1}::uuid[] IS NULL OR c.collection_id = ANY ($${first + 1}::uuid[]))
  AND ($${first + 2}::uuid[] IS NULL OR c.document_id = ANY ($${first + 2}::uuid[]))
  AND ($${first + 3}::text[] IS NULL OR c.tags @> $${first + 3}::text[])
  AND ($${first + 4}::timestamptz IS NULL OR c.document_date >= $${first + 4}::timestamptz)
  AND ($${first + 5}::timestamptz IS NULL OR c.document_date < $${first + 5}::timestamptz)`;
/** search's numbering: $2 organization, $3 collections, $4 documents, $5 tags, $6 from, $7 to */
const FILTERS = filtersSql(2);
const filterParams = (orgId: string, f: SearchFilter) =>
  [orgId, f.collectionIds ?? null, f.documentIds ?? null, f.tags?.length ? f.tags : null, f.from ?? null, f.to ?? null];

/**
 * hnsw.ef_search: the candidate list of an HNSW scan (the iterative scan goes on past it until it has the limit).
 * With the index built at m 32, ef_construction 128 (20270110000100_knowledge_hnsw_build), at 100,000 chunks of
 * the benchmark's corpus: recall@10 0.90 at 400, 0.98-1.0 at 600, 0.985-1.0 at 800, 0.995-1.0 at 1000 (30 % filter /
 * unfiltered); see bench/README.md (section bench:knowledge).
 */
export const HNSW_EF_SEARCH = 800;
/**
 * hnsw.max_scan_tuples: how many index tuples an iterative scan visits at most before it gives up (pgvector's
 * default 20,000); only reached when the readable, filtered set is a small share of a large index, and such sets
 * (up to SearchParams.exactSearchMaxChunks) are ranked exactly anyway.
 */
export const HNSW_MAX_SCAN_TUPLES = 20_000;
/** Matching chunks the full-text side ranks at most (see search). */
export const FULL_TEXT_MATCH_CAP = 2000;
/** Candidates taken from each ranking before fusion, for a top-k search. */
export const searchCandidates = (k: number) => Math.max(40, k * 4);

/** How the vector ranking is computed: by the HNSW index (pgvector) or exactly (real[], or a small filtered set). */
export type VectorMethod = 'hnsw' | 'exact';

/** The vector ranking's select: $1 the query embedding, $9 the model, $10 the limit, filters as FILTERS. */
function vectorOrderSql(info: StorageInfo, d: number, method: VectorMethod): string {
  if (info.storage === 'vector') {
    // the partial HNSW index of this dimension: same expression, same predicate (d is a validated integer)
    const expr = `(c.embedding::vector(${d}))`;
    const select = `SELECT c.id, ${expr} <=> $1::text::vector(${d}) AS distance FROM ai.knowledge_chunks c
      WHERE c.embedding_dimensions = ${d} AND c.embedding_model = $9 AND ${FILTERS}`;
    // exact: OFFSET 0 keeps the ORDER BY out of the scan, so no plan can take the index's approximate order
    return method === 'hnsw'
      ? `${select} ORDER BY ${expr} <=> $1::text::vector(${d}) LIMIT $10`
      : `SELECT x.id, x.distance FROM (${select} OFFSET 0) x ORDER BY x.distance, x.id LIMIT $10`;
  }
  return `SELECT c.id, 1 - ai.dot_product(c.embedding, $1::text::real[]) AS distance FROM ai.knowledge_chunks c
    WHERE c.embedding_dimensions = ${d} AND c.embedding_model = $9 AND ${FILTERS}
    ORDER BY 2, c.id LIMIT $10`;
}

/**
 * Chooses how to rank by vector and sets this transaction's HNSW settings (SET LOCAL through set_config(..., true)).
 * On pgvector the chunks the caller may read (the policies) that match the filters are counted, up to
 * exactSearchMaxChunks + 1 (the (org_id, collection_id) index; model and dimension left out, so it is an upper
 * bound): at most that many, exact; more, HNSW. With pgvector ≥ 0.8 the HNSW scan is iterative (relaxed order):
 * filters and policies are applied during the index scan, and the scan goes on until it has `limit` rows, so a
 * selective filter still returns k results; the caller re-sorts by distance (relaxed order may return rows slightly
 * out of order).
 */
async function vectorRanking(db: Db, info: StorageInfo, d: number, orgId: string, f: SearchFilter, limit: number, exactMax: number): Promise<{ sql: string; method: VectorMethod }> {
  if (info.storage !== 'vector') return { sql: vectorOrderSql(info, d, 'exact'), method: 'exact' };
  const [{ n }] = await db.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM (
      SELECT 1 FROM ai.knowledge_chunks c WHERE ${filtersSql(1)} LIMIT ${Math.trunc(exactMax) + 1}) x`, ...filterParams(orgId, f));
  const method: VectorMethod = n <= exactMax ? 'exact' : 'hnsw';
  if (method === 'hnsw') {
    if (info.iterativeScan) {
      await db.$executeRawUnsafe(`SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', $1, true),
        set_config('hnsw.max_scan_tuples', $2, true)`, String(Math.max(HNSW_EF_SEARCH, limit)), String(HNSW_MAX_SCAN_TUPLES));
    } else {
      // no iterative scan (pgvector < 0.8): a wider candidate list makes a selective filter less likely to starve it
      await db.$executeRawUnsafe(`SELECT set_config('hnsw.ef_search', '1000', true)`);
    }
  }
  return { sql: vectorOrderSql(info, d, method), method };
}

/** A collection's read_roles name `role` (a restriction on top of the policies: an API key's, KnowledgeService). */
const namesRole = (role: string) => sql<boolean>`${role} = ANY (read_roles)`;
/** The ids of the organization's collections whose read_roles name `role`, as a subquery. */
const namingRole = (orgId: string, role: string) => qb.selectFrom('ai.knowledge_collections').select('id').where('org_id', '=', orgId).where(namesRole(role));

/**
 * The search's filters restricted to the collections that name `readRole` (when set), in the search's transaction:
 * undefined when none is left.
 */
async function restrictToRole<F extends SearchFilter & { readRole?: string }>(db: Db, orgId: string, f: F): Promise<F | undefined> {
  if (!f.readRole) return f;
  const named = new Set((await db.run(namingRole(orgId, f.readRole))).map((r) => r.id));
  const collectionIds = (f.collectionIds ?? [...named]).filter((id) => named.has(id));
  return collectionIds.length ? { ...f, collectionIds } : undefined;
}

export const knowledgeRepository = {
  /** organizations' helper: with `lock`, a deletion committing meanwhile is waited for and seen, or waits for this transaction */
  organizationDeleted,

  async storageInfo(db: Db): Promise<StorageInfo> {
    const [row] = await db.$queryRaw<{ storage: EmbeddingStorage; version: string | null }[]>`
      SELECT ai.embedding_storage() AS storage, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS version`;
    const [major, minor] = (row.version ?? '0.0').split('.').map(Number);
    return { storage: row.storage, iterativeScan: row.storage === 'vector' && (major > 0 || minor >= 8) };
  },

  // ---------------------------------------------------------------- collections
  /** `readRole`: only those whose read_roles name it (besides what the policies allow) */
  async listCollections(db: Db, orgId: string, readRole?: string): Promise<CollectionDto[]> {
    let q = qb.selectFrom('ai.knowledge_collections').select(COLLECTION_COLS).where('org_id', '=', orgId);
    if (readRole) q = q.where(namesRole(readRole));
    const rows = await db.run(q.orderBy('name'));
    return rows.map(toCollection);
  },

  async getCollection(db: Db, orgId: string, id: string, readRole?: string): Promise<CollectionDto | undefined> {
    let q = qb.selectFrom('ai.knowledge_collections').select(COLLECTION_COLS).where('org_id', '=', orgId).where('id', '=', id);
    if (readRole) q = q.where(namesRole(readRole));
    const [row] = await db.run(q);
    return row && toCollection(row);
  },

  async createCollection(db: Db, orgId: string, c: { name: string; description?: string | null; readRoles: string[]; workspaceId?: string | null }): Promise<CollectionDto> {
    const [row] = await db.run(qb.insertInto('ai.knowledge_collections')
      .values({ org_id: orgId, name: c.name, description: c.description ?? null, read_roles: c.readRoles, workspace_id: c.workspaceId ?? null })
      .returning(COLLECTION_COLS));
    return toCollection(row);
  },

  async updateCollection(db: Db, orgId: string, id: string, c: { name?: string; description?: string | null; readRoles?: string[] }): Promise<CollectionDto | undefined> {
    const [row] = await db.run(qb.updateTable('ai.knowledge_collections')
      .set({ name: c.name, description: c.description, read_roles: c.readRoles, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(COLLECTION_COLS));
    return row && toCollection(row);
  },

  async deleteCollection(db: Db, orgId: string, id: string): Promise<number> {
    return db.runCount(qb.deleteFrom('ai.knowledge_collections').where('org_id', '=', orgId).where('id', '=', id));
  },

  /**
   * Locks the collection's documents' rows (FOR UPDATE, in id order) until the transaction ends, after the collection's
   * row (lockCollection): in the order reindexStale locks documents, so the two never wait for each other in a cycle.
   */
  async lockDocumentsOf(db: Db, orgId: string, collectionId: string): Promise<void> {
    await db.run(qb.selectFrom('ai.knowledge_documents').select('id').where('org_id', '=', orgId).where('collection_id', '=', collectionId)
      .orderBy('id').forUpdate());
  },

  /**
   * The request's organization's knowledge base, every collection counted (not only those the caller reads): its
   * documents, and the bytes of its versions' text (ai.knowledge_usage: the organization's row of
   * ai.knowledge_usage_counters, which triggers keep; no scan of the documents or versions).
   */
  async usage(db: Db): Promise<{ documents: number; textBytes: number }> {
    const [row] = await db.$queryRaw<{ documents: bigint; text_bytes: bigint }[]>`SELECT documents, text_bytes FROM ai.knowledge_usage()`;
    return { documents: Number(row.documents), textBytes: Number(row.text_bytes) };
  },

  /**
   * Locks the collection's row (FOR UPDATE) until the transaction ends, before its documents': a new document or version
   * (shareCollection first) waits meanwhile, or is waited for.
   */
  async lockCollection(db: Db, orgId: string, id: string): Promise<void> {
    await db.run(qb.selectFrom('ai.knowledge_collections').select('id').where('org_id', '=', orgId).where('id', '=', id).forUpdate());
  },

  /**
   * Locks the collection's row FOR KEY SHARE until the transaction ends (ai.lock_knowledge_collection, in the request's
   * organization): what a new document or version takes first, before its document's row, so a deletion of the
   * collection (lockCollection first) and the write wait for each other in one order. false when the row is gone, or
   * the caller may not add documents to it (not readable by their role, or a viewer: migration 20270209040200).
   */
  async shareCollection(db: Db, id: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ found: boolean }[]>`SELECT ai.lock_knowledge_collection(${id}::uuid) AS found`;
    return row.found;
  },

  /** Deletes the collection's documents (their versions and chunks cascade): the ids and latest versions deleted. */
  async deleteDocumentsOf(db: Db, orgId: string, collectionId: string): Promise<{ id: string; latestVersion: number }[]> {
    const rows = await db.run(qb.deleteFrom('ai.knowledge_documents').where('org_id', '=', orgId).where('collection_id', '=', collectionId)
      .returning(['id', 'latest_version_no']));
    return rows.map((r) => ({ id: r.id, latestVersion: r.latest_version_no })).sort((a, b) => (a.id < b.id ? -1 : 1));
  },

  // ---------------------------------------------------------------- documents and versions
  /** Newest first; `key` is each document's keyset position (created_at to the microsecond, id). */
  async listDocuments(db: Db, orgId: string, f: { collectionId?: string; limit: number; before?: { createdAt: string; id: string }; readRole?: string }): Promise<{ document: DocumentDto; key: { c: string; i: string } }[]> {
    let q = qb.selectFrom('ai.knowledge_documents').select([...DOCUMENT_COLS, exactInstant('created_at').as('position')]).where('org_id', '=', orgId);
    if (f.collectionId) q = q.where('collection_id', '=', f.collectionId);
    if (f.readRole) q = q.where('collection_id', 'in', namingRole(orgId, f.readRole));
    if (f.before) q = q.where(sql<boolean>`(created_at, id) < (${f.before.createdAt}::timestamptz, ${f.before.id}::uuid)`);
    const rows = await db.run(q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit));
    return rows.map(({ position, ...r }) => ({ document: toDocument(r), key: { c: position, i: r.id } }));
  },

  async getDocument(db: Db, orgId: string, id: string, forUpdate = false, readRole?: string): Promise<DocumentDto | undefined> {
    let q = qb.selectFrom('ai.knowledge_documents').select(DOCUMENT_COLS).where('org_id', '=', orgId).where('id', '=', id);
    if (readRole) q = q.where('collection_id', 'in', namingRole(orgId, readRole));
    if (forUpdate) q = q.forUpdate();
    const [row] = await db.run(q);
    return row && toDocument(row);
  },

  async createDocument(db: Db, orgId: string, d: { collectionId: string; title: string; source: string; sourceUrl?: string | null; tags: string[]; createdBy: string | null }): Promise<DocumentDto> {
    const [row] = await db.run(qb.insertInto('ai.knowledge_documents')
      .values({ org_id: orgId, collection_id: d.collectionId, title: d.title, source: d.source, source_url: d.sourceUrl ?? null, tags: d.tags, created_by: d.createdBy })
      .returning(DOCUMENT_COLS));
    return toDocument(row);
  },

  /** Makes `version` the document's latest and marks the document pending (its ingestion is queued). */
  async setLatestVersion(db: Db, orgId: string, documentId: string, version: number): Promise<DocumentDto> {
    const [row] = await db.run(qb.updateTable('ai.knowledge_documents')
      .set({ latest_version_no: version, status: 'pending', status_reason: null, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', documentId).returning(DOCUMENT_COLS));
    return toDocument(row);
  },

  async deleteDocument(db: Db, orgId: string, id: string): Promise<number> {
    return db.runCount(qb.deleteFrom('ai.knowledge_documents').where('org_id', '=', orgId).where('id', '=', id));
  },

  async insertVersion(db: Db, orgId: string, documentId: string, collectionId: string, v: NewVersion): Promise<VersionDto> {
    const [row] = await db.run(qb.insertInto('ai.knowledge_versions')
      .values({ org_id: orgId, document_id: documentId, collection_id: collectionId, version_no: v.versionNo, content_type: v.contentType,
        filename: v.filename, byte_size: v.byteSize, text: v.text, restored_from_version_no: v.restoredFromVersionNo ?? null, created_by: v.createdBy })
      .returning(VERSION_COLS));
    return toVersion(row);
  },

  async listVersions(db: Db, orgId: string, documentId: string): Promise<VersionDto[]> {
    const rows = await db.run(qb.selectFrom('ai.knowledge_versions').select(VERSION_COLS)
      .where('org_id', '=', orgId).where('document_id', '=', documentId).orderBy('version_no', 'desc'));
    return rows.map(toVersion);
  },

  async getVersion(db: Db, orgId: string, documentId: string, versionNo: number): Promise<(VersionDto & { text: string }) | undefined> {
    const [row] = await db.run(qb.selectFrom('ai.knowledge_versions').select([...VERSION_COLS, 'text'])
      .where('org_id', '=', orgId).where('document_id', '=', documentId).where('version_no', '=', versionNo));
    return row && { ...toVersion(row), text: row.text };
  },

  async setVersionStatus(db: Db, orgId: string, documentId: string, versionNo: number, status: 'pending' | 'failed' | 'superseded', reason: string | null): Promise<void> {
    await db.run(qb.updateTable('ai.knowledge_versions').set({ status, status_reason: reason })
      .where('org_id', '=', orgId).where('document_id', '=', documentId).where('version_no', '=', versionNo));
  },

  async markFailed(db: Db, orgId: string, documentId: string, versionNo: number, reason: string): Promise<void> {
    await this.setVersionStatus(db, orgId, documentId, versionNo, 'failed', reason);
    await db.run(qb.updateTable('ai.knowledge_documents').set({ status: 'failed', status_reason: reason, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', documentId).where('latest_version_no', '=', versionNo));
  },

  // ---------------------------------------------------------------- chunks (the ingestion job, as service_role)
  /**
   * Replaces the document's chunks with `version`'s and marks both ready, in the caller's transaction: the version
   * becomes searchable whole when it commits.
   */
  async replaceChunks(db: Db, storage: EmbeddingStorage, orgId: string, doc: { id: string; collectionId: string; tags: string[] },
    v: { versionNo: number; createdAt: string; model: string; dimensions: number }, chunks: ChunkRow[]): Promise<void> {
    await db.run(qb.deleteFrom('ai.knowledge_chunks').where('org_id', '=', orgId).where('document_id', '=', doc.id));
    const cast = storage === 'vector' ? 'vector' : 'real[]';
    for (let i = 0; i < chunks.length; i += 1000) {
      const part = chunks.slice(i, i + 1000);
      await db.$executeRawUnsafe(`
        INSERT INTO ai.knowledge_chunks (org_id, collection_id, document_id, version_no, chunk_no, content, token_count, tags,
          document_date, embedding_model, embedding_dimensions, embedding)
        SELECT $1::uuid, $2::uuid, $3::uuid, $4::int, c.no, c.content, c.tokens, $5::text[], $6::timestamptz, $7::text, $8::int, c.emb::${cast}
        FROM unnest($9::int[], $10::text[], $11::int[], $12::text[]) AS c(no, content, tokens, emb)`,
      orgId, doc.collectionId, doc.id, v.versionNo, doc.tags, v.createdAt, v.model, v.dimensions,
      part.map((c) => c.chunkNo), part.map((c) => c.content), part.map((c) => c.tokenCount), part.map((c) => literal(c.embedding, storage)));
    }
    await db.run(qb.updateTable('ai.knowledge_versions')
      .set({ status: 'ready', status_reason: null, chunk_count: chunks.length, embedding_model: v.model, embedding_dimensions: v.dimensions, indexed_at: sql`now()` })
      .where('org_id', '=', orgId).where('document_id', '=', doc.id).where('version_no', '=', v.versionNo));
    await db.run(qb.updateTable('ai.knowledge_documents')
      .set({ status: 'ready', status_reason: null, indexed_version_no: v.versionNo, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', doc.id));
  },

  /**
   * Up to `limit` documents (by id) with chunks embedded by another model or dimension than the configured one, and no
   * ingestion already queued (pending: it embeds with the configured model), so repeated calls work through them all.
   */
  async staleDocuments(db: Db, orgId: string, model: string, dimensions: number, limit: number): Promise<string[]> {
    const rows = await db.run(qb.selectFrom('ai.knowledge_documents as d').select('d.id')
      .where('d.org_id', '=', orgId).where('d.status', '<>', 'pending')
      .where((eb) => eb.exists(eb.selectFrom('ai.knowledge_chunks as c').select(sql`1`.as('one'))
        .whereRef('c.org_id', '=', 'd.org_id').whereRef('c.document_id', '=', 'd.id')
        .where((c) => c.or([c('c.embedding_model', '<>', model), c('c.embedding_dimensions', '<>', dimensions)]))))
      .orderBy('d.id').limit(limit));
    return rows.map((r) => r.id);
  },

  /** Whether the document has chunks embedded by another model or dimension than the configured one (staleDocuments' test, for one). */
  async embeddedOtherwise(db: Db, orgId: string, documentId: string, model: string, dimensions: number): Promise<boolean> {
    const rows = await db.run(qb.selectFrom('ai.knowledge_chunks as c').select(sql`1`.as('one'))
      .where('c.org_id', '=', orgId).where('c.document_id', '=', documentId)
      .where((c) => c.or([c('c.embedding_model', '<>', model), c('c.embedding_dimensions', '<>', dimensions)])).limit(1));
    return rows.length > 0;
  },

  // ---------------------------------------------------------------- search
  /**
   * Hybrid search over the chunks the caller may read (the policies decide): the vector ranking (cosine; HNSW on
   * pgvector, exact on real[]) and the full-text ranking (ts_rank_cd over the GIN-indexed tsvector), each cut at
   * `candidates`, fused by reciprocal rank (1/(60 + rank)).
   *
   * The full-text matches come from ai.knowledge_text_matches (by the GIN index, with the policies' access rule and
   * the filters; under RLS `tsv @@ query` is no index condition, see its migration), at most FULL_TEXT_MATCH_CAP of
   * them: a query of common words matches tens of thousands, and ranking them all (reading each tsvector) took
   * seconds at 100,000 chunks. Beyond the cap the full-text ranking is among the first matches the GIN scan returns,
   * and the vector ranking carries the fusion. The ids are joined back to the chunks under the policies.
   * `readRole` restricts the search further to the collections that name it (decided in this transaction too).
   */
  async search(db: Db, info: StorageInfo, orgId: string, params: SearchParams): Promise<SearchHitDto[]> {
    const p = await restrictToRole(db, orgId, params);
    if (!p) return [];
    const d = Math.trunc(p.dimensions);
    const { sql: vectorRankingSql } = await vectorRanking(db, info, d, orgId, p, p.candidates, p.exactSearchMaxChunks);
    const rows = await db.$queryRawUnsafe<{
      id: string; document_id: string; title: string; collection_id: string; version_no: number; chunk_no: number; content: string;
      tags: string[]; document_date: Date | null; score: number; similarity: number | null; vector_rank: number | null; text_rank: number | null;
    }[]>(`
      WITH vec AS MATERIALIZED (${vectorRankingSql}),
      vec_ranked AS (SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS r FROM vec),
      fts_match AS MATERIALIZED (
        SELECT c.id, c.tsv FROM ai.knowledge_chunks c
        WHERE c.org_id = $2::uuid AND c.id = ANY (ARRAY(SELECT ai.knowledge_text_matches($8, $3::uuid[], $4::uuid[], $5::text[], $6::timestamptz, $7::timestamptz, ${FULL_TEXT_MATCH_CAP})))),
      fts AS MATERIALIZED (
        SELECT m.id, ts_rank_cd(m.tsv, websearch_to_tsquery('english', $8)) AS rank FROM fts_match m
        ORDER BY 2 DESC, m.id LIMIT $10),
      fts_ranked AS (SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM fts),
      fused AS (
        SELECT coalesce(v.id, f.id) AS id, coalesce(1.0 / (60 + v.r), 0) + coalesce(1.0 / (60 + f.r), 0) AS score,
               v.distance, v.r AS vector_rank, f.r AS text_rank
        FROM vec_ranked v FULL JOIN fts_ranked f ON f.id = v.id),
      top AS MATERIALIZED (SELECT * FROM fused ORDER BY score DESC, id LIMIT $11)
      SELECT c.id, c.document_id, d.title, c.collection_id, c.version_no, c.chunk_no, c.content, c.tags, c.document_date,
             top.score::float8 AS score, (1 - top.distance)::float8 AS similarity, top.vector_rank::int AS vector_rank, top.text_rank::int AS text_rank
      FROM top
      JOIN ai.knowledge_chunks c ON c.org_id = $2::uuid AND c.id = top.id
      JOIN ai.knowledge_documents d ON d.org_id = c.org_id AND d.id = c.document_id
      ORDER BY top.score DESC, c.id`,
    literal(p.embedding, info.storage), ...filterParams(orgId, p), p.query, p.model, p.candidates, p.k);
    return rows.map((r) => ({
      documentId: r.document_id, documentTitle: r.title, collectionId: r.collection_id, version: r.version_no, chunkNo: r.chunk_no,
      text: r.content, tags: r.tags, documentDate: iso(r.document_date)!, score: Number(r.score),
      similarity: r.similarity === null ? null : Number(r.similarity), vectorRank: r.vector_rank, textRank: r.text_rank,
    }));
  },

  /**
   * The vector ranking alone, for the benchmark's recall@10: as search runs it (same choice of exact or HNSW, same
   * settings, same number of candidates, re-sorted by distance, the first k), or, `exact`, always exact with the
   * same filters. Under the caller's policies like search. `method` says which search took.
   */
  async vectorTopIds(db: Db, info: StorageInfo, orgId: string, p: SearchFilter & Pick<SearchParams, 'embedding' | 'dimensions' | 'model' | 'k' | 'candidates' | 'exactSearchMaxChunks'>,
    exact: boolean): Promise<{ ids: string[]; method: VectorMethod }> {
    const d = Math.trunc(p.dimensions);
    const ranking = exact ? { sql: vectorOrderSql(info, d, 'exact'), method: 'exact' as const } : await vectorRanking(db, info, d, orgId, p, p.candidates, p.exactSearchMaxChunks);
    const rows = await db.$queryRawUnsafe<{ id: string }[]>(`
      WITH v AS MATERIALIZED (${ranking.sql})
      SELECT id::text FROM v WHERE $8::text IS NULL ORDER BY distance, id LIMIT $11`, // $8: search's full-text query, none here
    literal(p.embedding, info.storage), ...filterParams(orgId, p), null, p.model, exact ? p.k : p.candidates, p.k);
    return { ids: rows.map((r) => r.id), method: ranking.method };
  },
};
