import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { PostHog } from 'posthog-node';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { AnalyticsEventRow } from './analytics.repository.js';

/**
 * Forwards stored events to PostHog when POSTHOG_API_KEY is set (posthog-node batches and retries in the
 * background). Each event keeps our id as PostHog's uuid (PostHog drops a repeated one) and the organization as its
 * `organization` group. Without the key this does nothing.
 */
@Injectable()
export class PostHogForwarder implements OnApplicationShutdown {
  private readonly logger = new Logger(PostHogForwarder.name);
  private readonly client: PostHog | null;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.client = config.analytics.posthogApiKey
      ? new PostHog(config.analytics.posthogApiKey, { host: config.analytics.posthogHost, flushAt: 100, flushInterval: 1000 })
      : null;
    this.client?.on('error', (err: unknown) => this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'PostHog forwarding failed'));
  }

  get enabled(): boolean {
    return this.client !== null;
  }

  forward(events: AnalyticsEventRow[]): void {
    if (!this.client) return;
    for (const e of events) {
      this.client.capture({
        distinctId: e.userId ?? e.anonymousId ?? `org:${e.orgId}`,
        event: e.name,
        properties: { ...e.properties, source: e.source, org_id: e.orgId },
        groups: { organization: e.orgId },
        timestamp: e.occurredAt,
        uuid: e.id,
      });
    }
  }

  /** Sends what is queued now (tests; shutdown). */
  async flush(): Promise<void> {
    await this.client?.flush();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.client?.shutdown(2000).catch(() => undefined);
  }
}
