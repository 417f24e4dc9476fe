// npm run bench — one tenant-scoped read and one tenant-scoped write route through the API, and the same
// work through raw `pg` (the floor), measured in the same run. Prints one JSON document on stdout.
//
// It creates its own database (omnizen_bench_api_<pid>) on DATABASE_URL's server (or the embedded
// PostgreSQL), migrates it, starts the app in a child process (so the load generator does not share its
// event loop) on a free port, registers one owner through the API and creates a business organization.
// Then, each at BENCH_CONNECTIONS (32) for BENCH_SECONDS (10) after BENCH_WARMUP_SECONDS (2):
//   read   GET   /v1/orgs/:orgId                 vs  BEGIN; begin_request; SELECT the organization; COMMIT
//   write  PATCH /v1/orgs/:orgId {name: changing} vs  BEGIN; begin_request; SELECT before; UPDATE ... RETURNING;
//                                                      INSERT the audit row; COMMIT
//   keyed  GET   /v1/orgs/:orgId with an API key (org:read)  vs  the same read with the user's token (issue 19: ≥ 0.9)
//   limiter GET  /v1/orgs/:orgId, rate limiter on (Redis when REDIS_URL is set)  vs  off, in the same app process:
//                the limiter is switched between rounds (over IPC), so both run on the same warmed-up process (issue 19: ≥ 0.95)
//   analytics POST /v1/orgs/:orgId/analytics/events, batches of 100  vs  the same 100 rows per transaction through
//                raw pg (BEGIN; begin_request; one INSERT of 100 rows; COMMIT), in events/s (issue 19: ≥ 0.5)
//   observability GET /v1/orgs/:orgId with METRICS_TOKEN set and OTEL_EXPORTER_OTLP_ENDPOINT at a local OTLP sink (a
//                second app process, bench/api-serve.ts, which starts tracing before it imports the application)  vs
//                the plain app, both warmed up alike (issue 23: >= 0.95); the sampler is the documented production default
//                (parentbased_traceidratio at 0.1) unless BENCH_OTEL_TRACES_SAMPLER / _ARG say otherwise.
//                BENCH_OBSERVABILITY (default "metrics,tracing") says what the "on" process turns on: "metrics" or
//                "tracing" alone, "none" (the same process with nothing on: an A/A check), "als" (only an
//                AsyncLocalStorage made active, what OpenTelemetry's context manager costs; `node` in the JSON says which runtime ran)
// The A-vs-B phases (keyed, limiter, observability) run BENCH_ROUNDS (3; the observability phase
// BENCH_OBSERVABILITY_ROUNDS, 9) alternated rounds (A B, B A, A B, ...) of BENCH_SECONDS each and report the median
// requests/s of each side, the median of the rounds' ratios with a 95 % confidence interval for it (ratio_ci95, from
// order statistics; from six rounds on) and every round (with each side's app CPU ms per request).
// The observability phase compares a difference of a few percent on a machine whose speed drifts by tens of percent
// between rounds: three rounds gave A/A medians from 0.88 to 1.3 (bench/README.md), hence more rounds.
// The organization is on the enterprise plan (API keys) with a rate-limit override far above what the benchmark
// sends, so the limiter counts every request but never refuses one.
// The floor runs on a pool of as many connections, logged in as the API's runtime login (omnizen_api),
// one RLS transaction per operation, pipelined as the app's pool is (BEGIN sent with begin_request, the
// audit row with COMMIT). ratio = API requests/s ÷ floor operations/s.
// Knobs: LOG_LEVEL (the app's, default info as in production), API_DATABASE_POOL_SIZE (default = connections),
// BENCH_ROUTES (default "read,write,health": the phases to run, e.g. "read" while profiling).
import 'reflect-metadata';
import autocannon, { type Request as CannonRequest } from 'autocannon';
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { APP_NODE_FLAGS } from './app-flags.js';
import { tenantClaims } from './tenant-claims.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { ensureDatabaseUrl } from '../src/platform/database/local-postgres.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';
import { RateLimiter } from '../src/platform/http/rate-limit.js';

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const CONNECTIONS = num('BENCH_CONNECTIONS', 32);
const SECONDS = num('BENCH_SECONDS', 10);
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'info';
const POOL = num('API_DATABASE_POOL_SIZE', CONNECTIONS);
const ROUNDS = num('BENCH_ROUNDS', 3);
const OBSERVABILITY_ROUNDS = num('BENCH_OBSERVABILITY_ROUNDS', 9);
const OBSERVABILITY_PAIRS = num('BENCH_OBSERVABILITY_PAIRS', 9);
const ROUTES = new Set((process.env.BENCH_ROUTES ?? 'read,write,health,keyed,limiter,analytics,observability').split(',').map((r) => r.trim()));
const API_PASSWORD = 'omnizen_api_bench';
// the app runs as in production; these secrets exist only for this benchmark's throwaway database
const SECRET = 'bench-only-supabase-jwt-secret-000000000000';

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

