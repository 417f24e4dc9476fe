// npm run bench:receivables — invoices issued per second through the API and through SQL, payment allocations per
// second, and AR aging latency for an organization with 100,000 open invoices over 5,000 customers and 1,000,000
// journal lines. Prints one JSON document (progress on stderr).
//
// Own database (omnizen_bench_receivables_<pid>) on DATABASE_URL's server, migrated, the app in a child process
// (as bench/ledger.bench.ts). Scenarios at BENCH_CONNECTIONS (32) for BENCH_SECONDS (8) each, after a warm-up:
//   api_issue       POST .../receivables/invoices/:id/issue on drafts made beforehand (1 line, EUR base)
//   sql_issue       the same work straight through pg as the API login in one tenant transaction: lock the draft,
//                   finance.post_journal_entry (AR debit, revenue credit), take the next number of the series, mark it
//                   issued, write the audit row (the floor; the API adds its reads, the event row and the response)
//   api_allocate    POST .../receivables/payments with one allocation to an issued invoice (bank debit, AR credit)
// Every issue of one series takes the same counter row (gapless numbering: the lock is held until commit), so
// issuing is serialized per organization and series on both sides.
// The aging organization is generated set-based in SQL (customers, invoices, their entries and lines, payments,
// allocations, balances aggregated from the lines, the open amounts per document), then vacuumed and analyzed; aging is read through the API
// as of today and as of a year back.
//
// BENCH_APP_PROFILE=<dir>: the app writes a CPU profile (--cpu-prof) there when it stops.
// BENCH_ONLY=aging: the aging part alone. BENCH_ONLY=issue: issuing alone (API, then the SQL floor), BENCH_ROUNDS times
// alternated (default 1; the app is stopped while the floor runs, as in the full run), with the CPU the app's process
// and the database's backends of this run spent per issued invoice (steadier than issues/s on a shared machine).
import 'reflect-metadata';
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
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

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const OPEN_INVOICES = Number(process.env.BENCH_OPEN_INVOICES ?? 100_000);
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 5_000);
const JOURNAL_LINES = Number(process.env.BENCH_JOURNAL_LINES ?? 1_000_000);
const DRAFTS = Number(process.env.BENCH_DRAFTS ?? 30_000);
const ONLY = process.env.BENCH_ONLY;
const ROUNDS = ONLY === 'issue' ? Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1)) : 1;
loadLocalEnv(projectRoot());
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_receivables_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null);
const round = (n: number | null, d = 2) => (n === null ? null : Math.round(n * 10 ** d) / 10 ** d);
const log = (msg: string) => process.stderr.write(`[bench:receivables] ${msg}\n`);
const isoDay = (d: Date) => d.toISOString().slice(0, 10);

