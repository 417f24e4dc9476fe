import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';
import { hashToken } from '../../src/modules/auth/token.service.js';

const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'a password after the erasure';

/**
 * A password-reset link mailed before a person's erasure used to work afterwards: the erasure left the unused token,
 * and the reset set a password on the erased account, with a verified password identity for its pseudonym
 * erased+<id>@invalid and an audit row. The erasure now deletes the person's reset tokens, and a reset refuses an
 * erased account.
 */
describe('a password-reset link does not outlive the erasure of its account', () => {
  let t: TestApp;
  let smtp: SmtpDouble;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: '', AUTH_COOKIES: 'false', APP_URL: 'https://app.omnizen.test' });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  /** What a reset of the erased account would have written: a password, an identity, sessions, its audit row. */
  async function writtenFor(user: TestUser) {
    const { rows: [w] } = await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM core.user_credentials WHERE user_id = $1) AS credentials,
              (SELECT count(*)::int FROM core.user_identities WHERE user_id = $1) AS identities,
              (SELECT count(*)::int FROM core.audit_logs WHERE entity_id = $1 AND action = 'auth.password_reset') AS resets,
              (SELECT email FROM core."User" WHERE id = $1) AS email`, [user.id]);
    return w;
  }
  const erased = (user: TestUser) => ({ credentials: 0, identities: 0, resets: 0, email: `erased+${user.id}@invalid` });

  it('the erasure deletes the person\'s unused reset link: confirming it afterwards is 400 auth.reset_invalid and writes nothing', async () => {
    const ada = await registerUser(t, 'resetada', PASSWORD);
    await t.http.post('/v1/auth/password-reset').send({ email: ada.email }).expect(202);
    await settle(t);
    const mail = smtp.messages.filter((m) => m.to.includes(ada.email) && m.subject === 'Reset your OmniZen password');
    expect(mail).toHaveLength(1);
    const { token } = linkToken(mail[0].text, '/reset-password');
    expect((await t.db.admin.query('SELECT used_at FROM core.password_reset_tokens WHERE user_id = $1', [ada.id])).rows).toEqual([{ used_at: null }]);

    const res = await t.http.delete('/v1/me').set(ada.auth).send({ password: PASSWORD }).expect(200);
    expect(res.body).toMatchObject({ userId: ada.id });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.password_reset_tokens WHERE user_id = $1', [ada.id])).rows).toEqual([{ n: 0 }]);
    const { rows: [audit] } = await t.db.admin.query(
      `SELECT after->'rowsByTable'->>'core.password_reset_tokens' AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [ada.id]);
    expect(audit).toEqual({ n: '1' });

    const confirm = await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: NEW_PASSWORD }).expect(400);
    expect(confirm.body.error.code).toBe('auth.reset_invalid');
    expect(await writtenFor(ada)).toEqual(erased(ada));
  });

  it('a reset link of an erased account that escaped the erasure (minted while it ran) is refused too: 400, nothing written, the link used up', async () => {
    const bob = await registerUser(t, 'resetbob', PASSWORD);
    await t.http.delete('/v1/me').set(bob.auth).send({ password: PASSWORD }).expect(200);
    const token = randomBytes(32).toString('base64url');
    await t.db.admin.query(`INSERT INTO core.password_reset_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '30 minutes')`,
      [hashToken(token), bob.id]);

    const confirm = await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: NEW_PASSWORD }).expect(400);
    expect(confirm.body.error.code).toBe('auth.reset_invalid');
    expect(await writtenFor(bob)).toEqual(erased(bob));
    const { rows } = await t.db.admin.query('SELECT used_at IS NOT NULL AS used FROM core.password_reset_tokens WHERE token_hash = $1', [hashToken(token)]);
    expect(rows).toEqual([{ used: true }]);
  });
});
