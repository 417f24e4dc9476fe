// npm run bench:payables — bill-payment allocations per second through the API. Prints one JSON document.
//
// It creates its own database (omnizen_bench_payables_<pid>) on DATABASE_URL's server, migrates it, starts the
// app in a child process (as bench:ledger does), posts BENCH_BILLS (default 2,000) small bills through the API
// (each posted at submission: under the no-approval threshold), then runs for BENCH_SECONDS (default 8) each:
//   spread  POST /payables/payments, each paying one different bill in full with one allocation (the payment
//           entry, the payment, the allocation, the bill lock, audit and bill.paid event), BENCH_CONNECTIONS workers
//   hot     POST /payables/payments/:id/allocations of 0.01 each against ONE big bill from ONE payment's credit:
//           every allocation waits for the bill's and the payment's lock (the worst case: one contended document)
//   sql_spread  the floor of `spread`: the same work straight through pg as the API login, BENCH_CONNECTIONS
//           connections, one tenant transaction each (begin_request, lock the bill, finance.post_journal_entry
//           with AP debit / bank credit, the payment and allocation rows, the audit row) on bills of their own;
//           the API adds its reads (vendor, bank account, settings, what is settled), the events and the response.
//           Stopped app during the floor (the API's side runs first), so the two do not share the machine.
// and drops the database at the end. Progress goes to stderr.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { APP_NODE_FLAGS, benchAppEnv } from './app-flags.js';
import { tenantClaims } from './tenant-claims.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const BILLS = Number(process.env.BENCH_BILLS ?? 2000);
loadLocalEnv(projectRoot());
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_payables_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const log = (msg: string) => process.stderr.write(`[bench:payables] ${msg}\n`);
const pct = (sorted: number[], p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] * 100) / 100 : null);

