import { join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { assertCronExpression } from '../queue/schedule.js';

// Configuration is read once, at boot, and validated: a bad or missing variable stops the process
// with a message that names it. Everything else receives the typed AppConfig.

export class ConfigError extends Error {}

export interface AppConfig {
  nodeEnv: 'development' | 'test' | 'production';
  port: number;
  /** Address the HTTP server binds (0.0.0.0: every interface, as a container needs). */
  host: string;
  /** Owner connection: migrations and the privileged paths listed in platform/database/privileged.ts. */
  databaseUrl: string;
  /** Runtime connection of the API: a login with no table rights of its own (omnizen_api). */
  apiDatabaseUrl: string;
  apiDatabasePoolSize: number;
  /** timeouts every pool (runtime and privileged) sets on its sessions, in ms */
  database: {
    /** longest wait for a free or new connection before the request fails with 503 database_unavailable */
    connectTimeoutMs: number;
    /** longest single statement: cancelled by the server (57014 → 503 database_timeout) */
    statementTimeoutMs: number;
    /**
     * the longest statement timeout a transaction sets for itself: a semantic query's (AI_SEMANTIC_TIMEOUT_MS). The
     * client waits twice the timeout in force, and a second, for a statement's answer before it gives the connection up
     */
    localStatementTimeoutMs: number;
    /** longest wait for a lock, shorter than the statement timeout (55P03 → 503 database_timeout) */
    lockTimeoutMs: number;
    /** a transaction left idle this long is ended by the server (its connection is discarded) */
    idleInTransactionTimeoutMs: number;
    /** statements fixed by the code run as named prepared statements (false behind a transaction-mode pooler that drops them) */
    preparedStatements: boolean;
  };
  redisUrl?: string;
  /**
   * REDIS_COMMAND_TIMEOUT_MS: longest wait for the answer of one command of the shared Redis client (rate limiter, login
   * throttle, notification pushes); a Redis that hangs then fails like one that is down, and its callers fall back
   */
  redisCommandTimeoutMs: number;
  /** key prefix of Bull queues and other Redis keys (tests give each database its own) */
  redisPrefix: string;
  migrateOnStart: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  http: {
    /** Browser origins allowed to call the API (CORS, credentials included), from CORS_ORIGINS; empty: none */
    corsOrigins: string[];
    /** Whether /docs (Swagger UI) and /docs-json are served (API_DOCS) */
    apiDocs: boolean;
    /**
     * TRUST_PROXY: the peers whose X-Forwarded-For names the client (Fastify's trustProxy): true (any), false (none),
     * or addresses, CIDR ranges and range names; default ['loopback']. The client address feeds the per-address limits.
     */
    trustProxy: boolean | string[];
  };
  auth: {
    supabaseJwtSecret: string;
    nextAuthSecret?: string;
    supabaseUrl: string;
    supabaseAnonKey?: string;
    accessTokenTtlSeconds: number;
    refreshTokenTtlDays: number;
    cookies: boolean;
    cookieSecure: boolean;
    /** attempts per account from one address within loginLockoutSeconds */
    loginMaxFailures: number;
    loginLockoutSeconds: number;
    /** attempts per account from all addresses within loginAccountWindowSeconds (the slower limit) */
    loginAccountMaxFailures: number;
    loginAccountWindowSeconds: number;
    /** registrations per client address within registerWindowSeconds */
    registerMaxPerAddress: number;
    registerWindowSeconds: number;
    /** argon2id cost of password hashes (and of the dummy hash unknown e-mails are checked against) */
    passwordHash: { memoryKib: number; timeCost: number };
    /** how long an e-mail verification link stays valid */
    emailVerificationTtlHours: number;
    /** a just-rotated refresh token returns the same new pair within this window (parallel tabs) */
    refreshGraceSeconds: number;
    /** API keys an organization may hold at once, not revoked and not expired (API_KEYS_MAX_ACTIVE) */
    apiKeysMaxActive: number;
    /** how often an open notification stream checks that its token's session is live (STREAM_SESSION_CHECK_MS) */
    streamSessionCheckMs: number;
  };
  invitationTtlDays: number;
  jobs: {
    relayIntervalMs: number;
    purgeCron: string;
    /** a job relayed to Bull whose completion was not recorded within this time is relayed again (ms) */
    claimTimeoutMs: number;
    /** longest wait for Redis to accept a job before the relay records the attempt as failed (ms) */
    enqueueTimeoutMs: number;
    /** how long Bull's worker waits before polling again after a failed poll, e.g. a dropped Redis connection (ms; Bull's retryProcessDelay) */
    workerRetryDelayMs: number;
    /** outbox rows one relay round claims (and hands to Bull with one addBulk) */
    relayBatchSize: number;
  };
  /** how long each class of data is kept before the retention job purges it (docs/privacy.md) */
  retention: {
    cron: string;
    /** finished webhook deliveries (messages and their attempts) */
    webhookDeliveryDays: number;
    /** processed jobs of the outbox (their payloads may name people), and notifications' receipts of routed events */
    outboxDays: number;
    /** finished e-mail deliveries (address and rendered data) and sent digests */
    emailDeliveryDays: number;
    /** data exports: how long a finished export's download link (and its file) lives */
    dataExportHours: number;
  };
  /** data exports (docs/privacy.md): the directory their ZIP files are written to */
  dataExportDir: string;
  observability: {
    /** /metrics answers only requests bearing this token (METRICS_TOKEN); unset: /metrics is not served (404) */
    metricsToken?: string;
    /**
     * distinct organizations (and, a budget of their own, agents) that get their own label value on the AI metrics,
     * and organizations on the active-users gauge (those with the most users, chosen at each roll-up); the rest are "other"
     */
    orgLabelLimit: number;
    /** how often the row-level-security canary runs (ms); 0: only when /health/ready asks */
    rlsCanaryIntervalMs: number;
    /** traces over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT); unset: no tracing, nothing of OpenTelemetry loaded */
    tracing?: TracingConfig;
    /** how long a third-party readiness probe's result (Stripe, the LLM provider) is reused (ms) */
    readinessProbeCacheMs: number;
    /**
     * whether Redis being down makes /health/ready 503 (READINESS_REQUIRES_REDIS); by default it is reported without
     * deciding: the API serves without Redis, jobs wait in the outbox until it is back
     */
    readinessRequiresRedis: boolean;
    /** errors (5xx) reported to Sentry (SENTRY_DSN); unset: nothing is sent */
    sentry?: { dsn: string; environment: string };
  };
  /** SIGTERM: how long in-flight requests may take to finish before the process closes anyway (ms) */
  shutdownGraceMs: number;
  /**
   * after SIGTERM, how long the API still accepts connections while readiness answers 503 draining, before it stops
   * accepting: the time an orchestrator takes to stop routing to it (Kubernetes removes the endpoint asynchronously)
   */
  shutdownDrainDelayMs: number;
  billing: {
    stripeSecretKey?: string;
    stripeWebhookSecret?: string;
    stripeApiHost?: string;
    stripeApiPort?: number;
    stripeApiProtocol?: 'http' | 'https';
    /** "price_x=app:plan,price_y=app:plan" mapped to { price_x: { app, plan } } */
    stripePrices: Record<string, { app: string; plan: string }>;
    /**
     * STRIPE_PORTAL_CONFIGURATIONS="app=bpc_x,app:business=bpc_y": the Stripe billing portal configuration a portal
     * session of an app uses (`app:personal` / `app:business`: for that kind of account, before `app`); none: Stripe's
     * default configuration, which lists every product (the webhook holds a subscription switched to another app's or
     * audience's price to its app's default plan)
     */
    stripePortalConfigurations: Record<string, string>;
    pastDueGraceDays: number;
    /** APP_URL, the frontend the links in e-mails and Stripe redirects point to, without a trailing slash */
    appUrl: string;
  };
  secrets: {
    /** key id -> 32-byte key, from SECRETS_KEYS="k1:base64,k2:base64" */
    keys: Record<string, Buffer>;
    activeKeyId?: string;
  };
  /** The LLM provider layer (src/platform/ai): any OpenAI-compatible endpoint. */
  ai: {
    /** AI_BASE_URL: the chat-completions / embeddings endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM...) */
    baseUrl: string;
    /** AI_API_KEY: the platform's default key (an organization may store its own); absent: only organizations with a key run agents */
    apiKey?: string;
    /** AI_TIMEOUT_MS: longest single provider call (a streamed call: until its last chunk) */
    timeoutMs: number;
    /** AI_MAX_RETRIES: retries of a call answered 429 or 5xx (with backoff, honouring Retry-After) */
    maxRetries: number;
    /** AI_RETRY_BASE_MS: first backoff; doubles per retry */
    retryBaseMs: number;
    /** AI_RETRY_MAX_MS: longest single backoff (a longer Retry-After fails the call as rate limited) */
    retryMaxMs: number;
    /** AI_SCHEDULE_TICK_MS: how often scheduled agent triggers are checked (0: never; tests tick by hand) */
    scheduleTickMs: number;
    /** AI_SEMANTIC_TIMEOUT_MS: statement timeout of a semantic query */
    semanticTimeoutMs: number;
    /** AI_SEMANTIC_ROW_CAP: rows a semantic query answers at most (truncated: true beyond) */
    semanticRowCap: number;
    /** AI_SEMANTIC_BYTE_CAP: bytes of rows (their text form) a semantic query answers at most (truncated: true beyond) */
    semanticByteCap: number;
    /**
     * SEMANTIC_MAX_CONCURRENT_QUERIES (default 4): semantic queries (POST /semantic/query, the agents' query_semantic)
     * this process runs at once; past it a query waits for a slot (SEMANTIC_QUEUED_QUERIES_PER_ORG), else 503 semantic.busy with Retry-After (a tool error
     * for an agent). What one query may build across rows is bounded by its statement timeout only (a view joined with
     * itself: up to PostgreSQL's 1 GB a value), so this bounds the memory they hold together.
     */
    semanticMaxConcurrentQueries: number;
    /** SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG (default 2): of those, one organization's (so one cannot take them all) */
    semanticMaxConcurrentQueriesPerOrg: number;
    /**
     * SEMANTIC_QUEUED_QUERIES_PER_ORG (default 8): queries of one organization that wait for a slot past either limit
     * (first come first served, each at most its own timeout); past it, or once its wait is over, 503 semantic.busy
     */
    semanticQueuedQueriesPerOrg: number;
  };
  mail: {
    /** SMTP server (smtp:// or smtps://, credentials in the URL); absent: messages are logged without tokens and kept as not_sent */
    smtpUrl?: string;
    /**
     * SMTP_REQUIRE_TLS: whether an smtp:// server must take STARTTLS before anything is sent (no credentials nor message
     * in cleartext when the server, or someone on the path, leaves it out). Absent: required unless the host is loopback
     * (127.0.0.0/8, ::1, localhost); smtps:// is TLS from the start either way.
     */
    requireTls?: boolean;
    /** the From of every message: an address, or "Name <address>" */
    from: string;
    /** when pending digests are sent (cron, seconds first) */
    digestCron: string;
  };
  outbound: {
    /** whether requests to user-chosen URLs (CalDAV servers) may reach loopback and private addresses */
    allowPrivateNetworks: boolean;
  };
  rateLimits: {
    /** RATE_LIMITS_ENABLED=false turns the request limiter off (benchmarks compare both) */
    enabled: boolean;
    /** per client IP per minute on anonymous and auth routes (login, register, refresh, public pages) */
    anonymousPerMinute: number;
    /**
     * per signed-in user (or service) per minute on the routes that run in no organization's transaction
     * (identities, e-mail change, the notification stream, account deletion, service reports)
     */
    principalPerMinute: number;
    /**
     * requests the database refused before any work (an API key that does not verify: per client IP; an organization
     * the signed-in user is no member of: per user) per minute; past it the caller gets 429 without a transaction
     */
    refusedPerMinute: number;
    /** per organization per minute when its plan has no api_requests_per_minute row (another app's plan) */
    defaultPerMinute: number;
    /** how long an organization's limit is cached in memory (s): a plan change applies within this time */
    planCacheSeconds: number;
    /**
     * with Redis, the most tokens of a bucket an instance claims in one round trip (a block is 1% of the limit, up
     * to this, leased only while ten blocks remain): unused ones are lost when the window ends; 0 = a round trip per request
     */
    leaseMax: number;
  };
  analytics: {
    /** months of events kept (older monthly partitions are dropped) */
    retentionMonths: number;
    /** monthly partitions created ahead of the current month */
    partitionsAhead: number;
    /** distinct event names an organization may send (ANALYTICS_MAX_EVENT_NAMES): a new name past it is refused */
    maxEventNames: number;
    /** POSTHOG_API_KEY set: events are also forwarded to PostHog */
    posthogApiKey?: string;
    posthogHost: string;
    /**
     * What a person's erasure deletes their PostHog persons with (persons/bulk_delete of PostHog's private API): a
     * personal API key with the person:write scope (POSTHOG_PERSONAL_API_KEY), the project's id (POSTHOG_PROJECT_ID) and
     * the app host that serves that API (POSTHOG_APP_HOST; by default POSTHOG_HOST without its ingestion `.i.`).
     * Required with POSTHOG_API_KEY: events are not forwarded where they could not be erased.
     */
    posthogPersonalApiKey?: string;
    posthogProjectId?: string;
    posthogAppHost: string;
  };
  webhooks: {
    /** how long one delivery may take before it counts as failed (WEBHOOKS_TIMEOUT_MS, default 15 s) */
    timeoutMs: number;
    /** how often the delivery worker looks for due messages (ms; 0: only when called, as tests do) */
    pollIntervalMs: number;
    /** deliveries in flight at once per worker (a slot is claimed again as soon as its send ends) */
    concurrency: number;
    /**
     * deliveries in flight at once to one endpoint (WEBHOOKS_CONCURRENCY_PER_ENDPOINT, default a quarter of
     * WEBHOOKS_CONCURRENCY): an endpoint that answers slowly, or not at all, holds at most these slots
     */
    concurrencyPerEndpoint: number;
    /**
     * deliveries in flight at once to one organization's endpoints (WEBHOOKS_CONCURRENCY_PER_ORGANIZATION, default half
     * of WEBHOOKS_CONCURRENCY, at least WEBHOOKS_CONCURRENCY_PER_ENDPOINT): an organization whose receivers do not answer
     * holds at most these slots, the others' messages take the rest
     */
    concurrencyPerOrganization: number;
    /** default overlap of a secret rotation: the previous secret still signs for this long (seconds) */
    secretOverlapSeconds: number;
    /** endpoint URLs must be https (default in production) */
    requireHttps: boolean;
    /** endpoints an organization may have (WEBHOOKS_MAX_ENDPOINTS, default 16): each event is one message per endpoint */
    maxEndpoints: number;
  };
  /**
   * The knowledge base (issue 17). Its embeddings go through the AI provider (`ai`: AI_BASE_URL, AI_API_KEY or the
   * organization's own key, AI_TIMEOUT_MS, retries); without a key ingestion fails with the reason.
   */
  knowledge: {
    /** AI_EMBEDDING_MODEL (default text-embedding-3-small) */
    embeddingModel: string;
    /** AI_EMBEDDING_DIMENSIONS (default 1536); indexed by HNSW for 256, 384, 512, 768, 1024, 1536 */
    embeddingDimensions: number;
    /** KNOWLEDGE_MAX_UPLOAD_BYTES (default 10 MB): a larger upload is a 413 naming the limit */
    maxUploadBytes: number;
    /** KNOWLEDGE_CHUNK_TOKENS (default 400) and KNOWLEDGE_CHUNK_OVERLAP_TOKENS (default 60), cl100k_base tokens */
    chunkTokens: number;
    chunkOverlapTokens: number;
    /**
     * KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS (default 20,000): a search whose readable, filtered chunks are at most this
     * many ranks them exactly by vector (pgvector); more, by the HNSW index. 0: always the index.
     */
    exactSearchMaxChunks: number;
    /**
     * KNOWLEDGE_EXTRACTION_MAX_WAITING (default 8): uploads (PDF, HTML) that may wait in this process for one of the
     * two extraction slots, each holding its file in memory; past it an upload is a 503 knowledge.extraction_busy
     * with Retry-After. 0: none waits.
     */
    extractionMaxWaiting: number;
    /** KNOWLEDGE_EXTRACTION_MAX_WAITING_PER_ORG (default 2): of those, one organization's (so one cannot fill the queue) */
    extractionMaxWaitingPerOrg: number;
    /**
     * KNOWLEDGE_EXTRACTION_MAX_WAIT_MS (default 30,000): how long an upload waits for an extraction slot at most; past
     * it, a 503 knowledge.extraction_busy with Retry-After (its file and its client are let go). A waiting upload whose
     * client disconnects leaves the queue at once.
     */
    extractionMaxWaitMs: number;
  };
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback?: string): string {
  const value = env[name] ?? fallback;
  if (value === undefined || value === '') throw new ConfigError(`${name} is required`);
  return value;
}

function int(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new ConfigError(`${name} must be an integer ${range}, got "${raw}"`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback?: T): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!values.includes(raw as T)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
  return raw as T;
}

// an IPv4 or IPv6 literal, or a host name (whether it resolves is known only when the server binds it: main.ts)
const HOST = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+|(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$/;

function host(env: Env, name: string, fallback: string): string {
  const value = str(env, name, fallback);
  if (!HOST.test(value)) throw new ConfigError(`${name} must be an IP address or a host name, got "${value}"`);
  return value;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: string[], fallback?: string): string {
  const value = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
  }
  return value;
}

/** PostHog forwarding, and the erasure's deletion of its persons (AppConfig.analytics): both, or neither. */
function posthog(env: Env): Pick<AppConfig['analytics'], 'posthogApiKey' | 'posthogHost' | 'posthogPersonalApiKey' | 'posthogProjectId' | 'posthogAppHost'> {
  const posthogApiKey = env.POSTHOG_API_KEY || undefined;
  const posthogHost = url(env, 'POSTHOG_HOST', ['http:', 'https:'], 'https://us.i.posthog.com');
  const posthogPersonalApiKey = env.POSTHOG_PERSONAL_API_KEY || undefined;
  const posthogProjectId = env.POSTHOG_PROJECT_ID || undefined;
  if (posthogApiKey && (!posthogPersonalApiKey || !posthogProjectId)) {
    throw new ConfigError('POSTHOG_API_KEY needs POSTHOG_PERSONAL_API_KEY (scope person:write) and POSTHOG_PROJECT_ID: '
      + 'a person\'s erasure deletes their PostHog persons, and events are not forwarded where they could not be erased');
  }
  if (posthogProjectId && !/^[A-Za-z0-9_-]{1,64}$/.test(posthogProjectId)) throw new ConfigError('POSTHOG_PROJECT_ID must be a project id (letters, digits, - or _)');
  const appHostDefault = posthogHost.replace(/^(https?:\/\/(?:[a-z0-9-]+\.)?)i\.posthog\.com/i, '$1posthog.com');
  return { posthogApiKey, posthogHost, posthogPersonalApiKey, posthogProjectId, posthogAppHost: url(env, 'POSTHOG_APP_HOST', ['http:', 'https:'], appHostDefault) };
}

function origins(env: Env, name: string): string[] {
  const list = (env[name] ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of list) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      // reported below
    }
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(`${name} entries must be origins like https://app.example.com (scheme, host and port only), got "${origin}"`);
    }
  }
  return list;
}

