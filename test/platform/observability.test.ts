import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { Metrics } from '../../src/platform/observability/metrics.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { WebhookDelivery } from '../../src/modules/webhooks/webhook-delivery.service.js';
import { startWebhookReceiverDouble, type ReceiverAnswer, type WebhookReceiverDouble } from '../support/doubles/webhook-receiver-double.js';
import { testKeys } from '../integrations/keys.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { operationOf } from '../../src/platform/database/sql.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { CANARY_LOCK_TIMEOUT_MS, RlsCanary } from '../../src/platform/health/rls-canary.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { sqlState } from '../../src/platform/errors/database-errors.js';

/**
 * /metrics (Prometheus text format, only with METRICS_TOKEN), the counters a scripted set of requests moves,
 * the alert rules and dashboard against a real scrape, and readiness with the row-level-security canary.
 */
const TOKEN = 'test-metrics-token-0123456789abcdef0123456789';
const root = join(import.meta.dirname, '..', '..');

/** Parses a Prometheus text scrape into `name{labels}` → value (labels as printed, sorted as printed). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const metricNames = (text: string) => new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
  type === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : type === 'summary' ? [name, `${name}_sum`, `${name}_count`] : [name]));

/**
 * The pool's lock and statement timeouts, longer than a test may run (jest's testTimeout): a wait that only they could
 * end fails the test, so the RLS canary's check behind a locked table below ends by its own lock timeout or not at all.
 */
const POOL_TIMEOUTS = { DATABASE_LOCK_TIMEOUT_MS: '600000', DATABASE_STATEMENT_TIMEOUT_MS: '1200000' };

