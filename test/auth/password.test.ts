import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createTestApp, type TestApp } from '../support/app.js';
import { uniqueEmail } from '../support/factories.js';

const PASSWORD = 'correct horse battery';
// Lockouts must expire within the test; waiting out a 1 s lock is the behaviour under test, not a timing assertion.
const LIMITS = { LOGIN_MAX_FAILURES: '3', LOGIN_LOCKOUT_SECONDS: '1' };

async function register(t: TestApp, email = uniqueEmail('pw')) {
  await t.http.post('/v1/auth/register').send({ email, password: PASSWORD, name: 'Pat' }).expect(201);
  return email;
}

const login = (t: TestApp, email: string, password: string, ip = '198.51.100.1') =>
  t.http.post('/v1/auth/login').set('X-Forwarded-For', ip).send({ email, password });

/** Locks the account, proves the lock holds even for the right password, then that it expires. */
async function lockoutExpires(t: TestApp, ip: string) {
  const email = await register(t);
  for (let i = 0; i < 3; i++) await login(t, email, 'wrong password!', ip).expect(401);
  const locked = await login(t, email, PASSWORD, ip).expect(429);
  expect(locked.body.error).toMatchObject({ code: 'auth.locked', message: expect.stringMatching(/too many failed logins for this account/) });
  await sleep(2100);
  await login(t, email, PASSWORD, ip).expect(200);
  return email;
}

describe('register and password login (in-memory throttle)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ ...LIMITS, REDIS_URL: undefined });
  });
  afterAll(() => t.close());

  it('registers a user with a personal organization, returns tokens, and audits it', async () => {
    const email = uniqueEmail('ada');
    const res = await t.http.post('/v1/auth/register').send({ email: email.toUpperCase(), password: PASSWORD, name: 'Ada' }).expect(201);
    expect(res.body).toMatchObject({
      tokenType: 'Bearer', accessToken: expect.any(String), refreshToken: expect.any(String),
      user: { email, name: 'Ada', accountType: 'personal' }, personalOrgId: expect.any(String),
    });
    const { rows } = await t.db.admin.query(
      `SELECT action, principal_type, actor_id FROM core.audit_logs WHERE org_id = $1 AND action = 'user.registered'`, [res.body.personalOrgId]);
    expect(rows).toEqual([{ action: 'user.registered', principal_type: 'user', actor_id: res.body.user.id }]);
  });

  it('answers 409 to a duplicate email, whatever its case', async () => {
    const email = await register(t);
    const res = await t.http.post('/v1/auth/register').send({ email: email.toUpperCase(), password: PASSWORD }).expect(409);
    expect(res.body.error).toMatchObject({ code: 'auth.email_taken', message: expect.stringContaining(email) });
  });

  it('lets only one of two concurrent registrations of an email win; the loser cannot set the password', async () => {
    const email = uniqueEmail('race');
    const bodies = [{ email, password: PASSWORD }, { email, password: 'another long password' }];
    const results = await Promise.all(bodies.map((b) => t.http.post('/v1/auth/register').send(b)));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    const winner = results.findIndex((r) => r.status === 201);
    await login(t, email, bodies[1 - winner].password, '198.51.100.50').expect(401);
    await login(t, email, bodies[winner].password, '198.51.100.50').expect(200);
  });

  it('answers 400 naming every bad field, and rejects unknown ones', async () => {
    const res = await t.http.post('/v1/auth/register').send({ email: 'not-an-email', password: 'short', admin: true }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { field: string }) => d.field).sort()).toEqual(['admin', 'email', 'password']);
  });

  it('logs in with the right password and refuses a wrong one or an unknown email with the same 401', async () => {
    const email = await register(t);
    const ok = await login(t, email, PASSWORD, '198.51.100.10').expect(200);
    expect(ok.body.user.email).toBe(email);
    await t.http.get('/v1/orgs').set('Authorization', `Bearer ${ok.body.accessToken}`).expect(200);
    const wrong = await login(t, email, 'wrong password!', '198.51.100.10').expect(401);
    const unknown = await login(t, uniqueEmail('nobody'), PASSWORD, '198.51.100.10').expect(401);
    expect(wrong.body.error.message).toBe('email or password is incorrect');
    expect(unknown.body.error.message).toBe(wrong.body.error.message);
  });

  it('locks an account after LOGIN_MAX_FAILURES failures, and the lock expires', async () => {
    await lockoutExpires(t, '198.51.100.20');
  });

  it('limits failures per IP address across accounts (4 × LOGIN_MAX_FAILURES), leaving other addresses alone', async () => {
    const ip = '198.51.100.30';
    for (let i = 0; i < 12; i++) await login(t, uniqueEmail('spray'), 'wrong password!', ip).expect(401);
    const email = await register(t);
    const blocked = await login(t, email, PASSWORD, ip).expect(429);
    expect(blocked.body.error.message).toMatch(/for this address/);
    await login(t, email, PASSWORD, '198.51.100.31').expect(200);
  });
});

describe('password login lockout through Redis', () => {
  let t: TestApp;
  let redis: Redis;
  const itRedis = process.env.REDIS_URL ? it : it.skip;

  beforeAll(async () => {
    if (!process.env.REDIS_URL) return;
    t = await createTestApp(LIMITS);
    redis = new Redis(process.env.REDIS_URL);
  });
  afterAll(async () => {
    if (!process.env.REDIS_URL) return;
    redis.disconnect();
    await t.close();
  });

  itRedis('keeps the failure counter in Redis (shared by every instance), locks, and expires', async () => {
    const email = await register(t);
    const key = `${t.config.redisPrefix}:login:acct:${email}`;
    for (let i = 0; i < 3; i++) await login(t, email, 'wrong password!', '198.51.100.40').expect(401);
    expect(await redis.get(key)).toBe('3');
    await login(t, email, PASSWORD, '198.51.100.40').expect(429);
    await sleep(2100);
    expect(await redis.get(key)).toBeNull();
    await login(t, email, PASSWORD, '198.51.100.40').expect(200);
  });

  itRedis('honours a lock another instance wrote to Redis', async () => {
    const email = await register(t);
    // what another API instance leaves behind after 3 failures
    await redis.set(`${t.config.redisPrefix}:login:acct:${email}`, '3', 'EX', 60);
    const res = await login(t, email, PASSWORD, '198.51.100.41').expect(429);
    expect(res.body.error).toMatchObject({ code: 'auth.locked', details: { retryAfterSeconds: expect.any(Number) } });
  });
});
