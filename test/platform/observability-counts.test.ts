import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { request as httpRequest, type ClientRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SchedulerRegistry } from '@nestjs/schedule';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { freePort, ThrowawayRedis, until } from '../support/throwaway-servers.js';
import { Metrics } from '../../src/platform/observability/metrics.js';
import { RlsCanary } from '../../src/platform/health/rls-canary.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { SqlPool } from '../../src/platform/database/sql.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';
import { enqueue, JobRegistry } from '../../src/platform/queue/jobs.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import type { Queue } from 'bull';

/**
 * The metrics say what they count: a connection error is a connection lost or not opened (not an HTTP answer), the
 * RLS canary has no verdict before a check gave one (and checks at start), a request the client abandoned is counted
 * (499), and a job Redis refused to take is no failed try.
 */
const TOKEN = 'test-metrics-token-counts-0123456789abcdef01234';

function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('observability: connection errors, the canary before its first check, abandoned requests', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  const scrape = async () => (await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text;
  const value = (text: string, series: string) => samples(text).get(series) ?? 0;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, METRICS_TOKEN: TOKEN, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_counts',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional',
    });
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('counts database connections lost (the server ended idle ones) by pool, not HTTP answers', async () => {
    await createOrg(t, ada, 'Pool Errors Co');
    const before = await scrape();
    // the API pool's idle connections (the readiness ping's own is not opened in this file: no /health/ready)
    // (looked up first, then ended: in one statement the planner may end every backend before filtering them)
    const idle = await t.db.admin.query<{ pid: number }>(`
      SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'omnizen_api' AND state = 'idle'`);
    expect(idle.rows.length).toBeGreaterThan(0);
    const ended = await t.db.admin.query<{ pid: number }>(
      `SELECT pid FROM unnest($1::int[]) AS pid WHERE pg_terminate_backend(pid)`, [idle.rows.map((r) => r.pid)]);
    const counted = async () => value(await scrape(), 'omnizen_db_pool_errors_total{pool="api"}') - value(before, 'omnizen_db_pool_errors_total{pool="api"}');
    await until('the pool has counted its lost connections', async () => (await counted()) >= ended.rows.length);
    expect(await counted()).toBe(ended.rows.length);
    // the connections are gone from the server, and the pool opens new ones: requests still answer
    const left = await t.db.admin.query(`SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [ended.rows.map((r) => r.pid)]);
    expect(left.rows).toEqual([]);
    const orgs = await t.http.get('/v1/orgs').set(ada.auth).expect(200);
    expect(orgs.body.map((o: { name: string }) => o.name)).toContain('Pool Errors Co');
    const after = await scrape();
    expect(value(after, 'omnizen_db_pool_errors_total{pool="api"}') - value(before, 'omnizen_db_pool_errors_total{pool="api"}')).toBe(ended.rows.length);
    expect(value(after, 'omnizen_db_pool_errors_total{pool="privileged"}')).toBe(value(before, 'omnizen_db_pool_errors_total{pool="privileged"}'));
    expect(after).toMatch(/^# HELP omnizen_db_pool_errors_total Database connections that could not be opened .*or were lost/m);
  });

  it('counts a connection that could not be opened, once, and fails the transaction as database_unavailable', async () => {
    const errors: number[] = [];
    const port = await freePort(); // nothing listens there
    const pool = new SqlPool(`postgresql://omnizen_api@127.0.0.1:${port}/none`, {
      max: 1, connectTimeoutMs: 5_000, statementTimeoutMs: 5_000, onConnectionError: () => errors.push(1),
    }, 'unreachable');
    try {
      await expect(pool.transaction((db) => db.$queryRaw`SELECT 1`)).rejects.toBeInstanceOf(DatabaseUnavailableError);
      expect(errors).toEqual([1]);
    } finally {
      await pool.end();
    }
  });

  it('exports no canary verdict before a check gave one, and checks once at start, not one interval later', async () => {
    const metrics = new Metrics(t.config);
    const unchecked = await metrics.scrape();
    // a gauge without a sample: min(omnizen_rls_canary_ok) == 0 (OmniZenRlsCanaryFailing) has nothing to fire on, and
    // no 1 claims a check that never ran; "not yet checked" is omnizen_rls_canary_unchecked
    expect(unchecked).toContain('# TYPE omnizen_rls_canary_ok gauge');
    expect(samples(unchecked).has('omnizen_rls_canary_ok')).toBe(false);
    expect(samples(unchecked).get('omnizen_rls_canary_unchecked')).toBe(1);

    const db = t.app.get(DatabaseService);
    const checks = jest.spyOn(db, 'rlsCanary');
    const scheduler = new SchedulerRegistry();
    const hourly = { ...t.config, observability: { ...t.config.observability, rlsCanaryIntervalMs: 3_600_000 } };
    const canary = new RlsCanary(hourly, db, metrics, scheduler);
    try {
      canary.onApplicationBootstrap();
      // started at once (the interval is an hour away)
      expect(checks).toHaveBeenCalledTimes(1);
      expect(await canary.run()).toMatchObject({ ok: true, leaks: [] }); // the same check, shared
      expect(checks).toHaveBeenCalledTimes(1);
      const checked = samples(await metrics.scrape());
      expect([checked.get('omnizen_rls_canary_ok'), checked.get('omnizen_rls_canary_unchecked')]).toEqual([1, 0]);
    } finally {
      checks.mockRestore();
      if (scheduler.doesExist('interval', 'rls-canary')) scheduler.deleteInterval('rls-canary');
    }
  });

  it('counts a request the client abandons before its answer once, as 499 with its time, and not again when the API finishes it', async () => {
    const orgId = await createOrg(t, ada, 'Abandoned Checkout Co');
    const server = t.app.getHttpServer();
    if (!server.listening) await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const route = 'route="/v1/orgs/:orgId/billing/checkout",method="POST"';
    const before = await scrape();
    const delta = (text: string, series: string) => value(text, series) - value(before, series);

    // the checkout waits for Stripe's answer, held: the client gives up meanwhile
    const held = stripe.holdNext();
    let req: ClientRequest | undefined;
    try {
      const body = JSON.stringify({ app: 'omnizen', plan: 'professional' });
      req = httpRequest({
        host: '127.0.0.1', port, method: 'POST', path: `/v1/orgs/${orgId}/billing/checkout`,
        headers: { ...ada.auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      const closed = new Promise<string>((done) => {
        req!.on('response', (res) => done(`answered ${res.statusCode}`));
        req!.on('error', (err) => done(err.message));
      });
      req.end(body);
      expect((await held.arrived).path).toBe('/v1/checkout/sessions');
      req.destroy();
      expect(await closed).toBe('socket hang up');
      await until('the abandoned request is counted', async () => delta(await scrape(), `omnizen_http_requests_total{${route},status="499"}`) === 1);
    } finally {
      held.release();
    }
    // the API finishes the checkout all the same (its session recorded), but nobody was answered: no 201 counted
    await until('the abandoned checkout has been recorded', async () => (await t.db.admin.query(
      `SELECT 1 FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen' AND checkout_session_id IS NOT NULL`, [orgId])).rows.length === 1);
    const audits = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.checkout_%'`, [orgId]);
    expect(audits.rows).toEqual([{ action: 'billing.checkout_started' }]);
    // the answer's own hooks have run (onResponse, if it ever comes, runs before the next request on this app is answered)
    await t.http.get('/v1/orgs').set(ada.auth).expect(200);
    const after = await scrape();
    expect(delta(after, `omnizen_http_requests_total{${route},status="499"}`)).toBe(1);
    expect(delta(after, `omnizen_http_requests_total{${route},status="201"}`)).toBe(0);
    expect(delta(after, `omnizen_http_request_duration_seconds_count{${route}}`)).toBe(1);
    expect(delta(after, `omnizen_http_request_duration_seconds_sum{${route}}`)).toBeGreaterThan(0);
  });

  it('a notifications stream the client closes counts under its status (200), not as 499, and is not timed', async () => {
    const server = t.app.getHttpServer();
    if (!server.listening) await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const route = 'route="/v1/me/notifications/stream",method="GET"';
    const before = await scrape();
    const delta = (text: string, series: string) => value(text, series) - value(before, series);
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/me/notifications/stream', headers: { ...ada.auth, accept: 'text/event-stream' } });
    const status = await new Promise<number>((done, fail) => {
      req.on('response', (res) => { res.resume(); done(res.statusCode!); });
      req.on('error', fail);
      req.end();
    });
    expect(status).toBe(200);
    req.on('error', () => undefined);
    req.destroy();
    await until('the closed stream is counted', async () => delta(await scrape(), `omnizen_http_requests_total{${route},status="200"}`) === 1);
    const after = await scrape();
    expect(delta(after, `omnizen_http_requests_total{${route},status="499"}`)).toBe(0);
    expect(delta(after, `omnizen_http_request_duration_seconds_count{${route}}`)).toBe(0);
  });
});

describe('observability: a job hand-off Redis refuses is no failed try', () => {
  let redis: ThrowawayRedis;
  let t: TestApp;
  let orgId: string;
  const runs: string[] = [];
  const recorded: string[] = [];
  const scrape = async () => samples((await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text);

  beforeAll(async () => {
    redis = await ThrowawayRedis.create();
    t = await createTestApp({ REDIS_URL: redis.url, METRICS_TOKEN: TOKEN, JOBS_CLAIM_TIMEOUT_MS: '1', JOBS_ENQUEUE_TIMEOUT_MS: '500' });
    t.app.get(JobRegistry).register('test.handoff', async (job) => void runs.push(job.id));
    t.app.get(JobRegistry).register('test.recorded', async (job) => void recorded.push(job.id));
    const userId = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    orgId = (await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Hand-off Co', $1) RETURNING id`, [userId])).rows[0].id;
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [orgId, userId]);
  });
  afterAll(async () => {
    await t?.close();
    await redis?.kill();
  });

  it('a job Bull completed whose record fails again (the database, not Redis): no refused hand-off, recorded done at the next pass', async () => {
    const relay = t.app.get(OutboxRelay);
    const queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    const before = await scrape();
    await t.app.get(DatabaseService).tenant({ kind: 'service', name: 'recorded' }, orgId, { requestId: 'recorded' }, (tx) => enqueue(tx, 'test.recorded', {}));
    const [{ id }] = (await t.db.admin.query(`SELECT id FROM core.outbox WHERE topic = 'test.recorded'`)).rows;
    // the worker runs it, and its record does not land (the database did not answer then)
    const markDone = jest.spyOn(relay, 'markDone').mockResolvedValue(undefined);
    try {
      await relay.drain();
      await until('the job completed in Bull', async () => (await (await queue.getJob(`outbox-${id}`))?.getState()) === 'completed');
      // relayed again (its claim ran out): Bull says completed; recording it fails again
      await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE id = $1`, [id]);
      markDone.mockRejectedValue(new DatabaseUnavailableError(new Error('connect timeout')));
      await relay.drain();
    } finally {
      markDone.mockRestore();
    }
    expect(recorded).toEqual([id]);
    const after = await scrape();
    expect((after.get('omnizen_jobs_handoff_refused_total{topic="test.recorded"}') ?? 0) - (before.get('omnizen_jobs_handoff_refused_total{topic="test.recorded"}') ?? 0)).toBe(0);
    expect((await t.db.admin.query('SELECT processed_at, last_error FROM core.outbox WHERE id = $1', [id])).rows).toEqual([{ processed_at: null, last_error: null }]);
    // the next pass records it
    await relay.drain();
    expect((await t.db.admin.query('SELECT processed_at IS NOT NULL AS done, tries FROM core.outbox WHERE id = $1', [id])).rows).toEqual([{ done: true, tries: 1 }]);
  });

  it('Redis down: relay passes count the refused hand-offs apart; omnizen_jobs_failed_total stays as it was, no try recorded', async () => {
    const before = await scrape();
    await redis.kill();
    const db = t.app.get(DatabaseService);
    for (let n = 1; n <= 3; n++) await db.tenant({ kind: 'service', name: 'handoff' }, orgId, { requestId: 'handoff' }, (tx) => enqueue(tx, 'test.handoff', { n }));
    // two passes: the first hands the three over in one addBulk, the second one by one (relayed again); the backoff
    // between them moved instead of waited for
    for (let pass = 1; pass <= 2; pass++) {
      await t.app.get(OutboxRelay).drain();
      await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'test.handoff'`);
    }
    const rows = await t.db.admin.query<{ attempts: number; tries: number; processed_at: Date | null; dead_at: Date | null; last_error: string | null }>(
      `SELECT attempts, tries, processed_at, dead_at, last_error FROM core.outbox WHERE topic = 'test.handoff' ORDER BY id`);
    expect(rows.rows).toEqual([1, 2, 3].map(() => ({ attempts: 2, tries: 0, processed_at: null, dead_at: null, last_error: expect.stringMatching(/queue/i) })));
    expect(runs).toEqual([]);
    const after = await scrape();
    const series = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(series('omnizen_jobs_failed_total{topic="test.handoff"}')).toBe(0);
    expect(series('omnizen_jobs_handoff_refused_total{topic="test.handoff"}')).toBe(6);
  });
});
