import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { OrgRateLimits, RateLimiter } from '../../src/platform/http/rate-limit.js';

/** Requests per minute: per organization (plan or override), per API key, per client IP on public routes; health exempt. */
// the full 1,000-request race against Redis (shared by every instance); a shorter one in memory
describe.each([
  ['Redis', { RATE_LIMIT_ANONYMOUS_PER_MINUTE: '3' } as Record<string, string | undefined>, 1000],
  ['in-memory (no REDIS_URL)', { RATE_LIMIT_ANONYMOUS_PER_MINUTE: '3', REDIS_URL: undefined }, 200],
])('rate limits (%s)', (_, env, concurrent) => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp(env);
    owner = await registerUser(t, 'limited');
  });
  afterAll(() => t.close());

  const override = async (orgId: string, perMinute: number) => {
    await t.db.admin.query(
      `INSERT INTO hub.rate_limit_overrides (org_id, requests_per_minute, reason) VALUES ($1, $2, 'test')
       ON CONFLICT (org_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute`, [orgId, perMinute]);
    t.app.get(OrgRateLimits).clear();
  };

  it('uses Redis exactly when REDIS_URL is set', () => {
    expect(Boolean(t.config.redisUrl)).toBe(!('REDIS_URL' in env));
    expect(t.app.get(RateLimiter).enabled).toBe(true);
  });

  it(`lets exactly 5 of ${concurrent} concurrent requests through a limit of 5, with the headers on every answer`, async () => {
    const orgId = await createOrg(t, owner, 'Race');
    await override(orgId, 5);
    const answers = await Promise.all(Array.from({ length: concurrent }, () => t.http.get(`/v1/orgs/${orgId}`).set(owner.auth)));
    const ok = answers.filter((r) => r.status === 200);
    const limited = answers.filter((r) => r.status === 429);
    expect(ok).toHaveLength(5);
    expect(limited).toHaveLength(concurrent - 5);
    for (const r of answers) {
      expect(r.headers['ratelimit-limit']).toBe('5');
      expect(Number(r.headers['ratelimit-reset'])).toBeGreaterThan(0);
      expect(Number(r.headers['ratelimit-reset'])).toBeLessThanOrEqual(60);
    }
    expect(ok.map((r) => Number(r.headers['ratelimit-remaining'])).sort()).toEqual([0, 1, 2, 3, 4]);
    const l = limited[0];
    expect(l.headers['ratelimit-remaining']).toBe('0');
    expect(Number(l.headers['retry-after'])).toBeGreaterThan(0);
    expect(l.body).toMatchObject({ error: { code: 'rate_limited', details: { limit: 5, windowSeconds: 60 } } });
    expect(l.body.error.message).toContain('5 requests per minute');
    expect(typeof l.body.requestId).toBe('string');
  });

  it('takes the limit from the plan (starter 600, professional 3,000, enterprise 10,000) and an override over it', async () => {
    const limitOf = async (orgId: string) => (await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).expect(200)).headers['ratelimit-limit'];
    const starter = await createOrg(t, owner, 'Starter');
    const professional = await createOrg(t, owner, 'Professional');
    const enterprise = await createOrg(t, owner, 'Enterprise');
    await onPlan(t, professional, 'professional');
    await onEnterprisePlan(t, enterprise);
    t.app.get(OrgRateLimits).clear();
    expect(await limitOf(starter)).toBe('600');
    expect(await limitOf(professional)).toBe('3000');
    expect(await limitOf(enterprise)).toBe('10000');
    await override(professional, 42);
    expect(await limitOf(professional)).toBe('42');
    const { rows } = await t.db.admin.query(`SELECT plan_code, limit_value FROM hub.plan_features WHERE app_id = 'omnizen' AND feature = 'api_requests_per_minute' ORDER BY limit_value, plan_code`);
    expect(rows.map((r) => [r.plan_code, Number(r.limit_value)])).toEqual([['starter', 600], ['professional', 3000], ['custom', 10000], ['enterprise', 10000]]);
  });

  it('counts each API key apart from the organization\'s people', async () => {
    const orgId = await createOrg(t, owner, 'Keyed');
    await onEnterprisePlan(t, orgId);
    const key = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'k', scopes: ['org:read'] }).expect(201)).body;
    await override(orgId, 2);
    const asKey = () => t.http.get(`/v1/orgs/${orgId}`).set({ Authorization: `Bearer ${key.secret}` });
    expect((await asKey()).status).toBe(200);
    expect((await asKey()).status).toBe(200);
    const third = await asKey();
    expect(third.status).toBe(429);
    expect(third.body.error.message).toContain('this API key');
    // the people of the organization still have their own budget
    expect((await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth)).status).toBe(200);
  });

  it('limits public routes per client IP and leaves the health probes alone', async () => {
    const login = () => t.http.post('/v1/auth/login').send({ email: 'nobody@example.test', password: 'wrong password 1' });
    const first = await login();
    expect(first.status).toBe(401);
    expect(first.headers['ratelimit-limit']).toBe('3');
    await login();
    await login();
    const fourth = await login();
    expect(fourth.status).toBe(429);
    expect(fourth.body.error.code).toBe('rate_limited');
    expect(fourth.headers['retry-after']).toBeDefined();
    for (let i = 0; i < 10; i++) {
      const health = await t.http.get('/health').expect(200);
      expect(health.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});
