import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, uniqueEmail, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { until } from '../support/throwaway-servers.js';
import { linkToken, settle } from '../notifications/notifications-support.js';

const PASSWORD = 'correct horse battery';

/**
 * Error codes the OpenAPI document declares that only a server without SECRETS_KEYS, an e-mail change, or two requests
 * meeting on one row produce, over real HTTP (the coverage recorder had never seen them). A race is made certain, not
 * hoped for: a test connection holds the row lock, and lets go only once the requests wait on it. Every refusal
 * answers its status, code and message and writes nothing.
 */
describe('documented error codes of secrets, e-mail changes and concurrent requests, as answered', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  let owner: TestUser;
  let orgId: string;

  /** Every base table: row count and content. */
  const snapshot = () => tableContents(t.db.admin);

  async function writesNothing<T>(refuse: () => Promise<T>): Promise<T> {
    const before = await snapshot();
    const out = await refuse();
    const after = await snapshot();
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
    return out;
  }

  const errorOf = (res: { status: number; body: { error?: { code: string; message: string } } }) => [res.status, res.body.error?.code, res.body.error?.message];

  /** Resolves once `count` requests wait on a row lock (a row a test connection holds). */
  const rowLockWaiters = (count: number) => until(`${count} request(s) wait on a row lock`, async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')`)).rows[0].n >= count);

  /** A test connection in an open transaction (rolled back or committed by the test). */
  async function holding(sql: string, params: unknown[]): Promise<pg.PoolClient> {
    const c = await t.db.admin.connect();
    await c.query('BEGIN');
    await c.query(sql, params);
    return c;
  }

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    // no SECRETS_KEYS: the routes that seal a secret answer 503 secrets.not_configured
    t = await createTestApp({ ...smtp.env, SECRETS_KEYS: '', REDIS_URL: '', RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'races-owner', PASSWORD);
    orgId = await createOrg(t, owner, 'Races Ltd');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  const notConfigured = [503, 'secrets.not_configured', 'no encryption key for secrets is configured on this server (SECRETS_KEYS)'];

  it('secrets.not_configured: an integration secret and a webhook signing-secret rotation, on a server without SECRETS_KEYS', async () => {
    const integration = (await t.http.post('/v1/me/integrations').set(owner.auth).send({ integrationType: 'icloud' }).expect(201)).body.id;
    // made as a server with keys would have (this one cannot seal its secret)
    const { rows: [endpoint] } = await t.db.admin.query(
      `INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.com/races', '{"kid":"k1","v":1}'::jsonb) RETURNING id`, [orgId]);
    const answers = await writesNothing(() => Promise.all([
      t.http.put(`/v1/me/integrations/${integration}/secret`).set(owner.auth).send({ credentials: { username: 'ada', password: 'app-specific' } }),
      t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints/${endpoint.id}/rotate-secret`).set(owner.auth).send({}),
    ]));
    expect(answers.map(errorOf)).toEqual([notConfigured, notConfigured]);
  });

  it('integration.secret_invalid: credentials a CalDAV integration does not take', async () => {
    const integration = (await t.http.post('/v1/me/integrations').set(owner.auth).send({ integrationType: 'caldav' }).expect(201)).body.id;
    const res = await writesNothing(() => t.http.put(`/v1/me/integrations/${integration}/secret`).set(owner.auth)
      .send({ credentials: { username: 'ada', password: 'pw', token: 'extra' } }));
    expect(errorOf(res)).toEqual([400, 'integration.secret_invalid', 'credentials for caldav take only username, password, serverUrl; not token']);
  });

  it('auth.email_unchanged: asking to change the e-mail address to the current one', async () => {
    const res = await writesNothing(() => t.http.post('/v1/auth/email-change').set(owner.auth).send({ newEmail: owner.email, password: PASSWORD }));
    expect(errorOf(res)).toEqual([400, 'auth.email_unchanged', 'the new e-mail address is the current one']);
  });

  it('auth.email_taken: confirming a change to an address another account registered after it was asked for', async () => {
    const cy = await registerUser(t, 'races-cy', PASSWORD);
    const newEmail = uniqueEmail('races-wanted');
    await t.http.post('/v1/auth/email-change').set(cy.auth).send({ newEmail, password: PASSWORD }).expect(202);
    await settle(t);
    const [mail] = smtp.messages.filter((m) => m.to.includes(newEmail));
    const { token } = linkToken(mail.text, '/confirm-email-change');
    await registerUser(t, 'races-dee', PASSWORD, newEmail);
    await settle(t);
    const res = await writesNothing(() => t.http.post('/v1/auth/email-change/confirm').send({ token }));
    expect(errorOf(res)).toEqual([409, 'auth.email_taken', 'another account uses this e-mail address now']);
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [cy.id])).rows).toEqual([{ email: cy.email }]);
  });

  it('member.not_found: leaving an organization while an admin removes the membership (the removal commits first)', async () => {
    const eve = await registerUser(t, 'races-eve', PASSWORD);
    await addMember(t, orgId, eve, 'member');
    // the admin's removal, uncommitted: the leave reads the membership, then waits on its row
    const admin = await holding('DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, eve.id]);
    try {
      const before = await snapshot();
      const leaving = t.http.delete(`/v1/orgs/${orgId}/members/me`).set(eve.auth).then((r) => r);
      await rowLockWaiters(1);
      await admin.query('COMMIT');
      const res = await leaving;
      expect(errorOf(res)).toEqual([404, 'member.not_found', `member ${eve.id} was not found`]);
      // only the removal that committed: no audit row, no event of the leave
      const after = await snapshot();
      expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual(['core.memberships']);
      expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'membership.left'`, [orgId])).rows).toEqual([{ n: 0 }]);
    } finally {
      await admin.query('ROLLBACK').catch(() => undefined);
      admin.release();
    }
  });

  it('privacy.already_erased: two erasures of one person at once; the one that waited finds the person erased', async () => {
    const fay = await registerUser(t, 'races-fay', PASSWORD);
    const lock = await holding('SELECT 1 FROM core."User" WHERE id = $1 FOR UPDATE', [fay.id]);
    let answers;
    try {
      const erasing = [1, 2].map(() => t.http.delete('/v1/me').set(fay.auth).send({ password: PASSWORD }).then((r) => r));
      await rowLockWaiters(2);
      await lock.query('COMMIT');
      answers = await Promise.all(erasing);
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      lock.release();
    }
    const refused = answers.filter((r) => r.status !== 200);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(errorOf(refused[0])).toEqual([409, 'privacy.already_erased', 'this person has been erased already']);
    // erased once: one audit row
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [fay.id]);
    expect(rows).toEqual([{ n: 1 }]);
  });
});
