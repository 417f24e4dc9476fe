// npm run bench:ledger — posting throughput and latency through the API and through SQL directly,
// and trial-balance latency at 1,000,000 journal lines. Prints one JSON document.
//
// It creates its own database (omnizen_bench_ledger_<pid>) on DATABASE_URL's server, migrates it,
// starts the app on a free port, runs every scenario in BENCH_ROUNDS (default 3) rounds of BENCH_SECONDS (default 5)
// per side, API and floor alternated (api sql, sql api, ...: figures are medians over the rounds, a ratio is the
// median of the rounds' ratios), after an unmeasured warm-up of BENCH_WARMUP_SECONDS (default 12) through the API
// (every scenario in turn) and one through the floor; every side of every round starts after ANALYZE, CHECKPOINT and an
// unmeasured lead-in of that side (BENCH_LEAD_IN_SECONDS, default 2: the pools reopen the connections they closed after
// 10 s idle while the other side ran). The ratios' spread over the rounds is in ratio_spread, each round in rounds. It
// drops the database at the end. Scenarios, each at 32 connections:
//   api_*   POST /v1/orgs/:orgId/ledger/journal-entries (autocannon)
//   sql_*   the statement the API sends, finance.post_journal_entry(entry, audit context) (it writes the
//           entry, its lines, the balances and the audit row and answers with the entry), called directly
//           through pg as the API login in the same tenant transaction (BEGIN; begin_request; post;
//           COMMIT): the floor
//   *_spread_2 / *_spread_6: 2- and 6-line entries over 1,000 postable accounts
//   *_hot_2 / *_hot_6: the same, every entry also touching one hot cash account
//   api_batch_N  POST /v1/orgs/:orgId/ledger/journal-entries/batch with N 2-line spread entries (N = 1, 10, 100,
//                1,000; fewer connections for larger batches, BENCH_BATCH_CONNECTIONS overrides them)
//   sql_batch_N  the statements that route sends after begin_request, directly: the entitlement gate's query and
//                POST_BATCH_SQL (finance.post_journal_entries(entries, audit context) with the entries' events)
//   sql_reference_2  the reference (bench/reference-ledger.sql): a bare double-entry transfer between two of 1,000
//                accounts (two balances updated, a transfer and two entry rows, no tenancy, RLS, audit or periods),
//                autocommit, one round trip, as the API login; measured in each round of spread_2 after its floor
//                (before it in odd rounds). ratios.sql_spread_2_vs_reference says where the floor stands against what
//                the machine does that day: the same floor moved by 2x and more within one day (bench/README.md)
//   sql_reference_tenant_2  the same transfer inside the floor's tenant transaction (BEGIN; begin_request; transfer;
//                COMMIT), as the request's role: what a tenant transaction alone adds to the least a posting costs.
//                ratios.sql_reference_tenant_2_vs_reference is that step, sql_spread_2_vs_reference_tenant the rest
//   BENCH_ONLY=batch runs the batch scenarios alone (a few minutes, no 1M-line load)
// CPU per entry: the app process's (/proc/<pid>/stat) and the database's, summed over the backends of this
// benchmark's database logged in as the API login (pg_stat_activity), not over every PostgreSQL process.
// The floor's and the references' client_cpu_ms_per_entry is this process's own CPU (the load generator, which
// shares the machine's cores with the database).
// The floor's pool is pipelined as the app's is (BEGIN travels with begin_request), and it sends the statements the app
// prepares (begin_request, the single posting, the gate) as named prepared statements, as the app does.
// The 1,000,000 lines are generated set-based in SQL straight into the posting path's tables
// (entries, lines, then running and per-period balances aggregated from those lines), not by
// calling the function a million times, then vacuumed and analyzed as autovacuum would; the trial
// balance is then read through the API.
import 'reflect-metadata';
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { billingContext } from '../src/modules/billing/billing.repository.js';
import { POST_BATCH_SQL, postBatchParams, type PostingAudit } from '../src/modules/ledger/ledger.repository.js';
import { createApp } from '../src/bootstrap.js';
import { statementName } from '../src/platform/database/sql.js';
import { APP_NODE_FLAGS, benchAppEnv } from './app-flags.js';
import { loadReferenceLedger, TRANSFER_SQL, transferParams } from './reference-ledger.js';
import { tenantClaims } from './tenant-claims.js';
import { apiBackendsCpu, processCpu } from './proc-cpu.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
// API and floor alternate in this many rounds per scenario (api sql, sql api, ...)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// an unmeasured run before the API scenarios and before the floor (JIT, connection pools, caches)
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 12);
// an unmeasured run of the same side right before each measured one: both pools close a connection idle for 10 s
// (pg-pool's default, the app's included), and a side measured after the other side's round started on new backends
// (PL/pgSQL compiled, catalog caches and plans rebuilt) while the other ran on warm ones (bench/README.md, issue 14)
const LEAD_IN = Number(process.env.BENCH_LEAD_IN_SECONDS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ACCOUNTS = 1000;
const TB_LINES = Number(process.env.BENCH_TB_LINES ?? 1_000_000);
loadLocalEnv(projectRoot());
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_ledger_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';

const pct = (sorted: number[], p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null;
// of an even count (BENCH_ROUNDS=4: api sql, sql api twice) the mean of the middle two
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? round(a / b, 3) : null);
const round = (n: number | null, d = 2) => (n === null ? null : Math.round(n * 10 ** d) / 10 ** d);
const log = (msg: string) => process.stderr.write(`[bench:ledger] ${msg}\n`);
/** A statement of the floor: text, parameters, and whether the app sends it as a named prepared statement. */
type Statement = [text: string, params: unknown[], prepared: boolean];
// the texts the app sends (database.service.ts tenant, ledger.repository post)
const BEGIN_REQUEST = 'SELECT org_id, role, workspace_id FROM public.begin_request($1, $2)';
const POST_ONE = 'SELECT replayed, entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)';

async function main() {
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_ledger_']);
  await root.query(`DROP DATABASE IF EXISTS "${dbName}"`);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  let stopApp: (() => Promise<void>) | undefined;
  let appPid: number | undefined;
  const appCpuMs = () => processCpu(appPid)?.ms;
  const admin = new pg.Pool({ connectionString: ownerUrl, max: 4 });
  // CPU so far of each backend of this benchmark's database logged in as the API login (the app's pool and the
  // floor's): other databases' work, background processes and backends that come and go elsewhere stay out.
  // Undefined when the server's processes are not readable here (another machine, no /proc).
  const dbCpuMs = async (): Promise<Map<number, number> | undefined> => {
    const { cpu, backends } = await apiBackendsCpu(admin, dbName);
    return backends && !cpu.size ? undefined : cpu;
  };
  // a backend that started during the measurement counts from zero; one that ended is lost (the pools keep theirs)
  const dbCpuDelta = (before: Map<number, number> | undefined, after: Map<number, number> | undefined) =>
    (before && after ? [...after].reduce((sum, [pid, ms]) => sum + ms - (before.get(pid) ?? 0), 0) : undefined);
  // backends of the API login that were not there when the measurement started: connections (re)opened inside it
  const newBackends = (before: Map<number, number> | undefined, after: Map<number, number> | undefined) =>
    (before && after ? [...after.keys()].filter((pid) => !before.has(pid)).length : undefined);
  const perEntry = (before: number | undefined, after: number | undefined, entries: number) =>
    (before !== undefined && after !== undefined ? round((after - before) / Math.max(1, entries), 3) : undefined);
  const dbPerEntry = (before: Map<number, number> | undefined, after: Map<number, number> | undefined, entries: number) => {
    const delta = dbCpuDelta(before, after);
    return delta === undefined ? undefined : round(delta / Math.max(1, entries), 3);
  };
  // pipelined like the app's pool (src/platform/database/sql.ts): BEGIN travels with begin_request
  const runtime = new pg.Pool({ connectionString: apiUrl, max: CONNECTIONS, pipeline: true } as pg.PoolConfig);
  // idle clients cut by the final DROP DATABASE ... WITH (FORCE): without a listener, a run that failed midway
  // crashed on their 'error' event before it could report why it failed
  runtime.on('error', () => undefined);
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    // the app runs in its own process so that the load generator does not share its event loop; it stays up while
    // the floor runs (API and floor alternate), idle then: its outbox relay is off (JOBS_RELAY_INTERVAL_MS=0), and
    // its pool and the floor's (32 + 32) fit in PostgreSQL's default max_connections (100)
    const startApp = async () => {
      const child = spawn(process.execPath, [...APP_NODE_FLAGS, ...(process.env.BENCH_APP_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_APP_PROFILE}`] : []), '--import', './scripts/register-ts.mjs', fileURLToPath(import.meta.url), '--serve', ownerUrl, apiUrl], { env: benchAppEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => child.once('exit', r));
      appPid = child.pid;
      stopApp = async () => {
        child.kill('SIGTERM');
        await exited;
        stopApp = undefined;
      };
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /listening on (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`app exited with ${code}`)));
      });
      base = `http://127.0.0.1:${port}`;
    };
    let base = '';
    await startApp();
    const http = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<any>;
    };

    // ---- an organization with its books started and 1,000 postable accounts
    const setupOrg = async (name: string) => {
      const credentials = { email: `${name}.${process.pid}@bench.test`, password: 'correct horse battery' };
      await http('POST', '/v1/auth/register', undefined, { ...credentials, name });
      const user = await http('POST', '/v1/auth/login', undefined, credentials);
      const token: string = user.accessToken;
      // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
      await admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [user.user.id]);
      const org = await http('POST', '/v1/orgs', token, { name });
      await http('POST', `/v1/orgs/${org.id}/ledger/books`, token, { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' });
      const accounts = await http('GET', `/v1/orgs/${org.id}/ledger/accounts`, token);
      const parent = accounts.find((a: any) => a.code === '1000').id;
      // setup only: the chart is inserted through the owner connection in one statement
      const { rows } = await admin.query(`
        INSERT INTO finance.accounts (org_id, code, name, type, parent_id)
        SELECT $1::uuid, 'B' || lpad(i::text, 4, '0'), 'Bench ' || i, 'asset', $2::uuid FROM generate_series(1, $3::int) i RETURNING id`, [org.id, parent, ACCOUNTS]);
      const cash = accounts.find((a: any) => a.code === '1100').id;
      return { orgId: org.id as string, userId: user.user.id as string, token, ids: rows.map((r) => r.id as string), cash };
    };
    const org = await setupOrg('bench');
    const pick = () => org.ids[Math.floor(Math.random() * org.ids.length)];
    const amount = () => `${1 + Math.floor(Math.random() * 9999)}.${String(Math.floor(Math.random() * 100)).padStart(2, '0')}`;
    const entry = (lines: number, hot: boolean) => {
      const out: { accountId: string; debit?: string; credit?: string }[] = [];
      for (let i = 0; i < lines / 2; i++) {
        const a = amount();
        out.push({ accountId: hot && i === 0 ? org.cash : pick(), debit: a }, { accountId: pick(), credit: a });
      }
      return { date: '2026-01-15', memo: 'bench', lines: out };
    };

    const api = async (lines: number, hot: boolean, seconds = SECONDS) => {
      const cpu0 = appCpuMs();
      const db0 = await dbCpuMs();
      const r = await autocannon({
        url: base, connections: CONNECTIONS, duration: seconds,
        requests: [{
          method: 'POST', path: `/v1/orgs/${org.orgId}/ledger/journal-entries`,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${org.token}` },
          setupRequest: (req: any) => ({ ...req, body: JSON.stringify(entry(lines, hot)) }),
        }],
      });
      const ok = r.requests.total - r.non2xx;
      const failures = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).filter(([code]) => !code.startsWith('2')).map(([code, v]: [string, any]) => [code, v.count]));
      // CPU the app's process and the database spent per posted entry (steadier than entries/s on a shared machine)
      const app_cpu_ms_per_entry = perEntry(cpu0, appCpuMs(), ok);
      const db1 = await dbCpuMs();
      const db_cpu_ms_per_entry = dbPerEntry(db0, db1, ok);
      return { entries_per_s: round(ok / (r.duration || seconds), 1), p50_ms: r.latency.p50, p99_ms: r.latency.p99, errors: r.non2xx + r.errors, failures, app_cpu_ms_per_entry, db_cpu_ms_per_entry, new_backends: newBackends(db0, db1) };
    };

    const claims = tenantClaims(org.token, org.orgId);
    // the statement of POST /journal-entries after begin_request (ledger.repository post), with the audit
    // context the API passes
    const auditContext = (n: number): PostingAudit => ({ action: 'ledger.entry_posted', requestId: `bench-${process.pid}-${n}`, ip: '127.0.0.1' });
    const audit = (n: number) => JSON.stringify(auditContext(n));
    // the batch route's statements after begin_request: the entitlement gate's (the ledger's writes need a subscription
    // that allows writing), then the posting with its events (the payloads as JournalService builds them: source set)
    const { sql: gateSql, parameters: gateParams } = billingContext({ orgId: org.orgId, appId: 'omnizen' }).compile();
    const gate: Statement = [gateSql, [...gateParams], true];
    // As the app sends them (src/platform/database/sql.ts): tagged templates and prepare()d queries (begin_request,
    // the single posting, the gate) as named prepared statements, parsed and planned once per connection;
    // $queryRawUnsafe texts (POST_BATCH_SQL) unnamed.
    const named = (text: string, values: unknown[]) => ({ name: statementName(text), text, values });
    let posted = 0;
    /**
     * `connections` clients each run `one` until the deadline: latencies per call, errors, database CPU of the
     * benchmark's backends. A failed call is rolled back (a no-op outside a transaction).
     */
    const loop = async (connections: number, seconds: number, one: (c: pg.PoolClient) => Promise<unknown>) => {
      const latencies: number[] = [];
      let errors = 0;
      const deadline = Date.now() + seconds * 1000;
      const started = Date.now();
      const db0 = await dbCpuMs();
      const client0 = process.cpuUsage();
      await Promise.all(Array.from({ length: connections }, async () => {
        const c = await runtime.connect();
        try {
          while (Date.now() < deadline) {
            const t0 = process.hrtime.bigint();
            try {
              await one(c);
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            } catch {
              errors++;
              await c.query('ROLLBACK').catch(() => undefined);
            }
          }
        } finally {
          c.release();
        }
      }));
      latencies.sort((x, y) => x - y);
      const client = process.cpuUsage(client0);
      return { latencies, errors, elapsed_s: (Date.now() - started) / 1000, db0, db1: await dbCpuMs(), client_ms: (client.user + client.system) / 1000 };
    };
    /** The floor: tenant transactions (BEGIN; begin_request; the statements `next()` gives; COMMIT), as the app sends them. */
    const floor = (connections: number, seconds: number, next: () => Statement[]) => loop(connections, seconds, async (c) => {
      const statements = next();
      await Promise.all([c.query('BEGIN'), c.query(named(BEGIN_REQUEST, [claims, 'authenticated']))]);
      for (const [statement, params, prepared] of statements) await c.query(prepared ? named(statement, params) : { text: statement, values: params });
      await c.query('COMMIT');
    });
    /** One entry per call: entries/s, latency percentiles, errors, database CPU per entry. */
    const perCall = (r: Awaited<ReturnType<typeof loop>>) => ({
      entries_per_s: round(r.latencies.length / r.elapsed_s, 1), p50_ms: round(pct(r.latencies, 50)), p99_ms: round(pct(r.latencies, 99)), errors: r.errors,
      db_cpu_ms_per_entry: dbPerEntry(r.db0, r.db1, r.latencies.length),
      client_cpu_ms_per_entry: perEntry(0, r.client_ms, r.latencies.length), new_backends: newBackends(r.db0, r.db1),
    });
    const sql = async (lines: number, hot: boolean, seconds = SECONDS) =>
      perCall(await floor(CONNECTIONS, seconds, () => [[POST_ONE, [JSON.stringify(entry(lines, hot)), audit(posted++)], true]]));

    // ---- the reference (bench/reference-ledger.sql): a bare double-entry transfer between two of 1,000 accounts,
    // autocommit, one round trip, as the API login; measured in the rounds of spread_2, next to its floor
    const referenceIds: string[] = [];
    const reference = async (seconds = SECONDS) => perCall(await loop(CONNECTIONS, seconds,
      (c) => c.query(named(TRANSFER_SQL, transferParams(referenceIds, amount())))));
    // the same transfer in the tenant transaction every posting runs in
    const referenceTenant = async (seconds = SECONDS) =>
      perCall(await floor(CONNECTIONS, seconds, () => [[TRANSFER_SQL, transferParams(referenceIds, amount()), true]]));

    // ---- batch posting: N 2-line spread entries per request / per call
    const BATCH_SIZES = [1, 10, 100, 1000] as const;
    const batchConnections = (size: number) => Number(process.env.BENCH_BATCH_CONNECTIONS ?? (size <= 10 ? CONNECTIONS : size === 100 ? 8 : 4));
    const batchBody = (size: number) => JSON.stringify({ entries: Array.from({ length: size }, () => entry(2, false)) });
    const apiBatch = async (size: number, seconds = SECONDS) => {
      const connections = batchConnections(size);
      const cpu0 = appCpuMs();
      const db0 = await dbCpuMs();
      const r = await autocannon({
        url: base, connections, duration: seconds,
        requests: [{
          method: 'POST', path: `/v1/orgs/${org.orgId}/ledger/journal-entries/batch`,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${org.token}` },
          setupRequest: (req: any) => ({ ...req, body: batchBody(size) }),
        }],
      });
      const ok = (r.requests.total - r.non2xx) * size;
      const failures = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).filter(([code]) => !code.startsWith('2')).map(([code, v]: [string, any]) => [code, v.count]));
      const app_cpu_ms_per_entry = perEntry(cpu0, appCpuMs(), ok);
      const db1 = await dbCpuMs();
      return {
        batch: size, connections, entries_per_s: round(ok / (r.duration || seconds), 1), p50_ms_per_request: r.latency.p50, p99_ms_per_request: r.latency.p99,
        errors: r.non2xx + r.errors, failures, app_cpu_ms_per_entry, db_cpu_ms_per_entry: dbPerEntry(db0, db1, ok), new_backends: newBackends(db0, db1),
      };
    };
    const sqlBatch = async (size: number, seconds = SECONDS) => {
      const connections = batchConnections(size);
      const r = await floor(connections, seconds, () => [gate,
        [POST_BATCH_SQL, postBatchParams(org.orgId, Array.from({ length: size }, () => ({ ...entry(2, false), source: 'manual' })), auditContext(posted++), false), false]]);
      const entries = r.latencies.length * size;
      return {
        batch: size, connections, entries_per_s: round(entries / r.elapsed_s, 1), p50_ms_per_call: round(pct(r.latencies, 50)),
        p99_ms_per_call: round(pct(r.latencies, 99)), errors: r.errors, db_cpu_ms_per_entry: dbPerEntry(r.db0, r.db1, entries),
        new_backends: newBackends(r.db0, r.db1),
      };
    };

    // the machine's load (1, 5, 15 minutes) when the measured part starts and ends: absolute figures depend on it
    const loadAverage = () => loadavg().map((l) => round(l, 2));
    const results: Record<string, any> = { load_average_start: loadAverage() };
    const batchOnly = process.env.BENCH_ONLY === 'batch';
    const only = batchOnly ? BATCH_SIZES.flatMap((n) => [`api_batch_${n}`, `sql_batch_${n}`]) : process.env.BENCH_ONLY?.split(',');
    const wanted = (name: string) => !only || only.includes(name);
    const scenarios = [['spread_2', 2, false], ['spread_6', 6, false], ['hot_2', 2, true], ['hot_6', 6, true]] as const;
    // each measured scenario starts from fresh statistics and a fresh checkpoint. Statistics: the posting tables
    // start empty and grow by ~10^5 rows a scenario; the plans the posting functions cache are made from whatever
    // autovacuum last measured, so without ANALYZE the first side measured (the API) ran on plans for near-empty
    // tables until autovacuum caught up (API database CPU per entry 6-26 % above the floor's in the same run, equal
    // after a 20 s warm-up; bench/README.md). Checkpoint: dirty pages and WAL of earlier work (another run's 1M-line
    // load, the previous scenario) are flushed first instead of competing with its commits, and a checkpoint forced
    // by WAL volume (about one per run here) does not land inside one scenario of one side
    const POSTING_TABLES = 'finance.journal_entries, finance.journal_lines, finance.account_balances, finance.period_balances, core.audit_logs, core.outbox';
    const checkpoint = async () => {
      await admin.query(`ANALYZE ${POSTING_TABLES}`).catch((err: Error) => log(`no ANALYZE (${err.message}): plans may be those of smaller tables`));
      await admin.query('CHECKPOINT').catch((err: Error) => log(`no CHECKPOINT (${err.message}): phases may see earlier writes flushing`));
    };
    const autovacuums = async () => Number((await admin.query(`
      SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::int AS n FROM pg_stat_all_tables
      WHERE (schemaname || '.' || relname) = ANY (string_to_array(replace($1, ' ', ''), ','))`, [POSTING_TABLES])).rows[0].n);
    await checkpoint();
    const single = scenarios.some(([name]) => wanted(`api_${name}`) || wanted(`sql_${name}`));
    const batches = BATCH_SIZES.filter((n) => wanted(`api_batch_${n}`) || wanted(`sql_batch_${n}`));
    const referenceWanted = wanted('sql_reference_2');
    const referenceTenantWanted = wanted('sql_reference_tenant_2');
    if (referenceWanted || referenceTenantWanted) referenceIds.push(...await loadReferenceLedger(admin));
    // every shape warmed up on both sides first: the first one measured otherwise still pays for JIT compilation
    // (~1.4 ms of app CPU per entry after a 2 s warm-up, ~0.85 once warm) and the backends' caches
    if (WARMUP > 0) {
      log(`warm-up ${WARMUP}s (api, then sql${referenceWanted || referenceTenantWanted ? ', then the reference' : ''})`);
      const shapes = (single ? scenarios.length : 0) + batches.length + (referenceWanted ? 1 : 0) + (referenceTenantWanted ? 1 : 0);
      if (single) for (const [, lines, hot] of scenarios) await api(lines, hot, WARMUP / shapes);
      for (const n of batches) await apiBatch(n, WARMUP / shapes);
      if (single) for (const [, lines, hot] of scenarios) await sql(lines, hot, WARMUP / shapes);
      for (const n of batches) await sqlBatch(n, WARMUP / shapes);
      if (referenceWanted) await reference(WARMUP / shapes);
      if (referenceTenantWanted) await referenceTenant(WARMUP / shapes);
    }
    /**
     * The API and its floor in ROUNDS alternated rounds (api sql, sql api, ...), each from fresh statistics and a
     * fresh checkpoint: this machine's speed drifts by tens of percent between runs and within one, so a side
     * measured only before the other would carry the drift into the ratio. Each side's measurement follows an
     * unmeasured LEAD_IN of the same side: without it the side measured after the other one's round (idle > 10 s)
     * ran on backends its pool had just reopened, and the ratio depended on the round's order (api sql ~0.9, sql api
     * ~0.5-0.65, api sql again ~1.1-1.4). Each side's figures are the medians over its rounds; the ratio is the median
     * of the rounds' paired ratios, with their spread (ratio_spread) and each round's figures (rounds).
     */
    type Figures = Record<string, any>;
    type Measure = (seconds?: number) => Promise<Figures>;
    const compare = async (name: string, apiSide: Measure, sqlSide: Measure,
      references: { reference?: Measure; reference_tenant?: Measure } = {}) => {
      type Side = 'api' | 'sql' | 'reference' | 'reference_tenant';
      const runs: Partial<Record<Side, Figures>>[] = [];
      const measured = (side: Side) => (side === 'api' || side === 'sql' ? wanted(`${side}_${name}`) : !!references[side]);
      const order: Side[] = ['api', 'sql', 'reference', 'reference_tenant'];
      for (let r = 0; r < ROUNDS; r++) {
        const run: Partial<Record<Side, Figures>> = {};
        for (const side of r % 2 === 0 ? order : [...order].reverse()) {
          if (!measured(side)) continue;
          const measure = side === 'api' ? apiSide : side === 'sql' ? sqlSide : references[side]!;
          await checkpoint();
          if (LEAD_IN > 0) await measure(LEAD_IN);
          log(`${side} ${name}, round ${r + 1}/${ROUNDS}`);
          const vacuums0 = await autovacuums();
          run[side] = await measure();
          // autovacuum and autoanalyze runs on the posting tables that ended inside the measurement (they share the cores)
          run[side].autovacuum_runs = (await autovacuums()) - vacuums0;
        }
        runs.push(run);
      }
      const medianOf = (side: Side) => {
        const got = runs.map((x) => x[side]).filter((x): x is Figures => !!x);
        if (!got.length) return undefined;
        return Object.fromEntries(Object.keys(got[0]).map((k) => {
          const values = got.map((x) => x[k]);
          return [k, values.every((v) => typeof v === 'number') ? round(median(values), 3) : values[values.length - 1]];
        }));
      };
      const apiFigures = medianOf('api');
      const sqlFigures = medianOf('sql');
      if (apiFigures) results[`api_${name}`] = apiFigures;
      if (sqlFigures) results[`sql_${name}`] = sqlFigures;
      if (apiFigures && sqlFigures) {
        rounds[name] = runs.map((x, r) => ({
          order: r % 2 === 0 ? 'api,sql' : 'sql,api', api: x.api!.entries_per_s, sql: x.sql!.entries_per_s, ratio: ratio(x.api!.entries_per_s, x.sql!.entries_per_s),
          api_app_cpu_ms_per_entry: x.api!.app_cpu_ms_per_entry, api_db_cpu_ms_per_entry: x.api!.db_cpu_ms_per_entry, sql_db_cpu_ms_per_entry: x.sql!.db_cpu_ms_per_entry,
          api_new_backends: x.api!.new_backends, sql_new_backends: x.sql!.new_backends, api_autovacuum_runs: x.api!.autovacuum_runs, sql_autovacuum_runs: x.sql!.autovacuum_runs,
        }));
        const paired = runs.map((x) => ratio(x.api!.entries_per_s, x.sql!.entries_per_s) ?? 0);
        ratios[`api_vs_sql_${name}`] = round(median(paired), 3);
        ratioSpread[`api_vs_sql_${name}`] = { min: Math.min(...paired), max: Math.max(...paired), rounds: paired.length };
      }
      // the floor against the references, round by round: how far the ledger's guarantees put it from the least a
      // posting costs on this machine today (reference), and from the least a posting in a tenant transaction costs
      // (reference_tenant); and what the tenant transaction alone costs the reference
      const perRound = (a: Side, b: Side) => {
        const pairs = runs.filter((x) => x[a] && x[b]).map((x) => ratio(x[a]!.entries_per_s, x[b]!.entries_per_s) ?? 0);
        return pairs.length ? round(median(pairs), 3) : undefined;
      };
      const referenceFigures = { reference: medianOf('reference'), reference_tenant: medianOf('reference_tenant') };
      for (const side of ['reference', 'reference_tenant'] as const) {
        if (!referenceFigures[side]) continue;
        results[`sql_${side}_2`] = referenceFigures[side];
        if (sqlFigures) ratios[`sql_${name}_vs_${side}`] = perRound('sql', side) ?? null;
      }
      if (referenceFigures.reference && referenceFigures.reference_tenant) ratios.sql_reference_tenant_2_vs_reference = perRound('reference_tenant', 'reference') ?? null;
      if (references.reference || references.reference_tenant) {
        referenceRounds[name] = runs.map((x) => ({ sql: x.sql?.entries_per_s, reference: x.reference?.entries_per_s, reference_tenant: x.reference_tenant?.entries_per_s }));
      }
    };
    const rounds: Record<string, Record<string, number | string | null | undefined>[]> = {};
    const ratioSpread: Record<string, { min: number; max: number; rounds: number }> = {};
    const referenceRounds: Record<string, { sql?: number; reference?: number; reference_tenant?: number }[]> = {};
    const ratios: Record<string, number | null> = {};
    for (const [name, lines, hot] of scenarios) {
      await compare(name, (s) => api(lines, hot, s), (s) => sql(lines, hot, s), name !== 'spread_2' ? {} : {
        reference: referenceWanted ? (s) => reference(s) : undefined,
        reference_tenant: referenceTenantWanted ? (s) => referenceTenant(s) : undefined,
      });
    }
    for (const n of batches) await compare(`batch_${n}`, (s) => apiBatch(n, s), (s) => sqlBatch(n, s));
    await runtime.end();
    if (only && !only.includes('trial_balance')) {
      console.log(JSON.stringify({ ...results, load_average_end: loadAverage(), rounds_of_seconds: SECONDS, lead_in_seconds: LEAD_IN, ratios, ratio_spread: ratioSpread, rounds, reference_rounds: referenceRounds }, null, 2));
      return;
    }

    // ---- trial balance at 1,000,000 lines (separate organization)
    log(`generating ${TB_LINES} lines`);
    const big = await setupOrg('bench-1m');
    const t0 = Date.now();
    const genClient = await admin.connect();
    try {
      await genClient.query('BEGIN');
      const entries = Math.ceil(TB_LINES / 4);
      await genClient.query(`SET LOCAL work_mem = '256MB'`);
      // the generated rows reference accounts, periods and entries that exist by construction: skip the
      // per-row foreign-key triggers while loading (replica mode), as a bulk restore would
      await genClient.query(`SET LOCAL session_replication_role = replica`);
      await genClient.query(`
        CREATE TEMP TABLE gen ON COMMIT DROP AS
        SELECT gen_random_uuid() AS id, i, DATE '2026-01-01' + (i % 365) AS d FROM generate_series(1, $1::int) i`, [entries]);
      await genClient.query(`
        INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, request_hash, base_currency, total_base, created_by)
        SELECT $1::uuid, g.id, g.d, p.id, 'generated', 'system', md5(g.i::text), 'EUR', 2 * (1 + g.i % 997), 'bench'
        FROM gen g JOIN finance.fiscal_periods p ON p.org_id = $1::uuid AND g.d BETWEEN p.start_date AND p.end_date`, [big.orgId]);
      // four lines per entry: two debits and two credits of the same amount, over the 1,000 accounts
      await genClient.query(`
        INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit)
        SELECT $1::uuid, e.id, n, e.entry_date, e.seq, e.period_id, ($2::uuid[])[1 + ((g.i * 7 + n * 131) % $3::int)], 'EUR',
               CASE WHEN n <= 2 THEN 1 + g.i % 997 ELSE 0 END, CASE WHEN n > 2 THEN 1 + g.i % 997 ELSE 0 END, 1,
               CASE WHEN n <= 2 THEN 1 + g.i % 997 ELSE 0 END, CASE WHEN n > 2 THEN 1 + g.i % 997 ELSE 0 END
        FROM gen g JOIN finance.journal_entries e ON e.org_id = $1::uuid AND e.id = g.id, generate_series(1, 4) n`, [big.orgId, big.ids, ACCOUNTS]);
      await genClient.query(`
        INSERT INTO finance.account_balances (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
        SELECT org_id, account_id, currency, 0, sum(debit), sum(credit), sum(base_debit), sum(base_credit), count(*)
        FROM finance.journal_lines WHERE org_id = $1::uuid GROUP BY org_id, account_id, currency`, [big.orgId]);
      await genClient.query(`
        INSERT INTO finance.period_balances (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
        SELECT org_id, period_id, account_id, currency, 0, sum(debit), sum(credit), sum(base_debit), sum(base_credit), count(*)
        FROM finance.journal_lines WHERE org_id = $1::uuid GROUP BY org_id, period_id, account_id, currency`, [big.orgId]);
      await genClient.query('COMMIT');
      // what autovacuum does after a million inserts (statistics, and the visibility map that lets
      // partial-period sums read the date index alone)
      await genClient.query('VACUUM (ANALYZE) finance.journal_lines, finance.journal_entries, finance.account_balances, finance.period_balances');
    } finally {
      genClient.release();
    }
    const { rows: [{ n }] } = await admin.query('SELECT count(*)::int AS n FROM finance.journal_lines WHERE org_id = $1', [big.orgId]);
    log(`generated ${n} lines in ${Date.now() - t0} ms`);
    const tbLatency = async (query: string) => {
      const times: number[] = [];
      let balanced = true;
      // unmeasured first calls: the app was just restarted (cold JIT, new connections, plans not cached)
      for (let i = 0; i < 3; i++) await http('GET', `/v1/orgs/${big.orgId}/ledger/reports/trial-balance${query}`, big.token);
      for (let i = 0; i < 25; i++) {
        const s = process.hrtime.bigint();
        const tb = await http('GET', `/v1/orgs/${big.orgId}/ledger/reports/trial-balance${query}`, big.token);
        times.push(Number(process.hrtime.bigint() - s) / 1e6);
        balanced &&= tb.balanced && tb.rows.length > 0;
      }
      times.sort((a, b) => a - b);
      log(`trial balance${query}: p50 ${round(pct(times, 50))} ms`);
      return { p50_ms: round(pct(times, 50)), p99_ms: round(pct(times, 99)), max_ms: round(times[times.length - 1]), balanced };
    };
    // the same trial-balance query straight through pg as the API login (begin_request + one statement)
    const tbSql = async (asOf: string | null) => {
      const c = new pg.Client({ connectionString: apiUrl });
      await c.connect();
      const times: number[] = [];
      try {
        for (let i = 0; i < 25; i++) {
          const s = process.hrtime.bigint();
          await c.query('BEGIN');
          await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: big.userId, role: 'authenticated', org_id: big.orgId })]);
          await c.query(`
            WITH t AS (
              SELECT account_id, sum(base_debit) - sum(base_credit) AS net FROM finance.account_balances
              WHERE $2::date IS NULL AND org_id = $1::uuid GROUP BY account_id
              UNION ALL
              SELECT account_id, sum(base_debit) - sum(base_credit) FROM finance.account_totals(NULL, $2::date)
              WHERE $2::date IS NOT NULL GROUP BY account_id)
            SELECT a.id, a.code, a.name, a.type, t.net::text FROM t JOIN finance.accounts a ON a.org_id = $1::uuid AND a.id = t.account_id
            WHERE t.net <> 0 ORDER BY a.code`, [big.orgId, asOf]);
          await c.query('COMMIT');
          times.push(Number(process.hrtime.bigint() - s) / 1e6);
        }
      } finally {
        await c.end();
      }
      times.sort((a, b) => a - b);
      return { p50_ms: round(pct(times, 50)), p99_ms: round(pct(times, 99)) };
    };
    const trial = {
      journal_lines: n,
      generation: 'set-based SQL into journal_entries/journal_lines, balances aggregated from the lines (not through the posting function)',
      current: await tbLatency(''),
      as_of_period_end: await tbLatency('?asOf=2026-06-30'),
      as_of_mid_period: await tbLatency('?asOf=2026-06-15'),
      sql_current: await tbSql(null),
      sql_as_of_period_end: await tbSql('2026-06-30'),
      sql_as_of_mid_period: await tbSql('2026-06-15'),
    };

    const report = {
      connections: CONNECTIONS, seconds_per_round: SECONDS, lead_in_seconds: LEAD_IN, rounds_per_scenario: ROUNDS, accounts: ACCOUNTS, ...results,
      ratios: {
        ...ratios,
        api_hot_vs_spread_2: ratio(results.api_hot_2?.entries_per_s, results.api_spread_2?.entries_per_s),
        api_hot_vs_spread_6: ratio(results.api_hot_6?.entries_per_s, results.api_spread_6?.entries_per_s),
        sql_hot_vs_spread_2: ratio(results.sql_hot_2?.entries_per_s, results.sql_spread_2?.entries_per_s),
      },
      ratio_spread: ratioSpread,
      rounds,
      reference_rounds: referenceRounds,
      trial_balance_1m: trial,
      load_average_end: loadAverage(),
    };
    console.log(JSON.stringify(report, null, 2));
  } finally {
    await stopApp?.();
    await runtime.end().catch(() => undefined); // already ended after the floor
    await admin.end().catch(() => undefined);
    await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await root.end();
  }
}

/** `--serve <ownerUrl> <apiUrl>`: the app alone, as the benchmark's child process. */
async function serve(ownerUrl: string, apiUrl: string) {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'error', DATABASE_URL: ownerUrl, API_DATABASE_URL: apiUrl,
    API_DATABASE_POOL_SIZE: String(CONNECTIONS), JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', REDIS_PREFIX: `bench:${new URL(ownerUrl).pathname.slice(1)}`,
  });
  const app = await createApp(AppModule.forRoot(config), config);
  await app.listen(0, '127.0.0.1');
  process.on('SIGTERM', () => void app.close().finally(() => process.exit(0)));
  console.log(`listening on ${(app.getHttpServer().address() as { port: number }).port}`);
}

const serveAt = process.argv.indexOf('--serve');
(serveAt > 0 ? serve(process.argv[serveAt + 1], process.argv[serveAt + 2]) : main().then(() => process.exit(0))).catch((err) => {
  console.error(err);
  process.exit(1);
});
