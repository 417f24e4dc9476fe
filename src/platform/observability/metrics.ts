import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { createRequire } from 'node:module';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';
import type { QueryRecorder } from '../database/sql.js';

/**
 * prom-client's default metrics (process CPU, memory, handles, event-loop delay, heap, version) without its GC
 * histogram, `nodejs_gc_duration_seconds`: the `gc` PerformanceObserver behind it cost about 6 % of a request's CPU
 * on the read route (bench/README.md, issue 23: metrics on ÷ off 0.936 with it, 0.993 without it, 9 process pairs each).
 * prom-client has no switch for one default metric, so each collector is called as `collectDefaultMetrics` calls it
 * (`prom-client/lib/defaultMetrics.js`, 15.x: `collector(register, config)`).
 */
function registerDefaultMetrics(register: Registry, prefix: string): void {
  const require = createRequire(import.meta.url);
  for (const name of collectDefaultMetrics.metricsList.filter((m) => m !== 'gc')) {
    const collector = require(`prom-client/lib/metrics/${name}.js`) as (r: Registry, c: object) => void;
    collector(register, { register, prefix, eventLoopMonitoringPrecision: 10 });
  }
}

/** The steps of the analytics maintenance job whose failures omnizen_analytics_steps_failed_total counts (its `step` label). */
export const ANALYTICS_STEPS = ['analytics.partitions', 'analytics.rollup', 'analytics.daily_users', 'analytics.active_users', 'analytics.feature_usage'] as const;
export type AnalyticsStep = (typeof ANALYTICS_STEPS)[number];

/**
 * Every metric the API exports at /metrics (Prometheus text format), in one registry per application instance.
 * Label values come from bounded sets only: route templates (never raw paths), HTTP methods and status codes,
 * error codes of the error catalog, job topics, provider models, repository operations (file.function, from the code;
 * at most 1,000 SQL texts not tied to a call site are named, the rest are "other"); organization ids only on the AI metrics, whose
 * organizations are bounded by METRICS_ORG_LABEL_LIMIT (the rest are counted as "other"). The table of metrics
 * and labels is in docs/observability.md; deploy/prometheus/alerts.yml and deploy/grafana/omnizen.json use them.
 */
/** Features (event names, which apps choose) labelled per plan tier; the less used ones are summed as "other". */
export const FEATURE_LABEL_LIMIT = 50;

@Injectable()
export class Metrics {
  readonly registry = new Registry();

