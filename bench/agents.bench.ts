// npm run bench:agents — AI agent runs through the API against the local OpenAI-compatible double (it answers at
// once), the same trace written straight through SQL (the floor), budget reservations on one hot budget, and
// semantic/query latency for a v_gl_fact aggregation over 1,000,000 journal lines. Prints one JSON document.
//
// Like bench:ledger it creates its own database (omnizen_bench_agents_<pid>), migrates it, starts the app in a
// child process and drops the database at the end. Scenarios at 32 connections for BENCH_SECONDS (default 8):
//   api_runs           POST /v1/orgs/:orgId/agents/:agentId/runs (one LLM call, no budget)
//   api_runs_hot_budget the same with one organization budget every call reserves against and settles
//   sql_runs           the trace a run writes, straight through pg as the API login: the run (BEGIN; begin_request;
//                      INSERT run; audit; COMMIT), the call's prices and reservation, then settlement, step,
//                      finished run and its event (BEGIN; ...; COMMIT) — no HTTP, no provider call
//   sql_reservations   ai.reserve_budget + ai.settle_budget on the hot budget, 32 connections (reservations/s)
// CPU per run: the app process's (/proc) and the database backends' of this database (as bench:ledger).
import 'reflect-metadata';
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { APP_NODE_FLAGS, benchAppEnv } from './app-flags.js';
import { tenantClaims } from './tenant-claims.js';
import { apiBackendsCpu, processCpu } from './proc-cpu.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';
import { startOpenAiDouble } from '../test/support/doubles/openai-double.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const LINES = Number(process.env.BENCH_SEMANTIC_LINES ?? 1_000_000);
// BENCH_ONLY=api,sql,reservations,semantic (comma-separated; default all): one scenario at a time on a shared machine
const ONLY = new Set((process.env.BENCH_ONLY ?? 'api,sql,reservations,semantic').split(',').map((s) => s.trim()).filter(Boolean));
// BENCH_KEEP_DB=1 keeps the database (to read a plan in psql); drop it yourself
const KEEP_DB = process.env.BENCH_KEEP_DB === '1';
// BENCH_APP_CPU_PROF=<dir>: the served app writes a V8 CPU profile there when it stops (node --cpu-prof)
const APP_FLAGS = process.env.BENCH_APP_CPU_PROF ? [...APP_NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_APP_CPU_PROF}`] : APP_NODE_FLAGS;
loadLocalEnv(projectRoot());
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_agents_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const round = (n: number | null | undefined, d = 2) => (n === null || n === undefined ? null : Math.round(n * 10 ** d) / 10 ** d);
const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null);
const log = (msg: string) => process.stderr.write(`[bench:agents] ${msg}\n`);

async function main() {
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_agents_']);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  const admin = new pg.Pool({ connectionString: ownerUrl, max: 4 });
  const runtime = new pg.Pool({ connectionString: apiUrl, max: CONNECTIONS, pipeline: true } as pg.PoolConfig);
  const llm = await startOpenAiDouble();
  llm.answerWith(() => ({ kind: 'text', content: 'The cash balance is EUR 100.00.', usage: { prompt: 120, completion: 12 } }));
  let appPid: number | undefined;
  let stopApp: (() => Promise<void>) | undefined;
  const dbCpuMs = async () => (await apiBackendsCpu(admin, dbName)).cpu;
  const dbDelta = (a: Map<number, number>, b: Map<number, number>) => [...b].reduce((s, [pid, ms]) => s + ms - (a.get(pid) ?? 0), 0);
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    const child = spawn(process.execPath, [...APP_FLAGS, '--import', './scripts/register-ts.mjs', fileURLToPath(import.meta.url), '--serve', ownerUrl, apiUrl, llm.url],
      { env: benchAppEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
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
    const base = `http://127.0.0.1:${port}`;
    const http = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.status === 204 ? undefined : (res.json() as Promise<any>);
    };
    const credentials = { email: `agents.${process.pid}@bench.test`, password: 'correct horse battery' };
    await http('POST', '/v1/auth/register', undefined, { ...credentials, name: 'bench' });
    const user = await http('POST', '/v1/auth/login', undefined, credentials);
    const token: string = user.accessToken;
    // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
    await admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [user.user.id]);
    const org = await http('POST', '/v1/orgs', token, { name: 'Agents bench' });
    // setup only: the enterprise plan (no agent limit), through the owner connection
    await admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, NULL, 'omnizen', 'enterprise', 'active', $1, now(), now())
      ON CONFLICT DO NOTHING`, [org.id]);
    await admin.query(`UPDATE hub."Subscription" SET plan = 'enterprise', status = 'active' WHERE "organizationId" = $1 AND "appId" = 'omnizen'`, [org.id]);
    await http('POST', `/v1/orgs/${org.id}/ledger/books`, token, { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' });
    const agent = await http('POST', `/v1/orgs/${org.id}/agents`, token, { name: 'Bench agent', type: 'assistant', modelId: 'gpt-4o-mini', maxOutputTokens: 256 });
    const runBody = JSON.stringify({ messages: [{ role: 'user', content: 'What is our cash balance?' }] });

    // runs finished in the database: on a loaded machine a run can take longer than the window, and autocannon
    // counts only the answers that arrive inside it
    const finishedRuns = async () => Number((await admin.query(`SELECT count(*) AS n FROM ai.runs WHERE org_id = $1 AND status = 'succeeded'`, [org.id])).rows[0].n);
    const api = async (seconds = SECONDS) => {
      const cpu0 = processCpu(appPid)?.ms;
      const db0 = await dbCpuMs();
      const runs0 = await finishedRuns();
      const r = await autocannon({
        url: base, connections: CONNECTIONS, duration: seconds,
        requests: [{ method: 'POST', path: `/v1/orgs/${org.id}/agents/${agent.id}/runs`, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: runBody }],
      });
      const ok = (await finishedRuns()) - runs0;
      const cpu1 = processCpu(appPid)?.ms;
      return {
        runs_per_s: round(ok / (r.duration || seconds), 1), p50_ms: r.latency.p50, p99_ms: r.latency.p99, errors: r.non2xx + r.errors,
        app_cpu_ms_per_run: cpu0 !== undefined && cpu1 !== undefined ? round((cpu1 - cpu0) / Math.max(1, ok), 3) : null,
        db_cpu_ms_per_run: round(dbDelta(db0, await dbCpuMs()) / Math.max(1, ok), 3),
      };
    };
    let apiRuns: Awaited<ReturnType<typeof api>> | undefined;
    let apiHot: Awaited<ReturnType<typeof api>> | undefined;
    if (ONLY.has('api')) {
      log(`api warm-up ${WARMUP}s`);
      await api(WARMUP);
      log('api runs');
      apiRuns = await api();
    }
    const budget = await http('POST', `/v1/orgs/${org.id}/ai/budgets`, token, { costLimit: '1000000.00' });
    if (ONLY.has('api')) {
      log('api runs, hot budget');
      apiHot = await api();
    }
    const { rows: [usage] } = await admin.query('SELECT spent_cost::text, reserved_cost::text FROM ai.budget_usage WHERE budget_id = $1', [budget.id]);
    await stopApp();

    // ---- the floor: the same trace straight through SQL, as the API login, in the API's transactions
    const claims = tenantClaims(token, org.id);
    const tx = async (c: pg.PoolClient, work: () => Promise<unknown>) => {
      await Promise.all([c.query('BEGIN'), c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims])]);
      await work();
      await c.query('COMMIT');
    };
    const floorRun = async (c: pg.PoolClient, withBudget: boolean) => {
      let runId = '';
      await tx(c, async () => {
        const { rows } = await c.query(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, trigger, input) VALUES ($1, $2, 'gpt-4o-mini', $3, 'interactive', $4) RETURNING id`,
          [org.id, agent.id, user.user.id, runBody]);
        runId = rows[0].id;
        await c.query(`INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after) VALUES ($1, $2, 'user', 'ai.run_started', 'ai_run', $3, '{}')`, [org.id, user.user.id, runId]);
      });
      const call = randomUUID();
      await tx(c, async () => {
        await c.query(`SELECT status FROM ai.runs WHERE org_id = $1 AND id = $2`, [org.id, runId]);
        await c.query(`SELECT * FROM ai.model_prices WHERE model_id = 'gpt-4o-mini' AND effective_from <= now() ORDER BY effective_from DESC LIMIT 1`);
        await c.query(`SELECT * FROM ai.reserve_budget($1, $2, 0.0002, 400, now(), now() + interval '5 minutes')`, [agent.id, call]);
      });
      await tx(c, async () => {
        await c.query(`SELECT * FROM ai.settle_budget($1, 0.0000252, 132, $2, now())`, [call, agent.id]);
        await c.query(`SELECT status FROM ai.runs WHERE org_id = $1 AND id = $2 FOR UPDATE`, [org.id, runId]);
        await c.query(`INSERT INTO ai.run_steps (org_id, run_id, step_no, kind, name, status, started_at, ended_at, latency_ms, input_tokens, output_tokens, cost, prices, detail)
          VALUES ($1, $2, 1, 'llm_call', 'gpt-4o-mini', 'succeeded', now(), now(), 1, 120, 12, 0.0000252, '{}', '{}')`, [org.id, runId]);
        await c.query(`UPDATE ai.runs SET input_tokens = input_tokens + 120, output_tokens = output_tokens + 12, cost = cost + 0.0000252, steps = steps + 1 WHERE org_id = $1 AND id = $2`, [org.id, runId]);
        await c.query(`UPDATE ai.runs SET status = 'succeeded', output = 'x', stop_reason = 'answer', finished_at = now(), latency_ms = 1 WHERE org_id = $1 AND id = $2 AND status = 'running' RETURNING *`, [org.id, runId]);
        await c.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'domain_event', '{"type":"agent.run.completed"}')`, [org.id]);
        await c.query(`SELECT * FROM ai.run_steps WHERE org_id = $1 AND run_id = $2 ORDER BY step_no`, [org.id, runId]);
      });
      void withBudget;
    };
    const floor = async (seconds: number, one: (c: pg.PoolClient) => Promise<void>) => {
      const latencies: number[] = [];
      let errors = 0;
      const deadline = Date.now() + seconds * 1000;
      const started = Date.now();
      const db0 = await dbCpuMs();
      await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
        const c = await runtime.connect();
        try {
          while (Date.now() < deadline) {
            const t0 = process.hrtime.bigint();
            try {
              await one(c);
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            } catch (err) {
              if (errors++ === 0) log(`floor error: ${(err as Error).message}`);
              await c.query('ROLLBACK').catch(() => undefined);
            }
          }
        } finally {
          c.release();
        }
      }));
      latencies.sort((a, b) => a - b);
      return { per_s: round(latencies.length / ((Date.now() - started) / 1000), 1), p50_ms: round(pct(latencies, 50)), p99_ms: round(pct(latencies, 99)), errors,
        db_cpu_ms_per_op: round(dbDelta(db0, await dbCpuMs()) / Math.max(1, latencies.length), 3) };
    };
    let sqlRuns: Awaited<ReturnType<typeof floor>> | undefined;
    let sqlReservations: Awaited<ReturnType<typeof floor>> | undefined;
    if (ONLY.has('sql')) {
      log('sql runs (hot budget)');
      sqlRuns = await floor(SECONDS, (c) => floorRun(c, true));
    }
    if (ONLY.has('reservations')) log('sql reservations');
    if (ONLY.has('reservations')) sqlReservations = await floor(SECONDS, async (c) => {
      const call = randomUUID();
      await tx(c, () => c.query(`SELECT * FROM ai.reserve_budget($1, $2, 0.0002, 400, now(), now() + interval '5 minutes')`, [agent.id, call]));
      await tx(c, () => c.query(`SELECT * FROM ai.settle_budget($1, 0.0000252, 132, $2, now())`, [call, agent.id]));
    });

    // ---- semantic/query over 1,000,000 lines (generated set-based, as bench:ledger does)
    const semantic = ONLY.has('semantic') ? await (async () => {
    log(`generating ${LINES} lines`);
    const { rows: accounts } = await admin.query(`SELECT id FROM finance.accounts WHERE org_id = $1 AND NOT is_group ORDER BY code`, [org.id]);
    const ids = accounts.map((a) => a.id);
    const g = await admin.connect();
    try {
      await g.query('BEGIN');
      await g.query(`SET LOCAL work_mem = '256MB'`);
      await g.query(`SET LOCAL session_replication_role = replica`);
      await g.query(`CREATE TEMP TABLE gen ON COMMIT DROP AS SELECT gen_random_uuid() AS id, i, DATE '2026-01-01' + (i % 365) AS d FROM generate_series(1, $1::int) i`, [Math.ceil(LINES / 4)]);
      await g.query(`INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, request_hash, base_currency, total_base, created_by)
        SELECT $1::uuid, g.id, g.d, p.id, 'generated', 'system', md5(g.i::text), 'EUR', 2 * (1 + g.i % 997), 'bench'
        FROM gen g JOIN finance.fiscal_periods p ON p.org_id = $1::uuid AND g.d BETWEEN p.start_date AND p.end_date`, [org.id]);
      await g.query(`INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit)
        SELECT $1::uuid, e.id, n, e.entry_date, e.seq, e.period_id, ($2::uuid[])[1 + ((g.i * 7 + n * 131) % $3::int)], 'EUR',
               CASE WHEN n <= 2 THEN 1 + g.i % 997 ELSE 0 END, CASE WHEN n > 2 THEN 1 + g.i % 997 ELSE 0 END, 1,
               CASE WHEN n <= 2 THEN 1 + g.i % 997 ELSE 0 END, CASE WHEN n > 2 THEN 1 + g.i % 997 ELSE 0 END
        FROM gen g JOIN finance.journal_entries e ON e.org_id = $1::uuid AND e.id = g.id, generate_series(1, 4) n`, [org.id, ids, ids.length]);
      await g.query('COMMIT');
      await g.query('VACUUM (ANALYZE) finance.journal_lines, finance.journal_entries');
    } finally {
      g.release();
    }
    const child2 = spawn(process.execPath, [...APP_FLAGS, '--import', './scripts/register-ts.mjs', fileURLToPath(import.meta.url), '--serve', ownerUrl, apiUrl, llm.url],
      { env: benchAppEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    const exited2 = new Promise((r) => child2.once('exit', r));
    stopApp = async () => {
      child2.kill('SIGTERM');
      await exited2;
      stopApp = undefined;
    };
    const port2 = await new Promise<number>((resolve) => {
      let out = '';
      child2.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening on (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
    });
    const sql = 'SELECT account_type, date_trunc(\'month\', entry_date) AS month, sum(base_amount) AS net, count(*) AS lines FROM semantic.v_gl_fact GROUP BY 1, 2 ORDER BY 1, 2';
    const times: number[] = [];
    let rows = 0;
    let semanticError: string | undefined;
    for (let i = 0; i < 4 && !semanticError; i++) {
      const s = process.hrtime.bigint();
      const res = await fetch(`http://127.0.0.1:${port2}/v1/orgs/${org.id}/semantic/query`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ sql }),
      });
      const body = await res.json() as any;
      if (res.status !== 200) {
        semanticError = `${res.status} ${body.error?.code}: ${body.error?.message}`;
        break;
      }
      if (i > 0) times.push(Number(process.hrtime.bigint() - s) / 1e6); // the first: cold plan and caches
      rows = body.rowCount;
    }
    times.sort((a, b) => a - b);
    await stopApp();
    return { journal_lines: LINES, query: sql, result_rows: rows, p50_ms: round(pct(times, 50)), max_ms: round(times[times.length - 1]), error: semanticError ?? null };
    })() : undefined;
    console.log(JSON.stringify({
      connections: CONNECTIONS, seconds_per_scenario: SECONDS,
      load_average: loadavg().map((l) => round(l)),
      api_runs: apiRuns ?? null, api_runs_hot_budget: apiHot ? { ...apiHot, budget_spent: usage?.spent_cost, budget_reserved_after: usage?.reserved_cost } : null,
      sql_runs_hot_budget: sqlRuns ?? null, sql_reservations_hot_budget: sqlReservations ?? null,
      ratios: { api_vs_sql_runs: apiHot && sqlRuns ? round((apiHot.runs_per_s ?? 0) / (sqlRuns.per_s || 1), 3) : null },
      semantic_query_1m: semantic ?? null,
    }, null, 2));
  } finally {
    await stopApp?.();
    await llm.close();
    await runtime.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
    if (KEEP_DB) log(`kept database ${dbName}`);
    else await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await root.end();
  }
}

