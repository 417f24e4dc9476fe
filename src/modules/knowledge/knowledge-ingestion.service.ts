import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { AppError } from '../../platform/errors/app-error.js';
import { DatabaseUnavailableError, isTransientSqlState, sqlState } from '../../platform/errors/database-errors.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { EmbeddingReservation } from '../../platform/ai/embedding-meter.js';
import { emitEvent } from '../../platform/events/events.js';
import { JobRegistry, type Job } from '../../platform/queue/jobs.js';
import { AuditService } from '../audit/audit.service.js';
import { chunkByTokens } from './chunking.js';
import { EmbeddingFailed, KnowledgeEmbeddings, spentBy } from './embedding-provider.js';
import { knowledgeRepository as repo } from './knowledge.repository.js';
import { INDEX_VERSION_JOB, KnowledgeService } from './knowledge.service.js';

/**
 * The ingestion job: chunk the version's extracted text by tokens, embed the chunks, and store them. It runs on
 * the privileged path `knowledge.ingest` (the outbox handed it an organization and a document, no person), in
 * three steps so no transaction stays open while the embedding provider answers: read (and reserve the embedding on
 * the organization's AI budget: a refusal fails the version, reason "ai.budget_exceeded: ..."); embed (and settle
 * what it spent, recorded as AI usage of the person who queued it: KnowledgeEmbeddings.reserve, record); write. The write
 * replaces the document's chunks in one transaction, so search sees the old version or the new one, never a mix.
 * A version that is no longer the latest when its job runs is marked superseded; failures are recorded on the
 * version and the document (status failed, the reason) and the re-index route queues it again.
 */
@Injectable()
export class KnowledgeIngestion implements OnModuleInit {
  private readonly logger = new Logger(KnowledgeIngestion.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly jobs: JobRegistry,
    private readonly audit: AuditService,
    private readonly knowledge: KnowledgeService,
    private readonly embeddings: KnowledgeEmbeddings,
  ) {}

  onModuleInit(): void {
    this.jobs.register(INDEX_VERSION_JOB, (job) => this.index(job));
  }

  async index(job: Job): Promise<void> {
    const orgId = job.orgId;
    const documentId = String(job.payload.documentId);
    const versionNo = Number(job.payload.version);
    const loaded = await this.privileged.run('knowledge.ingest', async (db) => {
      // a deleted organization's jobs end here: no call on its (or the platform's) key, nothing written into it
      if (await repo.organizationDeleted(db, orgId)) return undefined;
      const doc = await repo.getDocument(db, orgId, documentId);
      const version = doc && (await repo.getVersion(db, orgId, documentId, versionNo));
      if (!doc || !version) return undefined;
      // the organization's own provider key, else the platform's (an unopenable key fails the version below)
      const connection = await this.embeddings.connection(db, orgId).catch((err: Error) => err);
      return { doc, version, connection };
    });
    if (!loaded) return; // the document, or its organization, was deleted meanwhile
    if (loaded.doc.latestVersion !== versionNo) {
      await this.privileged.run('knowledge.ingest', (db) => repo.setVersionStatus(db, orgId, documentId, versionNo, 'superseded', null));
      return;
    }
    const { chunkTokens, chunkOverlapTokens } = this.config.knowledge;
    let vectors: number[][];
    const chunks = chunkByTokens(loaded.version.text, chunkTokens, chunkOverlapTokens);
    if (loaded.connection instanceof Error) return this.fail(orgId, documentId, versionNo, `embedding failed: ${loaded.connection.message}`);
    const connection = loaded.connection;
    // the person whose write queued the job (absent in a job queued before it was recorded: the version's creator)
    const requestedBy = 'requestedBy' in job.payload ? (job.payload.requestedBy as string | null) : loaded.version.createdBy;
    const call = {
      purpose: 'knowledge_ingestion' as const, inputs: chunks.length, inputTokens: chunks.reduce((n, c) => n + c.tokenCount, 0), documentId,
      by: { userId: requestedBy, apiKeyId: null },
    };
    const requestId = `knowledge-ingest:${documentId}:${versionNo}`;
    // the organization's AI budget first: a refusal fails the version with the budget's code and message (its document
    // keeps the version indexed before, if any, in search: nothing of this one is written), and no provider is called
    let reservation: EmbeddingReservation | null = null;
    if (chunks.length) {
      try {
        reservation = await this.embeddings.reserve(orgId, requestId, call);
      } catch (err) {
        if (err instanceof AppError && err.code === 'ai.budget_exceeded') return this.fail(orgId, documentId, versionNo, `${err.code}: ${err.message}`);
        if (err instanceof AppError && err.code === 'organization.not_found') return; // deleted meanwhile
        throw err; // the queue retries the job
      }
    }
    try {
      const embedded = await this.embeddings.embed(connection, chunks.map((c) => c.content));
      vectors = embedded.vectors;
      await this.embeddings.record(orgId, requestId, reservation, embedded.spent);
    } catch (err) {
      if (!(err instanceof EmbeddingFailed)) throw err;
      await this.embeddings.record(orgId, requestId, reservation, spentBy(err));
      return this.fail(orgId, documentId, versionNo, `embedding failed: ${err.message}`);
    }
    try {
      await this.write(orgId, documentId, versionNo, loaded.version.createdAt, chunks, vectors);
    } catch (err) {
      // the same write would fail the same way again (a value or rule the database refuses, a bug): the version fails,
      // rather than its job calling the provider again forever; a transient failure is the job's to retry
      if (transientFailure(err)) throw err;
      return this.fail(orgId, documentId, versionNo, `indexing failed: ${(err as Error).message}`);
    }
  }

