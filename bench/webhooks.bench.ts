// npm run bench:webhooks — outbound webhooks end to end: journal entries posted through the API, their
// `journal_entry.posted` events relayed from the outbox (Bull when REDIS_URL is set), fanned out to 1 and to 10
// endpoints of the organization, signed and delivered to a local receiver on 127.0.0.1 that verifies every
// signature with the `standardwebhooks` library. Prints one JSON document; progress goes to stderr.
//
// It creates its own database (omnizen_bench_webhooks_<pid>) on DATABASE_URL's server, migrates it, starts the app
// in a child process with the relay and the delivery worker running by themselves (JOBS_RELAY_INTERVAL_MS,
// WEBHOOKS_POLL_INTERVAL_MS: production defaults unless BENCH_RELAY_INTERVAL_MS / BENCH_POLL_INTERVAL_MS say
// otherwise), and drops the database at the end. Two kinds of scenario, each with 1 and with 10 endpoints:
//   flat_out   BENCH_EVENTS (default 300) entries posted by BENCH_CONCURRENCY (default 8) clients, each posting
//              again as soon as its previous post is answered (closed loop): the offered rate is whatever the
//              system takes, so the delivered rate is the SATURATION POINT, and the latency is mostly queueing.
//   offered    entries posted on a fixed schedule (open loop) at BENCH_RATE events/s (default: BENCH_RATE_SHARE,
//              0.6, of that endpoint count's saturation point measured just before) for BENCH_RATE_SECONDS (20 s):
//              the latency a customer sees at a rate the system sustains. `sustained` says whether it kept up
//              (every delivery arrived within 3 s of the last post, and the posts kept to their schedule).
// Per scenario:
//   events_per_s        entries posted / seconds from the first post to the last delivery
//   fanned_out_per_s    events fanned out (their messages written) / seconds from the first post to the last fan-out
//   deliveries_per_s    deliveries (events × endpoints) / seconds from the first post to the last delivery
//   latency p50/p99     receiver arrival − the event's timestamp (taken in the posting transaction, just before
//                       its commit; same machine clock), per delivery
// BENCH_ONLY=flat_out|offered runs one kind (offered then needs BENCH_RATE); BENCH_ENDPOINTS=1 or 10 one count.
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { APP_NODE_FLAGS, benchAppEnv } from './app-flags.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const RELAY_INTERVAL_MS = process.env.BENCH_RELAY_INTERVAL_MS ?? '250';
const POLL_INTERVAL_MS = process.env.BENCH_POLL_INTERVAL_MS ?? '500';
const DEADLINE_MS = 120_000;
const RATE = process.env.BENCH_RATE ? Number(process.env.BENCH_RATE) : undefined;
const RATE_SHARE = Number(process.env.BENCH_RATE_SHARE ?? 0.6);
const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 20);
const ONLY = process.env.BENCH_ONLY;
const ENDPOINT_COUNTS = process.env.BENCH_ENDPOINTS ? [Number(process.env.BENCH_ENDPOINTS)] : [1, 10];
loadLocalEnv(projectRoot());
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_webhooks_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const SECRETS_KEYS = `bench:${randomBytes(32).toString('base64')}`;

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null);
const round = (n: number | null, d = 1) => (n === null ? null : Math.round(n * 10 ** d) / 10 ** d);
const log = (msg: string) => process.stderr.write(`[bench:webhooks] ${msg}\n`);

interface Arrival { endpoint: string; type: string; latencyMs: number; at: number; verified: boolean }

