import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import { KnowledgeEmbeddings } from './embedding-provider.js';
import { KnowledgeCollectionsController, KnowledgeDocumentsController, KnowledgeSearchController, KnowledgeUploadsController } from './knowledge.controller.js';
import { KnowledgeIngestion } from './knowledge-ingestion.service.js';
import { KnowledgeService } from './knowledge.service.js';
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
export class KnowledgeModule {}