async function main() {
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_payables_']);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  const admin = new pg.Pool({ connectionString: ownerUrl, max: 2 });
  let stop: (() => Promise<void>) | undefined;
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    const child = spawn(process.execPath, [...APP_NODE_FLAGS, '--import', './scripts/register-ts.mjs', fileURLToPath(import.meta.url), '--serve', ownerUrl, apiUrl], { env: benchAppEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    stop = async () => {
      child.kill('SIGTERM');
      await exited;
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
    const call = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = await res.json().catch(() => undefined);
      return { status: res.status, body: json as any };
    };
    const ok = async (method: string, path: string, token?: string, body?: unknown) => {
      const r = await call(method, path, token, body);
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };

    // ---- an organization on the professional plan with its books started and a vendor
    const credentials = { email: `payables.${process.pid}@bench.test`, password: 'correct horse battery' };
    await ok('POST', '/v1/auth/register', undefined, { ...credentials, name: 'bench' });
    const user = await ok('POST', '/v1/auth/login', undefined, credentials);
    const token: string = user.accessToken;
    // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
    await admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [user.user.id]);
    const org = await ok('POST', '/v1/orgs', token, { name: 'Payables bench' });
    // setup only: the plan through the owner connection (as the tests' onPlan does)
    await admin.query(
      `WITH changed AS (
         UPDATE hub."Subscription" SET plan = 'professional', status = 'active', "updatedAt" = now() WHERE "organizationId" = $1 AND "appId" = 'omnizen' RETURNING 1)
       INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
       SELECT gen_random_uuid()::text, NULL, 'omnizen', 'professional', 'active', $1, now(), now() WHERE NOT EXISTS (SELECT 1 FROM changed)`, [org.id]);
    await ok('POST', `/v1/orgs/${org.id}/ledger/books`, token, { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' });
    const accounts = await ok('GET', `/v1/orgs/${org.id}/ledger/accounts`, token);
    const code = (c: string) => accounts.find((a: any) => a.code === c).id;
    const url = (p: string) => `/v1/orgs/${org.id}/payables/${p}`;
    const vendor = (await ok('POST', url('vendors'), token, { name: 'Bench Vendor' })).id;

    log(`posting ${BILLS} bills through the API (and ${BILLS} for the SQL floor)`);
    const bills: string[] = [];
    const sqlBills: string[] = [];
    let made = 0;
    const post = async () => {
      while (made < 2 * BILLS) {
        made++;
        const b = await ok('POST', url('bills'), token, { vendorId: vendor, billDate: '2026-02-02', lines: [{ accountId: code('5200'), unitPrice: '10.00' }] });
        await ok('POST', url(`bills/${b.id}/submit`), token);
        (bills.length <= sqlBills.length ? bills : sqlBills).push(b.id);
        if ((bills.length + sqlBills.length) % 1000 === 0) log(`  ${bills.length + sqlBills.length} bills`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, post));

    const run = async (name: string, next: () => { path: string; body: unknown } | undefined) => {
      log(`${name}: ${SECONDS} s at ${CONNECTIONS} connections`);
      const latencies: number[] = [];
      let errors = 0;
      const end = Date.now() + SECONDS * 1000;
      await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
        for (let job = next(); job && Date.now() < end; job = next()) {
          const t0 = performance.now();
          const r = await call('POST', job.path, token, job.body);
          if (r.status === 201) latencies.push(performance.now() - t0);
          else errors++;
        }
      }));
      latencies.sort((a, b) => a - b);
      return { allocations: latencies.length, allocations_per_s: Math.round((latencies.length / SECONDS) * 10) / 10, errors, latency_ms: { p50: pct(latencies, 50), p99: pct(latencies, 99) } };
    };

    let i = 0;
    const spread = await run('spread', () => {
      const bill = bills[i++];
      return bill ? { path: url('payments'), body: { vendorId: vendor, paymentDate: '2026-02-10', amount: '10.00', bankAccountId: code('1100'), allocations: [{ billId: bill, amount: '10.00' }] } } : undefined;
    });

    const big = await ok('POST', url('bills'), token, { vendorId: vendor, billDate: '2026-02-02', lines: [{ accountId: code('5200'), unitPrice: '900.00' }] });
    await ok('POST', url(`bills/${big.id}/submit`), token);
    const credit = await ok('POST', url('payments'), token, { vendorId: vendor, paymentDate: '2026-02-10', amount: '900.00', bankAccountId: code('1100') });
    const hot = await run('hot', () => ({ path: url(`payments/${credit.id}/allocations`), body: { billId: big.id, amount: '0.01' } }));

    await stop?.();
    stop = undefined;

    // ---- the floor of `spread`: the same writes through SQL as the API login, in one tenant transaction each
    const claims = tenantClaims(token, org.id);
    const me = { sub: JSON.parse(claims).sub as string };
    const runtime = new pg.Pool({ connectionString: apiUrl, max: CONNECTIONS, pipeline: true } as pg.PoolConfig);
    let sqlNext = 0;
    const sqlLatencies: number[] = [];
    let sqlErrors = 0;
    log(`sql_spread: ${SECONDS} s at ${CONNECTIONS} connections`);
    const sqlEnd = Date.now() + SECONDS * 1000;
    const sqlStarted = Date.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      const c = await runtime.connect();
      try {
        for (let bill = sqlBills[sqlNext++]; bill && Date.now() < sqlEnd; bill = sqlBills[sqlNext++]) {
          const t0 = performance.now();
          try {
            await Promise.all([c.query('BEGIN'), c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims])]);
            await c.query('SELECT id FROM finance.bills WHERE org_id = $1 AND id = $2 FOR UPDATE', [org.id, bill]);
            const entry = { date: '2026-02-10', memo: 'Bill payment', source: 'payment', lines: [
              { accountId: code('2100'), debit: '10.00', currency: 'EUR', counterpartyType: 'vendor', counterpartyId: vendor, description: 'Payment of bill' },
              { accountId: code('1100'), credit: '10.00', currency: 'EUR', counterpartyType: 'vendor', counterpartyId: vendor, description: 'Payment' }] };
            const { rows: [posted] } = await c.query('SELECT entry_id FROM finance.post_journal_entry($1::jsonb, $2::jsonb)',
              [JSON.stringify(entry), JSON.stringify({ action: 'ledger.entry_posted', requestId: 'bench' })]);
            const { rows: [payment] } = await c.query(`INSERT INTO finance.bill_payments (org_id, vendor_id, payment_date, currency, amount, rate, base_amount, bank_account_id, method, journal_entry_id, created_by)
              VALUES ($1, $2, '2026-02-10', 'EUR', 10, 1, 10, $3, 'bank_transfer', $4, $5) RETURNING id`, [org.id, vendor, code('1100'), posted.entry_id, me.sub]);
            await c.query(`INSERT INTO finance.bill_allocations (org_id, payment_id, bill_id, allocation_date, amount, bill_base_amount, payment_base_amount, journal_entry_id, created_by)
              VALUES ($1, $2, $3, '2026-02-10', 10, 10, 10, $4, $5)`, [org.id, payment.id, bill, posted.entry_id, me.sub]);
            await c.query(`INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after) VALUES ($1, $2, 'user', 'payables.payment_created', 'bill_payment', $3, $4)`,
              [org.id, me.sub, payment.id, JSON.stringify({ amount: '10.00', billId: bill })]);
            await c.query('COMMIT');
            sqlLatencies.push(performance.now() - t0);
          } catch (err) {
            if (sqlErrors++ === 0) log(`sql_spread error: ${(err as Error).message}`);
            await c.query('ROLLBACK').catch(() => undefined);
          }
        }
      } finally {
        c.release();
      }
    }));
    await runtime.end();
    sqlLatencies.sort((a, b) => a - b);
    const sqlSeconds = Math.min(SECONDS, (Date.now() - sqlStarted) / 1000);
    const sqlSpread = { allocations: sqlLatencies.length, allocations_per_s: Math.round((sqlLatencies.length / sqlSeconds) * 10) / 10, errors: sqlErrors,
      latency_ms: { p50: pct(sqlLatencies, 50), p99: pct(sqlLatencies, 99) } };

    const load = (await import('node:os')).loadavg();
    console.log(JSON.stringify({
      connections: CONNECTIONS, seconds_per_scenario: SECONDS, bills: BILLS, spread_payment_with_allocation: spread, hot_allocation_one_bill: hot,
      sql_spread_floor: sqlSpread, spread_api_vs_sql: Math.round((spread.allocations_per_s / (sqlSpread.allocations_per_s || 1)) * 1000) / 1000,
      loadavg_1m_at_end: Math.round(load[0] * 100) / 100,
    }, null, 2));
  } finally {
    await stop?.();
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
