// node --import ./scripts/register-ts.mjs bench/posting-profile.ts — the database CPU of one 2-line posting,
// serially: one backend logged in as the API login posts PROFILE_N entries (BEGIN; begin_request;
// finance.post_journal_entry; COMMIT), and its CPU is read from /proc/<backend pid>/stat. Also measured in the same
// backend, in alternating blocks: BEGIN; begin_request; COMMIT alone (the tenant transaction without the posting).
//
// PROFILE_BATCH=N: the batch function instead (finance.post_journal_entries, N entries a call, as the batch route
// sends them), CPU reported per entry; PROFILE_N is then the number of calls a round.
//
// The reference (bench/reference-ledger.sql, what bench:ledger's sql_reference_2 calls: a bare double-entry transfer,
// autocommit) is measured in the same backend in a third alternating block, so that reference_ratio (a posting's
// transaction ÷ a transfer) does not move with the machine's speed as the absolute figures do.
//
// PROFILE_FUNCTIONS=1: the backend also times every PL/pgSQL function it runs (track_functions = 'pl'), and the
// output adds each function's calls per posting and own time per call (functions: wall time inside the function, not
// in the functions it calls; serial, so close to its CPU). The timing itself adds a little to every figure.
//
// PROFILE_DB names a database to reuse (migrated again: new migrations apply; the organization is set up once and
// remembered in it); without it a scratch database is created and dropped. Prints one JSON document.
import 'reflect-metadata';
import { loadavg } from 'node:os';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { loadReferenceLedger, TRANSFER_SQL, transferParams } from './reference-ledger.js';
import { tenantClaims } from './tenant-claims.js';
import { processCpu } from './proc-cpu.js';

loadLocalEnv(projectRoot());
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const N = Number(process.env.PROFILE_N ?? 400);
const ROUNDS = Number(process.env.PROFILE_ROUNDS ?? 4);
const BATCH = Number(process.env.PROFILE_BATCH ?? 0);
const FUNCTIONS = process.env.PROFILE_FUNCTIONS === '1';
const reuse = process.env.PROFILE_DB;
const dbName = reuse ?? `omnizen_posting_profile_${process.pid}`;
const cpuMs = (pid: number) => {
  const p = processCpu(pid);
  if (!p) throw new Error(`the CPU of backend ${pid} is not readable here (/proc)`);
  return p.ms;
};
const log = (m: string) => process.stderr.write(`[posting-profile] ${m}\n`);

// the app logs in as the API login, as it does in production: some functions answer only to it
const API_PASSWORD = 'omnizen_api_profile';

async function setupOrg(ownerUrl: string, apiUrl: string, owner: pg.Client) {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'error', DATABASE_URL: ownerUrl, API_DATABASE_URL: apiUrl,
    JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', RATE_LIMITS_ENABLED: 'false', REDIS_PREFIX: `profile:${dbName}`,
  });
  const app = await createApp(AppModule.forRoot(config), config);
  await app.listen(0, '127.0.0.1');
  const base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  const http = async (method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<any>;
  };
  try {
    const credentials = { email: `profile.${process.pid}@bench.test`, password: 'correct horse battery' };
    await http('POST', '/v1/auth/register', undefined, { ...credentials, name: 'profile' });
    const user = await http('POST', '/v1/auth/login', undefined, credentials);
    // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
    await owner.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [user.user.id]);
    const org = await http('POST', '/v1/orgs', user.accessToken, { name: 'profile' });
    await http('POST', `/v1/orgs/${org.id}/ledger/books`, user.accessToken, { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' });
    return { orgId: org.id as string, claims: tenantClaims(user.accessToken, org.id) };
  } finally {
    await app.close();
  }
}

