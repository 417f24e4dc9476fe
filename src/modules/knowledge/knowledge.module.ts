import { Module, OnModuleInit } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import { OrganizationsModule } from '../organizations/organizations.module.js';
import { WorkspacesService } from '../organizations/workspaces.service.js';
import { KnowledgeEmbeddings } from './embedding-provider.js';
import { KnowledgeCollectionsController, KnowledgeDocumentsController, KnowledgeSearchController, KnowledgeUploadsController } from './knowledge.controller.js';
import { KnowledgeIngestion } from './knowledge-ingestion.service.js';
import { KnowledgeService } from './knowledge.service.js';

/** Knowledge base (issue 17): collections, versioned documents, ingestion, hybrid search under the policies. */
@Module({
  imports: [BillingModule, OrganizationsModule],
  controllers: [KnowledgeCollectionsController, KnowledgeDocumentsController, KnowledgeSearchController, KnowledgeUploadsController],
  providers: [
    KnowledgeEmbeddings,
    KnowledgeService,
    KnowledgeIngestion,
  ],
  exports: [KnowledgeService, KnowledgeEmbeddings],
})
export class KnowledgeModule implements OnModuleInit {
  constructor(private readonly workspaces: WorkspacesService, private readonly knowledge: KnowledgeService) {}

  /** A collection belongs to at most one workspace and is deleted with it (its foreign key): such a workspace is not deleted. */
  onModuleInit(): void {
    this.workspaces.registerContents({ noun: 'knowledge collection', count: (tx, workspaceId) => this.knowledge.countCollectionsInWorkspace(tx, workspaceId) });
  }
}
