import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SessionLiveness } from '../../src/modules/auth/session-liveness.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, uniqueEmail, verifyEmailOf } from '../support/factories.js';
import { settle } from '../notifications/notifications-support.js';
import { bounded, WAIT_BOUND_MS } from '../support/throwaway-servers.js';

const refresh = (t: TestApp, refreshToken: string) => t.http.post('/v1/auth/refresh').send({ refreshToken });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const APP_ORIGIN = 'https://app.example.test';

describe('refresh tokens and sessions', () => {
  let t: TestApp;
  const clock = new ManualClock();
  const pastGrace = () => clock.advance((t.config.auth.refreshGraceSeconds + 1) * 1000);

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', STREAM_SESSION_CHECK_MS: '50' }, { clock });
  });
  afterAll(() => t.close());

  it('rotates: a refresh gives a new pair whose access token works, and stores only hashes', async () => {
    const u = await registerUser(t, 'rot');
    const res = await refresh(t, u.refreshToken).expect(200);
    expect(res.headers['set-cookie']).toBeUndefined(); // cookies are opt-in (AUTH_COOKIES)
    expect(res.body.refreshToken).not.toBe(u.refreshToken);
    expect(res.body.user.id).toBe(u.id);
    await t.http.get('/v1/orgs').set(bearer(res.body.accessToken)).expect(200);
    const { rows } = await t.db.admin.query('SELECT token_hash FROM core.refresh_tokens WHERE user_id = $1', [u.id]);
    expect(rows).toHaveLength(2);
    for (const r of rows) expect([u.refreshToken, res.body.refreshToken]).not.toContain(r.token_hash);
    const audit = await t.db.admin.query(
      `SELECT actor_id, principal_type FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.refreshed'`, [u.personalOrgId]);
    expect(audit.rows).toEqual([{ actor_id: u.id, principal_type: 'user' }]);
  });

  it('two tabs refreshing with one token at once both get a working session: the same new refresh token', async () => {
    const u = await registerUser(t, 'tabs');
    const results = await Promise.all(Array.from({ length: 10 }, () => refresh(t, u.refreshToken)));
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    const successors = new Set(results.map((r) => r.body.refreshToken));
    expect(successors.size).toBe(1);
    for (const r of results) await t.http.get('/v1/auth/sessions').set(bearer(r.body.accessToken)).expect(200);
    // the one successor rotates on as usual, and the session was never revoked
    const next = await refresh(t, [...successors][0]).expect(200);
    await t.http.get('/v1/orgs').set(bearer(next.body.accessToken)).expect(200);
    const { rows } = await t.db.admin.query('SELECT revoked_at FROM core.sessions WHERE user_id = $1', [u.id]);
    expect(rows).toEqual([{ revoked_at: null }]);
    const stored = await t.db.admin.query('SELECT count(*)::int AS n FROM core.refresh_tokens WHERE user_id = $1', [u.id]);
    expect(stored.rows[0].n).toBe(3); // the first, its one successor, and the next: no token per tab
  });

  it(`after the grace window (REFRESH_GRACE_SECONDS), reuse of a rotated refresh token revokes the whole session: the newest token fails too, and it is audited`, async () => {
    const u = await registerUser(t, 'reuse');
    const second = await refresh(t, u.refreshToken).expect(200);
    pastGrace();
    const reused = await refresh(t, u.refreshToken).expect(401);
    expect(reused.body.error.message).toMatch(/already used; the session has been revoked/);
    const newest = await refresh(t, second.body.refreshToken).expect(401);
    expect(newest.body.error.message).toMatch(/session has ended/);
    // the access token of the revoked session is refused at once
    await t.http.get('/v1/auth/sessions').set(u.auth).expect(401);
    const open = await t.db.admin.query('SELECT count(*)::int AS n FROM core.sessions WHERE user_id = $1 AND revoked_at IS NULL', [u.id]);
    expect(open.rows[0].n).toBe(0);
    const { rows } = await t.db.admin.query(
      `SELECT principal_type FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.refresh_token_reused'`, [u.personalOrgId]);
    expect(rows).toEqual([{ principal_type: 'system' }]);
  });

  it('refuses an unknown refresh token and a missing one', async () => {
    await refresh(t, 'x'.repeat(43)).expect(401);
    const res = await t.http.post('/v1/auth/refresh').send({}).expect(400);
    expect(res.body.error.message).toMatch(/refreshToken is required/);
  });

  it('logout revokes the session of the calling token: its refresh token no longer works', async () => {
    const u = await registerUser(t, 'logout');
    await t.http.post('/v1/auth/logout').set(u.auth).expect(204);
    await refresh(t, u.refreshToken).expect(401);
    const { rows } = await t.db.admin.query(
      `SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.session_revoked'`, [u.personalOrgId]);
    expect(rows[0].n).toBe(1);
    await t.http.post('/v1/auth/logout').expect(401);
    // the access token of the ended session stops working at once, on user and org routes
    const after = await t.http.get('/v1/orgs').set(u.auth).expect(401);
    expect(after.body.error.message).toMatch(/session of this access token has ended/);
    await t.http.get(`/v1/orgs/${u.personalOrgId}`).set(u.auth).expect(401);
    // and on the routes without a tenant transaction: linking an identity, a data export, the notification stream
    const hubToken = 'x'.repeat(40);
    for (const [name, res] of [
      ['identities', await t.http.post('/v1/auth/identities').set(u.auth).send({ provider: 'hub', token: hubToken })],
      ['data export', await t.http.post('/v1/me/data-export').set(u.auth).send({})],
      ['stream', await t.http.get('/v1/me/notifications/stream').set(u.auth)],
    ] as const) {
      expect([name, res.status, res.body.error?.message]).toEqual([name, 401, 'the session of this access token has ended; log in again']);
    }
    const exports = await t.db.admin.query('SELECT count(*)::int AS n FROM core.data_exports WHERE user_id = $1', [u.id]);
    expect(exports.rows[0].n).toBe(0);
  });

  it('through the database as the user (the Supabase REST path): no session revived or ended, no e-mail or name written (only the API writes, audited: 20270205000900)', async () => {
    const u = await registerUser(t, 'rest');
    const [session] = (await t.http.get('/v1/auth/sessions').set(u.auth).expect(200)).body;
    await t.http.post('/v1/auth/logout').set(u.auth).expect(204);
    const asUser = (sql: string, params: unknown[] = []) => t.db.as({ sub: u.id, role: 'authenticated' }, 'authenticated', sql, params);
    await expect(asUser(`UPDATE core.sessions SET revoked_at = NULL, expires_at = '2099-01-01' WHERE id = $1`, [session.id])).rejects.toThrow(/permission denied/);
    expect(await asUser(`UPDATE core.sessions SET revoked_at = NULL, revoked_reason = NULL WHERE id = $1 RETURNING id`, [session.id])).toEqual([]);
    const { rows: [row] } = await t.db.admin.query('SELECT revoked_at IS NOT NULL AS revoked, expires_at < now() + interval \'1 year\' AS expiring FROM core.sessions WHERE id = $1', [session.id]);
    expect(row).toEqual({ revoked: true, expiring: true });
    await refresh(t, u.refreshToken).expect(401);
    // a live session is ended through the API (audited), not over REST
    const login = await t.http.post('/v1/auth/login').send({ email: u.email, password: 'correct horse battery' }).expect(200);
    const [live] = (await t.http.get('/v1/auth/sessions').set(bearer(login.body.accessToken)).expect(200)).body;
    expect(await asUser(`UPDATE core.sessions SET revoked_reason = 'noted' WHERE id = $1 RETURNING id`, [live.id])).toEqual([]);
    expect(await asUser(`UPDATE core.sessions SET revoked_at = now(), revoked_reason = 'logout' WHERE id = $1 RETURNING id`, [live.id])).toEqual([]);
    await t.http.get('/v1/auth/sessions').set(bearer(login.body.accessToken)).expect(200);
    // the account's e-mail changes only through the confirmed e-mail change, the name through the API
    await expect(asUser(`UPDATE core."User" SET email = 'ceo@corp.example' WHERE id = $1`, [u.id])).rejects.toThrow(/permission denied/);
    await expect(asUser(`DELETE FROM core."User" WHERE id = $1`, [u.id])).rejects.toThrow(/permission denied/);
    expect(await asUser(`UPDATE core."User" SET name = 'Renamed' WHERE id = $1 RETURNING name`, [u.id])).toEqual([]);
    expect((await t.db.admin.query('SELECT email, name, (SELECT revoked_at FROM core.sessions WHERE id = $2) AS revoked_at FROM core."User" WHERE id = $1', [u.id, live.id])).rows)
      .toEqual([{ email: u.email, name: 'rest', revoked_at: null }]);
  });

  it('through the database as the user (the Supabase REST path): no organization made, no invitation accepted (they run only through the API, which audits them)', async () => {
    const u = await verifyEmailOf(t, await registerUser(t, 'rpc'));
    const asUser = (sql: string, params: unknown[] = []) => t.db.as({ sub: u.id, role: 'authenticated' }, 'authenticated', sql, params);
    await expect(asUser(`SELECT * FROM core.create_organization('Unaudited Ltd', 'business')`)).rejects.toThrow(/only through the API/);
    await expect(asUser(`SELECT * FROM core.accept_invitation($1, 'x', 'omnizen')`, [u.personalOrgId])).rejects.toThrow(/only through the API/);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.organizations WHERE name = 'Unaudited Ltd'`)).rows[0].n).toBe(0);
    // the API's own call still works, audited
    const org = await t.http.post('/v1/orgs').set(u.auth).send({ name: 'Audited Ltd' }).expect(201);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'organization.created'`, [org.body.id])).rows[0].n).toBe(1);
  });

  it('lists only my sessions, marks the current one, and lets me revoke one of mine', async () => {
    const ada = await registerUser(t, 'ada');
    const bob = await registerUser(t, 'bob');
    const second = await t.http.post('/v1/auth/login').send({ email: ada.email, password: 'correct horse battery' }).expect(200);
    const list = await t.http.get('/v1/auth/sessions').set(ada.auth).expect(200);
    expect(list.body).toHaveLength(2);
    expect(list.body.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
    const bobs = await t.http.get('/v1/auth/sessions').set(bob.auth).expect(200);
    expect(bobs.body).toHaveLength(1);
    expect(list.body.map((s: { id: string }) => s.id)).not.toContain(bobs.body[0].id);

    const other = list.body.find((s: { current: boolean }) => !s.current);
    await t.http.delete(`/v1/auth/sessions/${other.id}`).set(ada.auth).expect(204);
    await refresh(t, second.body.refreshToken).expect(401);
    expect((await t.http.get('/v1/auth/sessions').set(ada.auth).expect(200)).body).toHaveLength(1);
  });

  it('ends an open notification stream when its session ends; the stream of another live session stays open', async () => {
    const u = await registerUser(t, 'streamer');
    // an organization in which the user's role changes: a notice pushed to the user's open streams
    const owner = await registerUser(t, 'streamowner');
    const orgId = await createOrg(t, owner, 'Stream Co');
    await addMember(t, orgId, u, 'member');
    const second = await t.http.post('/v1/auth/login').send({ email: u.email, password: 'correct horse battery' }).expect(200);
    const secondAuth = bearer(second.body.accessToken);
    const secondSession = (await t.http.get('/v1/auth/sessions').set(secondAuth).expect(200)).body.find((x: { current: boolean }) => x.current).id;
    // the checks of the open streams' sessions (one query for all of them), seen: resolves when the first check begun
    // after the logout is done, which checked the second session too
    const liveness = t.app.get(SessionLiveness);
    const checkWatched = liveness.checkWatched.bind(liveness);
    let loggedOut = false;
    let secondCheckedAfterLogout!: () => void;
    const secondChecked = new Promise<void>((resolve) => { secondCheckedAfterLogout = resolve; });
    const spy = jest.spyOn(liveness, 'checkWatched').mockImplementation(async () => {
      const afterLogout = loggedOut;
      await checkWatched();
      if (afterLogout) secondCheckedAfterLogout();
    });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const open = (headers: Record<string, string>) => new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/me/notifications/stream', headers: { ...headers, Accept: 'text/event-stream' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    const ended = (res: IncomingMessage) => new Promise<void>((resolve) => { res.on('end', resolve); res.on('close', resolve); res.resume(); });
    const first = await open(u.auth);
    const other = await open(secondAuth);
    try {
      expect([first.statusCode, other.statusCode]).toEqual([200, 200]);
      let otherEnded = false;
      let received = '';
      const notice = new Promise<string>((resolve) => {
        other.on('data', (chunk: Buffer) => {
          received += chunk.toString('utf8');
          const match = /event: notification\nid: [0-9a-f-]{36}\ndata: (.*)\n/.exec(received);
          if (match) resolve(match[1]);
        });
      });
      const otherClosed = ended(other).then(() => { otherEnded = true; });
      const firstEnded = ended(first);
      await t.http.post('/v1/auth/logout').set(u.auth).expect(204);
      loggedOut = true;
      await firstEnded;
      await secondChecked;
      expect(otherEnded).toBe(false);
      // the other stream is still open: a notice made after the check arrives on it (or the stream ends first, and this fails)
      await t.http.patch(`/v1/orgs/${orgId}/members/${u.id}`).set(owner.auth).send({ role: 'viewer' }).expect(200);
      await settle(t);
      const outcome = await bounded(Promise.race([notice.then((data) => ({ data: JSON.parse(data) })), otherClosed.then(() => ({ ended: true }))]),
        WAIT_BOUND_MS, () => 'neither the notice arrived on the other stream nor did it end');
      expect(outcome).toEqual({ data: expect.objectContaining({ orgId, eventType: 'member.role_changed', title: 'Your role in Stream Co changed' }) });
      expect((await t.db.admin.query('SELECT revoked_at FROM core.sessions WHERE id = $1', [secondSession])).rows).toEqual([{ revoked_at: null }]);
    } finally {
      spy.mockRestore();
      first.destroy();
      other.destroy();
    }
  });

  it("answers 404 to revoking another user's session, and leaves it alone", async () => {
    const ada = await registerUser(t, 'ada2');
    const bob = await registerUser(t, 'bob2');
    const [bobSession] = (await t.http.get('/v1/auth/sessions').set(bob.auth).expect(200)).body;
    const res = await t.http.delete(`/v1/auth/sessions/${bobSession.id}`).set(ada.auth).expect(404);
    expect(res.body.error.code).toBe('session.not_found');
    await refresh(t, bob.refreshToken).expect(200);
    // a malformed id names no session: the same 404 as an unknown one
    expect((await t.http.delete('/v1/auth/sessions/not-a-uuid').set(ada.auth).expect(404)).body.error.code).toBe('session.not_found');
    await t.http.get('/v1/auth/sessions').expect(401);
  });
});