async function main() {
  const loadBefore = (await import('node:os')).loadavg().map((l) => round(l, 2));
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_webhooks_']);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  let stopApp: (() => Promise<void>) | undefined;

  // the receiver: every request verified with its endpoint's secret
  const secrets = new Map<string, Webhook>();
  let arrivals: Arrival[] = [];
  let expected = 0;
  let allArrived: (() => void) | undefined;
  const receiver = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      const at = Date.now();
      const endpoint = req.url ?? '';
      let verified = false;
      try {
        secrets.get(endpoint)?.verify(raw, req.headers as Record<string, string>);
        verified = secrets.has(endpoint);
      } catch {
        verified = false;
      }
      const body = JSON.parse(raw);
      arrivals.push({ endpoint, type: body.type, latencyMs: at - Date.parse(body.timestamp), at, verified });
      res.writeHead(204).end();
      if (arrivals.length >= expected) allArrived?.();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    const child = spawn(process.execPath, [...APP_NODE_FLAGS, '--import', './scripts/register-ts.mjs', fileURLToPath(import.meta.url), '--serve', ownerUrl, apiUrl],
      { env: benchAppEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    stopApp = async () => {
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
    const http = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.status === 204 ? undefined : (res.json() as Promise<any>);
    };

    const admin = new pg.Pool({ connectionString: ownerUrl, max: 2 });
    /** `rate`: entries posted on a schedule at `rate` per second (open loop); without, CONCURRENCY clients flat out (closed loop). */
    const scenario = async (endpoints: number, events: number, rate?: number) => {
      const kind = rate ? 'offered' : 'flat_out';
      const name = `bench${endpoints}${kind.replace('_', '')}`;
      const credentials = { email: `${name}.${process.pid}@bench.test`, password: 'correct horse battery' };
      await http('POST', '/v1/auth/register', undefined, { ...credentials, name });
      const user = await http('POST', '/v1/auth/login', undefined, credentials);
      const token: string = user.accessToken;
      // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
      await admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [user.user.id]);
      const org = await http('POST', '/v1/orgs', token, { name });
      // setup only: the organization on the professional plan (webhooks), through the owner connection
      await admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
        VALUES (gen_random_uuid()::text, NULL, 'omnizen', 'professional', 'active', $1, now(), now())`, [org.id]);
      await http('POST', `/v1/orgs/${org.id}/ledger/books`, token, { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' });
      const accounts = await http('GET', `/v1/orgs/${org.id}/ledger/accounts`, token);
      const id = (code: string) => accounts.find((a: any) => a.code === code).id;
      for (let i = 0; i < endpoints; i++) {
        const path = `/${name}/e${i}`;
        const ep = await http('POST', `/v1/orgs/${org.id}/webhooks/endpoints`, token, { url: receiverUrl + path, eventTypes: ['journal_entry.posted'] });
        secrets.set(path, new Webhook(ep.secret));
      }
      arrivals = [];
      expected = events * endpoints;
      const done = new Promise<void>((resolve) => (allArrived = resolve));
      log(`${endpoints} endpoint(s), ${kind}: posting ${events} entries, ${rate ? `${rate} per second on a schedule` : `${CONCURRENCY} clients flat out`}`);
      const post = (n: number) => http('POST', `/v1/orgs/${org.id}/ledger/journal-entries`, token, {
        date: '2026-01-15', memo: `bench ${n}`, lines: [{ accountId: id('5200'), debit: '10.00' }, { accountId: id('1100'), credit: '10.00' }],
      });
      const started = Date.now();
      const postLate: number[] = [];
      if (rate) {
        // open loop: post n starts at started + n / rate, whatever the answers before it
        await Promise.all(Array.from({ length: events }, async (_, n) => {
          const due = started + (n * 1000) / rate;
          await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
          postLate.push(Date.now() - due);
          await post(n);
        }));
      } else {
        let next = 0;
        await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
          while (next < events) await post(next++);
        }));
      }
      const posted = Date.now();
      await Promise.race([done, new Promise((r) => setTimeout(r, DEADLINE_MS))]);
      const last = arrivals.length ? Math.max(...arrivals.map((a) => a.at)) : Date.now();
      const seconds = (last - started) / 1000;
      const latencies = arrivals.map((a) => a.latencyMs).sort((a, b) => a - b);
      const [fan] = (await admin.query(`SELECT count(DISTINCT event_id)::int AS events, extract(epoch FROM max(created_at))::float8 * 1000 AS last
        FROM core.webhook_messages WHERE org_id = $1`, [org.id])).rows;
      const lateSorted = postLate.sort((a, b) => a - b);
      const result = {
        kind, endpoints, events, offered_events_per_s: rate ?? null, deliveries_expected: expected, deliveries: arrivals.length,
        signatures_failed: arrivals.filter((a) => !a.verified).length,
        post_seconds: round((posted - started) / 1000, 2), total_seconds: round(seconds, 2),
        events_per_s: round(events / seconds), fanned_out_per_s: round(fan.events / ((fan.last - started) / 1000)), deliveries_per_s: round(arrivals.length / seconds),
        latency_ms: { p50: pct(latencies, 50), p90: pct(latencies, 90), p99: pct(latencies, 99), max: latencies.at(-1) ?? null },
        ...(rate ? {
          post_start_late_ms: { p50: pct(lateSorted, 50), p99: pct(lateSorted, 99) },
          // the backlog did not grow: every delivery arrived within 3 s of the last post, and the posts kept to their schedule
          drain_seconds: round((last - posted) / 1000, 2),
          sustained: arrivals.length === expected && last - posted <= 3000 && (pct(lateSorted, 99) ?? 0) < 1000,
        } : {}),
      };
      log(JSON.stringify(result));
      return result;
    };

    const scenarios: Awaited<ReturnType<typeof scenario>>[] = [];
    const saturation: Record<string, number | null> = {};
    for (const endpoints of ENDPOINT_COUNTS) {
      let rate = RATE;
      if (ONLY !== 'offered') {
        const flat = await scenario(endpoints, EVENTS);
        scenarios.push(flat);
        saturation[`endpoints_${endpoints}`] = flat.events_per_s;
        rate ??= Math.max(1, Math.round((flat.events_per_s ?? 1) * RATE_SHARE * 10) / 10);
      }
      if (ONLY !== 'flat_out') {
        if (!rate) throw new Error('BENCH_ONLY=offered needs BENCH_RATE (events per second)');
        scenarios.push(await scenario(endpoints, Math.max(1, Math.round(rate * RATE_SECONDS)), rate));
      }
    }
    await admin.end();
    const loadavg = (await import('node:os')).loadavg().map((l) => round(l, 2));
    console.log(JSON.stringify({
      benchmark: 'webhooks', redis: Boolean(process.env.REDIS_URL), relay_interval_ms: Number(RELAY_INTERVAL_MS), poll_interval_ms: Number(POLL_INTERVAL_MS),
      concurrency: CONCURRENCY, bench_rate: RATE ?? null, rate_share: RATE_SHARE, load_average_before: loadBefore, load_average: loadavg,
      saturation_events_per_s: saturation,
      aim: 'p99 commit→receiver ≤ 2000 ms with Redis at an offered rate the system sustains',
      scenarios,
    }, null, 2));
  } finally {
    await stopApp?.();
    receiver.closeAllConnections();
    receiver.close();
    await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await root.end();
  }
}

/** `--serve <ownerUrl> <apiUrl>`: the app alone, as the benchmark's child process, its relay and delivery worker running. */
async function serve(ownerUrl: string, apiUrl: string) {
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'error', DATABASE_URL: ownerUrl, API_DATABASE_URL: apiUrl, API_DATABASE_POOL_SIZE: '16',
    JOBS_RELAY_INTERVAL_MS: RELAY_INTERVAL_MS, WEBHOOKS_POLL_INTERVAL_MS: POLL_INTERVAL_MS, MIGRATE_ON_START: 'false',
    REDIS_PREFIX: `bench:${new URL(ownerUrl).pathname.slice(1)}`, SECRETS_KEYS, OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true',
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