/** Names of address ranges Fastify's trustProxy (@fastify/proxy-addr) knows. */
const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/**
 * TRUST_PROXY: which peers' X-Forwarded-For is believed (Fastify's trustProxy). Default `loopback`; `false`: none (the
 * client address is the connection's); `true`: every peer (only when nothing but the proxies can reach the API); or
 * a comma-separated list of addresses, CIDR ranges and the names loopback, linklocal, uniquelocal.
 */
function trustProxy(env: Env, name: string): boolean | string[] {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return ['loopback'];
  if (raw.toLowerCase() === 'true') return true;
  if (raw.toLowerCase() === 'false') return false;
  if (/^\d+$/.test(raw)) {
    throw new ConfigError(`${name} cannot be a hop count ("${raw}": Fastify 5 trusts no peer by hop count, it cannot tell a proxy from a client); list the proxies' addresses or ranges, e.g. 10.0.0.0/8`);
  }
  const list = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
  for (const entry of list) {
    if (PROXY_RANGE_NAMES.includes(entry)) continue;
    const [address, prefix, ...rest] = entry.split('/');
    const version = isIP(address);
    const bits = version === 4 ? 32 : 128;
    if (!version || rest.length || (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= bits))) {
      throw new ConfigError(`${name} must be true, false, or a comma-separated list of addresses, CIDR ranges (prefix 1 to 32, IPv6 1 to 128) and ${PROXY_RANGE_NAMES.join(', ')}; got "${entry}"`);
    }
  }
  return list;
}