  // counted on every request and statement: hot-metrics.ts (the same exposition, without prom-client's per-call work)
  readonly httpRequests = new HotCounter('omnizen_http_requests_total', 'HTTP requests answered, by route template, method and status',
    ['route', 'method', 'status'], this.registry);
  readonly httpDuration = new HotHistogram('omnizen_http_request_duration_seconds', 'Time to answer an HTTP request, by route template and method',
    ['route', 'method'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], this.registry);
  readonly errors = new Counter({
    name: 'omnizen_http_errors_total', help: 'Error answers by HTTP status and error code (the codes of the error catalog)',
    labelNames: ['status', 'code'] as const, registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'omnizen_auth_failures_total', help: 'Refused authentications (401 answers), by error code as reason',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly rlsDenials = new Counter({
    name: 'omnizen_rls_denials_total', help: 'Statements PostgreSQL refused for lack of privilege or by row-level security (SQLSTATE 42501)',
    registers: [this.registry],
  });
  readonly postingsRejected = new Counter({
    name: 'omnizen_ledger_postings_rejected_total', help: 'Journal entries the ledger rejected, by reason (ledger.unbalanced, ledger.period_closed, ...)',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly dbPool = new Gauge({
    name: 'omnizen_db_pool_connections', help: 'Connections of the API database pool: in use, idle, and requests waiting for one',
    labelNames: ['state'] as const, registers: [this.registry],
  });
  readonly dbPoolErrors = new Counter({
    name: 'omnizen_db_pool_errors_total',
    help: 'Database connections that could not be opened (or none free within DATABASE_CONNECT_TIMEOUT_MS), or were lost (an idle or busy one the server cut or that stopped answering, discarded), by pool (api: requests, privileged: jobs and maintenance)',
    labelNames: ['pool'] as const, registers: [this.registry],
  });
  readonly dbQueryDuration = new HotHistogram('omnizen_db_query_duration_seconds',
    'Time from sending a statement to its answer (or error), by repository operation (file.function that sent it)',
    ['operation'], [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], this.registry);
  readonly outboxDepth = new Gauge({
    name: 'omnizen_outbox_depth', help: 'Outbox rows not yet processed', registers: [this.registry],
  });
  readonly outboxLag = new Gauge({
    name: 'omnizen_outbox_lag_seconds', help: 'Age of the oldest due outbox row not yet processed (0 when none)', registers: [this.registry],
  });
  readonly outboxDead = new Gauge({
    name: 'omnizen_outbox_dead', help: 'Outbox jobs given up after their topic\'s last attempt (dead, never retried), still kept, by topic',
    labelNames: ['topic'] as const, registers: [this.registry],
  });
  readonly jobsFailed = new Counter({
    name: 'omnizen_jobs_failed_total', help: 'Job tries that failed (its handler ran and threw), by topic; a refused hand-off to the jobs queue is no try', labelNames: ['topic'] as const, registers: [this.registry],
  });
  readonly jobHandOffsRefused = new Counter({
    name: 'omnizen_jobs_handoff_refused_total', help: 'Outbox jobs the relay could not hand to the jobs queue (Redis down or not answering), by topic: no try, relayed again after a backoff',
    labelNames: ['topic'] as const, registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'omnizen_queue_jobs', help: 'Bull jobs queue, by state (waiting, active, delayed, failed)', labelNames: ['state'] as const, registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'omnizen_webhook_deliveries_total', help: 'Webhook delivery attempts, by outcome (success, failed, timeout, gone)',
    labelNames: ['outcome'] as const, registers: [this.registry],
  });
  readonly emails = new Counter({
    name: 'omnizen_emails_total', help: 'E-mails handed to SMTP, by outcome (sent, failed, not_sent)', labelNames: ['outcome'] as const, registers: [this.registry],
  });
  readonly aiTokens = new Counter({
    name: 'omnizen_ai_tokens_total', help: 'LLM tokens used, by organization, agent, model and usage type (input, output, cached_input, cache_write); organizations and agents past METRICS_ORG_LABEL_LIMIT each as "other"',
    labelNames: ['org', 'agent', 'model', 'type'] as const, registers: [this.registry],
  });
  readonly aiCost = new Counter({
    name: 'omnizen_ai_cost_usd_total', help: 'LLM cost in USD at the prices in effect, by organization, agent and model; organizations and agents past METRICS_ORG_LABEL_LIMIT each as "other"',
    labelNames: ['org', 'agent', 'model'] as const, registers: [this.registry],
  });
  readonly aiBudgetRefusals = new Counter({
    name: 'omnizen_ai_budget_refusals_total', help: 'LLM calls refused because a budget could not reserve them', registers: [this.registry],
  });
  readonly activeUsers = new Gauge({
    name: 'omnizen_active_users', help: 'Distinct users with a usage event today (window day) and in the last 30 days (window month), per organization: the METRICS_ORG_LABEL_LIMIT organizations with the most users of the 30 days, the rest summed as "other" (computed with the analytics roll-ups)',
    labelNames: ['org', 'window'] as const, registers: [this.registry],
  });
  readonly featureUsage = new Gauge({
    name: 'omnizen_feature_usage', help: 'Usage events of today (UTC) by plan tier and feature, from the analytics roll-ups (the most used features per plan; the rest as "other")',
    labelNames: ['plan', 'feature'] as const, registers: [this.registry],
  });
  readonly analyticsStepsFailed = new Counter({
    name: 'omnizen_analytics_steps_failed_total',
    help: 'Steps of the analytics maintenance job that failed (logged with their error), by step: analytics.partitions, analytics.rollup, analytics.daily_users, analytics.active_users, analytics.feature_usage',
    labelNames: ['step'] as const, registers: [this.registry],
  });
  readonly rlsCanary = new Gauge({
    name: 'omnizen_rls_canary_ok', help: '1 when the last row-level-security self-check found no cross-tenant row, 0 when it did (or failed for a reason that does not pass: a policy that raises); no sample until a check has given a verdict',
    registers: [this.registry],
  });
  readonly rlsCanaryUnchecked = new Gauge({
    name: 'omnizen_rls_canary_unchecked', help: '1 when no row-level-security self-check has given a verdict yet (not yet checked), or the last one could not run for a reason that passes (a lock or statement timeout, the database unreachable): omnizen_rls_canary_ok is an older verdict, if any',
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'omnizen_ready', help: '1 when the last readiness check passed', registers: [this.registry],
  });

  /** Scrape-time collectors (pool, outbox, queue): each refreshes its gauges before the registry is read. */
  private readonly collectors: (() => Promise<void> | void)[] = [];
  /** the label budgets of the AI metrics (orgLabel, agentLabel): each at most METRICS_ORG_LABEL_LIMIT values */
  private readonly aiOrgLabels = new Set<string>();
  private readonly aiAgentLabels = new Set<string>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    registerDefaultMetrics(this.registry, 'omnizen_process_');
    // not yet checked: no verdict (a 1 would claim a check that never ran, a 0 a leak; the canary checks at boot)
    this.rlsCanary.remove();
    this.rlsCanaryUnchecked.set(1);
    // every step's series exported from the start at 0: a series born at 1 shows no increase() to the alert
    for (const step of ANALYTICS_STEPS) this.analyticsStepsFailed.inc({ step }, 0);
  }

  /**
   * What the database pools time their statements with (sql.ts), only when metrics are served: without METRICS_TOKEN
   * nothing reads them, and statements are not timed at all (bench/README.md: the cost of metrics on vs off).
   */
  get queryRecorder(): QueryRecorder | undefined {
    if (!this.config.observability.metricsToken) return undefined;
    const histogram = this.dbQueryDuration;
    return (operation, seconds) => histogram.observe(seconds, operation);
  }

  /** `collect` runs before each scrape; a failing collector leaves its gauges as they were. */
  onScrape(collect: () => Promise<void> | void): void {
    this.collectors.push(collect);
  }

  async scrape(): Promise<string> {
    await Promise.all(this.collectors.map(async (c) => {
      try {
        await c();
      } catch {
        // a dependency down: its gauges keep their last value; readiness reports the dependency
      }
    }));
    return this.registry.metrics();
  }

  /**
   * An organization id as a label value of the AI metrics, for at most METRICS_ORG_LABEL_LIMIT distinct organizations
   * (the first seen by the process); the rest share "other". The AI metrics' own budget: no other metric takes from it
   * (the active-users gauge, which once shared it, handed the labels to whichever organizations it read first).
   */
  orgLabel(orgId: string): string {
    return this.bounded(this.aiOrgLabels, orgId);
  }

  /** An agent id as a label value of the AI metrics: a budget of its own, as the organizations' (agents come and go). */
  agentLabel(agentId: string): string {
    return this.bounded(this.aiAgentLabels, agentId);
  }

  private bounded(labels: Set<string>, value: string): string {
    if (labels.has(value)) return value;
    if (labels.size >= this.config.observability.orgLabelLimit) return 'other';
    labels.add(value);
    return value;
  }

  private readonly postingRejections = new Set<string>();

  /** The error codes that mean "the ledger rejected a posting" (the ledger module declares them). */
  countAsRejectedPostings(codes: readonly string[]): void {
    for (const code of codes) this.postingRejections.add(code);
  }

  /**
   * One LLM call's usage, counted once the provider answered (the tokens are spent whether or not the settling
   * transaction commits). The organization and the agent each from a bounded set (orgLabel, agentLabel; the rest
   * "other"); the agent is labelled only for an organization that has its own label.
   */
  countLlmCall(orgId: string, agentId: string, model: string, usage: { input: number; output: number; cachedInput: number; cacheWrite: number }, costUsd: number): void {
    const org = this.orgLabel(orgId);
    const agent = org === 'other' ? 'other' : this.agentLabel(agentId);
    const tokens = { input: usage.input, output: usage.output, cached_input: usage.cachedInput, cache_write: usage.cacheWrite };
    for (const [type, n] of Object.entries(tokens)) if (n > 0) this.aiTokens.inc({ org, agent, model, type }, n);
    this.aiCost.inc({ org, agent, model }, costUsd);
  }

  /**
   * The analytics roll-up's active users per organization: labelled for the METRICS_ORG_LABEL_LIMIT organizations with
   * the most users of the last 30 days (then of today; then by id), chosen anew at each roll-up, the rest summed as
   * "other". A budget of its own, held by no organization past the roll-up: it takes no label from the AI metrics.
   */
  setActiveUsers(activeUsers: { orgId: string; day: number; month: number }[]): void {
    const limit = this.config.observability.orgLabelLimit;
    const ranked = [...activeUsers].sort((a, b) => b.month - a.month || b.day - a.day || (a.orgId < b.orgId ? -1 : a.orgId > b.orgId ? 1 : 0));
    const users = new Map<string, { day: number; month: number }>();
    ranked.forEach((r, i) => {
      const org = i < limit ? r.orgId : 'other';
      const sum = users.get(org) ?? { day: 0, month: 0 };
      users.set(org, { day: sum.day + r.day, month: sum.month + r.month });
    });
    this.activeUsers.reset();
    for (const [org, { day, month }] of users) {
      this.activeUsers.set({ org, window: 'day' }, day);
      this.activeUsers.set({ org, window: 'month' }, month);
    }
  }

  /**
   * The analytics roll-up's feature usage of today by plan, as given: the roll-up's read already bounds it to
   * FEATURE_LABEL_LIMIT features per plan and one "other" of the rest (folded there only). Rows of one label add up (an
   * event an app named "other" joins the rest's).
   */
  setFeatureUsage(featureUsage: { plan: string; feature: string; events: number }[]): void {
    this.featureUsage.reset();
    for (const r of featureUsage) this.featureUsage.inc({ plan: r.plan, feature: r.feature }, r.events);
  }

  /** What an error answer says about the system: its code, a refused authentication, an RLS denial, a rejected posting. */
  recordError(status: number, code: string, sqlState?: string): void {
    this.errors.inc({ status: String(status), code });
    if (status === 401) this.authFailures.inc({ reason: code });
    if (sqlState === '42501') this.rlsDenials.inc();
    if (this.postingRejections.has(code)) this.postingsRejected.inc({ reason: code });
  }
}
