import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, onPlan, registerUser, uniqueEmail, type TestUser } from '../support/factories.js';
import { OrgRateLimits, RateLimiter } from '../../src/platform/http/rate-limit.js';
import { httpAdapter } from '../../src/bootstrap.js';
import { loadConfig } from '../../src/platform/config/config.js';

/** Every key the app holds in Redis (under its REDIS_PREFIX). */
async function redisKeys(t: TestApp): Promise<string[]> {
  const client = new Redis(t.config.redisUrl!);
  try {
    const all: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `${t.config.redisPrefix}:*`, 'COUNT', 1000);
      all.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return all;
  } finally {
    client.disconnect();
  }
}

/** Requests per minute: per organization (plan or override), per API key, per client IP on public routes; health exempt. */
// the full 1,000-request race against Redis (shared by every instance); a shorter one in memory
describe.each([
  ['Redis', { RATE_LIMIT_ANONYMOUS_PER_MINUTE: '3', RATE_LIMIT_PRINCIPAL_PER_MINUTE: '3', RATE_LIMIT_REFUSED_PER_MINUTE: '3' } as Record<string, string | undefined>, 1000],
  ['in-memory (no REDIS_URL)', { RATE_LIMIT_ANONYMOUS_PER_MINUTE: '3', RATE_LIMIT_PRINCIPAL_PER_MINUTE: '3', RATE_LIMIT_REFUSED_PER_MINUTE: '3', REDIS_URL: undefined }, 200],
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
    // listening with a backlog for every connection: past Node's default 511 the kernel drops the connections it has no
    // room for, and on a loaded machine one dropped long enough is reset (ECONNRESET, not an answer of the limiter)
    const server = t.app.getHttpServer();
    if (!server.address()) await new Promise<void>((listening) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2 * concurrent }, listening));
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

  it('limits signed-in routes outside any organization\'s transaction per user, without counting tenant routes twice', async () => {
    // each signs up from an address of its own (X-Forwarded-For from a loopback proxy is trusted): 127.0.0.1's
    // budget on the public routes (3 a minute here) is the next test's
    const signUp = async (prefix: string, ip: string) => {
      const credentials = { email: uniqueEmail(prefix), password: 'correct horse battery' };
      await t.http.post('/v1/auth/register').set('X-Forwarded-For', ip).send({ ...credentials, name: prefix }).expect(202);
      const res = await t.http.post('/v1/auth/login').set('X-Forwarded-For', ip).send(credentials).expect(200);
      return { id: res.body.user.id as string, email: credentials.email, auth: { Authorization: `Bearer ${res.body.accessToken}` } };
    };
    const user = await signUp('principal', '198.51.100.7');
    const other = await signUp('neighbour', '198.51.100.8');
    const identities = () => t.http.get('/v1/auth/identities').set(user.auth);
    for (let remaining = 2; remaining >= 0; remaining--) {
      const ok = await identities().expect(200);
      expect(ok.body).toEqual(expect.arrayContaining([expect.objectContaining({ provider: 'password' })]));
      expect([ok.headers['ratelimit-limit'], ok.headers['ratelimit-remaining']]).toEqual(['3', String(remaining)]);
    }
    const refused = await identities().expect(429);
    expect(refused.body).toMatchObject({ error: { code: 'rate_limited', details: { limit: 3, windowSeconds: 60 } } });
    expect(refused.body.error.message).toContain('this user');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    // the same bucket for every route of the kind: DELETE /v1/me is refused before it deletes anything
    const deletion = await t.http.delete('/v1/me').set(user.auth).send({ password: 'correct horse battery' }).expect(429);
    expect(deletion.body.error.code).toBe('rate_limited');
    const { rows } = await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [user.id]);
    expect(rows).toEqual([{ email: user.email }]);
    // another user has a bucket of their own
    expect((await t.http.get('/v1/auth/identities').set(other.auth).expect(200)).headers['ratelimit-remaining']).toBe('2');
    // the user's routes in their personal organization's transaction (logout, /v1/me/notifications) count against
    // that organization's plan limit, once: not against the per-user bucket, which is spent
    const notices = await t.http.get('/v1/me/notifications').set(user.auth).expect(200);
    expect(notices.headers['ratelimit-limit']).toBe('600');
    const logout = await t.http.post('/v1/auth/logout').set(user.auth).expect(204);
    expect(logout.headers['ratelimit-limit']).toBe('600');
    expect(Number(logout.headers['ratelimit-remaining'])).toBe(Number(notices.headers['ratelimit-remaining']) - 1);
  });

  it('answers a caller the database keeps refusing (a made-up API key, per IP; a non-member, per user) with 429 and no transaction', async () => {
    const orgId = await createOrg(t, owner, 'Refusing');
    const madeUp = `ozk_live_${randomBytes(16).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    const asMadeUp = (ip: string) => t.http.get(`/v1/orgs/${orgId}`).set('X-Forwarded-For', ip).set({ Authorization: `Bearer ${madeUp}` });
    const transactions = jest.spyOn(t.app.get(DatabaseService), 'tenant');
    try {
      for (let i = 0; i < 3; i++) expect((await asMadeUp('203.0.113.5')).status).toBe(401);
      expect(transactions).toHaveBeenCalledTimes(3);
      const refused = await asMadeUp('203.0.113.5');
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ error: { code: 'rate_limited', details: { limit: 3, windowSeconds: 60 } } });
      expect(refused.body.error.message).toContain('this client address was refused 3 times');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(transactions).toHaveBeenCalledTimes(3); // the fourth took no connection
      // the address's buckets name it by its keyed hash (`refused:ip:<hash>`), in this process and in Redis (docs/privacy.md)
      const limiter = t.app.get(RateLimiter);
      const bucket = `refused:${limiter.addressBucket('203.0.113.5')}`;
      expect(bucket).toMatch(/^refused:ip:[\w-]{43}$/);
      expect([...(limiter as unknown as { refusedUntil: Map<string, unknown> }).refusedUntil.keys()]).toContain(bucket);
      if (t.config.redisUrl) {
        const keys = await redisKeys(t);
        expect(keys).toContain(`${t.config.redisPrefix}:rl:3:${bucket}`);
        expect(keys.filter((k) => k.includes('203.0.113.5'))).toEqual([]);
      }
      // another address still reaches the database (and is refused by it)
      expect((await asMadeUp('203.0.113.6')).status).toBe(401);

      // a signed-in user probing organizations they are no member of: counted per user
      // (signed up from an address of its own: 127.0.0.1's public-route budget is the next test's)
      const credentials = { email: uniqueEmail('prober'), password: 'correct horse battery' };
      await t.http.post('/v1/auth/register').set('X-Forwarded-For', '198.51.100.9').send({ ...credentials, name: 'Prober' }).expect(202);
      const token = (await t.http.post('/v1/auth/login').set('X-Forwarded-For', '198.51.100.9').send(credentials).expect(200)).body.accessToken;
      const probe = () => t.http.get(`/v1/orgs/${orgId}`).set({ Authorization: `Bearer ${token}` });
      for (let i = 0; i < 3; i++) expect((await probe()).status).toBe(404);
      const stopped = await probe();
      expect(stopped.status).toBe(429);
      expect(stopped.body.error.message).toContain('this user was refused 3 times');
      expect(transactions).toHaveBeenCalledTimes(7);
      // the members of the organization are not affected, nor is a 404 inside the organization counted
      for (let i = 0; i < 4; i++) expect((await t.http.get(`/v1/orgs/${orgId}/workspaces/${randomUUID()}`).set(owner.auth)).status).toBe(404);
      expect((await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth)).status).toBe(200);
    } finally {
      transactions.mockRestore();
    }
  });

  it('lets a key the database verified past the refusals of made-up keys from its network (an IPv6 /64), until it is revoked', async () => {
    const orgId = await createOrg(t, owner, 'Shared address');
    await onEnterprisePlan(t, orgId);
    const key = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'integration', scopes: ['org:read'] }).expect(201)).body;
    const madeUp = () => `ozk_live_${randomBytes(16).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    const from = (ip: string, secret: string) => t.http.get(`/v1/orgs/${orgId}`).set('X-Forwarded-For', ip).set({ Authorization: `Bearer ${secret}` });
    expect((await from('2001:db8:77:1::10', key.secret).expect(200)).body.id).toBe(orgId);
    // made-up keys from three addresses of one /64 (a host's usual share): one bucket
    for (const host of ['a', 'b', 'c']) expect((await from(`2001:db8:77:1::${host}`, madeUp()).expect(401)).body.error.code).toBe('auth.unauthorized');
    const refused = await from('2001:db8:77:1:ffff::1', madeUp()).expect(429);
    expect(refused.body.error.message).toContain('this client address was refused 3 times');
    expect((await from('2001:db8:77:2::a', madeUp()).expect(401)).body.error.code).toBe('auth.unauthorized'); // the next /64
    // the key the database let in is not held up by them
    expect((await from('2001:db8:77:1::10', key.secret).expect(200)).body.id).toBe(orgId);
    // revoked, the database refuses it from the next request on; then it is pre-checked like any other key
    await t.http.post(`/v1/orgs/${orgId}/api-keys/${key.id}/revoke`).set(owner.auth).expect(200);
    expect((await from('2001:db8:77:1::10', key.secret).expect(401)).body.error.code).toBe('auth.unauthorized');
    expect((await from('2001:db8:77:1::10', key.secret).expect(429)).body.error.code).toBe('rate_limited');
  });

  it('counts a stale X-Workspace-Id against the organization\'s limit, not as a refusal of the user', async () => {
    const orgId = await createOrg(t, owner, 'Stale workspace');
    const other = await createOrg(t, owner, 'Other');
    await override(orgId, 4);
    await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).expect(200);
    const stale = randomUUID();
    for (let i = 0; i < 3; i++) {
      const missed = await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).set('X-Workspace-Id', stale).expect(404);
      expect(missed.body.error.code).toBe('workspace.not_found');
    }
    const spent = await t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).set('X-Workspace-Id', stale).expect(429);
    expect(spent.body.error.message).toContain('this organization allows 4 requests per minute');
    // the user's other organizations are not affected
    expect((await t.http.get(`/v1/orgs/${other}`).set(owner.auth).expect(200)).body.id).toBe(other);
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
    // IPv6 clients per /64
    const loginFrom = (ip: string) => t.http.post('/v1/auth/login').set('X-Forwarded-For', ip).send({ email: 'nobody6@example.test', password: 'wrong password 1' });
    for (const host of ['1', '2', '3']) expect((await loginFrom(`2001:db8:5:1::${host}`).expect(401)).headers['ratelimit-limit']).toBe('3');
    expect((await loginFrom('2001:db8:5:1:abcd::9').expect(429)).body.error.code).toBe('rate_limited');
    for (let i = 0; i < 10; i++) {
      const health = await t.http.get('/health').expect(200);
      expect(health.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});

describe('TRUST_PROXY', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen' };
  const clientOf = async (trust: string | undefined, remoteAddress: string): Promise<string> => {
    const fastify = httpAdapter(loadConfig({ ...base, TRUST_PROXY: trust })).getInstance();
    fastify.get('/ip', async (req) => ({ ip: req.ip }));
    try {
      const res = await fastify.inject({ url: '/ip', remoteAddress, headers: { 'x-forwarded-for': '203.0.113.50' } });
      return res.json().ip;
    } finally {
      await fastify.close();
    }
  };

  it('takes the client address from X-Forwarded-For only when the peer is a proxy it names (default: loopback)', async () => {
    expect(await clientOf(undefined, '127.0.0.1')).toBe('203.0.113.50');
    expect(await clientOf(undefined, '10.0.0.5')).toBe('10.0.0.5');
    expect(await clientOf('10.0.0.0/8', '10.0.0.5')).toBe('203.0.113.50');
    expect(await clientOf('10.0.0.0/8', '127.0.0.1')).toBe('127.0.0.1');
    expect(await clientOf('false', '127.0.0.1')).toBe('127.0.0.1');
  });
});