/** .env.example's development values: a production process that finds one refuses to start. */
const DEVELOPMENT_SECRET = /^dev-only-|^omnizen_api_dev$/;

function secret(env: Env, name: string, dev: string, nodeEnv: string): string {
  const value = env[name] || (nodeEnv === 'production' ? undefined : dev);
  if (!value) throw new ConfigError(`${name} is required in production`);
  if (value.length < 32) throw new ConfigError(`${name} must be at least 32 characters`);
  if (nodeEnv === 'production' && DEVELOPMENT_SECRET.test(value)) throw new ConfigError(`${name} is the development value of .env.example; set a secret of your own in production`);
  return value;
}

const MAILBOX = /^(?:[^<>@\r\n]+ <[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+)$/;

function mailFrom(env: Env, name: string, fallback: string): string {
  const value = env[name] || fallback;
  if (!MAILBOX.test(value)) throw new ConfigError(`${name} must be an e-mail address or "Name <address>", got "${value}"`);
  return value;
}

function cron(env: Env, name: string, fallback: string): string {
  const value = env[name] || fallback;
  try {
    assertCronExpression(value);
  } catch (err) {
    throw new ConfigError(`${name} "${value}" is not a valid cron expression: ${(err as Error).message}`);
  }
  return value;
}

/**
 * At least 2: an app may send events dated up to 28 days back (analytics.service.ts MAX_AGE_MS), so into the previous
 * month; keeping only the current month's partition would refuse every batch holding such an event.
 */
function analyticsRetentionMonths(env: Env): number {
  const months = int(env, 'ANALYTICS_RETENTION_MONTHS', 13, 1, 120);
  if (months < 2) {
    throw new ConfigError(`ANALYTICS_RETENTION_MONTHS must be at least 2, got "${env.ANALYTICS_RETENTION_MONTHS}": `
      + 'events may be dated up to 28 days back, into the previous month, whose partition 1 would drop');
  }
  return months;
}

/**
 * Months of partitions made ahead of the current one: at most 23, since the maintenance job asks
 * core.analytics_create_partitions for one more (it starts at the previous month), which refuses more than 24: 24 here
 * failed every maintenance run.
 */
function analyticsPartitionsAhead(env: Env): number {
  try {
    return int(env, 'ANALYTICS_PARTITIONS_AHEAD', 3, 1, 23);
  } catch (err) {
    if (!(err instanceof ConfigError) || !(Number(env.ANALYTICS_PARTITIONS_AHEAD) > 23)) throw err;
    throw new ConfigError(`${err.message}: the partitions are made from the previous month on, 24 months at most per run (core.analytics_create_partitions)`);
  }
}

/** The API's runtime URL: API_DATABASE_URL, or DATABASE_URL with the omnizen_api login. */
export function deriveApiDatabaseUrl(databaseUrl: string, password: string): string {
  const u = new URL(databaseUrl);
  u.username = 'omnizen_api';
  u.password = encodeURIComponent(password); // a '%' would otherwise be read back as an escape
  return u.toString();
}

function parsePrices(env: Env): Record<string, { app: string; plan: string }> {
  const raw = env.STRIPE_PRICES ?? '';
  const prices: Record<string, { app: string; plan: string }> = {};
  for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([A-Za-z0-9_]+)=([a-z0-9_]+):([a-z0-9_]+)$/.exec(pair);
    if (!match) throw new ConfigError(`STRIPE_PRICES entry "${pair}" must look like price_id=app_code:plan_code`);
    prices[match[1]] = { app: match[2], plan: match[3] };
  }
  return prices;
}

