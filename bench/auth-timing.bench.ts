// Auth timing (issue 21): does the answer time tell which e-mails have accounts, and does password
// hashing starve other requests?
//
// It creates its own database (omnizen_bench_auth_<pid>) on DATABASE_URL's server, migrates it, runs the
// app in this process with production password-hash costs (PASSWORD_HASH_MEMORY_KIB / _TIME_COST as
// configured, default argon2id m=19456 KiB, t=2) and login limits raised out of the way, and measures
// - `login`: BENCH_SAMPLES (50) logins with an unknown e-mail and as many with a wrong password for an
//   existing one, interleaved; medians, p10/p90 and how many of one kind fall inside the other's p10..p90;
// - `register`: as many registrations of a taken e-mail and of free ones, interleaved (the answer is the same);
// - `password_reset`: as many reset requests for existing accounts (each under its hourly limit) and for unknown
//   addresses, interleaved (the answer is the same);
// - `health_during_registrations`: GET /health latency alone, then while 4 registrations run at once.
// Prints one JSON document on stdout; progress on stderr. Not a pass/fail test: figures depend on the machine.
import 'reflect-metadata';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';

loadLocalEnv(projectRoot());
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 50);
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_auth_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const SECRET = 'bench-only-jwt-secret-bench-only-jwt-secret';
const log = (msg: string) => process.stderr.write(`[bench:auth] ${msg}\n`);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median_ms: round(pct(s, 50)), p10_ms: round(pct(s, 10)), p90_ms: round(pct(s, 90)), min_ms: round(s[0]), max_ms: round(s[s.length - 1]), n: s.length };
};

async function main() {
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_auth_']);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  let app: Awaited<ReturnType<typeof createApp>> | undefined;
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    const config = loadConfig({
      ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'error', SUPABASE_JWT_SECRET: SECRET, NEXTAUTH_SECRET: SECRET,
      DATABASE_URL: ownerUrl, API_DATABASE_URL: apiUrl, REDIS_URL: undefined, JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false',
      // the limits would answer 429 long before the samples are taken: out of the way
      LOGIN_MAX_FAILURES: '100000', LOGIN_ACCOUNT_MAX_FAILURES: '100000', REGISTER_MAX_PER_ADDRESS: '100000', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '100000',
    });
    app = await createApp(AppModule.forRoot(config), config);
    await app.listen(0, '127.0.0.1');
    const base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    const timed = async (method: string, path: string, body?: unknown) => {
      const t0 = performance.now();
      const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      await res.arrayBuffer();
      return { ms: performance.now() - t0, status: res.status };
    };

    const email = `known.${process.pid}@bench.test`;
    await timed('POST', '/v1/auth/register', { email, password: 'correct horse battery' });
    // warm up both paths (the dummy hash is made on first use)
    for (let i = 0; i < 3; i++) {
      await timed('POST', '/v1/auth/login', { email: `nobody.${i}@bench.test`, password: 'wrong password!' });
      await timed('POST', '/v1/auth/login', { email, password: 'wrong password!' });
    }
    log(`login: ${SAMPLES} unknown e-mails and ${SAMPLES} wrong passwords, interleaved`);
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const a = await timed('POST', '/v1/auth/login', { email: `nobody.${process.pid}.${i}@bench.test`, password: 'wrong password!' });
      const b = await timed('POST', '/v1/auth/login', { email, password: 'wrong password!' });
      if (a.status !== 401 || b.status !== 401) throw new Error(`expected 401s, got ${a.status} / ${b.status}`);
      unknown.push(a.ms);
      wrong.push(b.ms);
    }
    const inside = (xs: number[], ys: number[]) => {
      const s = [...ys].sort((p, q) => p - q);
      const [lo, hi] = [pct(s, 10), pct(s, 90)];
      return xs.filter((x) => x >= lo && x <= hi).length;
    };

    log(`register: ${SAMPLES} taken e-mails and ${SAMPLES} free ones, interleaved`);
    const taken: number[] = [];
    const free: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const a = await timed('POST', '/v1/auth/register', { email, password: 'another long password' });
      const b = await timed('POST', '/v1/auth/register', { email: `free.${process.pid}.${i}@bench.test`, password: 'another long password' });
      if (a.status !== 202 || b.status !== 202) throw new Error(`expected 202s, got ${a.status} / ${b.status}`);
      taken.push(a.ms);
      free.push(b.ms);
    }

    log(`password_reset: ${SAMPLES} existing accounts and ${SAMPLES} unknown addresses, interleaved`);
    const accounts = Array.from({ length: SAMPLES }, (_, i) => `reset.${process.pid}.${i}@bench.test`);
    for (const a of accounts) await timed('POST', '/v1/auth/register', { email: a, password: 'correct horse battery' });
    for (let i = 0; i < 3; i++) await timed('POST', '/v1/auth/password-reset', { email: `warm.${process.pid}.${i}@bench.test` });
    const resetKnown: number[] = [];
    const resetUnknown: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const a = await timed('POST', '/v1/auth/password-reset', { email: accounts[i] });
      const b = await timed('POST', '/v1/auth/password-reset', { email: `nobody.reset.${process.pid}.${i}@bench.test` });
      if (a.status !== 202 || b.status !== 202) throw new Error(`expected 202s, got ${a.status} / ${b.status}`);
      resetKnown.push(a.ms);
      resetUnknown.push(b.ms);
    }

    log('GET /health alone, then during 4 concurrent registrations');
    const alone: number[] = [];
    for (let i = 0; i < SAMPLES; i++) alone.push((await timed('GET', '/health')).ms);
    const during: number[] = [];
    let running = true;
    const registrations = Promise.all(Array.from({ length: 4 }, (_, i) =>
      timed('POST', '/v1/auth/register', { email: `load.${process.pid}.${i}@bench.test`, password: 'correct horse battery' })))
      .finally(() => { running = false; });
    while (running) during.push((await timed('GET', '/health')).ms);
    const registered = await registrations;

    console.log(JSON.stringify({
      password_hash: { algorithm: 'argon2id', memory_kib: config.auth.passwordHash.memoryKib, time_cost: config.auth.passwordHash.timeCost },
      login: {
        unknown_email: stats(unknown),
        wrong_password: stats(wrong),
        median_difference_ms: round(stats(unknown).median_ms - stats(wrong).median_ms),
        unknown_within_wrong_p10_p90: inside(unknown, wrong),
        wrong_within_unknown_p10_p90: inside(wrong, unknown),
      },
      register: {
        taken_email: stats(taken),
        free_email: stats(free),
        median_difference_ms: round(stats(taken).median_ms - stats(free).median_ms),
        taken_within_free_p10_p90: inside(taken, free),
      },
      password_reset: {
        existing_account: stats(resetKnown),
        unknown_address: stats(resetUnknown),
        median_difference_ms: round(stats(resetKnown).median_ms - stats(resetUnknown).median_ms),
        unknown_within_existing_p10_p90: inside(resetUnknown, resetKnown),
      },
      health_during_registrations: {
        alone: stats(alone),
        during_4_registrations: during.length ? stats(during) : null,
        registration_ms: registered.map((r) => round(r.ms)),
      },
      machine: { node: process.version },
    }, null, 2));
  } finally {
    await app?.close().catch(() => undefined);
    await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await root.end();
  }
}

main().then(() => process.exit(0)).catch((err) => {
  console.error(err);
  process.exit(1);
});
