import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';

const USER_REQUIRED = { code: 'auth.user_required', message: 'this route acts for a signed-in user; a service key or API key cannot call it' };

/**
 * A service-role key on the routes that act for a signed-in person: 403 `auth.user_required`, one kind of route at a time.
 * @UserRoute and @UserPreflightRoute refuse it in their interceptor, before the handler and before the body is validated
 * (src/platform/http/tenant.ts, TenantTransactionInterceptor.prepare); the few user routes with neither (they hold no
 * tenant transaction) check it in their service. Nothing is written for the key.
 */
describe('a service key on the routes of a signed-in person', () => {
  let t: TestApp;
  let serviceAuth: { Authorization: string };

  beforeAll(async () => {
    t = await createTestApp();
    const key = jwt.sign({ role: 'service_role', service: 'user-required' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
  });
  afterAll(() => t.close());

  const nothingAudited = async () =>
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE actor_id = 'service:user-required'`)).rows).toEqual([{ n: 0 }]);

  it('@UserRoute (organizations, sessions, integrations, notifications, invitations, entitlements): refused before the handler, even with no body', async () => {
    const refused = await Promise.all([
      t.http.get('/v1/orgs').set(serviceAuth),
      t.http.post('/v1/orgs').set(serviceAuth).send({}),
      t.http.get('/v1/auth/sessions').set(serviceAuth),
      t.http.post('/v1/auth/app-token').set(serviceAuth).send({}),
      t.http.get('/v1/me/integrations').set(serviceAuth),
      t.http.get('/v1/me/provider').set(serviceAuth),
      t.http.get('/v1/me/notifications').set(serviceAuth),
      t.http.get('/v1/me/notification-preferences').set(serviceAuth),
      t.http.post('/v1/invitations/accept').set(serviceAuth).send({}),
      t.http.get('/v1/me/entitlements?app=omnizen').set(serviceAuth),
    ]);
    expect(refused.map((r) => [r.status, r.body.error])).toEqual(refused.map(() => [403, USER_REQUIRED]));
    await nothingAudited();
  });

  it('@UserPreflightRoute (a person\'s checkout and portal): refused by the preflight, before the body is validated', async () => {
    const refused = await Promise.all([
      t.http.post('/v1/me/billing/checkout').set(serviceAuth).send({}),
      t.http.post('/v1/me/billing/portal').set(serviceAuth).send({ returnPath: 42 }),
    ]);
    expect(refused.map((r) => [r.status, r.body.error])).toEqual(refused.map(() => [403, USER_REQUIRED]));
    await nothingAudited();
  });

  it('the identity routes, which open no tenant transaction, check it in their service', async () => {
    const refused = await Promise.all([
      t.http.get('/v1/auth/identities').set(serviceAuth),
      t.http.post('/v1/auth/email-verification').set(serviceAuth),
    ]);
    expect(refused.map((r) => [r.status, r.body.error?.code])).toEqual(refused.map(() => [403, 'auth.user_required']));
    await nothingAudited();
  });

  it('the e-mail change (checked in its service, after the body): a valid body still gets 403 auth.user_required, declared so', async () => {
    const requests = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.email_change_requests`)).rows[0].n as number;
    const before = await requests();
    const res = await t.http.post('/v1/auth/email-change').set(serviceAuth).send({ newEmail: 'new.address@example.com', password: 'correct horse battery' });
    expect([res.status, res.body.error]).toEqual([403, { code: 'auth.user_required', message: 'this route acts for a signed-in user; a service key cannot call it' }]);
    expect(await requests()).toBe(before);
    await nothingAudited();
    const op = (await t.http.get('/docs-json').expect(200)).body.paths['/v1/auth/email-change'].post;
    expect(op['x-error-codes'].filter((c: { code: string }) => c.code === 'auth.user_required')).toEqual([expect.objectContaining({ code: 'auth.user_required', status: 403 })]);
    expect(Object.keys(op.responses)).toContain('403');
  });
});