describe.each([
  { secure: 'true', expectSecure: true },
  { secure: 'false', expectSecure: false },
])('cookie mode (AUTH_COOKIE_SECURE=$secure)', ({ secure, expectSecure }) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'true', AUTH_COOKIE_SECURE: secure, CORS_ORIGINS: `${APP_ORIGIN},https://hub.example.test` }, { clock });
  });
  afterAll(() => t.close());
  const clock = new ManualClock();

  /** Registers and signs in the way the frontend does: JSON from an allowed origin. */
  const signIn = async () => {
    const credentials = { email: uniqueEmail('cookie'), password: 'correct horse battery' };
    await t.http.post('/v1/auth/register').set('Origin', APP_ORIGIN).send(credentials).expect(202);
    const res = await t.http.post('/v1/auth/login').set('Origin', APP_ORIGIN).send(credentials).expect(200);
    await verifyEmailOf(t, res.body.user); // the CSRF tests create business organizations, which need it
    return res;
  };

  const cookiesOf = (res: { headers: Record<string, unknown> }) => (res.headers['set-cookie'] as string[] | undefined) ?? [];
  const find = (cookies: string[], name: string) => cookies.find((c) => c.startsWith(`${name}=`));
  const pair = (cookie: string) => cookie.split(';')[0];

  it('sets httpOnly, SameSite=Lax cookies with the configured secure flag; the cookie alone authenticates and refreshes', async () => {
    const res = await signIn();
    const access = find(cookiesOf(res), 'omnizen_access')!;
    const refreshCookie = find(cookiesOf(res), 'omnizen_refresh')!;
    for (const c of [access, refreshCookie]) {
      expect(c).toMatch(/; HttpOnly/);
      expect(c).toMatch(/; SameSite=Lax/);
      expect(/; Secure/.test(c)).toBe(expectSecure);
    }
    expect(refreshCookie).toMatch(/; Path=\/v1\/auth/);
    // lifetimes in seconds, as Set-Cookie's Max-Age counts them: the access token's and the refresh token's
    expect(access).toMatch(new RegExp(`; Max-Age=${t.config.auth.accessTokenTtlSeconds}(;|$)`));
    expect(refreshCookie).toMatch(new RegExp(`; Max-Age=${t.config.auth.refreshTokenTtlDays * 86_400}(;|$)`));

    const orgs = await t.http.get('/v1/orgs').set('Cookie', pair(access)).expect(200);
    expect(orgs.body.map((o: { id: string }) => o.id)).toEqual([res.body.personalOrgId]);

    const rotated = await t.http.post('/v1/auth/refresh').set('Origin', APP_ORIGIN).set('Cookie', pair(refreshCookie)).send({}).expect(200);
    expect(rotated.body.refreshToken).not.toBe(res.body.refreshToken);
    expect(find(cookiesOf(rotated), 'omnizen_refresh')).toContain(rotated.body.refreshToken);
    // past the grace window the old cookie is a reused token
    clock.advance((t.config.auth.refreshGraceSeconds + 1) * 1000);
    await t.http.post('/v1/auth/refresh').set('Origin', APP_ORIGIN).set('Cookie', pair(refreshCookie)).send({}).expect(401);
  });

  it('logout clears both cookies', async () => {
    const res = await signIn();
    const access = pair(find(cookiesOf(res), 'omnizen_access')!);
    const out = await t.http.post('/v1/auth/logout').set('Origin', APP_ORIGIN).set('Cookie', access).expect(204);
    const cleared = cookiesOf(out);
    expect(find(cleared, 'omnizen_access')).toMatch(/Expires=Thu, 01 Jan 1970/);
    expect(find(cleared, 'omnizen_refresh')).toMatch(/Expires=Thu, 01 Jan 1970/);
  });

  describe('CSRF: a cookie is not enough to change state', () => {
    const orgCount = async (userId: string) =>
      (await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations WHERE owner_user_id = $1', [userId])).rows[0].n;

    it('refuses a cookie-only POST from a foreign origin, or with no origin; nothing is created', async () => {
      const res = await signIn();
      const access = pair(find(cookiesOf(res), 'omnizen_access')!);
      const before = await orgCount(res.body.user.id);
      const foreign = await t.http.post('/v1/orgs').set('Cookie', access).set('Origin', 'https://evil.example').send({ name: 'Pwned' }).expect(403);
      expect(foreign.body.error).toEqual({ code: 'auth.csrf_rejected', message: 'origin https://evil.example is not allowed to send cookie-authenticated requests (CORS_ORIGINS)' });
      const referer = await t.http.post('/v1/orgs').set('Cookie', access).set('Referer', 'https://evil.example/page').send({ name: 'Pwned' }).expect(403);
      expect(referer.body.error.code).toBe('auth.csrf_rejected');
      const none = await t.http.post('/v1/orgs').set('Cookie', access).send({ name: 'Pwned' }).expect(403);
      expect(none.body.error.message).toMatch(/must carry an Origin header/);
      expect(await orgCount(res.body.user.id)).toBe(before);
      // the same request from an allowed origin works
      await t.http.post('/v1/orgs').set('Cookie', access).set('Origin', 'https://hub.example.test').send({ name: 'Mine' }).expect(201);
      expect(await orgCount(res.body.user.id)).toBe(before + 1);
    });

    it('refuses a form-encoded (or text/plain) cookie POST even from an allowed origin', async () => {
      const res = await signIn();
      const access = pair(find(cookiesOf(res), 'omnizen_access')!);
      const before = await orgCount(res.body.user.id);
      // a form or text/plain body is refused by the body parser before the guard runs (no operation takes one: 415)
      const form = await t.http.post('/v1/orgs').set('Cookie', access).set('Origin', APP_ORIGIN)
        .type('form').send('name=Pwned').expect(415);
      expect(form.body.error.code).toBe('unsupported_media_type');
      await t.http.post('/v1/orgs').set('Cookie', access).set('Origin', APP_ORIGIN).set('Content-Type', 'text/plain').send('{"name":"Pwned"}').expect(415);
      // a multipart form reaches the route (the uploads take one): the guard refuses it
      const multipart = await t.http.post('/v1/orgs').set('Cookie', access).set('Origin', APP_ORIGIN).field('name', 'Pwned').expect(403);
      expect(multipart.body.error).toMatchObject({ code: 'auth.csrf_rejected', message: expect.stringMatching(/Content-Type: application\/json/) });
      expect(await orgCount(res.body.user.id)).toBe(before);
    });

    it('refuses a cross-origin login (a form logging the victim into the attacker\'s account) and a cross-origin cookie refresh', async () => {
      const credentials = { email: uniqueEmail('attacker'), password: 'correct horse battery' };
      await t.http.post('/v1/auth/register').set('Origin', APP_ORIGIN).send(credentials).expect(202);
      const formLogin = await t.http.post('/v1/auth/login').set('Origin', 'https://evil.example').type('form')
        .send(`email=${encodeURIComponent(credentials.email)}&password=${encodeURIComponent(credentials.password)}`).expect(415);
      expect(formLogin.body.error.code).toBe('unsupported_media_type');
      expect(cookiesOf(formLogin)).toEqual([]);
      const jsonLogin = await t.http.post('/v1/auth/login').set('Origin', 'https://evil.example').send(credentials).expect(403);
      expect(cookiesOf(jsonLogin)).toEqual([]);
      // a form from an allowed origin is refused too (forms cannot send JSON): by the body parser, a multipart one by the guard
      await t.http.post('/v1/auth/login').set('Origin', APP_ORIGIN).type('form')
        .send(`email=${encodeURIComponent(credentials.email)}&password=x`).expect(415);
      await t.http.post('/v1/auth/login').set('Origin', APP_ORIGIN).field('email', credentials.email).field('password', 'x').expect(403);

      const res = await signIn();
      const refreshCookie = pair(find(cookiesOf(res), 'omnizen_refresh')!);
      await t.http.post('/v1/auth/refresh').set('Cookie', refreshCookie).set('Origin', 'https://evil.example').send({}).expect(403);
      // the refresh token was not used up by the refused request
      await t.http.post('/v1/auth/refresh').set('Cookie', refreshCookie).set('Origin', APP_ORIGIN).send({}).expect(200);
    });

    it('leaves bearer-token requests alone: they carry their credential explicitly', async () => {
      const res = await signIn();
      const api = await t.http.post('/v1/orgs').set('Authorization', `Bearer ${res.body.accessToken}`).set('Origin', 'https://evil.example').send({ name: 'Api' }).expect(201);
      // another scheme is no bearer token: the cookie would authenticate, so the cookie rules apply
      const access = pair(find(cookiesOf(res), 'omnizen_access')!);
      const basic = await t.http.post('/v1/orgs').set('Authorization', 'Basic Zm9vOmJhcg==').set('Cookie', access).set('Origin', 'https://evil.example').send({ name: 'Pwned' }).expect(403);
      expect(basic.body.error.code).toBe('auth.csrf_rejected');
      const owned = await t.db.admin.query('SELECT id, name FROM core.organizations WHERE owner_user_id = $1 AND name IN ($2, $3)', [res.body.user.id, 'Api', 'Pwned']);
      expect(owned.rows).toEqual([{ id: api.body.id, name: 'Api' }]);
    });
  });
});
