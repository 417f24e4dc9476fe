import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import pg from 'pg';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { createTestDatabase } from '../support/database.js';
import { createOrg, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { FreezingRedisProxy } from '../support/freezing-redis-proxy.js';
import { bounded, ThrowawayPostgres, until } from '../support/throwaway-servers.js';
import { loadConfig } from '../../src/platform/config/config.js';
import { Metrics } from '../../src/platform/observability/metrics.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';

/** METRICS_TOKEN: it opens the checks of /health/ready (an anonymous caller gets its status only) */
const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef0123456789';

/**
 * PostgreSQL failing under the API, on a server of this file's own (killed, stopped, its backends
 * terminated): the API answers 503 with Retry-After, never 500, and never exits; it recovers on its own.
 */
describe('the API survives PostgreSQL faults', () => {
  let server: ThrowawayPostgres;
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  /** a connection of the test's own (owner) on the app's database: holds locks, terminates backends */
  let owner: pg.Client;

  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    t = await createTestApp({ METRICS_TOKEN, REDIS_URL: undefined, DATABASE_LOCK_TIMEOUT_MS: '1500', DATABASE_STATEMENT_TIMEOUT_MS: '10000', DATABASE_CONNECT_TIMEOUT_MS: '2000' }, { databaseServer: server.url() });
    ({ orgId, users } = await orgWithRoles(t, 'Faulty Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    owner = new pg.Client({ connectionString: t.db.url });
    owner.on('error', () => undefined); // cut when the server is killed below
    await owner.connect();
  });
  afterAll(async () => {
    await owner?.end().catch(() => undefined);
    await t?.close();
    await server?.destroy();
  });

  const orgName = async () => (await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [orgId])).rows[0].name;
  /** The API's backend that waits for a lock (the request the test is blocking); not asked on `owner`, whose transaction would see one snapshot of pg_stat_activity. */
  const waitingBackend = async () => (await t.db.admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE usename = 'omnizen_api' AND wait_event_type = 'Lock' AND datname = current_database()`)).rows[0]?.pid;

  it('a terminated busy connection fails its request with 503 database_unavailable; the process and the next request carry on', async () => {
    await owner.query('BEGIN');
    await owner.query('SELECT 1 FROM core.organizations WHERE id = $1 FOR UPDATE', [orgId]);
    const blocked = t.http.patch(`/v1/orgs/${orgId}`).set(users.owner.auth).send({ name: 'Renamed While Cut' }).then((r) => r);
    let pid: number | undefined;
    await until('the request waits for the lock', async () => Boolean(pid = await waitingBackend()));
    await owner.query('SELECT pg_terminate_backend($1)', [pid]);
    const res = await blocked;
    await owner.query('ROLLBACK');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).toEqual({ error: { code: 'database_unavailable', message: expect.any(String) }, requestId: expect.any(String) });
    expect(await orgName()).toBe('Faulty Ltd');
    // the same process answers the next requests, on fresh connections
    const created = await t.http.post('/v1/orgs').set(users.owner.auth).send({ name: 'After The Cut' }).expect(201);
    expect((await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [created.body.id])).rows[0].name).toBe('After The Cut');
    await t.http.patch(`/v1/orgs/${orgId}`).set(users.owner.auth).send({ name: 'Faulty Ltd' }).expect(200);
  });

  it('a request behind a held lock answers 503 database_timeout after the lock timeout, having written nothing', async () => {
    await owner.query('BEGIN');
    await owner.query('SELECT 1 FROM core.organizations WHERE id = $1 FOR UPDATE', [orgId]);
    // the SQLSTATE of the error answered, as the error filter hands it to the metrics
    const errors = jest.spyOn(t.app.get(Metrics), 'recordError');
    try {
      const res = await t.http.patch(`/v1/orgs/${orgId}`).set(users.owner.auth).send({ name: 'Behind A Lock' });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('2');
      expect(res.body.error).toEqual({ code: 'database_timeout', message: expect.stringMatching(/did not answer in time/) });
      // the lock timeout (55P03, 1.5 s), not the statement timeout (57014, 10 s), ended the wait
      expect(errors.mock.calls).toEqual([[503, 'database_timeout', '55P03']]);
    } finally {
      errors.mockRestore();
      await owner.query('ROLLBACK');
    }
    expect(await orgName()).toBe('Faulty Ltd');
    const audits = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND after::text LIKE '%Behind A Lock%'`, [orgId]);
    expect(audits.rows[0].n).toBe(0);
  });

  it('kill -9 of PostgreSQL under posting load: 503s while it is down, not ready, no acknowledged posting lost, recovery without a restart', async () => {
    await owner.end();
    const acknowledged: string[] = [];
    const statuses = new Map<number, number>();
    let stop = false;
    let sequence = 0;
    const postLoop = async () => {
      while (!stop) {
        const n = ++sequence;
        const res = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth)
          .send({ date: '2026-02-01', memo: `load ${n}`, lines: [{ accountId: acc['5200'], debit: '1.00' }, { accountId: acc['1100'], credit: '1.00' }] });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201) acknowledged.push(res.body.id);
        else expect(res.body.error.code).toBe('database_unavailable');
      }
    };
    const load = [postLoop(), postLoop(), postLoop(), postLoop()];
    try {
      await until('some postings are acknowledged', () => acknowledged.length >= 20);
      await server.kill();
      const before = acknowledged.length;
      await until('postings fail with 503 while the server is down', () => (statuses.get(503) ?? 0) >= 4);
      const ready = await t.http.get('/health/ready').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(503);
      expect(ready.body).toEqual({ status: 'unavailable', checks: { postgres: 'down' }, latencyMs: { postgres: expect.any(Number) } });
      const login = await t.http.post('/v1/auth/login').send({ email: users.owner.email, password: 'correct horse battery' }).expect(503);
      expect(login.headers['retry-after']).toBe('5');
      expect(login.body.error.code).toBe('database_unavailable');
      await server.start();
      await until('postings are acknowledged again', () => acknowledged.length >= before + 10, 400);
    } finally {
      stop = true;
      await Promise.all(load);
    }
    expect([...statuses.keys()].sort()).toEqual([201, 503]);
    await t.http.get('/health/ready').expect(200);
    const { rows } = await t.db.admin.query<{ id: string; n: number }>(
      `SELECT id::text, count(*) OVER (PARTITION BY id)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND id = ANY($2::uuid[])`, [orgId, acknowledged]);
    expect(rows.map((r) => r.id).sort()).toEqual([...acknowledged].sort());
    expect(rows.every((r) => r.n === 1)).toBe(true);
    // a fresh login and a fresh posting: the same process serves again
    await t.http.post('/v1/auth/login').send({ email: users.owner.email, password: 'correct horse battery' }).expect(200);
    const ada = await registerUser(t, 'after-crash');
    await createOrg(t, ada, 'After The Crash');
  });
});