/** `--serve <ownerUrl> <apiUrl> <llmUrl>`: the app alone, as the benchmark's child process, against the double. */
async function serve(ownerUrl: string, apiUrl: string, llmUrl: string) {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'error', DATABASE_URL: ownerUrl, API_DATABASE_URL: apiUrl, API_DATABASE_POOL_SIZE: String(CONNECTIONS),
    JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', REDIS_URL: '', REDIS_PREFIX: `bench:${new URL(ownerUrl).pathname.slice(1)}`,
    AI_BASE_URL: llmUrl, AI_API_KEY: 'sk-bench-double', AI_SEMANTIC_TIMEOUT_MS: process.env.BENCH_SEMANTIC_TIMEOUT_MS ?? '300000',
  });
  const app = await createApp(AppModule.forRoot(config), config);
  await app.listen(0, '127.0.0.1');
  process.on('SIGTERM', () => void app.close().finally(() => process.exit(0)));
  console.log(`listening on ${(app.getHttpServer().address() as { port: number }).port}`);
}

const serveAt = process.argv.indexOf('--serve');
(serveAt > 0 ? serve(process.argv[serveAt + 1], process.argv[serveAt + 2], process.argv[serveAt + 3]) : main().then(() => process.exit(0))).catch((err) => {
  console.error(err);
  process.exit(1);
});
