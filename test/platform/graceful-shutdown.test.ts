import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort, until } from '../support/throwaway-servers.js';

/** METRICS_TOKEN: it opens the checks of /health/ready (an anonymous caller gets its status only) */
const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef0123456789';

interface Answer {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

/** One request on a connection of its own; rejects if the connection fails or is cut before the whole answer. */
function call(port: number, method: string, path: string, body?: unknown, token?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest({
      host: '127.0.0.1', port, method, path, agent: false,
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The API as in production (src/main.ts, a process of its own) on `db`, once it answers /health; REDIS_URL unset unless `extra` sets it. */
async function startApi(db: TestDatabase, extra: Record<string, string>) {
  const port = await freePort();
  const env: Record<string, string | undefined> = {
    ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1',
    DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, MIGRATE_ON_START: 'false', JOBS_RELAY_INTERVAL_MS: '0',
  };
  delete env.REDIS_URL;
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the API
  const api = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', 'src/main.ts'], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  api.stdout!.on('data', (d) => (output += d));
  api.stderr!.on('data', (d) => (output += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => api.once('exit', (code, signal) => resolve({ code, signal })));
  await until('the API answers /health', async () => {
    if (api.exitCode !== null) throw new Error(`the API exited: ${output}`);
    return call(port, 'GET', '/health').then((r) => r.status === 200, () => false);
  }, 900, 100);
  return { api, port, exit, output: () => output };
}

/**
 * The API as it runs in production (src/main.ts, a process of its own) gets SIGTERM while requests
 * are in flight: it stops accepting connections, answers every request it had accepted, then exits 0.
 */
describe('graceful shutdown on SIGTERM', () => {
  let db: TestDatabase;
  let api: ChildProcess;
  let port: number;
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  let output: () => string;

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ api, port, exit, output } = await startApi(db, {
      SHUTDOWN_GRACE_MS: '30000', DATABASE_LOCK_TIMEOUT_MS: '40000', DATABASE_STATEMENT_TIMEOUT_MS: '45000',
      // longer than the test: it ends the delay with a second SIGTERM once it has seen readiness draining
      SHUTDOWN_DRAIN_DELAY_MS: '120000',
    }));
  });
  afterAll(async () => {
    if (api?.exitCode === null && api.signalCode === null) api.kill('SIGKILL');
    await db?.drop();
  });

  it('answers every accepted request, refuses new connections meanwhile, and exits 0', async () => {
    const credentials = { email: 'drain@example.test', password: 'correct horse battery' };
    expect((await call(port, 'POST', '/v1/auth/register', { ...credentials, name: 'Drain' })).status).toBe(202);
    const signedIn = await call(port, 'POST', '/v1/auth/login', credentials);
    expect(signedIn.status).toBe(200);
    const token = signedIn.body.accessToken;
    // setup only: the e-mail verified, as its mailed link would (a business organization needs it)
    await db.admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [signedIn.body.user.id]);
    const org = await call(port, 'POST', '/v1/orgs', { name: 'Draining Co' }, token);
    expect(org.status).toBe(201);
    const orgId = org.body.id;

    // requests held mid-way, inside their database transaction, behind a lock the test holds
    const locker = new pg.Client({ connectionString: db.url });
    locker.on('error', () => undefined); // ended by the database's drop if the test fails midway
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM core.organizations WHERE id = $1 FOR UPDATE', [orgId]);
    const inFlight = Array.from({ length: 8 }, (_, i) => call(port, 'PATCH', `/v1/orgs/${orgId}`, { name: `Renamed ${i}` }, token));
    inFlight.forEach((p) => p.catch(() => undefined)); // asserted below
    // polled on another connection: inside the locker's transaction, pg_stat_activity is one snapshot
    await until('8 requests wait for the lock', async () => (await db.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'omnizen_api' AND wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n === 8);
    // and a steady stream of reads until the signal
    let reading = true;
    const reads: Promise<Answer>[] = [];
    const readLoop = (async () => {
      while (reading) {
        const read = call(port, 'GET', `/v1/orgs/${orgId}`, undefined, token);
        reads.push(read);
        await read;
      }
    })();
    await until('reads are being served', () => reads.length >= 5);

    api.kill('SIGTERM');
    reading = false;
    await readLoop;
    // first not ready, still accepting connections (the drain delay): a load balancer's probe sees draining
    await until('readiness answers draining on a new connection', async () => {
      const ready = await call(port, 'GET', '/health/ready');
      return ready.status === 503 && ready.body.status === 'draining';
    });
    api.kill('SIGTERM'); // a second signal ends the drain delay
    await until('the API refuses new connections', () => call(port, 'GET', '/health').then(() => false, (err) => err.code === 'ECONNREFUSED'));
    expect(api.exitCode).toBeNull(); // still answering what it accepted

    await locker.query('COMMIT');
    await locker.end();
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    for (const a of answers) expect(a.headers.connection).toBe('close');
    for (const read of await Promise.all(reads)) expect(read.status).toBe(200);
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(Number(/SIGTERM: draining (\d+) request/.exec(output())?.[1])).toBeGreaterThanOrEqual(8);

    // each accepted change was committed and audited
    const audited = await db.admin.query(`SELECT after->>'name' AS name FROM core.audit_logs WHERE org_id = $1 AND action = 'organization.updated'`, [orgId]);
    expect(audited.rows.map((r) => r.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `Renamed ${i}`).sort());
  });
});

/**
 * Redis configured but unreachable (a Redis that is down, a wrong REDIS_URL), in the real process: the API is up and
 * ready (Redis reported down, not deciding without READINESS_REQUIRES_REDIS), and SIGTERM still ends it cleanly while its Redis clients are reconnecting. In Node an unhandled rejection
 * or an 'error' event nobody listens to ends the process with exit code 1 (test/platform/http.test.ts closes the same
 * app in-process, where Jest would not notice either).
 */
describe('graceful shutdown on SIGTERM with Redis unreachable', () => {
  let db: TestDatabase;
  let api: ChildProcess;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    if (api?.exitCode === null && api.signalCode === null) api.kill('SIGKILL');
    await db?.drop();
  });

  it('exits 0, with nothing left unhandled', async () => {
    // nothing listens on port 1: every connection attempt is refused
    const { port, exit, output, ...started } = await startApi(db, { REDIS_URL: 'redis://127.0.0.1:1', METRICS_TOKEN });
    api = started.api;
    const ready = await call(port, 'GET', '/health/ready', undefined, METRICS_TOKEN);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ok', checks: { postgres: 'up', redis: 'down', rls: 'up' } });

    api.kill('SIGTERM');
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(output()).not.toMatch(/unhandled|uncaught/i);
  });
});
