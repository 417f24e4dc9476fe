import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { beforeVerificationWasNeeded, onEnterprisePlan, registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { ManualClock } from '../support/clock.js';
import { AuthBridge } from '../../src/modules/auth/auth-bridge.js';
import { SETTINGS_FAILURE_TTL_MS, SETTINGS_TTL_MS } from '../../src/modules/auth/supabase-email-check.js';
import { startPostgrestDouble, type PostgrestDouble } from './doubles/postgrest-double.js';

describe('token exchange, app tokens and the Supabase bridge', () => {
  let t: TestApp;
  let postgrest: PostgrestDouble;
  let supabaseSecret: string;
  let nextAuthSecret: string;
  const clock = new ManualClock();

  const nextAuthToken = (claims: Record<string, unknown>, options: jwt.SignOptions = { expiresIn: 600 }) =>
    jwt.sign(claims, nextAuthSecret, { algorithm: 'HS256', ...options });
  const supabaseToken = (claims: Record<string, unknown>, options: jwt.SignOptions = { expiresIn: 600 }) =>
    jwt.sign({ role: 'authenticated', ...claims }, supabaseSecret, { algorithm: 'HS256', audience: 'authenticated', ...options });
  const exchange = (body: Record<string, unknown>) => t.http.post('/v1/auth/exchange').send(body);
  const auditOf = async (orgId: string, action: string) =>
    (await t.db.admin.query('SELECT actor_id, principal_type, before, after FROM core.audit_logs WHERE org_id = $1 AND action = $2', [orgId, action])).rows;

  beforeAll(async () => {
    postgrest = await startPostgrestDouble();
    t = await createTestApp({ SUPABASE_URL: postgrest.url }, { clock });
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
      // the row holds the names sealed with the person's key (crypto-shredding, issue 20); the audit route opens them
      const raw = await auditOf(first.body.personalOrgId, 'auth.exchanged');
      expect(raw).toEqual([expect.objectContaining({ principal_type: 'user', before: expect.objectContaining({ $sealed: expect.objectContaining({ fields: expect.arrayContaining(['name']) }) }) })]);
      expect(JSON.stringify(raw)).not.toMatch(/Supa Ada|Ada King/);
      const read = await t.http.get(`/v1/orgs/${first.body.personalOrgId}/audit-logs?action=auth.exchanged`).set('Authorization', `Bearer ${second.body.accessToken}`).expect(200);
      expect(read.body.items).toEqual([
        expect.objectContaining({ before: expect.objectContaining({ name: 'Supa Ada' }), after: expect.objectContaining({ name: 'Ada King', provider: 'supabase' }) }),
      ]);
    });

    it('finds the user by identity (provider, subject), not by e-mail: a changed e-mail still signs in to the same account', async () => {
      const sub = randomUUID();
      const first = await exchange({ token: supabaseToken({ sub, email: uniqueEmail('moved') }) }).expect(200);
      const second = await exchange({ token: supabaseToken({ sub, email: uniqueEmail('moved-to') }) }).expect(200);
      expect(second.body.user.id).toBe(first.body.user.id);
      const hub = await exchange({ token: nextAuthToken({ sub: 'hub-stable-1', email: uniqueEmail('h') }) }).expect(200);
      const hubAgain = await exchange({ token: nextAuthToken({ sub: 'hub-stable-1', email: uniqueEmail('h2') }) }).expect(200);
      expect(hubAgain.body.user.id).toBe(hub.body.user.id);
    });

    it('pre-registration takeover fails: a verified sign-in claims the account, and the attacker\'s password and sessions stop working', async () => {
      // the attacker registers the victim's e-mail with a password and keeps a session open
      const victimEmail = uniqueEmail('victim');
      await t.http.post('/v1/auth/register').send({ email: victimEmail, password: 'attacker password' }).expect(202);
      const attacker = await t.http.post('/v1/auth/login').send({ email: victimEmail, password: 'attacker password' }).expect(200);
      // an organization of theirs with an API key, whose secret only they ever saw (made before either needed a verified
      // e-mail: an unverified account gets 403 auth.email_unverified for them now)
      const attackerAuth = { Authorization: `Bearer ${attacker.body.accessToken}` };
      const { squatted, key } = await beforeVerificationWasNeeded(t, attacker.body.user, async () => {
        const squatted: string = (await t.http.post('/v1/orgs').set(attackerAuth).send({ name: 'Squatted Co' }).expect(201)).body.id;
        await onEnterprisePlan(t, squatted);
        const key = (await t.http.post(`/v1/orgs/${squatted}/api-keys`).set(attackerAuth).send({ name: 'kept', scopes: ['org:read'] }).expect(201)).body;
        return { squatted, key };
      });
      await t.http.get(`/v1/orgs/${squatted}`).set({ Authorization: `Bearer ${key.secret}` }).expect(200);
      // and, while signed in, links a Hub identity of their own (verified for their address) and asks to move the account to
      // another address of theirs: both ways back in must go with the claim
      const attackerHub = nextAuthToken({ sub: `hub-${randomUUID()}`, email: uniqueEmail('attacker'), email_verified: true });
      await t.http.post('/v1/auth/identities').set('Authorization', `Bearer ${attacker.body.accessToken}`).send({ token: attackerHub }).expect(201);
      await t.http.post('/v1/auth/email-change').set('Authorization', `Bearer ${attacker.body.accessToken}`)
        .send({ newEmail: uniqueEmail('attacker2'), password: 'attacker password' }).expect(202);

      // the victim signs in through Supabase, which confirmed the address: the project says so when asked
      const victimSub = randomUUID();
      postgrest.authUsers.set(victimSub, { email: victimEmail, email_confirmed_at: new Date().toISOString() });
      postgrest.requests.length = 0;
      const victimToken = supabaseToken({ sub: victimSub, email: victimEmail });
      const victim = await exchange({ token: victimToken }).expect(200);
      expect(victim.body.user.id).toBe(attacker.body.user.id);
      expect(postgrest.requests.filter((r) => r.url !== '/auth/v1/settings'))
        .toEqual([expect.objectContaining({ method: 'GET', url: '/auth/v1/user', headers: expect.objectContaining({ authorization: `Bearer ${victimToken}` }) })]);

      const pw = await t.http.post('/v1/auth/login').send({ email: victimEmail, password: 'attacker password' }).expect(401);
      expect(pw.body.error.message).toBe('email or password is incorrect');
      await t.http.post('/v1/auth/refresh').send({ refreshToken: attacker.body.refreshToken }).expect(401);
      await t.http.get('/v1/orgs').set('Authorization', `Bearer ${attacker.body.accessToken}`).expect(401);
      await t.http.get('/v1/orgs').set('Authorization', `Bearer ${victim.body.accessToken}`).expect(200);

      const { rows: identities } = await t.db.admin.query(
        'SELECT provider, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1', [victim.body.user.id]);
      expect(identities).toEqual([{ provider: 'supabase', verified: true }]);
      // the key went with the claim (audited, as a revocation), and the claim names the organizations the account was in
      const refused = await t.http.get(`/v1/orgs/${squatted}`).set({ Authorization: `Bearer ${key.secret}` }).expect(401);
      expect(refused.body.error).toMatchObject({ code: 'auth.unauthorized', message: 'the API key has been revoked' });
      const { rows: keys } = await t.db.admin.query('SELECT revoked_at IS NOT NULL AS revoked FROM core.api_keys WHERE id = $1', [key.id]);
      expect(keys).toEqual([{ revoked: true }]);
      expect(await auditOf(squatted, 'api_key.revoked')).toEqual([
        expect.objectContaining({ actor_id: null, principal_type: 'system', after: expect.objectContaining({ id: key.id, createdBy: victim.body.user.id, reason: 'creator_account_claimed' }) }),
      ]);
      const organizations = [{ orgId: victim.body.personalOrgId, role: 'owner' }, { orgId: squatted, role: 'owner' }].sort((a, b) => (a.orgId < b.orgId ? -1 : 1));
      expect(await auditOf(victim.body.personalOrgId, 'auth.unverified_account_claimed')).toEqual([
        expect.objectContaining({
          principal_type: 'system',
          before: {
            passwordRemoved: true, identitiesRemoved: ['nextauth', 'password'], emailChangesCanceled: 1, sessionsRevoked: 1, apiKeysRevoked: 1,
            invitationsRevoked: 0, organizations, webhookEndpointsDisabled: 0, providerKeysRemoved: 0, triggersStopped: 0, integrationsDisabled: 0, providerPageUnpublished: false,
          },
        }),
      ]);
      const orgs = await t.http.get('/v1/orgs').set('Authorization', `Bearer ${victim.body.accessToken}`).expect(200);
      expect(orgs.body.map((o: { id: string }) => o.id).sort()).toEqual(organizations.map((o) => o.orgId));
      // the attacker's Hub identity now signs in to an account of its own, not the victim's; the e-mail change is dead
      const back = await exchange({ token: attackerHub }).expect(200);
      expect(back.body.user.id).not.toBe(victim.body.user.id);
      const { rows: changes } = await t.db.admin.query('SELECT expires_at <= now() AS expired FROM core.email_change_requests WHERE user_id = $1', [victim.body.user.id]);
      expect(changes).toEqual([{ expired: true }]);
    });

    it('a Supabase token with a foreign sub and a matching e-mail (any case) does not sign in as that user: 409 auth.link_required', async () => {
      const owner = await registerUser(t, 'owner');
      // an unconfirmed sign-up at the Supabase project (it allows them), one the project does not know,
      // and an anonymous user; user_metadata is the Supabase user's own to edit, so it proves nothing
      const unconfirmed = randomUUID();
      postgrest.authUsers.set(unconfirmed, { email: owner.email, email_confirmed_at: null });
      for (const [sub, claims] of [
        [unconfirmed, { user_metadata: { email_verified: true } }],
        [randomUUID(), {}],
        [randomUUID(), { email_verified: true, is_anonymous: true }],
      ] as const) {
        const res = await exchange({ token: supabaseToken({ sub, email: owner.email.toUpperCase(), ...claims }) }).expect(409);
        expect(res.body.error.code).toBe('auth.link_required');
        expect(res.body.error.message).toMatch(/sign in to that account and link this identity with POST \/v1\/auth\/identities/);
        expect(res.body).not.toHaveProperty('accessToken');
      }
      const hub = await exchange({ token: nextAuthToken({ sub: 'hub-foreign', email: owner.email }) }).expect(409);
      expect(hub.body.error.code).toBe('auth.link_required');
      // nothing changed: no identity added, the owner's password and session still work
      const { rows } = await t.db.admin.query('SELECT provider FROM core.user_identities WHERE user_id = $1', [owner.id]);
      expect(rows).toEqual([{ provider: 'password' }]);
      await t.http.post('/v1/auth/login').send({ email: owner.email, password: 'correct horse battery' }).expect(200);
      await t.http.get('/v1/orgs').set(owner.auth).expect(200);
    });

    it('a project that auto-confirms sign-ups proves no e-mail: signing up there with a victim\'s address takes nothing (409), linking proves nothing', async () => {
      // GoTrue with [auth.email] enable_confirmations = false: the attacker signs up with the victim's address and is "confirmed" at once
      const victim = await verifyEmailOf(t, await registerUser(t, 'autoconfirm-victim'));
      postgrest.settings.mailerAutoconfirm = true;
      clock.advance(SETTINGS_TTL_MS); // the project's settings are read again
      const attackerSub = randomUUID();
      postgrest.authUsers.set(attackerSub, { email: victim.email, email_confirmed_at: new Date().toISOString() });
      try {
        // a hook's email_verified claim, made from the same auto-set confirmation, proves no more
        for (const claims of [{ sub: attackerSub }, { sub: randomUUID(), email_verified: true }]) {
          const res = await exchange({ token: supabaseToken({ ...claims, email: victim.email }) }).expect(409);
          expect(res.body.error.code).toBe('auth.link_required');
          expect(res.body).not.toHaveProperty('accessToken');
        }
        expect(postgrest.requests).toEqual(expect.arrayContaining([expect.objectContaining({ method: 'GET', url: '/auth/v1/settings' })]));
        const { rows } = await t.db.admin.query('SELECT provider, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1', [victim.id]);
        expect(rows).toEqual([{ provider: 'password', verified: true }]);
        expect((await t.db.admin.query('SELECT 1 FROM core.user_identities WHERE subject = $1', [attackerSub])).rows).toEqual([]);

        // the pre-registration defence holds: an auto-confirmed identity linked while signed in does not verify the account's e-mail
        const squatter = await registerUser(t, 'autoconfirm-squatter');
        const squatterSub = randomUUID();
        postgrest.authUsers.set(squatterSub, { email: squatter.email, email_confirmed_at: new Date().toISOString() });
        const linked = await t.http.post('/v1/auth/identities').set(squatter.auth).send({ token: supabaseToken({ sub: squatterSub, email: squatter.email }) }).expect(201);
        expect(linked.body).toEqual(expect.arrayContaining([expect.objectContaining({ provider: 'supabase', email: squatter.email, emailVerified: false })]));
        const verified = await t.db.admin.query('SELECT count(*)::int AS n FROM core.user_identities WHERE user_id = $1 AND email_verified_at IS NOT NULL', [squatter.id]);
        expect(verified.rows).toEqual([{ n: 0 }]);

        // settings that cannot be read prove nothing either; the failure is remembered briefly (GoTrue down must not
        // cost every exchange a request of up to 5 s), then asked again
        postgrest.settings.mailerAutoconfirm = false;
        postgrest.settings.status = 503;
        clock.advance(SETTINGS_TTL_MS);
        const settingsReads = () => postgrest.requests.filter((r) => r.url === '/auth/v1/settings').length;
        const readsBefore = settingsReads();
        for (let i = 0; i < 2; i++) {
          const unread = await exchange({ token: supabaseToken({ sub: attackerSub, email: victim.email }) }).expect(409);
          expect(unread.body.error.code).toBe('auth.link_required');
        }
        expect(settingsReads()).toBe(readsBefore + 1);
        clock.advance(SETTINGS_FAILURE_TTL_MS);
        await exchange({ token: supabaseToken({ sub: attackerSub, email: victim.email }) }).expect(409);
        expect(settingsReads()).toBe(readsBefore + 2);
        expect((await t.db.admin.query('SELECT 1 FROM core.user_identities WHERE subject = $1', [attackerSub])).rows).toEqual([]);
      } finally {
        postgrest.settings.mailerAutoconfirm = false;
        postgrest.settings.status = 200;
        clock.advance(SETTINGS_TTL_MS);
      }

      // the same confirmation from a project that confirms by mail links the identity to the verified account
      const owner = await exchange({ token: supabaseToken({ sub: attackerSub, email: victim.email }) }).expect(200);
      expect(owner.body.user.id).toBe(victim.id);
      const { rows } = await t.db.admin.query(
        'SELECT provider, subject, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1 ORDER BY provider', [victim.id]);
      expect(rows).toEqual([{ provider: 'password', subject: victim.id, verified: true }, { provider: 'supabase', subject: attackerSub, verified: true }]);
    });

    it('links a provider-verified identity to an account whose e-mail is verified too, keeping its password', async () => {
      const owner = await registerUser(t, 'verified');
      await t.db.admin.query(`UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1`, [owner.id]);
      const res = await exchange({ token: nextAuthToken({ sub: 'hub-verified-1', email: owner.email, email_verified: true }) }).expect(200);
      expect(res.body.user.id).toBe(owner.id);
      await t.http.post('/v1/auth/login').send({ email: owner.email, password: 'correct horse battery' }).expect(200);
      await t.http.get('/v1/orgs').set(owner.auth).expect(200);
      expect(await auditOf(owner.personalOrgId, 'auth.identity_linked')).toEqual([
        expect.objectContaining({ after: expect.objectContaining({ provider: 'nextauth', by: 'verified_email' }) }),
      ]);
    });

    it('links explicitly while signed in (the way out of auth.link_required); an identity of someone else cannot be taken', async () => {
      const owner = await registerUser(t, 'linker');
      const sub = randomUUID();
      const token = supabaseToken({ sub, email: owner.email });
      await exchange({ token }).expect(409);
      const linked = await t.http.post('/v1/auth/identities').set(owner.auth).send({ token }).expect(201);
      expect(linked.body.map((i: { provider: string }) => i.provider).sort()).toEqual(['password', 'supabase']);
      const res = await exchange({ token }).expect(200);
      expect(res.body.user.id).toBe(owner.id);
      const listed = await t.http.get('/v1/auth/identities').set(owner.auth).expect(200);
      expect(listed.body).toEqual(expect.arrayContaining([expect.objectContaining({ provider: 'supabase', email: owner.email, emailVerified: false })]));

      const other = await registerUser(t, 'other');
      const taken = await t.http.post('/v1/auth/identities').set(other.auth).send({ token }).expect(409);
      expect(taken.body.error.code).toBe('auth.identity_taken');
      expect(await auditOf(owner.personalOrgId, 'auth.identity_linked')).toEqual([
        expect.objectContaining({ actor_id: owner.id, after: expect.objectContaining({ provider: 'supabase', by: 'signed_in_user' }) }),
      ]);
    });

    it('a Supabase sub that is already another user\'s id creates a separate user, with no 409 naming a key', async () => {
      const existing = await registerUser(t, 'idclash');
      const res = await exchange({ token: supabaseToken({ sub: existing.id, email: uniqueEmail('clash') }) }).expect(200);
      expect(res.body.user.id).not.toBe(existing.id);
      expect(JSON.stringify(res.body)).not.toMatch(/pkey|primary key/i);
      await t.http.get('/v1/orgs').set(existing.auth).expect(200);
      const again = await exchange({ token: supabaseToken({ sub: existing.id, email: uniqueEmail('clash2') }) }).expect(200);
      expect(again.body.user.id).toBe(res.body.user.id);
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
      const own = await exchange({ token: u.token }).expect(401);
      expect(own.body.error.message).toMatch(/^this is an OmniZen access token/);
      // an app token is not even for the audience a Supabase session has
      const appToken = await exchange({ token: app.body.accessToken }).expect(401);
      expect(appToken.body.error.message).toBe('the Supabase token\'s audience must be "authenticated"');
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

  describe('POST /v1/auth/app-token and the handshake', () => {
    it('issues a 120 s token with the app\'s audience and the seed\'s claims, with the redirect query, and audits it', async () => {
      const u = await registerUser(t, 'apptok');
      const res = await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: 'app_securevault' }).expect(201);
      expect(res.body).toMatchObject({ tokenType: 'Bearer', expiresIn: 120, appCode: 'app_securevault' });
      expect(res.body.redirectQuery).toBe(`token=${encodeURIComponent(res.body.accessToken)}`);
      const claims = jwt.verify(res.body.accessToken, supabaseSecret, { audience: 'app:app_securevault', issuer: 'omnizen' }) as jwt.JwtPayload;
      expect(claims).toMatchObject({
        sub: u.id, userId: u.id, orgId: u.personalOrgId, email: u.email, appCode: 'app_securevault', jti: expect.any(String),
      });
      expect(claims.exp! - claims.iat!).toBe(120);
      expect(await auditOf(u.personalOrgId, 'auth.app_token_issued')).toEqual([
        expect.objectContaining({ actor_id: u.id, principal_type: 'user', after: { appCode: 'app_securevault', expiresIn: 120 } }),
      ]);
    });

    it('an app token is refused on every API route (it cannot mint another), and the handshake accepts it once, for its app only', async () => {
      const u = await registerUser(t, 'apphs');
      const app = await t.http.post('/v1/auth/app-token').set(u.auth).send({ appCode: 'app_securevault' }).expect(201);
      const appToken = app.body.accessToken;

      // every route that takes a bearer token, as the OpenAPI document lists them
      const doc = (await t.http.get('/docs-json').expect(200)).body;
      const tried: string[] = [];
      for (const [path, ops] of Object.entries<Record<string, { security?: unknown[]; requestBody?: { content: Record<string, unknown> } }>>(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          if (!op.security?.length) continue;
          const url = path.replace(/\{[^}]+\}/g, randomUUID());
          // a JSON body where the operation takes JSON, else none (an upload refuses a JSON body 415 before it looks at the token)
          const req = (t.http as any)[method](url).set('Authorization', `Bearer ${appToken}`);
          const res = await (op.requestBody?.content['multipart/form-data'] ? req : req.send({}));
          expect({ route: `${method.toUpperCase()} ${path}`, status: res.status }).toEqual({ route: `${method.toUpperCase()} ${path}`, status: 401 });
          tried.push(`${method.toUpperCase()} ${path}`);
        }
      }
      expect(tried).toEqual(expect.arrayContaining(['POST /v1/auth/app-token', 'POST /v1/orgs', 'GET /v1/auth/sessions']));
      expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations WHERE owner_user_id = $1', [u.id])).rows[0].n).toBe(1);

      const otherApp = await t.http.post('/v1/auth/app-token/redeem').send({ token: appToken, appCode: 'app_notes' }).expect(401);
      expect(otherApp.body.error.message).toBe('this is not a valid app token for app_notes');
      const first = await t.http.post('/v1/auth/app-token/redeem').send({ token: appToken, appCode: 'app_securevault' }).expect(200);
      expect(first.body).toEqual({ userId: u.id, email: u.email, orgId: u.personalOrgId, personalOrgId: u.personalOrgId, appCode: 'app_securevault' });
      const second = await t.http.post('/v1/auth/app-token/redeem').send({ token: appToken, appCode: 'app_securevault' }).expect(401);
      expect(second.body.error.message).toMatch(/already used/);
      expect(await auditOf(u.personalOrgId, 'auth.app_token_redeemed')).toHaveLength(1);
      // our ordinary access token is no app token either
      await t.http.post('/v1/auth/app-token/redeem').send({ token: u.token, appCode: 'app_securevault' }).expect(401);
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

  describe('access tokens open only what they were made for', () => {
    const sign = (claims: Record<string, unknown>, options: jwt.SignOptions) => jwt.sign(claims, supabaseSecret, { algorithm: 'HS256', ...options });

    it('refuses our claims without exp, with a foreign issuer or audience; accepts them with ours', async () => {
      const u = await registerUser(t, 'claims');
      const claims = { sub: u.id, role: 'authenticated', email: u.email, personal_org_id: u.personalOrgId, session_id: undefined };
      const get = (token: string) => t.http.get('/v1/orgs').set('Authorization', `Bearer ${token}`);
      const ok = await get(sign(claims, { audience: 'authenticated', issuer: 'omnizen', expiresIn: 600 })).expect(200);
      expect(ok.body.map((o: { id: string }) => o.id)).toEqual([u.personalOrgId]);
      const refused = { code: 'auth.unauthorized', message: 'a valid access token is required' };
      for (const [name, token] of [
        ['no exp', sign(claims, { audience: 'authenticated', issuer: 'omnizen' })],
        ['foreign issuer', sign(claims, { audience: 'authenticated', issuer: 'https://other.supabase.co/auth/v1', expiresIn: 600 })],
        ['no issuer', sign(claims, { audience: 'authenticated', expiresIn: 600 })],
        ['app audience', sign(claims, { audience: 'app:app_securevault', issuer: 'omnizen', expiresIn: 600 })],
        // a service key needs an expiry too
        ['service key without exp', sign({ role: 'service_role' }, {})],
      ] as const) {
        const res = await get(token);
        expect([name, res.status, res.body.error]).toEqual([name, 401, refused]);
      }
    });
  });

  it('documents the routes in OpenAPI with their bodies and errors', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const ex = doc.paths['/v1/auth/exchange'].post;
    expect(ex.requestBody.content['application/json'].schema.$ref).toMatch(/ExchangeDto$/);
    expect(Object.keys(ex.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '409']));
    expect(ex.responses['409'].description).toMatch(/^auth\.link_required/);
    const redeem = doc.paths['/v1/auth/app-token/redeem'].post;
    expect(redeem.responses['200'].content['application/json'].schema.$ref).toMatch(/AppSessionDto$/);
    expect(doc.paths['/v1/auth/identities'].post.responses['409'].description).toMatch(/^auth\.identity_taken/);
    const app = doc.paths['/v1/auth/app-token'].post;
    expect(app.responses['201'].content['application/json'].schema.$ref).toMatch(/AppTokenDto$/);
    expect(app.security).toEqual([{ bearer: [] }]);
  });

  describe('AuthBridge.createAuthenticatedClient', () => {
    it('sends our token to the Supabase REST API, and that token verifies with the Supabase secret with every claim', async () => {
      const u = await registerUser(t, 'bridge');
      const bridge = t.app.get(AuthBridge);
      postgrest.requests.length = 0;

      const { error } = await bridge.createAuthenticatedClient(u.token).from('x').select();
      expect(error).toBeNull();
      expect(postgrest.requests).toHaveLength(1);
      expect(postgrest.requests[0].url).toMatch(/^\/rest\/v1\/x\?select=/);
      const sent = postgrest.requests[0].headers.authorization;
      expect(sent).toBe(`Bearer ${u.token}`);
      const claims = jwt.verify(sent!.slice('Bearer '.length), supabaseSecret, { algorithms: ['HS256'] }) as jwt.JwtPayload;
      expect(claims).toMatchObject({
        sub: u.id, role: 'authenticated', aud: 'authenticated', iss: 'omnizen', email: u.email, exp: expect.any(Number),
        userId: u.id, orgId: u.personalOrgId,
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