async function main() {
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  const exists = (await root.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount;
  if (!exists) await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const owner = new pg.Client({ connectionString: ownerUrl });
  try {
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    await owner.connect();
    await owner.query('CREATE TABLE IF NOT EXISTS public.profile_setup (org_id uuid, claims text, ids uuid[])');
    let setup = (await owner.query('SELECT * FROM public.profile_setup')).rows[0];
    if (!setup) {
      const { orgId, claims } = await setupOrg(ownerUrl, withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD }), owner);
      const { rows } = await owner.query(`
        INSERT INTO finance.accounts (org_id, code, name, type, parent_id)
        SELECT $1::uuid, 'B' || lpad(i::text, 4, '0'), 'Bench ' || i, 'asset',
               (SELECT id FROM finance.accounts WHERE org_id = $1::uuid AND code = '1000')
        FROM generate_series(1, 1000) i RETURNING id`, [orgId]);
      setup = (await owner.query('INSERT INTO public.profile_setup VALUES ($1, $2, $3) RETURNING *', [orgId, claims, rows.map((r) => r.id)])).rows[0];
    }
    const referenceIds = await loadReferenceLedger(owner);
    const ids: string[] = setup.ids;
    const pick = () => ids[Math.floor(Math.random() * ids.length)];
    const entry = () => {
      const a = `${1 + Math.floor(Math.random() * 9999)}.${String(Math.floor(Math.random() * 100)).padStart(2, '0')}`;
      return JSON.stringify({ date: '2026-01-15', memo: 'bench', lines: [{ accountId: pick(), debit: a }, { accountId: pick(), credit: a }] });
    };
    // the API login, as the runtime's pool logs in (session_user = omnizen_api), without its password
    const c = new pg.Client({ connectionString: ownerUrl });
    await c.connect();
    if (FUNCTIONS) await c.query(`SET track_functions = 'pl'`); // a superuser's setting: before the login changes
    await c.query('SET SESSION AUTHORIZATION omnizen_api');
    const { rows: [{ pid }] } = await c.query('SELECT pg_backend_pid() AS pid');
    log(`backend pid ${pid}`); // e.g. for perf record -g -p <pid>
    const audit = JSON.stringify({ action: 'ledger.entry_posted', requestId: 'profile', ip: '127.0.0.1' });
    const post = async () => {
      await c.query('BEGIN');
      await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [setup.claims]);
      if (BATCH > 0) {
        const batch = `[${Array.from({ length: BATCH }, entry).join(',')}]`;
        await c.query('SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, false) AS results', [batch, audit]);
      } else await c.query('SELECT replayed, entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)', [entry(), audit]);
      await c.query('COMMIT');
    };
    const empty = async () => {
      await c.query('BEGIN');
      await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [setup.claims]);
      await c.query('COMMIT');
    };
    const transfer = async () => {
      await c.query(TRANSFER_SQL, transferParams(referenceIds, '12.34'));
    };
    const measure = async (fn: () => Promise<void>, n: number) => {
      const t0 = cpuMs(pid);
      const w0 = Date.now();
      for (let i = 0; i < n; i++) await fn();
      return { cpu: (cpuMs(pid) - t0) / n, wall: (Date.now() - w0) / n };
    };
    for (let i = 0; i < (BATCH > 0 ? 10 : 100); i++) await post(); // warm: plans cached, JIT off anyway
    for (let i = 0; i < 100; i++) await transfer();
    if (FUNCTIONS) await owner.query('SELECT pg_stat_reset()'); // this database's counters: from here on
    const posting: number[] = [];
    const begin: number[] = [];
    const reference: number[] = [];
    const wall: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const p = await measure(post, N);
      posting.push(p.cpu);
      wall.push(p.wall);
      // as many of each as the postings' entries (a tick of CPU time is 10 ms: a few dozen would read as 0)
      begin.push((await measure(empty, N * Math.max(1, BATCH))).cpu);
      reference.push((await measure(transfer, N * Math.max(1, BATCH))).cpu);
    }
    await c.end(); // a backend that ends sends its function counters to the statistics
    const functions = FUNCTIONS ? await functionTimes(owner, N * ROUNDS) : undefined;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(JSON.stringify({
      database: dbName, postings_per_round: N, entries_per_posting: Math.max(1, BATCH),
      cpu_ms_per_entry: BATCH > 0 ? r3((median(posting) - median(begin)) / BATCH) : undefined, load_average: loadavg().map((l) => Math.round(l * 100) / 100),
      posting_tx_cpu_ms: posting.map(r3), posting_tx_cpu_ms_median: r3(median(posting)), posting_tx_wall_ms: wall.map(r3),
      begin_request_tx_cpu_ms: begin.map(r3), begin_request_tx_cpu_ms_median: r3(median(begin)),
      reference_transfer_cpu_ms: reference.map(r3), reference_transfer_cpu_ms_median: r3(median(reference)),
      // a posting's transaction (with PROFILE_BATCH, an entry's share of a batch's) ÷ one transfer
      reference_ratio: r3(median(posting.map((p, i) => p / Math.max(1, BATCH) / reference[i]))),
      functions,
    }, null, 2));
  } finally {
    await owner.end().catch(() => undefined);
    if (!reuse) await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await root.end();
  }
}

/**
 * Each PL/pgSQL function's calls per posting and own time per call (µs), from pg_stat_user_functions once the ended
 * backend's counters have arrived. The empty transactions' calls count too: begin_request and what it calls show 2
 * calls per posting, one of them in the empty transaction. The reference's function is left out.
 */
async function functionTimes(owner: pg.Client, postings: number): Promise<Record<string, { calls: number; self_us: number }>> {
  const read = async () => (await owner.query<{ name: string; calls: string; self_ms: number }>(`
    SELECT n.nspname || '.' || p.proname AS name, s.calls::text, s.self_time AS self_ms
    FROM pg_stat_user_functions s JOIN pg_proc p ON p.oid = s.funcid JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname <> 'bench_reference' AND s.calls > 0 ORDER BY s.self_time DESC`)).rows;
  for (let i = 0; i < 100; i++) {
    const rows = await read();
    // counted from the posting function's own calls: some of the warm-up's may arrive after the reset
    const posted = Number(rows.find((r) => r.name === 'finance.post_journal_entry' || r.name === 'finance.post_journal_entries')?.calls ?? 0);
    if (posted >= postings) {
      return Object.fromEntries(rows.map((r) => [r.name, {
        calls: Math.round((Number(r.calls) / posted) * 100) / 100, self_us: Math.round((r.self_ms * 1000) / Number(r.calls)),
      }]));
    }
    await owner.query('SELECT pg_sleep(0.05), pg_stat_clear_snapshot()'); // the ended backend's report is on its way
  }
  throw new Error('the posting backend\'s function counters never arrived (track_functions)');
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
