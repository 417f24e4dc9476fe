import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { SchedulerRegistry } from '@nestjs/schedule';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { PURGE_JOB, SessionPurgeJob } from '../../src/modules/auth/purge.job.js';
import { loadConfig } from '../../src/platform/config/config.js';

describe('service-role key, secrets, and the session purge job', () => {
  let t: TestApp;
  let ada: TestUser;
  let serviceAuth: { Authorization: string };

  beforeAll(async () => {
    t = await createTestApp({ JOBS_PURGE_CRON: '0 30 3 * * *' });
    ada = await registerUser(t, 'ada');
    const key = jwt.sign({ role: 'service_role', iss: 'supabase' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
  });
  afterAll(() => t.close());

  describe('the Supabase service-role key', () => {
    it('reads an existing organization, and its mutation is audited as a service', async () => {
      const orgId = await createOrg(t, ada, 'Serviced');
      const org = await t.http.get(`/v1/orgs/${orgId}`).set(serviceAuth).expect(200);
      expect(org.body).toMatchObject({ id: orgId, name: 'Serviced' });
      await t.http.patch(`/v1/orgs/${orgId}`).set(serviceAuth).send({ name: 'Serviced by a job' }).expect(200);
      const { rows } = await t.db.admin.query(
        `SELECT actor_id, principal_type FROM core.audit_logs WHERE org_id = $1 AND action = 'organization.updated'`, [orgId]);
      expect(rows).toEqual([{ actor_id: 'service:supabase', principal_type: 'service' }]);
    });

    it('gets 403 on user routes', async () => {
      const res = await t.http.get('/v1/orgs').set(serviceAuth).expect(403);
      expect(res.body.error.code).toBe('auth.user_required');
      await t.http.get('/v1/auth/sessions').set(serviceAuth).expect(403);
    });

    it('is refused (401) when signed with another secret, or expired', async () => {
      const orgId = await createOrg(t, ada, 'Guarded');
      const forged = jwt.sign({ role: 'service_role' }, 'not-the-supabase-secret-but-long-enough!', { expiresIn: 600 });
      await t.http.get(`/v1/orgs/${orgId}`).set('Authorization', `Bearer ${forged}`).expect(401);
      const expired = jwt.sign({ role: 'service_role', exp: Math.floor(Date.now() / 1000) - 60 }, t.config.auth.supabaseJwtSecret);
      const res = await t.http.get(`/v1/orgs/${orgId}`).set('Authorization', `Bearer ${expired}`).expect(401);
      expect(res.body.error.message).toBe('the access token has expired');
    });
  });

  describe('password hashes', () => {
    it('never appear in any response', async () => {
      const u = await registerUser(t, 'hash');
      const { rows } = await t.db.admin.query('SELECT password_hash FROM core.user_credentials WHERE user_id = $1', [u.id]);
      const hash: string = rows[0].password_hash;
      expect(hash).toMatch(/^\$argon2id\$/);
      const bodies = [
        await t.http.post('/v1/auth/login').send({ email: u.email, password: 'correct horse battery' }).expect(200),
        await t.http.post('/v1/auth/refresh').send({ refreshToken: u.refreshToken }).expect(200),
        await t.http.get('/v1/orgs').set(u.auth).expect(200),
        await t.http.get(`/v1/orgs/${u.personalOrgId}`).set(u.auth).expect(200),
        await t.http.get(`/v1/orgs/${u.personalOrgId}/audit-logs`).set(u.auth).expect(200),
        await t.http.get('/v1/auth/sessions').set(u.auth).expect(200),
        await t.http.post('/v1/auth/register').send({ email: u.email, password: 'correct horse battery' }).expect(202),
        await t.http.get('/v1/auth/identities').set(u.auth).expect(200),
      ].map((r) => r.text);
      for (const body of bodies) {
        expect(body).not.toContain(hash);
        expect(body).not.toMatch(/password_?hash/i);
      }
    });

    it('cannot be selected by the authenticated role, not even one\'s own', async () => {
      const u = await registerUser(t, 'rls');
      const claims = { sub: u.id, role: 'authenticated', email: u.email, org_id: u.personalOrgId };
      await expect(t.db.as(claims, 'authenticated', 'SELECT * FROM core.user_credentials WHERE user_id = $1', [u.id]))
        .rejects.toThrow(/permission denied/);
      await expect(t.db.as(claims, 'authenticated', 'SELECT * FROM core.refresh_tokens')).rejects.toThrow(/permission denied/);
      for (const table of ['user_identities', 'email_verification_tokens', 'app_token_redemptions']) {
        await expect(t.db.as(claims, 'authenticated', `SELECT * FROM core.${table}`)).rejects.toThrow(/permission denied/);
        await expect(t.db.as({ role: 'anon' }, 'anon', `SELECT * FROM core.${table}`)).rejects.toThrow(/permission denied/);
      }
    });
  });

  describe('session purge job', () => {
    it('is scheduled with JOBS_PURGE_CRON; a test app stops its cron jobs unless asked (test/support/app.ts)', async () => {
      // this file's app: registered, not running on the wall clock, so the purge below runs when the test says
      const stopped = t.app.get(SchedulerRegistry).getCronJobs();
      expect(stopped.get(PURGE_JOB)?.cronTime.source).toBe('0 30 3 * * *');
      expect([...stopped].filter(([, job]) => job.isActive).map(([name]) => name)).toEqual([]);
      const scheduled = await createTestApp({ JOBS_PURGE_CRON: '0 30 3 * * *' }, { wallClockCrons: true });
      try {
        const job = scheduled.app.get(SchedulerRegistry).getCronJob(PURGE_JOB);
        expect(job.cronTime.source).toBe('0 30 3 * * *');
        expect(job.isActive).toBe(true);
      } finally {
        await scheduled.close();
      }
    });

    it('refuses a bad JOBS_PURGE_CRON at boot with a message naming it', () => {
      expect(() => loadConfig({ DATABASE_URL: t.config.databaseUrl, JOBS_PURGE_CRON: 'every now and then' }))
        .toThrow(/^JOBS_PURGE_CRON "every now and then" is not a valid cron expression/);
    });

    it('deletes expired refresh tokens and ended sessions, keeps live ones, and audits per user', async () => {
      const u = await registerUser(t, 'purge');
      const old = await t.http.post('/v1/auth/login').send({ email: u.email, password: 'correct horse battery' }).expect(200);
      const revoked = await t.http.post('/v1/auth/login').send({ email: u.email, password: 'correct horse battery' }).expect(200);
      const sessionOf = async (accessToken: string) => (jwt.decode(accessToken) as { session_id: string }).session_id;
      // age two sessions past their end, and one rotated token of the live session past its expiry
      await t.db.admin.query(`UPDATE core.sessions SET expires_at = now() - interval '2 days' WHERE id = $1`, [await sessionOf(old.body.accessToken)]);
      await t.db.admin.query(`UPDATE core.sessions SET revoked_at = now() - interval '31 days' WHERE id = $1`, [await sessionOf(revoked.body.accessToken)]);
      const live = await t.http.post('/v1/auth/refresh').send({ refreshToken: u.refreshToken }).expect(200);
      await t.db.admin.query(
        `UPDATE core.refresh_tokens SET expires_at = now() - interval '2 days' WHERE session_id = $1 AND used_at IS NOT NULL`,
        [await sessionOf(u.token)]);

      const result = await t.app.get(SessionPurgeJob).run();
      expect(result.sessions).toBeGreaterThanOrEqual(2);
      expect(result.tokens).toBeGreaterThanOrEqual(1);
      const { rows: left } = await t.db.admin.query('SELECT id FROM core.sessions WHERE user_id = $1', [u.id]);
      expect(left.map((r) => r.id)).toEqual([await sessionOf(u.token)]);
      const { rows: tokens } = await t.db.admin.query('SELECT used_at FROM core.refresh_tokens WHERE user_id = $1', [u.id]);
      expect(tokens).toEqual([{ used_at: null }]);
      await t.http.post('/v1/auth/refresh').send({ refreshToken: live.body.refreshToken }).expect(200);
      const { rows: audit } = await t.db.admin.query(
        `SELECT principal_type, entity_id, after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.sessions_purged'`, [u.personalOrgId]);
      expect(audit).toEqual([{ principal_type: 'system', entity_id: u.id, after: { sessions: 2 } }]);

      const again = await t.app.get(SessionPurgeJob).run();
      expect(again).toEqual({ tokens: 0, sessions: 0 });
    });

    it('also drops spent or expired verification links and redemptions of expired app tokens, keeping live ones', async () => {
      const u = await registerUser(t, 'purge2');
      await t.db.admin.query(
        `INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at, used_at) VALUES
           ('expired-${u.id}', $1, $2, now() - interval '2 days', NULL),
           ('used-${u.id}', $1, $2, now() + interval '1 day', now() - interval '2 days'),
           ('live-${u.id}', $1, $2, now() + interval '1 day', NULL)`, [u.id, u.email]);
      await t.db.admin.query(
        `INSERT INTO core.app_token_redemptions (jti, user_id, app_code, expires_at) VALUES
           (gen_random_uuid(), $1, 'app_old', now() - interval '2 days'), (gen_random_uuid(), $1, 'app_live', now() + interval '1 minute')`, [u.id]);
      await t.app.get(SessionPurgeJob).run();
      const { rows: links } = await t.db.admin.query('SELECT used_at FROM core.email_verification_tokens WHERE user_id = $1', [u.id]);
      // the live link stays (registration's own link is minted only when its mail is sent: no mail job ran here)
      expect(links).toEqual([{ used_at: null }]);
      const { rows: redemptions } = await t.db.admin.query('SELECT app_code FROM core.app_token_redemptions WHERE user_id = $1', [u.id]);
      expect(redemptions).toEqual([{ app_code: 'app_live' }]);
    });

    it('also drops spent or expired password-reset links and e-mail change requests a day later, keeping live and recent ones', async () => {
      const u = await registerUser(t, 'purge3');
      await t.db.admin.query(
        `INSERT INTO core.password_reset_tokens (token_hash, user_id, expires_at, used_at) VALUES
           ('reset-expired-${u.id}', $1, now() - interval '2 days', NULL),
           ('reset-used-${u.id}', $1, now() + interval '1 hour', now() - interval '2 days'),
           ('reset-used-now-${u.id}', $1, now() + interval '1 hour', now()),
           ('reset-live-${u.id}', $1, now() + interval '30 minutes', NULL)`, [u.id]);
      await t.db.admin.query(
        `INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, confirmed_at) VALUES
           ($1, $2, 'old-expired@example.test', now() - interval '2 days', NULL),
           ($1, $2, 'old-confirmed@example.test', now() + interval '1 day', now() - interval '2 days'),
           ($1, $2, 'pending@example.test', now() + interval '1 day', NULL)`, [u.id, u.email]);
      // a confirmed change whose old address was verified then stays: the proof that address was theirs (erasure, export)
      await t.db.admin.query(`INSERT INTO core.email_change_requests (user_id, old_email, new_email, expires_at, confirmed_at, old_email_verified)
        VALUES ($1, $2, 'proof-kept@example.test', now() - interval '2 days', now() - interval '3 days', true)`, [u.id, u.email]);
      await t.app.get(SessionPurgeJob).run();
      const { rows: resets } = await t.db.admin.query('SELECT token_hash FROM core.password_reset_tokens WHERE user_id = $1 ORDER BY token_hash', [u.id]);
      expect(resets.map((r) => r.token_hash)).toEqual([`reset-live-${u.id}`, `reset-used-now-${u.id}`]);
      const { rows: changes } = await t.db.admin.query('SELECT new_email FROM core.email_change_requests WHERE user_id = $1 ORDER BY new_email', [u.id]);
      expect(changes).toEqual([{ new_email: 'pending@example.test' }, { new_email: 'proof-kept@example.test' }]);
    });
  });
});