async function main() {
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_receivables_']);
  await root.query(`DROP DATABASE IF EXISTS "${dbName}"`);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  let stopApp: (() => Promise<void>) | undefined;
  let appPid: number | undefined;
  const admin = new pg.Pool({ connectionString: ownerUrl, max: 4 });
  const runtime = new pg.Pool({ connectionString: apiUrl, max: CONNECTIONS, pipeline: true } as pg.PoolConfig);
  // an idle connection cut by the server (the database dropped WITH (FORCE) at the end) is no crash
  admin.on('error', (err) => log(`admin pool: ${err.message}`));
  runtime.on('error', (err) => log(`runtime pool: ${err.message}`));
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    let base = '';
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
    await startApp();
    const http = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.status === 204 ? undefined : (res.json() as Promise<any>);
    };

    // ---- an organization with books, receivables settings and one customer
    const setupOrg = async (name: string, fiscalYearStart: string) => {
      const credentials = { email: `${name}.${process.pid}@bench.test`, password: 'correct horse battery' };
      await http('POST', '/v1/auth/register', undefined, { ...credentials, name });
      const user = await http('POST', '/v1/auth/login', undefined, credentials);
      const token: string = user.accessToken;
      // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
      await admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [user.user.id]);
      const org = await http('POST', '/v1/orgs', token, { name });
      await http('POST', `/v1/orgs/${org.id}/ledger/books`, token, { baseCurrency: 'EUR', fiscalYearStart });
      const accounts = await http('GET', `/v1/orgs/${org.id}/ledger/accounts`, token);
      const acc = Object.fromEntries(accounts.map((a: any) => [a.code, a.id])) as Record<string, string>;
      await http('PUT', `/v1/orgs/${org.id}/receivables/settings`, token, { arAccountId: acc['1200'] });
      const customer = await http('POST', `/v1/orgs/${org.id}/receivables/customers`, token, { name: 'Bench customer' });
      return { orgId: org.id as string, token, acc, customerId: customer.id as string, userId: user.user.id as string };
    };
    const org = await setupOrg('bench-ar', '2026-01-01');
    // CPU so far of each backend of this run's database logged in as the API login (the app's pool and the floor's)
    const dbCpuMs = async (): Promise<Map<number, number>> => (await apiBackendsCpu(admin, dbName)).cpu;
    // CPU per issued invoice over a scenario: the app's process and the database's backends (a backend that started
    // meanwhile counts from zero; undefined when /proc is not readable here)
    const cpuMeter = async () => {
      const app0 = processCpu(appPid);
      const db0 = await dbCpuMs();
      return async (issued: number) => {
        const app1 = processCpu(appPid);
        const db1 = await dbCpuMs();
        const dbDelta = [...db1].reduce((sum, [pid, ms]) => sum + ms - (db0.get(pid) ?? 0), 0);
        return {
          app_cpu_ms_per_issue: app0 && app1 ? round((app1.ms - app0.ms) / Math.max(1, issued), 3) : undefined,
          // of which in the kernel (socket reads and writes: the HTTP connections and the database's)
          app_sys_cpu_ms_per_issue: app0 && app1 ? round((app1.sysMs - app0.sysMs) / Math.max(1, issued), 3) : undefined,
          db_cpu_ms_per_issue: db1.size ? round(dbDelta / Math.max(1, issued), 3) : undefined,
        };
      };
    };

    // BENCH_ONLY=aging: only the aging organization (no issue or allocation scenarios); BENCH_ONLY=issue: issuing only
    const agingOnly = ONLY === 'aging';
    const issueOnly = ONLY === 'issue';
    let throughput: Record<string, unknown> = {};
    if (!agingOnly) {
      // drafts made set-based (setup, not measured): one 100.00 line each
      const makeDrafts = async (n: number, series: string): Promise<string[]> => {
        const { rows } = await admin.query(`
          WITH i AS (
            INSERT INTO finance.invoices (org_id, customer_id, series, invoice_date, due_date, currency, subtotal, tax_total, total, created_by)
            SELECT $1::uuid, $2::uuid, $4, DATE '2026-06-15', DATE '2026-07-15', 'EUR', 100, 0, 100, 'bench' FROM generate_series(1, $3::int)
            RETURNING id)
          INSERT INTO finance.invoice_lines (org_id, invoice_id, line_no, description, quantity, unit_price, revenue_account_id, net_amount, tax_amount, gross_amount)
          SELECT $1::uuid, i.id, 1, 'bench', 1, 100, $5::uuid, 100, 0, 100 FROM i RETURNING invoice_id`, [org.orgId, org.customerId, n, series, org.acc['4100']]);
        return rows.map((r) => r.invoice_id as string);
      };
      log(`making ${DRAFTS} drafts`);
      const apiDrafts = await makeDrafts(DRAFTS, 'INV');
      const sqlDrafts = await makeDrafts(DRAFTS, 'SQL');

      const cannon = async (seconds: number, path: (i: number) => string, body: (i: number) => unknown) => {
        let i = 0;
        const r = await autocannon({
          url: base, connections: CONNECTIONS, duration: seconds,
          requests: [{
            method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${org.token}` },
            setupRequest: (req: any) => {
              const n = i++;
              return { ...req, path: path(n), body: JSON.stringify(body(n)) };
            },
          }],
        });
        const ok = r.requests.total - r.non2xx;
        const failures = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).filter(([code]) => !code.startsWith('2')).map(([code, v]: [string, any]) => [code, v.count]));
        return { ok, per_s: round(ok / (r.duration || seconds), 1), p50_ms: r.latency.p50, p99_ms: r.latency.p99, errors: r.non2xx + r.errors, failures };
      };

      // ---- issuing through the API
      let nextDraft = 0;
      const issueApi = async (seconds: number) => {
        const cpu = await cpuMeter();
        const r = await cannon(seconds, () => `/v1/orgs/${org.orgId}/receivables/invoices/${apiDrafts[nextDraft++ % apiDrafts.length]}/issue`, () => ({}));
        return { ...r, ...(await cpu(r.ok)) };
      };
      // one issue alone first: the route works (a failure stops the run here, not as a silent zero)
      const probeStart = Date.now();
      const probe = await http('POST', `/v1/orgs/${org.orgId}/receivables/invoices/${apiDrafts[nextDraft++]}/issue`, org.token, {});
      log(`one issue alone: ${Date.now() - probeStart} ms`);
      // open invoices for the allocation scenario, issued set-based beforehand (one per payment, so no allocation meets a
      // settled invoice); they share the probe's entry, which only the AR balance of this organization would notice
      const { rows: openRows } = issueOnly ? { rows: [] } : await admin.query(`
        INSERT INTO finance.invoices (org_id, customer_id, status, series, number, invoice_date, due_date, currency, rate, subtotal, tax_total, total, base_subtotal, base_total, entry_id, issued_at, created_by)
        SELECT $1::uuid, $2::uuid, 'issued', 'ALC', 'ALC-2026-' || lpad(i::text, 6, '0'), DATE '2026-06-15', DATE '2026-07-15', 'EUR', 1, 100, 0, 100, 100, 100, $3::uuid, now(), 'bench'
        FROM generate_series(1, $4::int) i RETURNING id`, [org.orgId, org.customerId, probe.entryId, DRAFTS]);
      const open = openRows.map((r) => r.id as string);

      // ---- allocations through the API: one payment per issued invoice, allocated whole
      let nextOpen = 0;
      const allocate = (seconds: number) => cannon(seconds, () => `/v1/orgs/${org.orgId}/receivables/payments`, () => ({
        customerId: org.customerId, date: '2026-06-20', amount: '100.00', depositAccountId: org.acc['1100'], method: 'bank_transfer',
        allocations: [{ invoiceId: open[nextOpen++ % open.length], amount: '100.00' }],
      }));

      // ---- issuing through SQL (the floor)
      const claims = tenantClaims(org.token, org.orgId);
      let sqlNext = 0;
      const sqlIssue = async (seconds: number) => {
        const latencies: number[] = [];
        let errors = 0;
        const deadline = Date.now() + seconds * 1000;
        const started = Date.now();
        await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
          const c = await runtime.connect();
          try {
            while (Date.now() < deadline) {
              const id = sqlDrafts[sqlNext++ % sqlDrafts.length];
              const t0 = process.hrtime.bigint();
              try {
                await Promise.all([c.query('BEGIN'), c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims])]);
                await c.query(`SELECT id FROM finance.invoices WHERE org_id = $1 AND id = $2 FOR UPDATE`, [org.orgId, id]);
                const entry = { date: '2026-06-15', memo: 'Invoice (series SQL)', source: 'invoice', sourceRef: id, idempotencyKey: `invoice:${id}`, lines: [
                  { accountId: org.acc['1200'], debit: '100', baseDebit: '100', currency: 'EUR', rate: '1', counterpartyType: 'customer', counterpartyId: org.customerId },
                  { accountId: org.acc['4100'], credit: '100', currency: 'EUR', rate: '1', counterpartyType: 'customer', counterpartyId: org.customerId, description: 'bench' }] };
                const { rows: [posted] } = await c.query(`SELECT entry_id FROM finance.post_journal_entry($1::jsonb, $2::jsonb)`, [JSON.stringify(entry), JSON.stringify({ action: 'ledger.entry_posted', requestId: 'bench' })]);
                const { rows: [{ n }] } = await c.query(`INSERT INTO finance.document_numbers (org_id, series, last_number) VALUES ($1, 'SQL-2026', 1)
                  ON CONFLICT (org_id, series) DO UPDATE SET last_number = finance.document_numbers.last_number + 1 RETURNING last_number AS n`, [org.orgId]);
                const number = `SQL-2026-${String(n).padStart(6, '0')}`;
                await c.query(`UPDATE finance.invoices SET status = 'issued', number = $3, rate = 1, base_subtotal = 100, base_total = 100, entry_id = $4, issued_at = now(), updated_at = now()
                  WHERE org_id = $1 AND id = $2`, [org.orgId, id, number, posted.entry_id]);
                await c.query(`INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after) VALUES ($1, $2, 'user', 'receivables.invoice_issued', 'invoice', $3, $4)`,
                  [org.orgId, org.userId, id, JSON.stringify({ status: 'issued', number })]);
                await c.query('COMMIT');
                latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
              } catch (err) {
                if (errors++ === 0) log(`sql issue error: ${(err as Error).message}`);
                await c.query('ROLLBACK').catch(() => undefined);
              }
            }
          } finally {
            c.release();
          }
        }));
        latencies.sort((x, y) => x - y);
        return { per_s: round(latencies.length / ((Date.now() - started) / 1000), 1), p50_ms: round(pct(latencies, 50)), p99_ms: round(pct(latencies, 99)), errors, issued: latencies.length };
      };
      const sqlIssueMetered = async (seconds: number) => {
        const cpu = await cpuMeter();
        const r = await sqlIssue(seconds);
        const { db_cpu_ms_per_issue } = await cpu(r.issued);
        return { ...r, db_cpu_ms_per_issue };
      };

      // API then floor, ROUNDS times (BENCH_ONLY=issue); the app is stopped while the floor runs (two pools of 32 next
      // to other users would not fit) and started again for the next round
      const rounds: { api: Awaited<ReturnType<typeof issueApi>>; sql: Awaited<ReturnType<typeof sqlIssueMetered>> }[] = [];
      let apiAllocate: Awaited<ReturnType<typeof allocate>> | undefined;
      for (let round_ = 0; round_ < ROUNDS; round_++) {
        if (round_ > 0) await startApp();
        log(`api issue warm-up ${WARMUP}s`);
        await issueApi(WARMUP);
        log('api issue');
        const api = await issueApi(SECONDS);
        if (!issueOnly) {
          log(`api allocate warm-up ${Math.min(2, WARMUP)}s`);
          await allocate(Math.min(2, WARMUP));
          log('api allocate');
          apiAllocate = await allocate(SECONDS);
        }
        await stopApp?.();
        log(`sql issue warm-up ${WARMUP}s`);
        await sqlIssue(WARMUP);
        log('sql issue');
        const sqlResult = await sqlIssueMetered(SECONDS);
        rounds.push({ api, sql: sqlResult });
        log(`round ${round_ + 1}: api ${api.per_s}/s, sql ${sqlResult.per_s}/s, load ${round((await import('node:os')).loadavg()[0])}`);
      }
      const { rows: [{ n: issuedCount }] } = await admin.query(`SELECT count(*)::int AS n FROM finance.invoices WHERE org_id = $1 AND series = 'INV' AND status = 'issued'`, [org.orgId]);
      const { rows: [numbering] } = await admin.query(`SELECT count(*)::int AS issued, count(DISTINCT number)::int AS distinct_numbers,
          max(substring(number FROM '[0-9]+$')::int) AS highest FROM finance.invoices WHERE org_id = $1 AND series = 'INV' AND status = 'issued'`, [org.orgId]);
      const sum = (xs: (number | null)[]) => xs.reduce<number>((a, x) => a + (x ?? 0), 0);
      const [apiIssue, sqlIssueResult] = [rounds[0].api, rounds[0].sql];
      throughput = {
        invoices_issued_per_s: {
          api: apiIssue, sql: sqlIssueResult, api_vs_sql: round((apiIssue.per_s ?? 0) / (sqlIssueResult.per_s || 1), 3), issued_in_db: issuedCount,
          // gapless: as many distinct numbers as issued invoices, the highest equal to the count
          numbering_gapless: numbering.issued === numbering.distinct_numbers && numbering.highest === numbering.issued,
          ...(rounds.length > 1 ? {
            rounds: rounds.map((r) => ({ api: r.api, sql: r.sql, api_vs_sql: round((r.api.per_s ?? 0) / (r.sql.per_s || 1), 3) })),
            api_vs_sql_over_rounds: round(sum(rounds.map((r) => r.api.per_s)) / (sum(rounds.map((r) => r.sql.per_s)) || 1), 3),
          } : {}),
        },
        ...(apiAllocate ? { allocations_per_s: apiAllocate } : {}),
      };
      if (!issueOnly) await startApp();
    }
    await runtime.end();
    if (issueOnly) {
      console.log(JSON.stringify({ connections: CONNECTIONS, seconds_per_scenario: SECONDS, loadavg_1m_at_end: round((await import('node:os')).loadavg()[0]), ...throughput }, null, 2));
      return;
    }

    // ---- the aging organization: generated set-based
    const big = await setupOrg('bench-aging', '2025-01-01');
    await http('POST', `/v1/orgs/${big.orgId}/ledger/fiscal-years`, big.token, { startDate: '2026-01-01' });
    await http('POST', `/v1/orgs/${big.orgId}/ledger/fiscal-years`, big.token, { startDate: '2027-01-01' });
    const today = isoDay(new Date());
    const yearBack = isoDay(new Date(Date.now() - 365 * 86_400_000));
    log(`generating ${CUSTOMERS} customers, ${OPEN_INVOICES} open invoices, ${JOURNAL_LINES} journal lines`);
    const t0 = Date.now();
    const g = await admin.connect();
    try {
      await g.query('BEGIN');
      await g.query(`SET LOCAL work_mem = '256MB'`);
      // rows that reference what exists by construction: per-row foreign-key and guard triggers skipped, as a bulk restore would
      await g.query(`SET LOCAL session_replication_role = replica`);
      await g.query(`INSERT INTO finance.customers (org_id, name, payment_terms_days) SELECT $1::uuid, 'Customer ' || lpad(i::text, 5, '0'), 30 FROM generate_series(1, $2::int) i`, [big.orgId, CUSTOMERS]);
      // invoices spread over the 400 days up to today, due 30 days later; amounts 10.00 … 9,999.00
      await g.query(`
        CREATE TEMP TABLE inv ON COMMIT DROP AS
        SELECT gen_random_uuid() AS id, gen_random_uuid() AS entry_id, i, (CURRENT_DATE - (i % 400))::date AS d,
               (SELECT array_agg(id ORDER BY name) FROM finance.customers WHERE org_id = $1::uuid)[1 + i % $3::int] AS customer_id, (10 + (i * 37) % 9990)::numeric AS amount
        FROM generate_series(1, $2::int) i`, [big.orgId, OPEN_INVOICES, CUSTOMERS]);
      await g.query(`
        INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, source_ref, request_hash, base_currency, total_base, created_by)
        SELECT $1::uuid, v.entry_id, v.d, p.id, 'Invoice INV-' || v.i, 'invoice', v.id::text, md5(v.i::text), 'EUR', v.amount, 'bench'
        FROM inv v JOIN finance.fiscal_periods p ON p.org_id = $1::uuid AND v.d BETWEEN p.start_date AND p.end_date`, [big.orgId]);
      await g.query(`
        INSERT INTO finance.invoices (org_id, id, customer_id, status, series, number, invoice_date, due_date, currency, rate, subtotal, tax_total, total, base_subtotal, base_total, entry_id, issued_at, created_by)
        SELECT $1::uuid, v.id, v.customer_id, 'issued', 'INV', 'INV-' || extract(year FROM v.d) || '-' || lpad(v.i::text, 6, '0'), v.d, v.d + 30, 'EUR', 1, v.amount, 0, v.amount, v.amount, v.amount, v.entry_id, now(), 'bench'
        FROM inv v`, [big.orgId]);
      await g.query(`
        INSERT INTO finance.invoice_lines (org_id, invoice_id, line_no, description, quantity, unit_price, revenue_account_id, net_amount, tax_amount, gross_amount)
        SELECT $1::uuid, v.id, 1, 'generated', 1, v.amount, $2::uuid, v.amount, 0, v.amount FROM inv v`, [big.orgId, big.acc['4100']]);
      await g.query(`
        INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit, counterparty_type, counterparty_id)
        SELECT $1::uuid, v.entry_id, n, v.d, e.seq, e.period_id, CASE n WHEN 1 THEN $2::uuid ELSE $3::uuid END, 'EUR',
               CASE n WHEN 1 THEN v.amount ELSE 0 END, CASE n WHEN 2 THEN v.amount ELSE 0 END, 1,
               CASE n WHEN 1 THEN v.amount ELSE 0 END, CASE n WHEN 2 THEN v.amount ELSE 0 END, 'customer', v.customer_id::text
        FROM inv v JOIN finance.journal_entries e ON e.org_id = $1::uuid AND e.id = v.entry_id, generate_series(1, 2) n`, [big.orgId, big.acc['1200'], big.acc['4100']]);
      // one invoice in five is paid in part (a third, 15 days after its date): payment, allocation, bank debit / AR credit
      await g.query(`
        CREATE TEMP TABLE pay ON COMMIT DROP AS
        SELECT gen_random_uuid() AS id, gen_random_uuid() AS entry_id, v.id AS invoice_id, v.customer_id, least(v.d + 15, CURRENT_DATE) AS d, round(v.amount / 3, 2) AS amount, v.i
        FROM inv v WHERE v.i % 5 = 0`);
      await g.query(`
        INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, request_hash, base_currency, total_base, created_by)
        SELECT $1::uuid, y.entry_id, y.d, p.id, 'Payment', 'payment', md5('p' || y.i), 'EUR', y.amount, 'bench'
        FROM pay y JOIN finance.fiscal_periods p ON p.org_id = $1::uuid AND y.d BETWEEN p.start_date AND p.end_date`, [big.orgId]);
      await g.query(`
        INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit, counterparty_type, counterparty_id)
        SELECT $1::uuid, y.entry_id, n, y.d, e.seq, e.period_id, CASE n WHEN 1 THEN $2::uuid ELSE $3::uuid END, 'EUR',
               CASE n WHEN 1 THEN y.amount ELSE 0 END, CASE n WHEN 2 THEN y.amount ELSE 0 END, 1,
               CASE n WHEN 1 THEN y.amount ELSE 0 END, CASE n WHEN 2 THEN y.amount ELSE 0 END, 'customer', y.customer_id::text
        FROM pay y JOIN finance.journal_entries e ON e.org_id = $1::uuid AND e.id = y.entry_id, generate_series(1, 2) n`, [big.orgId, big.acc['1100'], big.acc['1200']]);
      await g.query(`
        INSERT INTO finance.customer_payments (org_id, id, customer_id, payment_date, amount, currency, rate, deposit_account_id, method, entry_id, created_by)
        SELECT $1::uuid, y.id, y.customer_id, y.d, y.amount, 'EUR', 1, $2::uuid, 'bank_transfer', y.entry_id, 'bench' FROM pay y`, [big.orgId, big.acc['1100']]);
      await g.query(`
        INSERT INTO finance.receivable_allocations (org_id, invoice_id, payment_id, allocation_date, amount, invoice_base, source_base, entry_id, created_by)
        SELECT $1::uuid, y.invoice_id, y.id, y.d, y.amount, y.amount, y.amount, y.entry_id, 'bench' FROM pay y`, [big.orgId]);
      await g.query(`UPDATE finance.invoices i SET status = 'partially_paid' FROM pay y WHERE i.org_id = $1::uuid AND i.id = y.invoice_id`, [big.orgId]);
      // the rest of the million lines: other postings of the books (expenses paid from the bank), 4 lines per entry
      const { rows: [{ n: sofar }] } = await g.query(`SELECT count(*)::int AS n FROM finance.journal_lines WHERE org_id = $1`, [big.orgId]);
      const otherEntries = Math.max(0, Math.ceil((JOURNAL_LINES - sofar) / 4));
      await g.query(`CREATE TEMP TABLE other ON COMMIT DROP AS SELECT gen_random_uuid() AS id, i, (CURRENT_DATE - (i % 400))::date AS d, (1 + i % 997)::numeric AS amount FROM generate_series(1, $1::int) i`, [otherEntries]);
      await g.query(`
        INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, request_hash, base_currency, total_base, created_by)
        SELECT $1::uuid, o.id, o.d, p.id, 'generated', 'manual', md5('o' || o.i), 'EUR', 2 * o.amount, 'bench'
        FROM other o JOIN finance.fiscal_periods p ON p.org_id = $1::uuid AND o.d BETWEEN p.start_date AND p.end_date`, [big.orgId]);
      await g.query(`
        INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit)
        SELECT $1::uuid, o.id, n, o.d, e.seq, e.period_id, (ARRAY[$2::uuid, $3::uuid, $4::uuid, $4::uuid])[n], 'EUR',
               CASE WHEN n <= 2 THEN o.amount ELSE 0 END, CASE WHEN n > 2 THEN o.amount ELSE 0 END, 1,
               CASE WHEN n <= 2 THEN o.amount ELSE 0 END, CASE WHEN n > 2 THEN o.amount ELSE 0 END
        FROM other o JOIN finance.journal_entries e ON e.org_id = $1::uuid AND e.id = o.id, generate_series(1, 4) n`, [big.orgId, big.acc['5200'], big.acc['5400'], big.acc['1100']]);
      await g.query(`
        INSERT INTO finance.account_balances (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
        SELECT org_id, account_id, currency, 0, sum(debit), sum(credit), sum(base_debit), sum(base_credit), count(*)
        FROM finance.journal_lines WHERE org_id = $1::uuid GROUP BY org_id, account_id, currency`, [big.orgId]);
      await g.query(`
        INSERT INTO finance.period_balances (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
        SELECT org_id, period_id, account_id, currency, 0, sum(debit), sum(credit), sum(base_debit), sum(base_credit), count(*)
        FROM finance.journal_lines WHERE org_id = $1::uuid GROUP BY org_id, period_id, account_id, currency`, [big.orgId]);
      // the triggers that keep the open amount per document were off (replica): computed once here, as after a restore
      await g.query(`SELECT finance.receivable_open_amounts_refresh($1::uuid)`, [big.orgId]);
      await g.query('COMMIT');
      await g.query('VACUUM (ANALYZE) finance.journal_lines, finance.journal_entries, finance.account_balances, finance.period_balances, finance.invoices, finance.invoice_lines, finance.customers, finance.customer_payments, finance.receivable_allocations, finance.receivable_open_amounts');
    } finally {
      g.release();
    }
    const { rows: [counts] } = await admin.query(`SELECT (SELECT count(*) FROM finance.journal_lines WHERE org_id = $1)::int AS lines,
      (SELECT count(*) FROM finance.invoices WHERE org_id = $1 AND status IN ('issued', 'partially_paid'))::int AS open_invoices,
      (SELECT count(*) FROM finance.customers WHERE org_id = $1)::int AS customers`, [big.orgId]);
    log(`generated ${JSON.stringify(counts)} in ${Date.now() - t0} ms`);

    const agingLatency = async (query: string) => {
      const times: number[] = [];
      let check = '';
      for (let i = 0; i < 3; i++) await http('GET', `/v1/orgs/${big.orgId}/receivables/aging${query}`, big.token);
      for (let i = 0; i < 30; i++) {
        const s = process.hrtime.bigint();
        const r = await http('GET', `/v1/orgs/${big.orgId}/receivables/aging${query}`, big.token);
        times.push(Number(process.hrtime.bigint() - s) / 1e6);
        check = `${r.partyCount} customers (${r.rows.length} on the first page), total ${r.total}`;
      }
      times.sort((a, b) => a - b);
      log(`aging${query}: p50 ${round(pct(times, 50))} ms (${check})`);
      return { p50_ms: round(pct(times, 50)), p99_ms: round(pct(times, 99)), max_ms: round(times[times.length - 1]), result: check };
    };
    // the same aging query straight through pg as the API login (begin_request + one statement): the database's share
    // and, interleaved in the same run (so the machine's load hits both alike), the per-document path the aging had
    // before finance.ar_aging: every open item out of finance.ar_open_items, grouped outside
    const agingSql = async (asOf: string) => {
      const c = new pg.Client({ connectionString: apiUrl });
      await c.connect();
      const times: number[] = [];
      const perDocument: number[] = [];
      const query = `SELECT customer_id, customer_name, bucket, amount::text FROM finance.ar_aging($1::date, '{30,60,90}'::int[])`;
      const perDocumentQuery = `SELECT o.customer_id, o.customer_name, finance.aging_bucket($1::date - o.due_date) AS bucket, sum(o.open_base)::text
        FROM finance.ar_open_items($1::date) o GROUP BY 1, 2, 3`;
      const timed = async (q: string) => {
        const t1 = process.hrtime.bigint();
        await c.query('BEGIN');
        await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [tenantClaims(big.token, big.orgId)]);
        await c.query(q, [asOf]);
        await c.query('COMMIT');
        return Number(process.hrtime.bigint() - t1) / 1e6;
      };
      try {
        for (let i = 0; i < 13; i++) {
          const t1 = await timed(query);
          const t2 = await timed(perDocumentQuery);
          if (i >= 3) {
            times.push(t1);
            perDocument.push(t2);
          }
        }
        await c.query('BEGIN');
        await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [tenantClaims(big.token, big.orgId)]);
        const plan = await c.query(`EXPLAIN (ANALYZE, TIMING OFF) ${query}`, [asOf]);
        await c.query('COMMIT');
        log(`aging plan as of ${asOf}:\n${plan.rows.map((r) => r['QUERY PLAN']).join('\n')}`);
      } finally {
        await c.end();
      }
      times.sort((a, b) => a - b);
      perDocument.sort((a, b) => a - b);
      return { p50_ms: round(pct(times, 50)), max_ms: round(times[times.length - 1]), per_document_path_p50_ms: round(pct(perDocument, 50)),
        grouped_vs_per_document: round((pct(times, 50) ?? 0) / (pct(perDocument, 50) || 1), 3) };
    };
    const arBalance = async (asOf: string) => (await http('GET', `/v1/orgs/${big.orgId}/ledger/accounts/${big.acc['1200']}/balance?asOf=${asOf}`, big.token)).baseBalance;
    const agingToday = await agingLatency(`?asOf=${today}`);
    const agingYearBack = await agingLatency(`?asOf=${yearBack}`);
    const agingCustomBuckets = await agingLatency(`?asOf=${today}&buckets=15,30,60,120,240`);

    const report = {
      connections: CONNECTIONS, seconds_per_scenario: SECONDS, loadavg_1m_at_end: round((await import('node:os')).loadavg()[0]),
      ...throughput,
      ar_aging: {
        ...counts, generation: 'set-based SQL (customers, invoices, entries and lines, payments and allocations; balances aggregated from the lines)',
        today: { as_of: today, ...agingToday, ar_control_balance: await arBalance(today) },
        year_back: { as_of: yearBack, ...agingYearBack, ar_control_balance: await arBalance(yearBack) },
        today_buckets_15_30_60_120_240: agingCustomBuckets,
        sql_today: await agingSql(today),
        sql_year_back: await agingSql(yearBack),
      },
    };
    console.log(JSON.stringify(report, null, 2));
  } finally {
    await stopApp?.();
    await runtime.end().catch(() => undefined); // already ended before the aging part
    await admin.end().catch(() => undefined);
    // BENCH_KEEP_DB=<name>: keep the generated database under that name (to read plans), instead of dropping it
    const keep = process.env.BENCH_KEEP_DB;
    if (keep && /^[a-z_][a-z0-9_]{0,40}$/.test(keep)) {
      await root.query(`DROP DATABASE IF EXISTS "${keep}" WITH (FORCE)`);
      await root.query(`ALTER DATABASE "${dbName}" RENAME TO "${keep}"`).catch((err) => log(`keeping the database failed: ${(err as Error).message}`));
    }
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
