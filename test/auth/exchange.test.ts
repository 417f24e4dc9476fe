import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail } from '../support/factories.js';
import { AuthBridge } from '../../src/modules/auth/auth-bridge.js';
import { startPostgrestDouble, type PostgrestDouble } from './doubles/postgrest-double.js';

describe('token exchange, app tokens and the Supabase bridge', () => {
  let t: TestApp;
  let postgrest: PostgrestDouble;
  let supabaseSecret: string;
  let nextAuthSecret: string;

  const nextAuthToken = (claims: Record<string, unknown>, options: jwt.SignOptions = { expiresIn: 600 }) =>
    jwt.sign(claims, nextAuthSecret, { algorithm: 'HS256', ...options });
  const supabaseToken = (claims: Record<string, unknown>, options: jwt.SignOptions = { expiresIn: 600 }) =>
    jwt.sign({ role: 'authenticated', ...claims }, supabaseSecret, { algorithm: 'HS256', audience: 'authenticated', ...options });
  const exchange = (body: Record<string, unknown>) => t.http.post('/v1/auth/exchange').send(body);
  const auditOf = async (orgId: string, action: string) =>
    (await t.db.admin.query('SELECT actor_id, principal_type, before, after FROM core.audit_logs WHERE org_id = $1 AND action = $2', [orgId, action])).rows;

  beforeAll(async () => {
    postgrest = await startPostgrestDouble();
    t = await createTestApp({ SUPABASE_URL: postgrest.url });
    supabaseSecret = t.config.auth.supabaseJwtSecret;
    nextAuthSecret = t.config.auth.nextAuthSecret!;
  });
  afterAll(async () => {
    await t.close();
    await postgrest.close();
  });

  describe('POST /v1/auth/exchange', () => {
    it('turns a Hub / NextAuth session into our tokens, creating the user with a personal organization', async () => {
      const email = uniqueEmail('hub');
      const res = await exchange({ token: nextAuthToken({ sub: 'hub-user-1', email, name: 'Hub Ada', picture: 'https://img.test/ada.png' }) }).expect(200);
      expect(res.body).toMatchObject({ tokenType: 'Bearer', user: { email, name: 'Hub Ada', image: 'https://img.test/ada.png', accountType: 'personal' } });
      const orgs = await t.http.get('/v1/orgs').set('Authorization', `Bearer ${res.body.accessToken}`).expect(200);
      expect(orgs.body).toEqual([expect.objectContaining({ id: res.body.personalOrgId, accountType: 'personal', role: 'owner' })]);
      await t.http.post('/v1/auth/refresh').send({ refreshToken: res.body.refreshToken }).expect(200);
      expect(await auditOf(res.body.personalOrgId, 'user.registered')).toEqual([
        expect.objectContaining({ actor_id: res.body.user.id, principal_type: 'user', before: null, after: expect.objectContaining({ provider: 'nextauth' }) }),
      ]);
    });

    it('turns a Supabase access token into our tokens; a new user keeps the auth.users id; a second exchange updates the name', async () => {
      const sub = randomUUID();
      const email = uniqueEmail('supa');
      const first = await exchange({ token: supabaseToken({ sub, email, user_metadata: { full_name: 'Supa Ada', avatar_url: 'https://img.test/s.png' } }) }).expect(200);
      expect(first.body.user).toMatchObject({ id: sub, email, name: 'Supa Ada', image: 'https://img.test/s.png' });

      const second = await exchange({ token: supabaseToken({ sub, email, user_metadata: { full_name: 'Ada King' } }), provider: 'supabase' }).expect(200);
      expect(second.body.user).toMatchObject({ id: sub, name: 'Ada King', image: 'https://img.test/s.png' });
      expect(second.body.personalOrgId).toBe(first.body.personalOrgId);
      const { rows } = await t.db.admin.query('SELECT name FROM core."User" WHERE id = $1', [sub]);
      expect(rows).toEqual([{ name: 'Ada King' }]);
      expect(await auditOf(first.body.personalOrgId, 'auth.exchanged')).toEqual([
        expect.objectContaining({ principal_type: 'user', before: expect.objectContaining({ name: 'Supa Ada' }), after: expect.objectContaining({ name: 'Ada King', provider: 'supabase' }) }),
      ]);
    });

    it('matches an existing account by email (syncUserToDatabase): the password user keeps their id', async () => {
      const existing = await registerUser(t, 'pwuser');
      const res = await exchange({ token: supabaseToken({ sub: randomUUID(), email: existing.email.toUpperCase() }) }).expect(200);
      expect(res.body.user.id).toBe(existing.id);
      expect(res.body.personalOrgId).toBe(existing.personalOrgId);
    });

    it('refuses a token signed with neither secret', async () => {
      const forged = jwt.sign({ sub: 'x', email: uniqueEmail('forged') }, 'some-other-secret-that-is-long-enough!!', { expiresIn: 600 });
      const res = await exchange({ token: forged }).expect(401);
      expect(res.body.error.message).toBe("the token's signature matches neither the NextAuth nor the Supabase secret");
    });

    it('refuses a token of the other provider when the provider is named', async () => {
      const res = await exchange({ token: nextAuthToken({ sub: 'hub-2', email: uniqueEmail('hub') }), provider: 'supabase' }).expect(401);
      expect(res.body.error.message).toBe("the token's signature does not match the Supabase secret");
    });

    it('refuses expired tokens of either kind, saying so', async () => {
      const past = Math.floor(Date.now() / 1000) - 3600;
      const hub = await exchange({ token: nextAuthToken({ sub: 'hub-3', email: uniqueEmail('hub'), exp: past }, {}) }).expect(401);
      expect(hub.body.error.message).toMatch(/^the NextAuth token expired at /);
      const supa = await exchange({ token: supabaseToken({ sub: randomUUID(), email: uniqueEmail('s'), exp: past }, { audience: 'authenticated' }) }).expect(401);
      expect(supa.body.error.message).toMatch(/^the Supabase token expired at /);
    });

    it('refuses a Supabase token for another audience, or one without an email, or a service-role key', async () => {
      const aud = await exchange({ token: supabaseToken({ sub: randomUUID(), email: uniqueEmail('s') }, { audience: 'anon', expiresIn: 600 }) }).expect(401);
      expect(aud.body.error.message).toBe('the Supabase token\'s audience must be "authenticated"');
      const noEmail = await exchange({ token: supabaseToken({ sub: randomUUID(), phone: '+15550100' }), provider: 'supabase' }).expect(401);
      expect(noEmail.body.error.message).toBe('the Supabase token carries no email claim');
      const serviceKey = jwt.sign({ role: 'service_role' }, supabaseSecret, { expiresIn: 600 });
      await exchange({ token: serviceKey, provider: 'supabase' }).expect(401);
    });

    it('refuses our own access tokens (an app token must not become a long-lived session)', async () => {
      const u = await registerUser(t, 'own');
      const app = await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: 'app_securevault' }).expect(201);
      for (const token of [u.token, app.body.accessToken]) {
        const res = await exchange({ token }).expect(401);
        expect(res.body.error.message).toMatch(/^this is an OmniZen access token/);
      }
    });

    it('refuses a token that never expires, a non-JWT, and an unknown provider; nothing is written', async () => {
      const email = uniqueEmail('noexp');
      const forever = await exchange({ token: nextAuthToken({ sub: 'hub-4', email }, {}) }).expect(401);
      expect(forever.body.error.message).toMatch(/no expiry/);
      const junk = await exchange({ token: 'definitely-not-a-jwt-token-value' }).expect(401);
      expect(junk.body.error.message).toBe('the token is not a JWT');
      const bad = await exchange({ token: nextAuthToken({ sub: 'hub-5', email }), provider: 'github' }).expect(400);
      expect(bad.body.error.details.map((d: { field: string }) => d.field)).toEqual(['provider']);
      const { rows } = await t.db.admin.query('SELECT 1 FROM core."User" WHERE email = $1', [email]);
      expect(rows).toEqual([]);
    });
  });

  describe('POST /v1/auth/app-token', () => {
    it('issues a 120 s token whose appCode claim names the app, with the redirect query, and audits it', async () => {
      const u = await registerUser(t, 'apptok');
      const res = await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: 'app_securevault' }).expect(201);
      expect(res.body).toMatchObject({ tokenType: 'Bearer', expiresIn: 120, appCode: 'app_securevault' });
      expect(res.body.redirectQuery).toBe(`token=${encodeURIComponent(res.body.accessToken)}`);
      const claims = jwt.verify(res.body.accessToken, supabaseSecret, { audience: 'authenticated' }) as jwt.JwtPayload;
      expect(claims).toMatchObject({
        sub: u.id, userId: u.id, orgId: u.personalOrgId, email: u.email, role: 'authenticated', appCode: 'app_securevault',
      });
      expect(claims.exp! - claims.iat!).toBe(120);
      // the app can call our API with it as the same user
      await t.http.get('/v1/orgs').set('Authorization', `Bearer ${res.body.accessToken}`).expect(200);
      expect(await auditOf(u.personalOrgId, 'auth.app_token_issued')).toEqual([
        expect.objectContaining({ actor_id: u.id, principal_type: 'user', after: { appCode: 'app_securevault', expiresIn: 120 } }),
      ]);
    });

    it('validates appCode, needs a signed-in user, and refuses a service key', async () => {
      const u = await registerUser(t, 'apptok2');
      const bad = await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: 'App-Vault' }).expect(400);
      expect(bad.body.error.message).toMatch(/appCode must be lowercase letters/);
      await t.http.post('/v1/auth/app-token').send({ appCode: 'app_securevault' }).expect(401);
      const serviceKey = jwt.sign({ role: 'service_role' }, supabaseSecret, { expiresIn: 600 });
      await t.http.post('/v1/auth/app-token').set('Authorization', `Bearer ${serviceKey}`).send({ appCode: 'app_securevault' }).expect(403);
    });
  });

  it('documents both routes in OpenAPI with their bodies and errors', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const ex = doc.paths['/v1/auth/exchange'].post;
    expect(ex.requestBody.content['application/json'].schema.$ref).toMatch(/ExchangeDto$/);
    expect(Object.keys(ex.responses)).toEqual(expect.arrayContaining(['200', '400', '401']));
    const app = doc.paths['/v1/auth/app-token'].post;
    expect(app.responses['201'].content['application/json'].schema.$ref).toMatch(/AppTokenDto$/);
    expect(app.security).toEqual([{ bearer: [] }]);
  });

  describe('AuthBridge.createAuthenticatedClient', () => {
    it('sends our token to the Supabase REST API, and that token verifies with the Supabase secret with every claim', async () => {
      const u = await registerUser(t, 'bridge');
      const app = await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: 'app_securevault' }).expect(201);
      const bridge = t.app.get(AuthBridge);
      postgrest.requests.length = 0;

      const { error } = await bridge.createAuthenticatedClient(app.body.accessToken).from('x').select();
      expect(error).toBeNull();
      expect(postgrest.requests).toHaveLength(1);
      expect(postgrest.requests[0].url).toMatch(/^\/rest\/v1\/x\?select=/);
      const sent = postgrest.requests[0].headers.authorization;
      expect(sent).toBe(`Bearer ${app.body.accessToken}`);
      const claims = jwt.verify(sent!.slice('Bearer '.length), supabaseSecret, { algorithms: ['HS256'] }) as jwt.JwtPayload;
      expect(claims).toMatchObject({
        sub: u.id, role: 'authenticated', aud: 'authenticated', email: u.email, exp: expect.any(Number),
        userId: u.id, orgId: u.personalOrgId, appCode: 'app_securevault',
      });
    });

    it('takes our TokensDto as the session too', async () => {
      const login = await t.http.post('/v1/auth/exchange').send({ token: nextAuthToken({ sub: 'hub-9', email: uniqueEmail('hub') }) }).expect(200);
      postgrest.requests.length = 0;
      await t.app.get(AuthBridge).createAuthenticatedClient(login.body).from('y').select();
      expect(postgrest.requests[0].headers.authorization).toBe(`Bearer ${login.body.accessToken}`);
    });
  });
});
