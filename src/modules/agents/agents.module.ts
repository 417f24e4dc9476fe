import { KnowledgeModule } from '../knowledge/knowledge.module.js';
import { Module, OnModuleInit } from '@nestjs/common';
import { EMBEDDING_METER } from '../../platform/ai/embedding-meter.js';
import { PROVIDER_CONNECTIONS } from '../../platform/ai/provider-connections.js';
import { BillingModule } from '../billing/billing.module.js';
import { UsageCounters } from '../billing/usage-counters.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { SemanticModule } from '../semantic/semantic.module.js';
import { AgentRunsController, AgentsController, AiCatalogController } from './agents.controller.js';
import { agentsRepository } from './agents.repository.js';
import { AgentsService } from './agents.service.js';
import { AutomationService } from './automation.service.js';
import { EmbeddingUsageService } from './embedding-usage.service.js';
import { ProviderKeysService } from './provider-keys.service.js';
import { RunsService } from './runs.service.js';
import { ToolRegistry } from './tool-registry.js';

/** AI agents: catalog, agents, runs with traces and cost, tools, budgets, usage (issue 16). */
@Module({
  imports: [BillingModule, LedgerModule, SemanticModule, KnowledgeModule],
  controllers: [AiCatalogController, AgentsController, AgentRunsController],
  providers: [AgentsService, RunsService, ProviderKeysService, ToolRegistry, AutomationService, EmbeddingUsageService,
    // the knowledge base's embeddings use the runs' provider keys (see KnowledgeEmbeddings.connection)
    { provide: PROVIDER_CONNECTIONS, useExisting: ProviderKeysService },
    // and their budgets and usage report (see KnowledgeEmbeddings.meter)
    { provide: EMBEDDING_METER, useExisting: EmbeddingUsageService }],
  exports: [ToolRegistry, RunsService, ProviderKeysService, AutomationService, PROVIDER_CONNECTIONS, EMBEDDING_METER],
})
export class AgentsModule implements OnModuleInit {
  constructor(private readonly usage: UsageCounters) {}

  onModuleInit(): void {
    // @ConsumesLimit('omnizen', 'ai_agents') counts here, inside the create's transaction (after the limit lock)
    this.usage.register('omnizen', 'ai_agents', ({ db }) => agentsRepository.countAgents(db));
  }
}