  /** The version and its document fail with `reason` (the re-index route queues it again); audited. */
  private async fail(orgId: string, documentId: string, versionNo: number, reason: string): Promise<void> {
    reason = reason.slice(0, 1000);
    this.logger.warn(`knowledge document ${documentId} version ${versionNo}: ${reason}`);
    await this.privileged.run('knowledge.ingest', async (db) => {
      if (await repo.organizationDeleted(db, orgId, true)) return;
      await repo.markFailed(db, orgId, documentId, versionNo, reason);
      await this.audit.recordPrivileged(db, orgId, 'system', { action: 'knowledge.document_index_failed', entityType: 'knowledge_document', entityId: documentId, after: { version: versionNo, reason } });
    });
  }

  /** The write step: the document's chunks replaced by the version's, audited, its event emitted; one transaction. */
  private async write(orgId: string, documentId: string, versionNo: number, createdAt: string, chunks: ReturnType<typeof chunkByTokens>, vectors: number[][]): Promise<void> {
    await this.privileged.run('knowledge.ingest', async (db) => {
      // deleted while the provider answered: nothing goes into it (the lock orders this after a deletion committing now)
      if (await repo.organizationDeleted(db, orgId, true)) return;
      const info = await this.knowledge.storageInfo({ db });
      // the row lock orders this write after an upload of a newer version that committed meanwhile
      const doc = await repo.getDocument(db, orgId, documentId, true);
      if (!doc) return;
      if (doc.latestVersion !== versionNo) {
        await repo.setVersionStatus(db, orgId, documentId, versionNo, 'superseded', null);
        return;
      }
      await repo.replaceChunks(db, info.storage, orgId, doc,
        { versionNo, createdAt, model: this.embeddings.model, dimensions: this.embeddings.dimensions },
        chunks.map((c, i) => ({ chunkNo: i, content: c.content, tokenCount: c.tokenCount, embedding: vectors[i] })));
      await this.audit.recordPrivileged(db, orgId, 'system', {
        action: 'knowledge.document_indexed', entityType: 'knowledge_document', entityId: documentId,
        after: { version: versionNo, chunkCount: chunks.length, embeddingModel: this.embeddings.model, embeddingDimensions: this.embeddings.dimensions },
      });
      await emitEvent({ db, orgId }, 'knowledge_document.indexed', { documentId, collectionId: doc.collectionId, version: versionNo, chunkCount: chunks.length });
    });
  }
}

/**
 * Whether a failed write may succeed when its job runs again: the database was unreachable or cut the connection
 * (DatabaseUnavailableError), an answer of 503, or a transient SQLSTATE (isTransientSqlState: lost connection or
 * conflict, resources, timeouts, shutdown). Anything else (a value or a rule the database refuses: 22xxx, 23xxx, 42xxx,
 * 54xxx; a server fault, 58xxx, XX000; an error of the code itself) fails the version rather than its job calling the
 * provider again.
 */
export function transientFailure(err: unknown): boolean {
  if (err instanceof DatabaseUnavailableError) return true;
  if (err instanceof AppError) return err.status === 503;
  return isTransientSqlState(sqlState(err).code);
}
