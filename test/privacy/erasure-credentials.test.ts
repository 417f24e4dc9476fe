import { randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { hashToken } from '../../src/modules/auth/token.service.js';
import { PasswordHasher } from '../../src/modules/auth/password-hasher.js';
import { DataExportService } from '../../src/modules/privacy/data-export.service.js';
import { startPostgrestDouble, type PostgrestDouble } from '../auth/doubles/postgrest-double.js';

const PASSWORD = 'correct horse battery';

/**
 * Every credential a person held before erasing their account (DELETE /v1/me), tried afterwards: none may sign in to
 * the erased account, hand its identity to an app, or give it a deliverable address again. An app token minted before
 * the erasure used to be redeemed afterwards (the app learnt the erased person's id and e-mail), a sign-in checked
 * before the erasure committed (a password login, a Hub exchange) used to start a live session of the erased account,
 * and an e-mail change link that escaped the erasure gave the account a real address again.
 */
describe('credentials issued before an erasure do not outlive it', () => {
  let t: TestApp;
  let nextAuthSecret: string;
  let supabaseSecret: string;
  // the Supabase project's Auth API (GET /auth/v1/settings: it confirms e-mails by mail, so its tokens' email_verified counts)
  let gotrue: PostgrestDouble;

  beforeAll(async () => {
    gotrue = await startPostgrestDouble();
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '', SUPABASE_URL: gotrue.url });
    nextAuthSecret = t.config.auth.nextAuthSecret!;
    supabaseSecret = t.config.auth.supabaseJwtSecret;
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t.close();
    await gotrue.close();
  });

  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;
  const erase = (who: { auth: { Authorization: string } }) => t.http.delete('/v1/me').set(who.auth).send({}).expect(200);
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const hubToken = (sub: string, email: string) =>
    jwt.sign({ sub, email, email_verified: true, name: 'Hub Person' }, nextAuthSecret, { algorithm: 'HS256', expiresIn: 600 });
  const supabaseToken = (sub: string, email: string) =>
    jwt.sign({ sub, email, email_verified: true, role: 'authenticated' }, supabaseSecret, { algorithm: 'HS256', audience: 'authenticated', expiresIn: 600 });
  /** The erased account as the erasure leaves it: pseudonymous, no name, no way in, no live session. */
  const erasedState = async (userId: string) => (await q(
    `SELECT u.email, u.name,
            (SELECT count(*)::int FROM core.user_credentials WHERE user_id = u.id) AS credentials,
            (SELECT count(*)::int FROM core.user_identities WHERE user_id = u.id) AS identities,
            (SELECT count(*)::int FROM core.sessions WHERE user_id = u.id AND revoked_at IS NULL) AS live_sessions,
            (SELECT count(*)::int FROM core.refresh_tokens WHERE user_id = u.id) AS refresh_tokens
     FROM core."User" u WHERE u.id = $1`, [userId]))[0];
  const erased = (userId: string) => ({ email: `erased+${userId}@invalid`, name: null, credentials: 0, identities: 0, live_sessions: 0, refresh_tokens: 0 });
  const unauthorized = (message: string) => ({ error: { code: 'auth.unauthorized', message }, requestId: expect.any(String) });

  it('an app token minted before the erasure is refused at the handshake (401) and nothing is recorded', async () => {
    const p = await registerUser(t, 'apptoken');
    const minted = await t.http.post('/v1/auth/app-token').set(p.auth).send({ appCode: 'app_securevault' }).expect(201);
    await erase(p);

    const res = await t.http.post('/v1/auth/app-token/redeem').send({ token: minted.body.accessToken, appCode: 'app_securevault' }).expect(401);
    expect(res.body).toEqual(unauthorized('the app token\'s account has been erased or no longer exists'));
    expect(JSON.stringify(res.body)).not.toContain(p.email);
    expect(await q('SELECT count(*)::int AS n FROM core.app_token_redemptions WHERE user_id = $1', [p.id])).toEqual([{ n: 0 }]);
    expect(await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'auth.app_token_redeemed' AND after->>'userId' = $1`, [p.id])).toEqual([{ n: 0 }]);
  });

  it('the refresh token and the access token of before the erasure are refused (its sessions are revoked, its refresh tokens gone)', async () => {
    const p = await registerUser(t, 'tokens');
    const second = await t.http.post('/v1/auth/login').send({ email: p.email, password: PASSWORD }).expect(200);
    await erase(p);

    for (const refreshToken of [p.refreshToken, second.body.refreshToken]) {
      const res = await t.http.post('/v1/auth/refresh').send({ refreshToken }).expect(401);
      expect(res.body).toEqual(unauthorized('the refresh token is not valid'));
    }
    const ended = unauthorized('the session of this access token has ended; log in again');
    // a route with a tenant transaction (begin_request checks the session) and one without (the guard checks it)
    expect((await t.http.get('/v1/auth/sessions').set(bearer(second.body.accessToken)).expect(401)).body).toEqual(ended);
    expect((await t.http.get('/v1/auth/identities').set(bearer(second.body.accessToken)).expect(401)).body).toEqual(ended);
    expect((await t.http.post('/v1/auth/app-token').set(bearer(second.body.accessToken)).send({ appCode: 'app_notes' }).expect(401)).body).toEqual(ended);
    expect(await erasedState(p.id)).toEqual(erased(p.id));
    expect(await q(`SELECT revoked_reason FROM core.sessions WHERE user_id = $1`, [p.id])).toEqual([{ revoked_reason: 'erased' }, { revoked_reason: 'erased' }]);
  });

  it('an e-mail verification link of before the erasure is deleted with it, and its only user (the account\'s session) is gone', async () => {
    const p = await registerUser(t, 'verify');
    const token = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`,
      [hashToken(token), p.id, p.email]);
    await erase(p);
    expect(await q('SELECT count(*)::int AS n FROM core.email_verification_tokens WHERE user_id = $1', [p.id])).toEqual([{ n: 0 }]);
    const res = await t.http.post('/v1/auth/verify-email').set(p.auth).send({ token }).expect(401);
    expect(res.body).toEqual(unauthorized('the session of this access token has ended; log in again'));
    expect(await erasedState(p.id)).toEqual(erased(p.id));
  });

  it('an e-mail change link of before the erasure is deleted with it; one that escaped it is refused too (400), and the account gets no address back', async () => {
    const p = await registerUser(t, 'change');
    const request = async (newEmail: string) => {
      const token = randomBytes(32).toString('base64url');
      await q(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, token_hash, expires_at) VALUES ($1, $2, $3, $4, now() + interval '1 day')`,
        [p.id, p.email, newEmail, hashToken(token)]);
      return token;
    };
    const before = await request(uniqueEmail('before'));
    await erase(p);
    expect(await q('SELECT count(*)::int AS n FROM core.email_change_requests WHERE user_id = $1', [p.id])).toEqual([{ n: 0 }]);
    // one minted while the erasure ran (the mail job sets the link's token), as the reset link test does
    const escapedAddress = uniqueEmail('escaped');
    const escaped = await request(escapedAddress);

    for (const token of [before, escaped]) {
      const res = await t.http.post('/v1/auth/email-change/confirm').send({ token }).expect(400);
      expect(res.body.error).toEqual({ code: 'auth.email_change_invalid', message: 'this confirmation link is unknown, already used or expired; ask for the change again' });
    }
    expect(await erasedState(p.id)).toEqual(erased(p.id));
    expect(await q('SELECT confirmed_at FROM core.email_change_requests WHERE user_id = $1', [p.id])).toEqual([{ confirmed_at: null }]);
    expect(await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'auth.email_changed' AND entity_id = $1`, [p.id])).toEqual([{ n: 0 }]);
    expect(await q('SELECT count(*)::int AS n FROM core.email_deliveries WHERE to_address = $1 OR user_id = $2', [escapedAddress, p.id])).toEqual([{ n: 0 }]);
  });

  it('a password login checked before the erasure committed starts no session once it has (401)', async () => {
    const p = await registerUser(t, 'racelogin');
    // the login has found the account and is checking the password when the erasure runs
    const hasher = t.app.get(PasswordHasher);
    const verify = hasher.verify.bind(hasher);
    let reached!: () => void;
    const atPassword = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    jest.spyOn(hasher, 'verify').mockImplementationOnce(async (hash, password) => {
      reached();
      await released;
      return verify(hash, password);
    });
    const login = t.http.post('/v1/auth/login').send({ email: p.email, password: PASSWORD }).then((r) => r);
    await atPassword;
    await erase(p);
    release();

    const res = await login;
    expect([res.status, res.body]).toEqual([401, unauthorized('this account has been erased')]);
    expect(await erasedState(p.id)).toEqual(erased(p.id));
    expect(await q(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'auth.login' AND actor_id = $1`, [p.id])).toEqual([{ n: 1 }]); // registerUser's
  });

  /**
   * Runs `request` while the erasure of `who` holds their account (its row locked, sessions revoked, not committed):
   * once the request waits for that lock, the erasure goes on. Both answers.
   */
  async function whileErasing(who: { auth: { Authorization: string } }, request: () => Promise<Response>) {
    const exports = t.app.get(DataExportService);
    const expire = exports.expireOfPerson.bind(exports);
    let reached!: () => void;
    const holding = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    jest.spyOn(exports, 'expireOfPerson').mockImplementationOnce(async (db, userId, deletedOrgIds) => {
      reached();
      await released;
      return expire(db, userId, deletedOrgIds);
    });
    const erasure = t.http.delete('/v1/me').set(who.auth).send({}).then((r) => r);
    await holding;
    const during = request();
    while ((await q(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0].n === 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    release();
    return { erasure: await erasure, during: await during };
  }
  type Response = { status: number; body: any };
  const exchange = (token: string) => t.http.post('/v1/auth/exchange').send({ token }).then((r): Response => r);

  it('a Hub exchange that found the account by its identity while the erasure ran is refused (401); it used to deadlock with the erasure (409, either rolled back)', async () => {
    const sub = `hub-race-${randomUUID()}`;
    const email = uniqueEmail('raceexchange');
    const signedIn = await t.http.post('/v1/auth/exchange').send({ token: hubToken(sub, email) }).expect(200);
    const race = await whileErasing({ auth: bearer(signedIn.body.accessToken) }, () => exchange(hubToken(sub, email)));
    expect(race.erasure.status).toBe(200);
    expect([race.during.status, race.during.body]).toEqual([401, unauthorized('this account has been erased')]);
    expect(await erasedState(signedIn.body.user.id)).toEqual(erased(signedIn.body.user.id));
  });

  it('a Hub exchange that found the account by its verified e-mail while the erasure ran is refused (401): it used to join the erased account and sign in to it', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'raceemail'));
    const sub = `hub-new-${randomUUID()}`;
    const race = await whileErasing(p, () => exchange(hubToken(sub, p.email)));
    expect(race.erasure.status).toBe(200);
    expect([race.during.status, race.during.body]).toEqual([401, unauthorized('this account has been erased')]);
    expect(await erasedState(p.id)).toEqual(erased(p.id));
    expect(await q('SELECT count(*)::int AS n FROM core.user_identities WHERE subject = $1', [sub])).toEqual([{ n: 0 }]);
  });

  it('an identity linked while the erasure ran is refused (401): it would have signed in to the erased account afterwards', async () => {
    const p = await registerUser(t, 'racelink');
    const sub = `hub-link-${randomUUID()}`;
    const linking = await whileErasing(p, () => t.http.post('/v1/auth/identities').set(p.auth).send({ token: hubToken(sub, uniqueEmail('linked')) }).then((r): Response => r));
    expect(linking.erasure.status).toBe(200);
    expect([linking.during.status, linking.during.body]).toEqual([401, unauthorized('this account has been erased')]);
    expect(await erasedState(p.id)).toEqual(erased(p.id));
    expect(await q('SELECT count(*)::int AS n FROM core.user_identities WHERE subject = $1', [sub])).toEqual([{ n: 0 }]);
  });

  it('a Hub or Supabase token of the erased person\'s identities never signs in to the erased account: its identities are gone, a new exchange is a new account', async () => {
    const supabaseSub = randomUUID();
    const hubSub = `hub-${randomUUID()}`;
    const email = uniqueEmail('external');
    const first = await t.http.post('/v1/auth/exchange').send({ token: supabaseToken(supabaseSub, email) }).expect(200);
    expect(first.body.user.id).toBe(supabaseSub);
    await t.http.post('/v1/auth/identities').set(bearer(first.body.accessToken)).send({ token: hubToken(hubSub, email) }).expect(201);
    expect(await q('SELECT provider FROM core.user_identities WHERE user_id = $1 ORDER BY provider', [supabaseSub]))
      .toEqual([{ provider: 'nextauth' }, { provider: 'supabase' }]);
    await erase({ auth: bearer(first.body.accessToken) });
    expect(await q('SELECT count(*)::int AS n FROM core.user_identities WHERE subject = ANY($1)', [[supabaseSub, hubSub]])).toEqual([{ n: 0 }]);

    const again = await t.http.post('/v1/auth/exchange').send({ token: supabaseToken(supabaseSub, email) }).expect(200);
    expect(again.body.user.id).not.toBe(supabaseSub); // the erased row keeps its id; the newcomer gets another
    const hub = await t.http.post('/v1/auth/exchange').send({ token: hubToken(hubSub, email) }).expect(200);
    expect(hub.body.user.id).toBe(again.body.user.id); // the same address, verified: the new account, not the erased one
    expect(await erasedState(supabaseSub)).toEqual(erased(supabaseSub));
    expect(await q('SELECT provider FROM core.user_identities WHERE user_id = $1 ORDER BY provider', [again.body.user.id]))
      .toEqual([{ provider: 'nextauth' }, { provider: 'supabase' }]);
  });

  it('invitations: those to the person\'s proven address go; those they sent end with their admin role (revoked, inviter_erased, where the organization lives on; gone with one deleted with them)', async () => {
    const owner = await registerUser(t, 'invowner');
    const kept = await createOrg(t, owner, 'Lives On Ltd');
    const p = await verifyEmailOf(t, await registerUser(t, 'inviter'));
    await addMember(t, kept, p, 'admin');
    const own = await createOrg(t, p, 'Goes With Them Ltd');
    const other = await createOrg(t, owner, 'Invites Them Ltd');
    const toThem = await t.http.post(`/v1/orgs/${other}/invitations`).set(owner.auth).send({ email: p.email, role: 'viewer' }).expect(201);
    const invitee = await verifyEmailOf(t, await registerUser(t, 'invitee'));
    const fromThem = await t.http.post(`/v1/orgs/${kept}/invitations`).set(p.auth).send({ email: invitee.email, role: 'viewer' }).expect(201);
    const fromThemOwn = await t.http.post(`/v1/orgs/${own}/invitations`).set(p.auth).send({ email: invitee.email, role: 'viewer' }).expect(201);
    const done = await t.http.delete('/v1/me').set(p.auth).send({}).expect(200);
    expect(done.body).toMatchObject({ leftOrganizationIds: [kept], deletedOrganizationIds: expect.arrayContaining([own]) });

    expect(await q('SELECT count(*)::int AS n FROM core.invitations WHERE id = $1', [toThem.body.id])).toEqual([{ n: 0 }]);
    // sent with the admin role they held (migration 20270210560100), as their API keys
    for (const [orgId, invitation] of [[kept, fromThem], [own, fromThemOwn]] as const) {
      const refused = await t.http.post('/v1/invitations/accept').set(invitee.auth).send({ orgId, token: invitation.body.token }).expect(404);
      expect(refused.body.error.code).toBe('invitation.not_found');
    }
    expect(await q(`SELECT a.after->>'reason' AS reason FROM core.invitations i JOIN core.audit_logs a ON a.org_id = i.org_id
      AND a.action = 'invitation.revoked' AND a.entity_id = i.id::text WHERE i.id = $1 AND i.revoked_at IS NOT NULL`, [fromThem.body.id]))
      .toEqual([{ reason: 'inviter_erased' }]);
    expect(await q('SELECT org_id FROM core.memberships WHERE user_id = $1 AND org_id = ANY($2) ORDER BY org_id', [invitee.id, [kept, own]]))
      .toEqual([]);
  });

  it('API keys they created end with them: one of an organization they left is revoked (creator_erased, audited), one of an organization deleted with them is refused with it', async () => {
    const owner = await registerUser(t, 'keyowner');
    const kept = await createOrg(t, owner, 'Keyed Lives On');
    await onEnterprisePlan(t, kept);
    const p = await registerUser(t, 'keymaker');
    await addMember(t, kept, p, 'admin');
    const own = await createOrg(t, p, 'Keyed Goes');
    await onEnterprisePlan(t, own);
    const key = async (orgId: string) =>
      (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(p.auth).send({ name: 'made by p', scopes: ['org:read'] }).expect(201)).body as { id: string; secret: string };
    const keptKey = await key(kept);
    const ownKey = await key(own);
    await erase(p);

    // its secret was shown to them only: it goes with their membership (migration 20270210160100)
    const revoked = await t.http.get(`/v1/orgs/${kept}`).set(bearer(keptKey.secret)).expect(401);
    expect(revoked.body.error).toMatchObject({ code: 'auth.unauthorized', message: 'the API key has been revoked' });
    const gone = await t.http.get(`/v1/orgs/${own}`).set(bearer(ownKey.secret)).expect(404);
    expect(gone.body.error.code).toBe('organization.not_found');
    expect(await q('SELECT id, created_by, revoked_at IS NOT NULL AS revoked FROM core.api_keys WHERE id = ANY($1) ORDER BY id', [[keptKey.id, ownKey.id]]))
      .toEqual([keptKey.id, ownKey.id].sort().map((id) => ({ id, created_by: p.id, revoked: id === keptKey.id })));
    expect(await q(`SELECT principal_type, after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'api_key.revoked' AND entity_id = $2`, [kept, keptKey.id]))
      .toEqual([{ principal_type: 'system', reason: 'creator_erased' }]);
  });
});