describe('observability', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const scrape = async () => (await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text;
  const value = (text: string, series: string) => samples(text).get(series) ?? 0;

  beforeAll(async () => {
    t = await createTestApp({ METRICS_TOKEN: TOKEN, ...POOL_TIMEOUTS });
    const org = await orgWithRoles(t, 'Metrics Ltd');
    owner = org.users.owner;
    orgId = org.orgId;
    await onPlan(t, orgId, 'professional');
  });
  afterAll(() => t.close());

  it('serves /metrics only to requests bearing METRICS_TOKEN', async () => {
    const none = await t.http.get('/metrics').expect(401);
    expect(none.body.error).toMatchObject({ code: 'auth.metrics_token' });
    const wrong = await t.http.get('/metrics').set('Authorization', 'Bearer not-the-token').expect(401);
    expect(wrong.text).not.toContain('omnizen_http_requests_total');
    const ok = await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(ok.text).toContain('# TYPE omnizen_http_requests_total counter');
    // without METRICS_TOKEN: 404 ('observability without METRICS_TOKEN' below)
  });

  it('moves the expected counters by the expected amounts after a scripted set of requests', async () => {
    const acc = await startBooks(t, orgId, owner);
    const other = await registerUser(t, 'outsider');
    const otherOrg = await createOrg(t, other, 'Elsewhere');
    const before = await scrape();

    // one unbalanced posting, one in a period that does not exist, and a balanced one
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth)
      .send({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10.00' }, { accountId: acc['1100'], credit: '9.00' }] }).expect(422);
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth)
      .send({ date: '2031-02-01', lines: [{ accountId: acc['5200'], debit: '10.00' }, { accountId: acc['1100'], credit: '10.00' }] }).expect(422);
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth)
      .send({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10.00' }, { accountId: acc['1100'], credit: '10.00' }] }).expect(201);
    // two failed logins
    for (let i = 0; i < 2; i++) await t.http.post('/v1/auth/login').send({ email: owner.email, password: 'not the password' }).expect(401);
    // a 404 across tenants: A's owner asks for B's ledger accounts
    await t.http.get(ledgerUrl(otherOrg, 'accounts')).set(owner.auth).expect(404);

    const after = await scrape();
    const delta = (series: string) => value(after, series) - value(before, series);
    expect(delta('omnizen_ledger_postings_rejected_total{reason="ledger.unbalanced"}')).toBe(1);
    expect(delta('omnizen_ledger_postings_rejected_total{reason="ledger.no_fiscal_year"}')).toBe(1);
    expect(delta('omnizen_auth_failures_total{reason="auth.unauthorized"}')).toBe(2);
    expect(delta('omnizen_http_requests_total{route="/v1/orgs/:orgId/ledger/journal-entries",method="POST",status="201"}')).toBe(1);
    expect(delta('omnizen_http_requests_total{route="/v1/orgs/:orgId/ledger/journal-entries",method="POST",status="422"}')).toBe(2);
    expect(delta('omnizen_http_requests_total{route="/v1/orgs/:orgId/ledger/accounts",method="GET",status="404"}')).toBe(1);
    expect(delta('omnizen_http_errors_total{status="404",code="organization.not_found"}')).toBe(1);
    // the histogram counted the same requests, labelled by route template (no raw ids in any label)
    expect(delta('omnizen_http_request_duration_seconds_count{route="/v1/orgs/:orgId/ledger/journal-entries",method="POST"}')).toBe(3);
    // no organization id on the HTTP series (the AI and usage gauges label a bounded number of organizations)
    const httpSeries = after.split('\n').filter((l) => l.startsWith('omnizen_http_')).join('\n');
    expect(httpSeries).not.toContain(orgId);
    expect(httpSeries).not.toContain(otherOrg);
    // statements timed by the repository operation that sent them: each posting is one finance.post_journal_entry
    // (ledger.repository.post), each tenant request one begin_request (database.service.tenant): 3 postings + the 404
    expect(delta('omnizen_db_query_duration_seconds_count{operation="ledger.repository.post"}')).toBe(3);
    expect(delta('omnizen_db_query_duration_seconds_count{operation="database.service.tenant"}')).toBe(4);
    expect(delta('omnizen_db_query_duration_seconds_bucket{le="+Inf",operation="ledger.repository.post"}')).toBe(3);
    // operations come from the code (file.function), never from values: no ids, no paths
    const operations = [...after.matchAll(/^omnizen_db_query_duration_seconds_count\{operation="([^"]*)"\}/gm)].map((m) => m[1]);
    expect(operations.length).toBeGreaterThan(3);
    for (const op of operations) expect(op).toMatch(/^(other|[\w-]+(\.[\w-]+)*\.[\w$]+)$/);
    expect(operations.filter((op) => /[0-9a-f]{8}-[0-9a-f]{4}-|[/\\]/.test(op))).toEqual([]);
    // the pool and the outbox are read at scrape time
    expect(samples(after).has('omnizen_db_pool_connections{state="in_use"}')).toBe(true);
    expect(samples(after).has('omnizen_outbox_depth')).toBe(true);
  });

  it('has alert rules that parse and a dashboard whose every metric a real scrape exports', async () => {
    const rules = parse(readFileSync(join(root, 'deploy/prometheus/alerts.yml'), 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string; labels?: object }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((r) => r.alert)).toEqual(expect.arrayContaining([
      'OmniZenUnbalancedPostings', 'OmniZenTokenUsageSpike', 'OmniZenRlsDenials', 'OmniZenRlsCanaryFailing', 'OmniZenAuthenticationFailures',
      'OmniZenOutboxLag', 'OmniZenJobsFailing', 'OmniZenJobsDead', 'OmniZenWebhookFailures', 'OmniZenServerErrors', 'OmniZenNotReady']));
    for (const r of alerts) expect(r.expr.trim().length).toBeGreaterThan(0);
    const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/omnizen.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = [...alerts.map((r) => r.expr), ...dashboard.panels.flatMap((p) => p.targets.map((x) => x.expr))];
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bomnizen_[a-z0-9_]+/g)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(15);
    // gauges every instance reads from the same shared state (the database, Redis) export the same values on each: taken
    // once with max (or min) over the instances, never summed (N instances would show N times the jobs, users, events)
    for (const gauge of ['omnizen_outbox_depth', 'omnizen_outbox_lag_seconds', 'omnizen_outbox_dead', 'omnizen_queue_jobs', 'omnizen_active_users', 'omnizen_feature_usage']) {
      const uses = exprs.filter((e) => new RegExp(`\\b${gauge}\\b`).test(e));
      expect([gauge, uses.length > 0]).toEqual([gauge, true]);
      const unshared = uses.filter((e) => !new RegExp(`\\b(max|min)(\\s+by\\s*\\([^)]*\\))?\\s*\\(\\s*${gauge}\\b`).test(e));
      expect([gauge, unshared]).toEqual([gauge, []]);
    }
    const exported = metricNames(await scrape());
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
    // prom-client's process metrics are there, without the GC histogram (its gc observer's cost: metrics.ts)
    expect([...exported]).toEqual(expect.arrayContaining(['omnizen_process_process_cpu_seconds_total', 'omnizen_process_nodejs_eventloop_lag_p99_seconds', 'omnizen_process_nodejs_heap_size_used_bytes', 'omnizen_process_nodejs_version_info']));
    expect([...exported].filter((m) => m.includes('gc_duration'))).toEqual([]);
  });

  it('reports each dependency with its latency, and fails readiness when row-level security lets rows through', async () => {
    const ok = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    expect(ok.body).toMatchObject({ status: 'ok', checks: { postgres: 'up', rls: 'up' } });
    // no Stripe or LLM provider configured: none probed
    expect(ok.body.checks).not.toHaveProperty('stripe');
    expect(ok.body.checks).not.toHaveProperty('llm');
    expect(ok.body.latencyMs.postgres).toBeGreaterThanOrEqual(0);
    expect(value(await scrape(), 'omnizen_rls_canary_ok')).toBe(1);

    // a policy that lets every authenticated caller read every organization: the canary sees the rows
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.organizations FOR SELECT TO authenticated USING (true)`);
    try {
      const leaking = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(503);
      expect(leaking.body).toMatchObject({ status: 'unavailable', checks: { postgres: 'up', rls: 'down' } });
      expect(value(await scrape(), 'omnizen_rls_canary_ok')).toBe(0);
      expect(value(await scrape(), 'omnizen_ready')).toBe(0);
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.organizations`);
    }
    // row-level security switched off on a tenant table: the same
    await t.db.admin.query(`ALTER TABLE finance.accounts NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY`);
    try {
      const off = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(503);
      expect(off.body.checks.rls).toBe('down');
    } finally {
      await t.db.admin.query(`ALTER TABLE finance.accounts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`);
    }
    await t.http.get('/health/ready').expect(200); // a passing verdict first: the next one must not keep it
    // the check itself failing while the database answers (here a policy that raises): not ready, not "no leak"
    await t.db.admin.query(`CREATE POLICY canary_broken ON core.organizations FOR SELECT TO authenticated USING ((1 / (SELECT 0)) = 1)`);
    try {
      const broken = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(503);
      expect(broken.body).toMatchObject({ status: 'unavailable', checks: { postgres: 'up', rls: 'down' } });
      expect(value(await scrape(), 'omnizen_rls_canary_ok')).toBe(0);
    } finally {
      await t.db.admin.query(`DROP POLICY canary_broken ON core.organizations`);
    }
    // a leak in a table the probe may read only some columns of (core.api_keys: column grants) is seen too
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.api_keys FOR SELECT TO authenticated USING (true)`);
    const orgId = (await t.db.admin.query(`SELECT id FROM core.organizations LIMIT 1`)).rows[0].id;
    await t.db.admin.query(`INSERT INTO core.api_keys (org_id, name, prefix, secret_hash, scopes, created_by) VALUES ($1, 'canary', 'ozk_live_canary', repeat('0', 64), '{org:read}', NULL)`, [orgId]);
    try {
      expect((await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(503)).body.checks.rls).toBe('down');
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.api_keys`);
    }
    await t.http.get('/health/ready').expect(200);

    // a table a migration holds ACCESS EXCLUSIVE (ALTER TABLE, VACUUM FULL): the check cannot run, soon (its own lock
    // timeout, not the pool's 30 s); no verdict: the last one stands, omnizen_rls_canary_unchecked says it is older
    const locker = await t.db.admin.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE core.memberships IN ACCESS EXCLUSIVE MODE');
      const canary = jest.spyOn(t.app.get(DatabaseService), 'rlsCanary');
      let failure: unknown;
      try {
        const locked = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(200);
        expect(locked.body).toMatchObject({ status: 'ok', checks: { postgres: 'up', rls: 'up' } });
        expect(canary.mock.calls.map((c) => c[1])).toEqual([CANARY_LOCK_TIMEOUT_MS]);
        failure = await (canary.mock.results[0].value as Promise<unknown>).then(() => undefined, (err: unknown) => err);
      } finally {
        canary.mockRestore();
      }
      // ended by a lock timeout (55P03), its own: the pool's is out of this test's reach (POOL_TIMEOUTS)
      expect(sqlState(failure).code).toBe('55P03');
      const during = await scrape();
      expect([value(during, 'omnizen_rls_canary_ok'), value(during, 'omnizen_rls_canary_unchecked'), value(during, 'omnizen_ready')]).toEqual([1, 1, 1]);
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    expect(await t.app.get(RlsCanary).run()).toMatchObject({ ok: true, leaks: [] });
    expect(value(await scrape(), 'omnizen_rls_canary_unchecked')).toBe(0);
  });
});

