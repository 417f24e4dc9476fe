import { DynamicModule, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import type { AppConfig } from './platform/config/config.js';
import { PlatformModule } from './platform/platform.module.js';
import { QueueModule } from './platform/queue/queue.module.js';
import { AuditModule } from './modules/audit/audit.module.js';
import { AuthModule } from './modules/auth/auth.module.js';
import { OrganizationsModule } from './modules/organizations/organizations.module.js';
import { BillingModule } from './modules/billing/billing.module.js';
import { ReceivablesModule } from './modules/receivables/receivables.module.js';
import { LedgerModule } from './modules/ledger/ledger.module.js';
import { PayablesModule } from './modules/payables/payables.module.js';
import { IntegrationsModule } from './modules/integrations/integrations.module.js';
import { ApiKeysModule } from './modules/api-keys/api-keys.module.js';
import { AnalyticsModule } from './modules/analytics/analytics.module.js';
import { SemanticModule } from './modules/semantic/semantic.module.js';
import { AgentsModule } from './modules/agents/agents.module.js';
import { WebhooksModule } from './modules/webhooks/webhooks.module.js';
import { KnowledgeModule } from './modules/knowledge/knowledge.module.js';
import { NotificationsModule } from './modules/notifications/notifications.module.js';

/** The modular monolith: platform machinery first, then one module per feature folder. */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ScheduleModule.forRoot(),
        PlatformModule.forRoot(config),
        QueueModule.forRoot(config),
        AuditModule,
        NotificationsModule,
        AuthModule,
        OrganizationsModule,
        BillingModule,
        LedgerModule,
        ReceivablesModule,
        PayablesModule,
        IntegrationsModule,
        ApiKeysModule,
        AnalyticsModule,
        SemanticModule,
        AgentsModule,
        WebhooksModule,
        KnowledgeModule,
      ],
    };
  }
}