/**
 * PostgreSQL that stops answering without closing anything (a frozen host, a partition): a TCP proxy in front of the
 * API login's connections forwards nothing once frozen. A request on a connection the pool already holds fails 503
 * database_unavailable within the client deadline (2 × statement timeout + 1 s), instead of waiting for TCP to give up.
 */
describe('the API survives a PostgreSQL that stops answering', () => {
  let proxy: FreezingRedisProxy;
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    const db = await createTestDatabase();
    proxy = new FreezingRedisProxy(new URL(db.apiUrl)); // any TCP server: PostgreSQL here
    await proxy.listen();
    const apiUrl = new URL(db.apiUrl);
    apiUrl.port = String(proxy.port);
    const config = loadConfig({
      ...process.env, NODE_ENV: 'test', DATABASE_URL: db.url, API_DATABASE_URL: apiUrl.toString(), REDIS_URL: undefined,
      MIGRATE_ON_START: 'false', JOBS_RELAY_INTERVAL_MS: '0', API_DATABASE_POOL_SIZE: '2',
      DATABASE_STATEMENT_TIMEOUT_MS: '500', DATABASE_LOCK_TIMEOUT_MS: '250', DATABASE_CONNECT_TIMEOUT_MS: '1000',
    });
    const { app, http, contract } = await startApp(config);
    t = { app, http, config, db, contract, close: async () => { await app.close(); await db.drop(); } };
    owner = await registerUser(t, 'frozen-owner');
    orgId = await createOrg(t, owner, 'Frozen Ltd');
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.close();
    expect(t?.contract.violations ?? []).toEqual([]);
  });

  it('a request on a held connection answers 503 database_unavailable with Retry-After; the next one, after the freeze, 200', async () => {
    await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).expect(200); // the pool now holds an open connection
    proxy.frozen = true;
    try {
      const res = await bounded(t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).then((r) => r), 10_000, () => 'the request hung on a silent connection');
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body).toEqual({ error: { code: 'database_unavailable', message: expect.any(String) }, requestId: expect.any(String) });
    } finally {
      proxy.frozen = false;
    }
    const again = await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).expect(200);
    expect(again.body).toMatchObject({ id: orgId, name: 'Frozen Ltd' });
  });
});