describe('observability: webhook delivery outcomes, AI usage, budget refusals, active users and feature usage', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  const receivers: WebhookReceiverDouble[] = [];
  // the events are stamped, and the gauges' day taken, by the app's clock at different moments: 12:00 UTC of the day
  const clock = new ManualClock().atMidday();
  beforeAll(async () => {
    // in-process jobs (no Bull): draining the outbox runs the fan-out
    llm = await startOpenAiDouble();
    t = await createTestApp({ METRICS_TOKEN: TOKEN, SECRETS_KEYS: testKeys('k1').env, AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-metrics-0000', REDIS_URL: '' }, { clock });
  });
  afterAll(async () => {
    for (const r of receivers) await r.close();
    await t.close();
    await llm.close();
  });

  it('counts one delivery per outcome: success, failed, gone (410) and timeout', async () => {
    const org = await orgWithRoles(t, 'Hooks Ltd');
    const owner = org.users.owner;
    await onPlan(t, org.orgId, 'professional');
    const acc = await startBooks(t, org.orgId, owner);
    const endpoint = async (answer: ReceiverAnswer) => {
      const r = await startWebhookReceiverDouble(() => answer);
      receivers.push(r);
      return (await t.http.post(`/v1/orgs/${org.orgId}/webhooks/endpoints`).set(owner.auth).send({ url: r.url, eventTypes: ['journal_entry.posted'] }).expect(201)).body.id as string;
    };
    const post = async () => {
      await t.http.post(ledgerUrl(org.orgId, 'journal-entries')).set(owner.auth)
        .send({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10.00' }, { accountId: acc['1100'], credit: '10.00' }] }).expect(201);
      await t.app.get(OutboxRelay).drain();
    };
    const scrape = async () => (await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text;
    const before = await scrape();
    // the receivers that answer, with the default timeout (15 s): a loaded machine cannot make an answer a timeout
    const answering = [await endpoint({ status: 204 }), await endpoint({ status: 500, body: 'boom' }), await endpoint({ status: 410, body: 'gone' })];
    await post();
    expect(await t.app.get(WebhookDelivery).deliverDue()).toBe(3);
    // then a receiver that never answers, alone: its request is cut once it is in (the injected timer fires)
    for (const id of answering) await t.http.patch(`/v1/orgs/${org.orgId}/webhooks/endpoints/${id}`).set(owner.auth).send({ enabled: false }).expect(200);
    await endpoint('hang');
    await post();
    const expiries: (() => void)[] = [];
    const timer = jest.spyOn(t.app.get(CallTimer), 'start').mockImplementation((_ms, expire) => {
      expiries.push(expire);
      return () => undefined;
    });
    try {
      const delivering = t.app.get(WebhookDelivery).deliverDue();
      await receivers[3].waitFor(1);
      for (const expire of expiries) expire();
      expect(await delivering).toBe(1);
    } finally {
      timer.mockRestore();
    }
    const attempts = await t.db.admin.query(`SELECT succeeded, status_code, error FROM core.webhook_attempts WHERE org_id = $1 ORDER BY status_code NULLS LAST`, [org.orgId]);
    const after = await scrape();
    const delta = (series: string) => (samples(after).get(series) ?? 0) - (samples(before).get(series) ?? 0);
    // one attempt per endpoint, each with its outcome in the delivery log; the counters agree
    expect(attempts.rows).toEqual([
      { succeeded: true, status_code: 204, error: null },
      { succeeded: false, status_code: 410, error: null },
      { succeeded: false, status_code: 500, error: null },
      { succeeded: false, status_code: null, error: `timed out after ${t.config.webhooks.timeoutMs} ms` },
    ]);
    expect(receivers.map((r) => r.received.length)).toEqual([1, 1, 1, 1]);
    expect(['success', 'failed', 'gone', 'timeout'].map((o) => [o, delta(`omnizen_webhook_deliveries_total{outcome="${o}"}`)]))
      .toEqual([['success', 1], ['failed', 1], ['gone', 1], ['timeout', 1]]);
  });

  it('counts an agent run\'s tokens and cost by organization, agent and model, a budget refusal, and the roll-up\'s usage gauges', async () => {
    const org = await orgWithRoles(t, 'Usage Ltd');
    const owner = org.users.owner;
    await onPlan(t, org.orgId, 'professional');
    const agent = (await t.http.post(`/v1/orgs/${org.orgId}/agents`).set(owner.auth)
      .send({ name: 'Counter', type: 'assistant', modelId: 'gpt-4o', maxOutputTokens: 100, maxSteps: 1 }).expect(201)).body;
    llm.answerWith(() => ({ kind: 'text', content: 'counted', usage: { prompt: 120, completion: 30, cached: 20 } }));
    const scrape = async () => samples((await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text);
    const before = await scrape();
    const delta = (after: Map<string, number>, series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);

    const run = (await t.http.post(`/v1/orgs/${org.orgId}/agents/${agent.id}/runs`).set(owner.auth).send({ messages: [{ role: 'user', content: 'go' }] }).expect(200)).body;
    expect(run).toMatchObject({ status: 'succeeded', usage: { inputTokens: 100, cachedInputTokens: 20, outputTokens: 30 } });
    // a budget smaller than a call's worst case: the next run is refused before any provider call
    await t.http.post(`/v1/orgs/${org.orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '0.0001' }).expect(201);
    const calls = llm.requests.length;
    await t.http.post(`/v1/orgs/${org.orgId}/agents/${agent.id}/runs`).set(owner.auth).send({ messages: [{ role: 'user', content: 'go' }] }).expect(402);
    expect(llm.requests).toHaveLength(calls);

    // usage events of three people today (one twice) and of a feature; then the roll-up the job runs every 10 minutes
    const events = [{ name: 'report.exported', userId: 'person-1' }, { name: 'report.exported', userId: 'person-2' }, { name: 'report.exported', userId: 'person-1' }, { name: 'invoice.viewed', userId: 'person-3' }];
    expect((await t.http.post(`/v1/orgs/${org.orgId}/analytics/events`).set(owner.auth).send({ events }).expect(200)).body).toEqual({ accepted: 4, rejected: [] });
    await t.app.get(AnalyticsMaintenanceJob).rollUp();
    // today is the app clock's UTC day, as the roll-up takes it (not PostgreSQL's now(), read at another moment)
    const today = new Date(clock.now() - (clock.now() % 86_400_000));
    const { rows: [people] } = await t.db.admin.query(
      `SELECT count(DISTINCT user_id)::int AS n FROM core.analytics_events WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $2::timestamptz + interval '1 day'`, [org.orgId, today]);

    const after = await scrape();
    const labels = `org="${org.orgId}",agent="${agent.id}",model="gpt-4o"`;
    expect(['input', 'cached_input', 'output'].map((type) => [type, delta(after, `omnizen_ai_tokens_total{${labels},type="${type}"}`)]))
      .toEqual([['input', 100], ['cached_input', 20], ['output', 30]]);
    expect(delta(after, `omnizen_ai_cost_usd_total{${labels}}`)).toBeCloseTo(Number(run.cost), 10);
    expect(Number(run.cost)).toBeGreaterThan(0);
    expect(delta(after, 'omnizen_ai_budget_refusals_total')).toBe(1);
    // person-1..3, plus whoever else acted in the organization today (the server's own events): counted from the events
    expect(people.n).toBeGreaterThanOrEqual(3);
    expect(after.get(`omnizen_active_users{org="${org.orgId}",window="day"}`)).toBe(people.n);
    expect(after.get(`omnizen_active_users{org="${org.orgId}",window="month"}`)).toBe(people.n);
    expect(after.get('omnizen_feature_usage{plan="professional",feature="report.exported"}')).toBe(3);
    expect(after.get('omnizen_feature_usage{plan="professional",feature="invoice.viewed"}')).toBe(1);
  });
});

describe('observability without METRICS_TOKEN', () => {
  it('serves no /metrics and times no statements without METRICS_TOKEN; readiness answers its status only', async () => {
    const t = await createTestApp({ REDIS_URL: '' });
    try {
      const res = await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(404);
      expect(res.body.error.message).toMatch(/METRICS_TOKEN is not configured/);
      expect(t.app.get(Metrics).queryRecorder).toBeUndefined();
      const user = await registerUser(t, 'untimed');
      await createOrg(t, user, 'Untimed Ltd');
      expect(await t.app.get(Metrics).dbQueryDuration.get()).toMatchObject({ values: [] });
      // no token configured: nobody reads the checks
      expect((await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(200)).body).toEqual({ status: 'ok' });
    } finally {
      await t.close();
    }
  });
});

describe('observability: readiness reports Stripe and the LLM provider when configured (to the METRICS_TOKEN bearer)', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let llm: OpenAiDouble;
  beforeAll(async () => {
    stripe = await startStripeDouble();
    llm = await startOpenAiDouble();
    t = await createTestApp({ ...stripe.env, STRIPE_SECRET_KEY: 'sk_test_double', AI_BASE_URL: llm.url, AI_API_KEY: 'sk-llm-double-key', REDIS_URL: '', METRICS_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
    await llm.close();
  });

  it('probes the LLM provider with one listing of its models (no tokens spent)', async () => {
    llm.requests.splice(0);
    const res = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    expect(res.body).toMatchObject({ status: 'ok', checks: { llm: 'up' } });
    expect(res.body.latencyMs.llm).toBeGreaterThanOrEqual(0);
    expect(llm.requests.map((r) => [r.path, r.authorization])).toEqual([['/v1/models', 'Bearer sk-llm-double-key']]);
    expect(JSON.stringify(res.body)).not.toContain('sk-llm-double-key');
  });

  it('probes Stripe with one cheap read, reports it with its latency, and stays ready when Stripe is down', async () => {
    stripe.requests.splice(0);
    const up = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    expect(up.body).toMatchObject({ status: 'ok', checks: { postgres: 'up', rls: 'up', stripe: 'up' } });
    expect(up.body.latencyMs.stripe).toBeGreaterThanOrEqual(0);
    expect(stripe.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/balance']);
    expect(stripe.requests[0].authorization).toBe('Bearer sk_test_double');
    expect(JSON.stringify(up.body)).not.toContain('sk_test_double');

    stripe.failNext(500, 'Stripe is having a bad day');
    const down = await t.http.get('/health/ready').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    expect(down.body).toMatchObject({ status: 'ok', checks: { postgres: 'up', rls: 'up', stripe: 'down' } });
    // one attempt, no retry
    expect(stripe.requests).toHaveLength(2);
  });
});


describe('observability: the repository operation a statement is timed under', () => {
  const sqlFrames = (dir: string, ext: string) => [
    'Error',
    `    at callerOperation (${dir}/platform/database/sql.${ext}:120:17)`,
    `    at templateOperation (${dir}/platform/database/sql.${ext}:143:33)`,
    `    at ConnectionDb.query (${dir}/platform/database/sql.${ext}:266:57)`,
    `    at ConnectionDb.$queryRaw (${dir}/platform/database/sql.${ext}:285:25)`,
  ];

  it('names the first function outside sql.ts by its file and function, from the dev loader\'s or a build\'s stack', () => {
    // the dev loader (swc): file URLs of the .ts sources; an object literal's method is "Object.<name>"
    expect(operationOf([...sqlFrames('file:///work/app/src', 'ts'),
      '    at Object.postBatch (file:///work/app/src/modules/ledger/ledger.repository.ts:441:30)',
      '    at async JournalService.postBatch (file:///work/app/src/modules/ledger/journal.service.ts:139:22)'].join('\n')))
      .toBe('ledger.repository.postBatch');
    // a tsc build: paths of dist/*.js; a class method, "async", an alias
    expect(operationOf([...sqlFrames('/app/dist/src', 'js'),
      '    at async OutboxRepository.claimDue [as claim] (/app/dist/src/platform/queue/outbox.repository.js:57:9)',
      '    at async OutboxRelay.drain (/app/dist/src/platform/queue/outbox-relay.service.js:80:5)'].join('\n')))
      .toBe('outbox.repository.claimDue');
  });

  it('names an anonymous function (a callback) by the method of its file further down the stack, else "anonymous"', () => {
    const frames = [...sqlFrames('file:///app/src', 'ts'),
      '    at file:///app/src/modules/ledger/ledger.repository.ts:450:12',
      '    at Array.map (<anonymous>)',
      '    at Object.postBatch (file:///app/src/modules/ledger/ledger.repository.ts:449:40)'];
    expect(operationOf(frames.join('\n'))).toBe('ledger.repository.postBatch');
    // awaited further down: a transaction's callback in a service method
    expect(operationOf([...sqlFrames('/app/dist/src', 'js'),
      '    at /app/dist/src/modules/webhooks/webhook-delivery.service.js:175:60',
      '    at /app/dist/src/platform/database/privileged.service.js:62:16',
      '    at async SqlPool.transaction (/app/dist/src/platform/database/sql.js:410:22)',
      '    at async WebhookDelivery.deliverDue (/app/dist/src/modules/webhooks/webhook-delivery.service.js:175:25)'].join('\n')))
      .toBe('webhook-delivery.service.deliverDue');
    expect(operationOf([...sqlFrames('file:///app/src', 'ts'), '    at file:///app/src/modules/x/x.repository.ts:3:4'].join('\n'))).toBe('x.repository.anonymous');
    expect(operationOf(sqlFrames('file:///app/src', 'ts').join('\n'))).toBe('other');
  });
});
