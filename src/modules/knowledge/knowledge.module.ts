import { Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { BillingModule } from '../billing/billing.module.js';
import { EMBEDDING_PROVIDER, OpenAiEmbeddingProvider } from './embedding-provider.js';
import { KnowledgeCollectionsController, KnowledgeDocumentsController } from './knowledge.controller.js';
import { KnowledgeIngestion } from './knowledge-ingestion.service.js';
import { KnowledgeService } from './knowledge.service.js';

/** Knowledge base (issue 17): collections, versioned documents, ingestion, hybrid search under the policies. */
@Module({
  imports: [BillingModule],
  controllers: [KnowledgeCollectionsController, KnowledgeDocumentsController],
  providers: [
    { provide: EMBEDDING_PROVIDER, inject: [APP_CONFIG], useFactory: (config: AppConfig) => new OpenAiEmbeddingProvider(config.knowledge) },
    KnowledgeService,
    KnowledgeIngestion,
  ],
  exports: [KnowledgeService, EMBEDDING_PROVIDER],
})
export class KnowledgeModule {}
