import { Module, OnModuleInit } from '@nestjs/common';
import { AgentsModule } from '../agents/agents.module.js';
import { BillingModule } from '../billing/billing.module.js';
import { UsageCounters } from '../billing/usage-counters.js';
import { workspaceRepository } from './workspace.repository.js';
import { MyOrganizationsController, OrganizationController } from './organizations.controller.js';
import { OrganizationsService } from './organizations.service.js';
import { MembershipsController } from './memberships.controller.js';
import { MembershipsService } from './memberships.service.js';
import { InvitationAcceptanceController, InvitationsController } from './invitations.controller.js';
import { InvitationsService } from './invitations.service.js';
import { InvitationPurge } from './invitation-purge.service.js';
import { InvitationMail } from './invitation-mail.service.js';
import { WorkspacesController } from './workspaces.controller.js';
import { WorkspacesService } from './workspaces.service.js';
import { FeatureFlagsController, SettingsController } from './settings.controller.js';
import { SettingsService } from './settings.service.js';

@Module({
  imports: [BillingModule, AgentsModule],
  controllers: [
    MyOrganizationsController, OrganizationController, MembershipsController, InvitationsController, InvitationAcceptanceController,
    WorkspacesController, SettingsController, FeatureFlagsController,
  ],
  providers: [OrganizationsService, MembershipsService, InvitationsService, InvitationPurge, InvitationMail, WorkspacesService, SettingsService],
  exports: [OrganizationsService, SettingsService, InvitationPurge],
})
export class OrganizationsModule implements OnModuleInit {
  constructor(private readonly usage: UsageCounters) {}

  onModuleInit(): void {
    this.usage.register('omnizen', 'workspaces', ({ db, orgId }) => workspaceRepository.count(db, orgId));
  }
}
