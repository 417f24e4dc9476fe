import { Module, type OnModuleInit } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import { UsageCounters } from '../billing/usage-counters.js';
import { KnowledgeEmbeddings } from './embedding-provider.js';
import { KnowledgeCollectionsController, KnowledgeDocumentsController, KnowledgeSearchController, KnowledgeUploadsController } from './knowledge.controller.js';
import { KnowledgeIngestion } from './knowledge-ingestion.service.js';
import { knowledgeRepository } from './knowledge.repository.js';
import { DOCUMENTS_LIMIT, KNOWLEDGE_APP, KnowledgeService, STORAGE_LIMIT } from './knowledge.service.js';
import { PdfTextExtractor } from './pdf-text-extraction.js';

/** Knowledge base (issue 17): collections, versioned documents, ingestion, hybrid search under the policies. */
@Module({
  imports: [BillingModule],
  controllers: [KnowledgeCollectionsController, KnowledgeDocumentsController, KnowledgeSearchController, KnowledgeUploadsController],
  providers: [
    KnowledgeEmbeddings,
    KnowledgeService,
    KnowledgeIngestion,
    PdfTextExtractor,
  ],
  exports: [KnowledgeService, KnowledgeEmbeddings],
})
export class KnowledgeModule implements OnModuleInit {
  constructor(private readonly usage: UsageCounters) {}

  onModuleInit(): void {
    // the plan's limits of the knowledge base, counted over every collection of the organization (KnowledgeService)
    this.usage.register(KNOWLEDGE_APP, DOCUMENTS_LIMIT, async ({ db }) => (await knowledgeRepository.usage(db)).documents);
    this.usage.register(KNOWLEDGE_APP, STORAGE_LIMIT, async ({ db }) => (await knowledgeRepository.usage(db)).textBytes);
  }
}
