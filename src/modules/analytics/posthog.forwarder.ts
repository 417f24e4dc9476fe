import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { PostHog } from 'posthog-node';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { AnalyticsEventRow } from './analytics.repository.js';

/**
 * An event's PostHog person. A person is shared by every organization of the PostHog project, so an event names one of
 * our users only when OmniZen vouches for the id: a server event's user, or the signed-in caller's own id on an app's
 * event. Any other id an app sends (its own user ids, another user's id, anonymous ids) is the organization's:
 * namespaced by it, it cannot reach a person of another organization or an OmniZen user.
 */
function distinctIdOf(e: AnalyticsEventRow, caller: string | null): string {
  if (e.userId !== null && (e.source === 'server' || e.userId === caller)) return e.userId;
  if (e.userId !== null) return `org:${e.orgId}:user:${e.userId}`;
  if (e.anonymousId !== null) return `org:${e.orgId}:anon:${e.anonymousId}`;
  return `org:${e.orgId}`;
}

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

  /**
   * `caller`: the signed-in user who sent the apps' events (source 'client'), if one did. An app's events reach PostHog
   * without $-prefixed properties (AnalyticsService refuses them).
   */
  forward(events: AnalyticsEventRow[], caller: string | null = null): void {
    if (!this.client) return;
    for (const e of events) {
      this.client.capture({
        distinctId: distinctIdOf(e, caller),
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
