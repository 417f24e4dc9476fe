import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { SqlPool, type Db } from './sql.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { Metrics } from '../observability/metrics.js';

/**
 * The privileged paths: the only code that runs outside a tenant transaction. Each runs in a
 * transaction on the owner connection under SET LOCAL ROLE service_role, and each is named here
 * so the list stays short and reviewable. Callers audit what they change.
 */
export const PRIVILEGED_PATHS = {
  /** registration and login: finding a user and password hash before anyone is authenticated */
  'auth.credentials': 'register, password login, token exchange (create or sync a user)',
  /** an access token's session on a route without a tenant transaction (whose begin_request would check it) */
  'auth.session_check': 'whether the session of an access token is live (routes outside a tenant transaction)',
  /** refresh-token rotation, reuse detection and logout by refresh token */
  'auth.refresh': 'refresh-token rotation and family revocation',
  /** the outbox relay: reads pending jobs of every organization */
  'jobs.relay': 'relay outbox rows to Bull or run them in-process',
  /** scheduled clean-up of expired invitations and refresh tokens */
  'jobs.purge': 'purge expired invitations, sessions and refresh tokens',
  /** the daily revenue recognition: which organizations have deferred revenue to recognize (each then runs in its own tenant transaction) */
  'jobs.revenue_recognition': 'list the organizations with deferred invoice lines',
  /** the daily overdue check: which organizations have overdue invoices not yet noted (each then runs in its own tenant transaction) */
  'jobs.invoice_overdue': 'list the organizations with overdue invoices not yet noted',
  /** Stripe webhooks and the Hub provisioning that follows them */
  'billing.webhook': 'apply Stripe events to hub subscriptions',
  /** a checkout of an app whose Stripe subscription the expiry job ended on its own: Stripe's word that it has ended too */
  'billing.checkout': 'record that Stripe has ended a subscription the billing job ended locally (asked by a checkout of its app)',
  /** scheduled expiry of trials and subscriptions canceled at period end */
  'billing.expiry': 'expire ended trials and canceled subscriptions; record when a past-due grace period began; drop checkout keys left in doubt past the 24-hour idempotency window of Stripe; expire the sessions of overtaken checkouts Stripe failed to expire',
  /** a deleted organization's subscriptions: found, then canceled (in Stripe first) */
  'billing.org_deleted': 'cancel the subscriptions of a deleted organization (organization.deleted)',
  /** routing domain events to inboxes and e-mails, sending e-mails and digests (every organization's) */
  'notifications.deliver': 'route domain events to notices and e-mails; send e-mails and digests',
  /** re-sealing integration secrets under the active key */
  'secrets.rotate': 'secrets:rotate command',
  /** AI agent automation: the triggers a domain event or a clock tick fires, across organizations, and their stop */
  'agents.triggers': 'find the agent triggers an event or a schedule fires; stop a trigger whose member may no longer run it',
  /** AI agents: the agent.run.failed events of cancelled runs whose executing instance died before emitting them */
  'agents.cancel_events': 'emit the owed events of cancelled agent runs once their LLM call\'s longest duration has passed',
  /** AI agents: who a job's run executes as (its payload holds ids only: no e-mail, no API key hash in the outbox or Redis) */
  'agents.run_jobs': 'read who started a job\'s agent run as the run records it (checked against the job\'s payload), and the e-mail of that person or the secret hash of that API key',
  /** AI agents: running runs whose executing instance stopped renewing its lease (each is then failed in its own tenant transaction) */
  'agents.lost_runs': 'find the running agent runs whose lease has passed (their executing instance is gone), or that no job took within a day',
  /** /metrics: how many outbox rows wait and for how long, over every organization */
  'metrics.scrape': 'outbox depth and lag for /metrics',
  /** a public provider page: the owner's calendar credentials, to subtract busy times from availability */
  'integrations.busy_times': 'read the sealed CalDAV secret of a public provider for its availability',
  /** analytics: monthly partitions made ahead and dropped after the retention; daily roll-ups of every organization */
  'analytics.maintenance': 'create and drop monthly event partitions, roll events up per organization and day',
  /** analytics: feature usage by plan tier across organizations (service-role key only) */
  'analytics.reports': 'cross-organization usage report for services',
  /** outbound webhooks: fan-out of every organization's domain events, and the delivery worker's claims and outcomes */
  'webhooks.delivery': 'fan out domain events to webhook endpoints, claim due messages, record attempts, disable failing endpoints and a deleted organization\'s',
  /** a person's erasure: their rows in every organization they belong to, by the personal-data catalog */
  'privacy.erasure': 'erase a person (DELETE /v1/me): sessions, memberships, personal organization, declared personal fields',
  /** data exports: a person's own export (every table that locates them), the job writing any export, its download */
  'privacy.export': 'data exports (POST /v1/me/data-export, the export job, the download link): the person\'s rows in every module',
  /** the retention job: purges what has passed its retention, per data class (docs/privacy.md) */
  'privacy.retention': 'purge finished webhook deliveries, processed jobs, routed-event receipts and finished e-mail deliveries past their retention, and the analytics walks of erasures that did not commit',
  /** the knowledge base's ingestion job: stores a document version's chunks and embeddings */
  'knowledge.ingest': 'chunk, embed and store a knowledge document version (outbox job)',
} as const;
export type PrivilegedPath = keyof typeof PRIVILEGED_PATHS;

/**
 * `work` in one transaction of `pool` as the privileged path `path`: PrivilegedDatabase.run's, and that of a path with a
 * pool of its own (the data exports' snapshots, which must not hold a connection of the shared pool for minutes).
 */
export function runPrivileged<T>(pool: SqlPool, path: PrivilegedPath, work: (db: Db) => Promise<T>): Promise<T> {
  return pool.transaction(async function run(db) {
    await db.$executeRaw`SELECT set_config('role', 'service_role', true), set_config('omnizen.privileged_path', ${path}, true), set_config('jit', 'off', true)`;
    return work(db);
  });
}

@Injectable()
export class PrivilegedDatabase implements OnApplicationShutdown {
  private readonly pool: SqlPool;

  /**
   * `metrics`: statements are timed by repository operation when metrics are served (Metrics.queryRecorder). The
   * transactions' callbacks below are named functions, not arrows, so that their own statements are timed under
   * `privileged.service.run` and the like (sql.ts operationOf: an anonymous callback would be "anonymous").
   */
  constructor(@Inject(APP_CONFIG) config: AppConfig, metrics?: Metrics) {
    this.pool = new SqlPool(config.databaseUrl, {
      max: 5, ...config.database, recordQuery: metrics?.queryRecorder,
      onConnectionError: metrics && (() => metrics.dbPoolErrors.inc({ pool: 'privileged' })),
    }, 'PrivilegedDatabase');
  }

  /**
   * No JIT: the sweeps and claims are short index reads whose plans can still cost past jit_above_cost on big tables,
   * and compiling them cost more than running them (the webhook claim at 2,000 endpoints: ~4.5 s of JIT per claim).
   */
  run<T>(path: PrivilegedPath, work: (db: Db) => Promise<T>): Promise<T> {
    return runPrivileged(this.pool, path, work);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}