function parsePortalConfigurations(env: Env): Record<string, string> {
  const configurations: Record<string, string> = {};
  for (const pair of (env.STRIPE_PORTAL_CONFIGURATIONS ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z0-9_]+(?::(?:personal|business))?)=(bpc_[A-Za-z0-9_]+)$/.exec(pair);
    if (!match) throw new ConfigError(`STRIPE_PORTAL_CONFIGURATIONS entry "${pair}" must look like app_code=bpc_id or app_code:personal|business=bpc_id`);
    if (configurations[match[1]]) throw new ConfigError(`STRIPE_PORTAL_CONFIGURATIONS names ${match[1]} twice`);
    configurations[match[1]] = match[2];
  }
  return configurations;
}

function parseSecretKeys(env: Env): AppConfig['secrets'] {
  const keys: Record<string, Buffer> = {};
  for (const pair of (env.SECRETS_KEYS ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const idx = pair.indexOf(':');
    const id = pair.slice(0, idx);
    const key = Buffer.from(pair.slice(idx + 1), 'base64');
    if (idx < 1 || !/^[A-Za-z0-9_-]+$/.test(id)) throw new ConfigError('SECRETS_KEYS entries must look like keyId:base64key');
    if (key.length !== 32) throw new ConfigError(`SECRETS_KEYS key "${id}" must be 32 bytes (base64), got ${key.length}`);
    keys[id] = key;
  }
  const activeKeyId = env.SECRETS_ACTIVE_KEY || Object.keys(keys)[0];
  if (activeKeyId && !keys[activeKeyId]) throw new ConfigError(`SECRETS_ACTIVE_KEY "${activeKeyId}" is not in SECRETS_KEYS`);
  return { keys, activeKeyId };
}

export function loadConfig(env: Env = process.env): AppConfig {
  const nodeEnv = (env.NODE_ENV ?? 'development') as AppConfig['nodeEnv'];
  if (!['development', 'test', 'production'].includes(nodeEnv)) {
    throw new ConfigError(`NODE_ENV must be development, test or production, got "${nodeEnv}"`);
  }
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  if (nodeEnv === 'production' && !env.API_DATABASE_URL && DEVELOPMENT_SECRET.test(env.API_DATABASE_PASSWORD ?? 'omnizen_api_dev')) {
    throw new ConfigError('API_DATABASE_PASSWORD is the development value of .env.example; set a password of your own (or API_DATABASE_URL) in production');
  }
  const apiDatabaseUrl = env.API_DATABASE_URL
    ? url(env, 'API_DATABASE_URL', ['postgres:', 'postgresql:'])
    : deriveApiDatabaseUrl(databaseUrl, env.API_DATABASE_PASSWORD ?? 'omnizen_api_dev');
  const secureDefault = nodeEnv === 'production';
  const grace = int(env, 'BILLING_PAST_DUE_GRACE_DAYS', 7);
  const statementTimeoutMs = int(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 30_000, 1);
  const lockTimeoutMs = int(env, 'DATABASE_LOCK_TIMEOUT_MS', 5_000, 1);
  const semanticTimeoutMs = int(env, 'AI_SEMANTIC_TIMEOUT_MS', 5_000, 10, 300_000);
  const semanticMaxConcurrentQueries = int(env, 'SEMANTIC_MAX_CONCURRENT_QUERIES', 4, 1, 1000);
  if (lockTimeoutMs >= statementTimeoutMs) {
    throw new ConfigError(`DATABASE_LOCK_TIMEOUT_MS must be shorter than DATABASE_STATEMENT_TIMEOUT_MS (${statementTimeoutMs}), got "${lockTimeoutMs}"`);
  }
  if (bool(env, 'AUTH_COOKIES', false) && origins(env, 'CORS_ORIGINS').length === 0) {
    // cookie-authenticated writes are accepted only from these origins (CSRF); with none, every one would fail
    throw new ConfigError('AUTH_COOKIES=true needs CORS_ORIGINS: the browser origins allowed to send cookie-authenticated requests');
  }
  const chunkTokens = int(env, 'KNOWLEDGE_CHUNK_TOKENS', 400, 16, 8000);
  const knowledge: AppConfig['knowledge'] = {
    embeddingModel: str(env, 'AI_EMBEDDING_MODEL', 'text-embedding-3-small'),
    embeddingDimensions: int(env, 'AI_EMBEDDING_DIMENSIONS', 1536, 1, 4096),
    maxUploadBytes: int(env, 'KNOWLEDGE_MAX_UPLOAD_BYTES', 10 * 1024 * 1024, 1),
    chunkTokens,
    chunkOverlapTokens: int(env, 'KNOWLEDGE_CHUNK_OVERLAP_TOKENS', 60, 0, chunkTokens - 1),
    exactSearchMaxChunks: int(env, 'KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS', 20_000, 0, 1_000_000),
    extractionMaxWaiting: int(env, 'KNOWLEDGE_EXTRACTION_MAX_WAITING', 8, 0, 1000),
    extractionMaxWaitingPerOrg: int(env, 'KNOWLEDGE_EXTRACTION_MAX_WAITING_PER_ORG', 2, 0, 1000),
    extractionMaxWaitMs: int(env, 'KNOWLEDGE_EXTRACTION_MAX_WAIT_MS', 30_000, 1, 600_000),
  };
  const webhookConcurrency = int(env, 'WEBHOOKS_CONCURRENCY', 50, 1, 500);
  const webhookConcurrencyPerEndpoint = int(env, 'WEBHOOKS_CONCURRENCY_PER_ENDPOINT', Math.ceil(webhookConcurrency / 4), 1, 500);
  return {
    knowledge,
    nodeEnv,
    port: int(env, 'PORT', 3000, 1, 65535),
    host: host(env, 'HOST', '0.0.0.0'),
    databaseUrl,
    apiDatabaseUrl,
    apiDatabasePoolSize: int(env, 'API_DATABASE_POOL_SIZE', 20, 1),
    database: {
      connectTimeoutMs: int(env, 'DATABASE_CONNECT_TIMEOUT_MS', 10_000, 1),
      statementTimeoutMs,
      localStatementTimeoutMs: semanticTimeoutMs,
      lockTimeoutMs,
      idleInTransactionTimeoutMs: int(env, 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS', 60_000, 1),
      preparedStatements: bool(env, 'DATABASE_PREPARED_STATEMENTS', true),
    },
    redisUrl: env.REDIS_URL ? url(env, 'REDIS_URL', ['redis:', 'rediss:']) : undefined,
    redisCommandTimeoutMs: int(env, 'REDIS_COMMAND_TIMEOUT_MS', 500, 1, 60_000),
    redisPrefix: env.REDIS_PREFIX || 'omnizen',
    migrateOnStart: bool(env, 'MIGRATE_ON_START', nodeEnv === 'development'),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, nodeEnv === 'test' ? 'silent' : 'info')!,
    http: { corsOrigins: origins(env, 'CORS_ORIGINS'), apiDocs: bool(env, 'API_DOCS', true), trustProxy: trustProxy(env, 'TRUST_PROXY') },
    auth: {
      supabaseJwtSecret: secret(env, 'SUPABASE_JWT_SECRET', 'dev-only-supabase-jwt-secret-change-me-0000', nodeEnv),
      nextAuthSecret: env.NEXTAUTH_SECRET || nodeEnv !== 'production'
        ? secret(env, 'NEXTAUTH_SECRET', 'dev-only-nextauth-secret-change-me-000000000', nodeEnv)
        : undefined,
      supabaseUrl: url(env, 'SUPABASE_URL', ['http:', 'https:'], 'http://localhost:54321'),
      supabaseAnonKey: env.SUPABASE_ANON_KEY,
      accessTokenTtlSeconds: int(env, 'ACCESS_TOKEN_TTL_SECONDS', 900, 30),
      refreshTokenTtlDays: int(env, 'REFRESH_TOKEN_TTL_DAYS', 30, 1),
      cookies: bool(env, 'AUTH_COOKIES', false),
      cookieSecure: bool(env, 'AUTH_COOKIE_SECURE', secureDefault),
      loginMaxFailures: int(env, 'LOGIN_MAX_FAILURES', 5, 1),
      loginLockoutSeconds: int(env, 'LOGIN_LOCKOUT_SECONDS', 900, 1),
      loginAccountMaxFailures: int(env, 'LOGIN_ACCOUNT_MAX_FAILURES', 30, 1),
      loginAccountWindowSeconds: int(env, 'LOGIN_ACCOUNT_WINDOW_SECONDS', 3600, 1),
      // tests register many users from 127.0.0.1; the limit's own test sets it
      registerMaxPerAddress: int(env, 'REGISTER_MAX_PER_ADDRESS', nodeEnv === 'test' ? 10_000 : 10, 1),
      registerWindowSeconds: int(env, 'REGISTER_WINDOW_SECONDS', 3600, 1),
      passwordHash: {
        // OWASP's argon2id minimum (19 MiB, 2 passes); tests hash with far less memory
        memoryKib: int(env, 'PASSWORD_HASH_MEMORY_KIB', nodeEnv === 'test' ? 256 : 19_456, 64),
        timeCost: int(env, 'PASSWORD_HASH_TIME_COST', nodeEnv === 'test' ? 1 : 2, 1),
      },
      emailVerificationTtlHours: int(env, 'EMAIL_VERIFICATION_TTL_HOURS', 48, 1),
      refreshGraceSeconds: int(env, 'REFRESH_GRACE_SECONDS', 10, 0),
      apiKeysMaxActive: int(env, 'API_KEYS_MAX_ACTIVE', 100, 1, 10_000),
      streamSessionCheckMs: int(env, 'STREAM_SESSION_CHECK_MS', 30_000, 10, 3_600_000),
    },
    invitationTtlDays: int(env, 'INVITATION_TTL_DAYS', 7, 1),
    jobs: {
      relayIntervalMs: int(env, 'JOBS_RELAY_INTERVAL_MS', 250, 0),
      purgeCron: cron(env, 'JOBS_PURGE_CRON', '0 */15 * * * *'),
      claimTimeoutMs: int(env, 'JOBS_CLAIM_TIMEOUT_MS', 300_000, 1),
      enqueueTimeoutMs: int(env, 'JOBS_ENQUEUE_TIMEOUT_MS', 5_000, 1),
      workerRetryDelayMs: int(env, 'JOBS_WORKER_RETRY_DELAY_MS', 5_000, 1),
      relayBatchSize: int(env, 'JOBS_RELAY_BATCH_SIZE', 200, 1, 5_000),
    },
    retention: {
      cron: cron(env, 'RETENTION_CRON', '0 30 3 * * *'),
      webhookDeliveryDays: int(env, 'RETENTION_WEBHOOK_DELIVERY_DAYS', 30, 1),
      outboxDays: int(env, 'RETENTION_OUTBOX_DAYS', 14, 1),
      emailDeliveryDays: int(env, 'RETENTION_EMAIL_DELIVERY_DAYS', 30, 1),
      dataExportHours: int(env, 'RETENTION_DATA_EXPORT_HOURS', 24, 1, 24 * 30),
    },
    dataExportDir: resolve(env.DATA_EXPORT_DIR || join('.data', 'exports')),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 25_000, 0),
    shutdownDrainDelayMs: int(env, 'SHUTDOWN_DRAIN_DELAY_MS', nodeEnv === 'test' ? 0 : 5_000, 0, 120_000),
    observability: {
      metricsToken: metricsToken(env),
      orgLabelLimit: int(env, 'METRICS_ORG_LABEL_LIMIT', 100, 0),
      rlsCanaryIntervalMs: int(env, 'RLS_CANARY_INTERVAL_MS', nodeEnv === 'test' ? 0 : 60_000, 0),
      readinessProbeCacheMs: int(env, 'READINESS_PROBE_CACHE_MS', nodeEnv === 'test' ? 0 : 30_000, 0),
      readinessRequiresRedis: bool(env, 'READINESS_REQUIRES_REDIS', false),
      tracing: tracingConfig(env),
      sentry: sentryConfig(env, nodeEnv),
    },
    billing: {
      stripeSecretKey: env.STRIPE_SECRET_KEY || undefined,
      stripeWebhookSecret: env.STRIPE_WEBHOOK_SECRET || undefined,
      stripeApiHost: env.STRIPE_API_HOST || undefined,
      stripeApiPort: env.STRIPE_API_PORT ? int(env, 'STRIPE_API_PORT', 443, 1, 65535) : undefined,
      stripeApiProtocol: oneOf(env, 'STRIPE_API_PROTOCOL', ['http', 'https'] as const),
      stripePrices: parsePrices(env),
      stripePortalConfigurations: parsePortalConfigurations(env),
      pastDueGraceDays: grace,
      appUrl: url(env, 'APP_URL', ['http:', 'https:'], 'http://localhost:3000').replace(/\/+$/, ''),
    },
    secrets: parseSecretKeys(env),
    ai: {
      baseUrl: url(env, 'AI_BASE_URL', ['http:', 'https:'], 'https://api.openai.com/v1'),
      apiKey: env.AI_API_KEY || undefined,
      timeoutMs: int(env, 'AI_TIMEOUT_MS', 60_000, 100, 600_000),
      maxRetries: int(env, 'AI_MAX_RETRIES', 2, 0, 10),
      retryBaseMs: int(env, 'AI_RETRY_BASE_MS', 500, 0, 60_000),
      retryMaxMs: int(env, 'AI_RETRY_MAX_MS', 30_000, 0, 600_000),
      scheduleTickMs: int(env, 'AI_SCHEDULE_TICK_MS', nodeEnv === 'test' ? 0 : 60_000, 0),
      semanticTimeoutMs,
      semanticRowCap: int(env, 'AI_SEMANTIC_ROW_CAP', 10_000, 1, 1_000_000),
      semanticByteCap: int(env, 'AI_SEMANTIC_BYTE_CAP', 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
      semanticMaxConcurrentQueries,
      semanticMaxConcurrentQueriesPerOrg: int(env, 'SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG', Math.min(2, semanticMaxConcurrentQueries), 1, semanticMaxConcurrentQueries),
      semanticQueuedQueriesPerOrg: int(env, 'SEMANTIC_QUEUED_QUERIES_PER_ORG', 8, 0, 1000),
    },
    mail: {
      smtpUrl: env.SMTP_URL ? url(env, 'SMTP_URL', ['smtp:', 'smtps:']) : undefined,
      requireTls: env.SMTP_REQUIRE_TLS ? bool(env, 'SMTP_REQUIRE_TLS', false) : undefined,
      from: mailFrom(env, 'MAIL_FROM', 'OmniZen <no-reply@omnizen.localhost>'),
      digestCron: cron(env, 'MAIL_DIGEST_CRON', '0 * * * * *'),
    },
    outbound: { allowPrivateNetworks: bool(env, 'OUTBOUND_ALLOW_PRIVATE_NETWORKS', !secureDefault) },
    rateLimits: {
      enabled: bool(env, 'RATE_LIMITS_ENABLED', true),
      anonymousPerMinute: int(env, 'RATE_LIMIT_ANONYMOUS_PER_MINUTE', nodeEnv === 'test' ? 100_000 : 120, 1),
      principalPerMinute: int(env, 'RATE_LIMIT_PRINCIPAL_PER_MINUTE', 600, 1),
      refusedPerMinute: int(env, 'RATE_LIMIT_REFUSED_PER_MINUTE', nodeEnv === 'test' ? 100_000 : 60, 1),
      defaultPerMinute: int(env, 'RATE_LIMIT_DEFAULT_PER_MINUTE', 600, 1),
      planCacheSeconds: int(env, 'RATE_LIMIT_PLAN_CACHE_SECONDS', 30, 0, 3600),
      leaseMax: int(env, 'RATE_LIMIT_LEASE_MAX', 100, 0, 10_000),
    },
    analytics: {
      retentionMonths: analyticsRetentionMonths(env),
      partitionsAhead: analyticsPartitionsAhead(env),
      maxEventNames: int(env, 'ANALYTICS_MAX_EVENT_NAMES', 500, 1, 100_000),
      ...posthog(env),
    },
    webhooks: {
      timeoutMs: int(env, 'WEBHOOKS_TIMEOUT_MS', 15_000, 100, 120_000),
      pollIntervalMs: int(env, 'WEBHOOKS_POLL_INTERVAL_MS', nodeEnv === 'test' ? 0 : 500, 0),
      concurrency: webhookConcurrency,
      concurrencyPerEndpoint: webhookConcurrencyPerEndpoint,
      concurrencyPerOrganization: int(env, 'WEBHOOKS_CONCURRENCY_PER_ORGANIZATION', Math.max(webhookConcurrencyPerEndpoint, Math.ceil(webhookConcurrency / 2)), 1, 500),
      secretOverlapSeconds: int(env, 'WEBHOOKS_SECRET_OVERLAP_SECONDS', 86_400, 0, 30 * 86_400),
      requireHttps: bool(env, 'WEBHOOKS_REQUIRE_HTTPS', secureDefault),
      maxEndpoints: int(env, 'WEBHOOKS_MAX_ENDPOINTS', 16, 1, 1000),
    },
  };
}

export interface TracingConfig {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL (traces go to <endpoint>/v1/traces) */
  endpoint: string;
  /** OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (default) or http/json */
  protocol: 'http/protobuf' | 'http/json';
  /** OTEL_SERVICE_NAME (default omnizen-api) */
  serviceName: string;
  /**
   * OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG as the OpenTelemetry specification names them. Our default differs
   * from the specification's (parentbased_always_on): parentbased_traceidratio at 0.1, a tenth of the traces that
   * start here (a caller's sampled trace is always continued), because recording every request's spans costs
   * more than the request itself on the read route (bench/README.md).
   */
  sampler: { name: (typeof TRACE_SAMPLERS)[number]; ratio: number };
}

export const TRACE_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;

/** The tracing settings, validated; undefined when OTEL_EXPORTER_OTLP_ENDPOINT is not set. main.ts reads them before the application loads. */
export function tracingConfig(env: Env): TracingConfig | undefined {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(endpoint);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, got "${endpoint}"`);
  }
  const protocol = env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json (gRPC is not supported), got "${protocol}"`);
  }
  const sampler = env.OTEL_TRACES_SAMPLER || 'parentbased_traceidratio';
  if (!(TRACE_SAMPLERS as readonly string[]).includes(sampler)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER must be one of ${TRACE_SAMPLERS.join(', ')}, got "${sampler}"`);
  }
  const ratio = env.OTEL_TRACES_SAMPLER_ARG ? Number(env.OTEL_TRACES_SAMPLER_ARG) : 0.1;
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, got "${env.OTEL_TRACES_SAMPLER_ARG}"`);
  return { endpoint: endpoint.replace(/\/+$/, ''), protocol, serviceName: env.OTEL_SERVICE_NAME || 'omnizen-api', sampler: { name: sampler as TracingConfig['sampler']['name'], ratio } };
}

/** SENTRY_DSN: a Sentry DSN (https://<public key>@<host>/<project id>) when set. */
function sentryConfig(env: Env, nodeEnv: string): { dsn: string; environment: string } | undefined {
  const dsn = env.SENTRY_DSN;
  if (!dsn) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(dsn);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.username || !/^\/\d+$/.test(parsed.pathname.replace(/^.*(\/[^/]+)$/, '$1'))) {
    throw new ConfigError('SENTRY_DSN must be a Sentry DSN: https://<public key>@<host>/<project id>');
  }
  return { dsn, environment: env.SENTRY_ENVIRONMENT || nodeEnv };
}

/** METRICS_TOKEN: at least 32 characters when set, so a scraper's token cannot be guessed. */
function metricsToken(env: Env): string | undefined {
  const token = env.METRICS_TOKEN;
  if (!token) return undefined;
  if (token.length < 32) throw new ConfigError('METRICS_TOKEN must be at least 32 characters (it is the only thing between /metrics and the internet)');
  return token;
}

export const APP_CONFIG = Symbol('APP_CONFIG');
