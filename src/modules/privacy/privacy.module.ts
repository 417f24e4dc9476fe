import { Module } from '@nestjs/common';
import { AgentsModule } from '../agents/agents.module.js';
import { AuthModule } from '../auth/auth.module.js';
import { PartyErasureController, PrivacyController } from './privacy.controller.js';
import { PartyErasureService } from './party-erasure.service.js';
import { RetentionJob } from './retention.job.js';
import { ErasureService } from './erasure.service.js';
import { DataExportDownloadController, MyDataExportController, OrganizationDataExportController } from './data-export.controller.js';
import { DataExportService } from './data-export.service.js';

/** Personal data (issue 20): the catalog (personal-data.catalog.ts), erasure, exports, retention; docs/privacy.md. */
@Module({
  imports: [AuthModule, AgentsModule],
  controllers: [PrivacyController, PartyErasureController, MyDataExportController, OrganizationDataExportController, DataExportDownloadController],
  providers: [ErasureService, PartyErasureService, RetentionJob, DataExportService],
  exports: [RetentionJob],
})
export class PrivacyModule {}