interface Figures {
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  requests: number;
  errors: number;
}

/** autocannon against the app: only 2xx answers count as done work. */
async function http(url: string, request: CannonRequest, seconds: number): Promise<Figures> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: seconds, requests: [request] });
  const ok = r.requests.total - r.non2xx;
  return { requests_per_s: round(ok / (r.duration || seconds), 1), p50_ms: r.latency.p50, p99_ms: r.latency.p99, requests: ok, errors: r.non2xx + r.errors + r.timeouts };
}

/** `op` on CONNECTIONS connections in parallel loops for `seconds`; latency of each whole transaction. */
async function floor(pool: pg.Pool, op: (c: pg.PoolClient, i: number) => Promise<void>, seconds: number): Promise<Figures> {
  const latencies: number[] = [];
  let errors = 0;
  let seq = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    const c = await pool.connect();
    try {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await op(c, ++seq);
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors++;
          await c.query('ROLLBACK').catch(() => undefined);
          if (errors === 1) log(`floor error: ${(err as Error).message}`);
        }
      }
    } finally {
      c.release();
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]) : 0);
  return { requests_per_s: round(latencies.length / elapsed, 1), p50_ms: pct(50), p99_ms: pct(99), requests: latencies.length, errors };
}

async function main() {
  const loadBefore = loadavg()[0]; // what else the machine was doing before this run added its own load
  loadLocalEnv(projectRoot());
  const server = await ensureDatabaseUrl(projectRoot(), log);
  const dbName = `omnizen_bench_api_${process.pid}`;
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_api_']);
  await root.query(`DROP DATABASE IF EXISTS "${dbName}"`);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  // pipelined like the app's pool (src/platform/database/sql.ts): BEGIN travels with begin_request, COMMIT with the audit row
  const runtime = new pg.Pool({ connectionString: apiUrl, max: CONNECTIONS, pipeline: true } as pg.PoolConfig);
  runtime.on('error', () => undefined); // idle clients cut by the final DROP DATABASE ... WITH (FORCE)
  let child: ReturnType<typeof fork> | undefined;
  const children: ReturnType<typeof fork>[] = [];
  let sink: ReturnType<typeof createServer> | undefined;
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });

    // the app alone in a child process; its logs go to /dev/null (serialising them is still paid)
    // `script`: bench/api-serve.ts for an app that must start tracing before it imports the application
    const startChild = async (extraEnv: Record<string, string> = {}, script = fileURLToPath(import.meta.url)) => {
      const proc = fork(script, ['--serve'], {
        // BENCH_APP_NODE_ARGS: extra flags for the app's process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
        execArgv: [...APP_NODE_FLAGS, '--import', './scripts/register-ts.mjs', ...(process.env.BENCH_APP_NODE_ARGS ?? '').split(' ').filter(Boolean)],
        // no metrics or tracing unless a phase asks for them, whatever the environment says
        env: { ...process.env, METRICS_TOKEN: '', OTEL_EXPORTER_OTLP_ENDPOINT: '', LOG_LEVEL, API_DATABASE_POOL_SIZE: String(POOL), BENCH_OWNER_URL: ownerUrl, BENCH_API_URL: apiUrl, ...extraEnv },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      children.push(proc);
      const childPort = await new Promise<number>((resolve, reject) => {
        proc.once('message', (m: { port: number }) => resolve(m.port));
        proc.once('exit', (code) => reject(new Error(`the app exited with ${code}`)));
      });
      return { proc, port: childPort };
    };
    const started = await startChild();
    child = started.proc;
    const port = started.port;
    const base = `http://127.0.0.1:${port}`;
    let measured = child; // the process whose CPU httpWithCpu reads
    const appCpu = () => new Promise<{ cpuMs: number; systemMs: number }>((resolve) => {
      measured!.once('message', (m: { cpuMs: number; systemMs: number }) => resolve(m));
      measured!.send('cpu');
    });
    const call = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method,
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<any>;
    };

    // one owner registered through the API, one business organization
    const credentials = { email: `owner.${process.pid}@bench.test`, password: 'correct horse battery' };
    await call('POST', '/v1/auth/register', undefined, { ...credentials, name: 'Bench Owner' });
    const owner = await call('POST', '/v1/auth/login', undefined, credentials);
    const token: string = owner.accessToken;
    const userId: string = owner.user.id;
    const ownerDb = new pg.Client({ connectionString: ownerUrl });
    await ownerDb.connect();
    // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
    await ownerDb.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [userId]);
    const orgId: string = (await call('POST', '/v1/orgs', token, { name: 'Bench Org' })).id;
    // enterprise (API keys) and a limit the benchmark never reaches: every request is counted, none refused
    await ownerDb.query(`INSERT INTO hub."Subscription" (id, "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, 'omnizen', 'enterprise', 'active', $1, now(), now())`, [orgId]);
    await ownerDb.query('INSERT INTO hub.rate_limit_overrides (org_id, requests_per_minute, reason) VALUES ($1, 1000000000, $2)', [orgId, 'benchmark']);
    await ownerDb.end();
    await call('GET', `/v1/orgs/${orgId}`, token); // the route answers 200 before it is measured
    const claims = tenantClaims(token, orgId);
    const auth = { authorization: `Bearer ${token}` };
    let n = 0;
    const readReq: CannonRequest = { method: 'GET', path: `/v1/orgs/${orgId}`, headers: auth };
    const writeReq: CannonRequest = {
      method: 'PATCH', path: `/v1/orgs/${orgId}`, headers: { ...auth, 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: JSON.stringify({ name: `Bench Org ${++n}` }) }),
    };

    // the floor: what the repositories and the audit service send, in the tenant transaction's shape
    const begin = (c: pg.PoolClient) => Promise.all([c.query('BEGIN'), c.query(`SELECT * FROM public.begin_request($1, 'authenticated')`, [claims])]);
    const readSql = async (c: pg.PoolClient) => {
      await begin(c);
      const { rows } = await c.query('SELECT o.*, public.auth_role() AS role FROM core.organizations o WHERE o.id = $1::uuid', [orgId]);
      if (rows.length !== 1) throw new Error('floor read found no organization');
      await c.query('COMMIT');
    };
    const writeSql = async (c: pg.PoolClient, i: number) => {
      await begin(c);
      const before = (await c.query('SELECT o.*, public.auth_role() AS role FROM core.organizations o WHERE o.id = $1::uuid', [orgId])).rows[0];
      const after = (await c.query(
        `UPDATE core.organizations SET name = coalesce($2, name), domain = coalesce($3, domain), updated_at = now()
         WHERE id = $1::uuid RETURNING *, public.auth_role() AS role`, [orgId, `Bench Org floor ${i}`, null])).rows[0];
      // the audit row goes with COMMIT, as the audit service sends it
      await Promise.all([c.query(
        `INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
         VALUES ($1::uuid, $2, 'user', 'organization.updated', 'organization', $3, $4::jsonb, $5::jsonb, $6, $7)`,
        [orgId, userId, orgId, JSON.stringify(before), JSON.stringify(after), `floor-${i}`, '127.0.0.1']), c.query('COMMIT')]);
    };

    // CPU the app's process spent per answered request: steadier than requests/s on a shared machine
    const httpWithCpu = async (request: CannonRequest, url = base) => {
      const cpu0 = await appCpu();
      const figures: Figures & { app_cpu_ms_per_request?: number; app_kernel_share?: number } = await http(url, request, SECONDS);
      const cpu1 = await appCpu();
      figures.app_cpu_ms_per_request = round((cpu1.cpuMs - cpu0.cpuMs) / Math.max(1, figures.requests), 3);
      // the part of it spent in the kernel (socket writes and reads): syscalls, not JavaScript
      figures.app_kernel_share = round((cpu1.systemMs - cpu0.systemMs) / Math.max(1, cpu1.cpuMs - cpu0.cpuMs), 2);
      return figures;
    };
    const measure = async (name: string, route: string, request: CannonRequest, sql: (c: pg.PoolClient, i: number) => Promise<void>) => {
      if (WARMUP > 0) {
        log(`${name}: warming up ${WARMUP}s`);
        await http(base, request, WARMUP);
        await floor(runtime, sql, WARMUP);
      }
      log(`${name}: API ${route} for ${SECONDS}s`);
      const api = await httpWithCpu(request);
      log(`${name}: raw pg floor for ${SECONDS}s`);
      const own0 = process.cpuUsage();
      const raw: Figures & { client_cpu_ms_per_op?: number } = await floor(runtime, sql, SECONDS);
      const own = process.cpuUsage(own0);
      raw.client_cpu_ms_per_op = round((own.user + own.system) / 1000 / Math.max(1, raw.requests), 3); // the pg client's share
      return { route, api, floor: raw, ratio: round(api.requests_per_s / raw.requests_per_s, 3) };
    };
    /**
     * A against B in ROUNDS alternated rounds (A B, B A, A B, ...), each side warmed up first: the medians of each
     * side's requests/s and app CPU per request, the median of the rounds' ratios (A ÷ B), and every round.
     */
    type Side = { label: string; run: () => Promise<Figures & { app_cpu_ms_per_request?: number }>; warm: () => Promise<unknown>; before?: () => Promise<void> };
    const median = (xs: number[]) => { const v = [...xs].sort((x, y) => x - y); return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2; };
    /**
     * A confidence interval of at least 95 % for the median of `xs`, from order statistics (no assumption about the
     * rounds' distribution): [x(k), x(n+1-k)] with the largest k for which P(Binomial(n, 1/2) < k) <= 2.5 %. Null under
     * six values, where no such interval exists. Says how far a run's median can be from the measure's own.
     */
    const medianCi95 = (xs: number[]): [number, number] | null => {
      const v = [...xs].sort((x, y) => x - y);
      const n = v.length;
      let k = 0;
      let below = 0; // P(X < k + 1) once the loop has added P(X = k)
      for (let p = 0.5 ** n; ; ) {
        below += p;
        if (below > 0.025) break;
        k++;
        p = (p * (n - k + 1)) / k;
      }
      return k === 0 ? null : [v[k - 1], v[n - k]];
    };
    type Round = { a: Figures & { app_cpu_ms_per_request?: number }; b: Figures & { app_cpu_ms_per_request?: number }; ratio: number };
    /** Each side warmed up, then `count` alternated rounds (A B, B A, ...). */
    const alternateRounds = async (name: string, a: Side, b: Side, count: number, firstRound = 0): Promise<Round[]> => {
      if (WARMUP > 0) for (const side of [a, b, a, b]) { await side.before?.(); await side.warm(); }
      const rounds: Round[] = [];
      for (let r = 0; r < count; r++) {
        const order = (firstRound + r) % 2 === 0 ? [a, b] : [b, a];
        const got = new Map<Side, Figures & { app_cpu_ms_per_request?: number }>();
        for (const side of order) {
          await side.before?.();
          log(`${name}: round ${r + 1}/${count}, ${side.label} for ${SECONDS}s`);
          got.set(side, await side.run());
        }
        rounds.push({ a: got.get(a)!, b: got.get(b)!, ratio: round(got.get(a)!.requests_per_s / got.get(b)!.requests_per_s, 3) });
      }
      return rounds;
    };
    /** The medians of each side's requests/s and app CPU per request, the median of the rounds' ratios (A ÷ B), and every round. */
    const summarize = (aLabel: string, bLabel: string, rounds: Round[]) => {
      const cpu = (f: Round['a']) => f.app_cpu_ms_per_request ?? 0;
      const sideSummary = (k: 'a' | 'b') => ({
        requests_per_s: round(median(rounds.map((x) => x[k].requests_per_s)), 1),
        app_cpu_ms_per_request: round(median(rounds.map((x) => cpu(x[k]))), 3),
        p50_ms: median(rounds.map((x) => x[k].p50_ms)), errors: rounds.reduce((n, x) => n + x[k].errors, 0),
      });
      return {
        [aLabel]: sideSummary('a'), [bLabel]: sideSummary('b'),
        ratio: round(median(rounds.map((x) => x.ratio)), 3),
        // where the median ratio of the measure itself lies, with at least 95 % confidence (null under six rounds)
        ratio_ci95: medianCi95(rounds.map((x) => x.ratio))?.map((r) => round(r, 3)) ?? null,
        // app CPU per request, A ÷ B (> 1: A costs more)
        cpu_ratio: round(median(rounds.map((x) => cpu(x.a) / Math.max(0.001, cpu(x.b)))), 3),
        // each round's requests/s and app CPU ms per request of both sides
        rounds: rounds.map((x) => ({ [aLabel]: x.a.requests_per_s, [bLabel]: x.b.requests_per_s, ratio: x.ratio, cpu_ms: [cpu(x.a), cpu(x.b)] })),
      };
    };
    /** A against B in `count` alternated rounds, each side warmed up first (alternateRounds, summarize). */
    const alternate = async (name: string, a: Side, b: Side, count = ROUNDS) => summarize(a.label, b.label, await alternateRounds(name, a, b, count));

    const read = ROUTES.has('read') ? await measure('read', 'GET /v1/orgs/:orgId', readReq, readSql) : undefined;
    const write = ROUTES.has('write') ? await measure('write', 'PATCH /v1/orgs/:orgId', writeReq, writeSql) : undefined;
    // the HTTP stack alone (no token, no database): what the app costs before any tenant work
    if (ROUTES.has('health')) log(`baseline: API GET /health for ${SECONDS}s`);
    const baseline = ROUTES.has('health') ? { route: 'GET /health', api: await httpWithCpu({ method: 'GET', path: '/health' }) } : undefined;

    // issue 19: a keyed read against the same read with the user's token, on the same app
    let keyed: unknown;
    if (ROUTES.has('keyed')) {
      const key = await call('POST', `/v1/orgs/${orgId}/api-keys`, token, { name: 'bench', scopes: ['org:read', 'analytics:write'] });
      const keyReq: CannonRequest = { method: 'GET', path: `/v1/orgs/${orgId}`, headers: { authorization: `Bearer ${key.secret}` } };
      const compared = await alternate('keyed',
        { label: 'api_key', run: () => httpWithCpu(keyReq), warm: () => http(base, keyReq, WARMUP) },
        { label: 'token', run: () => httpWithCpu(readReq), warm: () => http(base, readReq, WARMUP) });
      keyed = { route: 'GET /v1/orgs/:orgId', rounds_of_seconds: SECONDS, ...compared };
    }

    // issue 19: the limiter's cost: the same read on this app (limiter on) and on a second one with it off
    let limiter: unknown;
    if (ROUTES.has('limiter')) {
      // one process, the limiter switched between rounds: both sides run on the same warmed-up app
      const setLimiter = (on: boolean) => new Promise<void>((resolve) => {
        const onMessage = (m: { limiter?: boolean }) => {
          if (m?.limiter === on) { child!.off('message', onMessage); resolve(); }
        };
        child!.on('message', onMessage);
        child!.send({ limiter: on });
      });
      const compared = await alternate('limiter',
        { label: 'on', before: () => setLimiter(true), run: () => httpWithCpu(readReq), warm: () => http(base, readReq, WARMUP) },
        { label: 'off', before: () => setLimiter(false), run: () => httpWithCpu(readReq), warm: () => http(base, readReq, WARMUP) });
      await setLimiter(true);
      limiter = { route: 'GET /v1/orgs/:orgId', store: process.env.REDIS_URL ? 'redis' : 'memory', method: 'one process, limiter switched between alternated rounds', rounds_of_seconds: SECONDS, ...compared };
    }

    // issue 19: analytics ingestion in events/s, batches of 100, against the same rows inserted through raw pg
    let analytics: unknown;
    if (ROUTES.has('analytics')) {
      const BATCH = 100;
      const batch = { events: Array.from({ length: BATCH }, (_, i) => ({ name: 'bench.event', properties: { i, page: '/ledger' }, userId: `bench-user-${i % 10}` })) };
      const ingestReq: CannonRequest = { method: 'POST', path: `/v1/orgs/${orgId}/analytics/events`, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(batch) };
      const values = Array.from({ length: BATCH }, (_, i) => `($1::uuid, now(), 'bench.event', $${i * 2 + 2}::jsonb, $${i * 2 + 3}, 'client')`).join(', ');
      const params = batch.events.flatMap((e) => [JSON.stringify(e.properties), e.userId]);
      const insertSql = async (c: pg.PoolClient) => {
        await begin(c);
        await Promise.all([c.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, properties, user_id, source) VALUES ${values}`, [orgId, ...params]), c.query('COMMIT')]);
      };
      const m = await measure('analytics', 'POST /v1/orgs/:orgId/analytics/events (100 events)', ingestReq, insertSql);
      analytics = {
        route: m.route, batch: BATCH,
        api_events_per_s: round(m.api.requests_per_s * BATCH, 0), floor_events_per_s: round(m.floor.requests_per_s * BATCH, 0),
        ratio: m.ratio, api: m.api, floor: m.floor,
      };
    }

    // issue 23: metrics counted (METRICS_TOKEN) and every request traced, its spans exported over OTLP (http/protobuf)
    // to a local sink that answers 200, on a second app process, against the plain app, in alternated rounds
    let observability: unknown;
    if (ROUTES.has('observability')) {
      let exports = 0;
      let exportedBytes = 0;
      sink = createServer((req, res) => {
        req.on('data', (c: Buffer) => (exportedBytes += c.length));
        req.on('end', () => {
          exports++;
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        });
      });
      await new Promise<void>((r) => sink!.listen(0, '127.0.0.1', r));
      const sinkUrl = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;
      const metricsToken = 'bench-only-metrics-token-0123456789abcdef';
      // the production default of README.md (parentbased_traceidratio, 0.1) unless the benchmark is told otherwise
      const samplerEnv = { OTEL_TRACES_SAMPLER: process.env.BENCH_OTEL_TRACES_SAMPLER ?? 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: process.env.BENCH_OTEL_TRACES_SAMPLER_ARG ?? '0.1' };
      const parts = new Set((process.env.BENCH_OBSERVABILITY ?? 'metrics,tracing').split(',').map((x) => x.trim()));
      // Both sides are processes of the same script (bench/api-serve.ts), differing only in what the environment turns
      // on, and each pair of processes serves a share of the rounds (BENCH_OBSERVABILITY_PAIRS, default one pair per
      // round): two processes of one build differ by about ±5 % in CPU per request for as long as they live (JIT, heap
      // layout: an A/A of three pairs of three rounds gave 0.96, 1.05 and 1.06 by pair; the benchmark's own app process
      // against api-serve.ts gave 1.08 with 9 rounds on one pair), so fresh pairs average that out instead of measuring it
      const serveScript = fileURLToPath(new URL('./api-serve.ts', import.meta.url));
      const onEnv = {
        ...(parts.has('als') ? { BENCH_ENABLE_ALS: '1' } : {}),
        ...(parts.has('metrics') ? { METRICS_TOKEN: metricsToken } : {}),
        ...(parts.has('tracing') ? { OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', ...samplerEnv } : {}),
      };
      const pairs = Math.max(1, Math.min(OBSERVABILITY_PAIRS, OBSERVABILITY_ROUNDS));
      const rounds: Round[] = [];
      let counted = 0;
      for (let pair = 0; pair < pairs; pair++) {
        // which of the two starts first alternates too
        const first = await startChild(pair % 2 === 0 ? onEnv : {}, serveScript);
        const second = await startChild(pair % 2 === 0 ? {} : onEnv, serveScript);
        const [on, off] = pair % 2 === 0 ? [first, second] : [second, first];
        const onBase = `http://127.0.0.1:${on.port}`;
        const offBase = `http://127.0.0.1:${off.port}`;
        const share = Math.ceil((OBSERVABILITY_ROUNDS - rounds.length) / (pairs - pair));
        rounds.push(...await alternateRounds(`observability (processes ${pair + 1}/${pairs})`,
          { label: 'on', before: async () => { measured = on.proc; }, run: () => httpWithCpu(readReq, onBase), warm: () => http(onBase, readReq, WARMUP) },
          { label: 'off', before: async () => { measured = off.proc; }, run: () => httpWithCpu(readReq, offBase), warm: () => http(offBase, readReq, WARMUP) },
          share, rounds.length));
        measured = child;
        const scraped = parts.has('metrics') ? await fetch(`${onBase}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } }).then((r) => r.text()) : '';
        counted += [...scraped.matchAll(/^omnizen_http_requests_total\{route="\/v1\/orgs\/:orgId",method="GET",status="200"\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
        // both gone before the next pair starts
        await Promise.all([on, off].map(({ proc }) => new Promise((resolve) => {
          proc.once('exit', resolve);
          proc.kill('SIGTERM');
        })));
      }
      const compared = { process_pairs: pairs, ...summarize('on', 'off', rounds) };
      observability = {
        route: 'GET /v1/orgs/:orgId', turned_on: [...parts].join(','), sampler: `${samplerEnv.OTEL_TRACES_SAMPLER} ${samplerEnv.OTEL_TRACES_SAMPLER_ARG}`, rounds_of_seconds: SECONDS, ...compared,
        metrics_counted_requests: counted, otlp_exports: exports, otlp_exported_bytes: exportedBytes,
      };
    }

    const pgVersion = (await root.query('SHOW server_version')).rows[0].server_version;
    console.log(JSON.stringify({
      connections: CONNECTIONS, seconds: SECONDS, warmup_seconds: WARMUP, api_pool_size: POOL, log_level: LOG_LEVEL,
      machine: { cpus: cpus().length, load_average_1m_before: round(loadBefore), node: process.version, postgres: pgVersion, database: process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded' },
      read, write, http_baseline: baseline, keyed, limiter, analytics, observability,
    }, null, 2));
  } finally {
    for (const proc of children) {
      if (proc.exitCode !== null) continue;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    sink?.closeAllConnections();
    sink?.close();
    await runtime.end().catch(() => undefined);
    await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await root.end();
  }
}

/** `--serve`: the app alone, as the benchmark's child process; reports its port over IPC. */
async function serve() {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'production', LOG_LEVEL, SUPABASE_JWT_SECRET: SECRET, NEXTAUTH_SECRET: SECRET,
    DATABASE_URL: process.env.BENCH_OWNER_URL, API_DATABASE_URL: process.env.BENCH_API_URL, API_DATABASE_POOL_SIZE: String(POOL),
    PASSWORD_HASH_MEMORY_KIB: '256', PASSWORD_HASH_TIME_COST: '1', JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', REDIS_PREFIX: `bench:${process.pid}`,
  });
  const app = await createApp(AppModule.forRoot(config), config);
  await app.listen(0, '127.0.0.1');
  process.on('SIGTERM', () => void app.close().finally(() => process.exit(0)));
  process.on('message', (m: unknown) => {
    // the limiter phase switches the limiter of this one process between rounds
    if (m && typeof m === 'object' && 'limiter' in m) {
      app.get(RateLimiter).enabled = Boolean((m as { limiter: boolean }).limiter);
      process.send!({ limiter: app.get(RateLimiter).enabled });
      return;
    }
    const { user, system } = process.cpuUsage();
    process.send!({ cpuMs: (user + system) / 1000, systemMs: system / 1000 });
  });
  process.send!({ port: (app.getHttpServer().address() as { port: number }).port });
}

(process.argv.includes('--serve') ? serve() : main().then(() => process.exit(0))).catch((err) => {
  console.error(err);
  process.exit(1);
});
