import { Global, Module } from '@nestjs/common';
import { AnalyticsController, AnalyticsReportsController } from './analytics.controller.js';
import { AnalyticsService } from './analytics.service.js';
import { AnalyticsMaintenanceJob } from './analytics-maintenance.job.js';
import { PostHogForwarder } from './posthog.forwarder.js';

/** Global like the audit module: every module records its server-side events through AnalyticsService.record(). */
@Global()
@Module({
  controllers: [AnalyticsController, AnalyticsReportsController],
  providers: [AnalyticsService, AnalyticsMaintenanceJob, PostHogForwarder],
  exports: [AnalyticsService, AnalyticsMaintenanceJob, PostHogForwarder],
})
export class AnalyticsModule {}
