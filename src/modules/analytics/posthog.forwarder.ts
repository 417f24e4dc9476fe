import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { PostHog } from 'posthog-node';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db } from '../../platform/database/database.service.js';
import { enqueue, JobRegistry, type Job } from '../../platform/queue/jobs.js';
import { secretBoxFromConfig } from '../integrations/integrations.module.js';
import type { AnalyticsEventRow } from './analytics.repository.js';

/**
 * The outbox topic of a person's deletion from PostHog: payload { distinctIds } (PostHogForwarder.erasePersons), personal
 * data (the erased person's addresses): sealed with the secret box, emptied once done (JobOptions.personalData).
 */
export const POSTHOG_ERASURE_JOB = 'analytics.posthog_erasure';

/** persons/bulk_delete takes at most this many distinct ids per call. */
const BULK_DELETE_MAX = 1000;

/** How long one deletion call may take; a slower one fails, and the outbox tries the job again. */
const DELETE_TIMEOUT_MS = 15_000;

/**
 * How long after the erasure the deletion job first runs: PostHog deletes only the events it has ingested by then, and
 * the person's last ones may still be on their way (posthog-node sends its queue every second and retries; the erasure's
 * own re-authentication emits user.signed_in; PostHog's ingestion lags behind its capture endpoint).
 */
export const POSTHOG_ERASURE_DELAY_SECONDS = 3600;

/**
 * The deletion job's attempts before it is dead (about three days: JobRegistry, retryDelaySeconds): time to mend PostHog
 * or a revoked key; then omnizen_outbox_dead (OmniZenJobsDead) says so, and its payload (the distinct ids: ids, and the
 * person's addresses and the app ids naming them, which PostHog must be sent) stays sealed for an operator to retry it,
 * until the retention purge (docs/privacy.md).
 */
export const POSTHOG_ERASURE_MAX_ATTEMPTS = 84;

/** The ids of an app's event that OmniZen does not vouch for (distinctIdOf). */
type AppEventIds = Pick<AnalyticsEventRow, 'orgId' | 'userId' | 'anonymousId'>;

/**
 * The distinct ids a person's events may have been forwarded under (distinctIdOf): their own id; the ids an app of one of
 * `orgIds` (those they are or were in) sent for them without speaking for them, their user id or one of their proven
 * addresses `emails` (`org:<orgId>:user:<id or e-mail>`); and those of `named`, the events of those organizations found
 * naming them (erasureRepository.analyticsIdsNaming: a visitor's `org:<orgId>:anon:<id>`, `org:<orgId>:user:mailto:<e-mail>`).
 * Not an event an app stored under another person's id (that person's PostHog person): docs/privacy.md.
 */
export function distinctIdsOfPerson(userId: string, emails: string[], orgIds: string[], named: AppEventIds[]): string[] {
  const forOrgs = orgIds.flatMap((orgId) => [userId, ...emails].map((id) => appDistinctId({ orgId, userId: id, anonymousId: null })));
  return [...new Set([userId, ...forOrgs, ...named.map(appDistinctId)])];
}

/** An app's event's id in PostHog when OmniZen does not vouch for its user id: namespaced by its organization. */
function appDistinctId(e: AppEventIds): string {
  if (e.userId !== null) return `org:${e.orgId}:user:${e.userId}`;
  if (e.anonymousId !== null) return `org:${e.orgId}:anon:${e.anonymousId}`;
  return `org:${e.orgId}`;
}

/**
 * An event's PostHog person. A person is shared by every organization of the PostHog project, so an event names one of
 * our users only when OmniZen vouches for the id: a server event's user, or the signed-in caller's own id on an app's
 * event. Any other id an app sends (its own user ids, another user's id, anonymous ids) is the organization's:
 * namespaced by it, it cannot reach a person of another organization or an OmniZen user.
 */
function distinctIdOf(e: AnalyticsEventRow, caller: string | null): string {
  if (e.userId !== null && (e.source === 'server' || e.userId === caller)) return e.userId;
  return appDistinctId(e);
}

/**
 * Forwards stored events to PostHog when POSTHOG_API_KEY is set (posthog-node batches and retries in the
 * background). Each event keeps our id as PostHog's uuid (PostHog drops a repeated one) and the organization as its
 * `organization` group. Without the key this does nothing.
 */
@Injectable()
export class PostHogForwarder implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(PostHogForwarder.name);
  private readonly client: PostHog | null;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig, private readonly jobs: JobRegistry) {
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
   * without $-prefixed properties nor those PostHog reads as the event's own (distinct_id...: AnalyticsService refuses them).
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

  onModuleInit(): void {
    this.jobs.register(POSTHOG_ERASURE_JOB, (job) => this.deletePersons(job), {
      maxAttempts: POSTHOG_ERASURE_MAX_ATTEMPTS,
      personalData: secretBoxFromConfig(this.config),
    });
  }

  /**
   * A person's erasure (in its transaction, `db` on organization `orgId`): when PostHog's deletion is configured
   * (POSTHOG_PERSONAL_API_KEY and POSTHOG_PROJECT_ID, which forwarding needs, and which a deployment that stopped
   * forwarding keeps for the persons it forwarded before), a job deletes the PostHog persons of `distinctIds` with their
   * events, POSTHOG_ERASURE_DELAY_SECONDS after the erasure has committed (their last events have reached PostHog), tried
   * again until PostHog has taken it (the outbox's backoff), at most POSTHOG_ERASURE_MAX_ATTEMPTS times: PostHog being
   * down delays it, and fails no erasure. Without those settings, nothing.
   */
  async erasePersons(tx: { db: Db; orgId: string }, distinctIds: string[]): Promise<boolean> {
    const { posthogPersonalApiKey: key, posthogProjectId: project } = this.config.analytics;
    if (!key || !project || !distinctIds.length) return false;
    await enqueue(tx, POSTHOG_ERASURE_JOB, this.jobs.sealed(POSTHOG_ERASURE_JOB, tx.orgId, { distinctIds }), POSTHOG_ERASURE_DELAY_SECONDS);
    return true;
  }

  /**
   * The job: POST /api/projects/<id>/persons/bulk_delete/ (PostHog's private API, a personal API key with person:write),
   * the persons of the distinct ids and their events (delete_events: PostHog deletes them in its weekly batch). Repeated,
   * it deletes nothing more (an id of no person is no error). A refusal or a timeout throws: the outbox retries. So does a
   * deployment that has since removed the deletion settings: the job stays pending until they are back (they are kept after
   * forwarding is turned off, docs/privacy.md), or until its last attempt (then dead, for an operator to retry).
   */
  private async deletePersons(job: Job): Promise<void> {
    const { posthogPersonalApiKey: key, posthogProjectId: project, posthogAppHost: host } = this.config.analytics;
    const ids = (job.payload.distinctIds as unknown[]).filter((id): id is string => typeof id === 'string');
    if (!key || !project) {
      throw new Error(`PostHog's deletion is not configured (POSTHOG_PERSONAL_API_KEY, POSTHOG_PROJECT_ID): ${ids.length} distinct id(s) wait for it`);
    }
    const url = new URL(`api/projects/${encodeURIComponent(project)}/persons/bulk_delete/`, host.endsWith('/') ? host : `${host}/`);
    for (let i = 0; i < ids.length; i += BULK_DELETE_MAX) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ distinct_ids: ids.slice(i, i + BULK_DELETE_MAX), delete_events: true }),
        signal: AbortSignal.timeout(DELETE_TIMEOUT_MS),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`PostHog refused the deletion of persons: HTTP ${res.status}`);
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
