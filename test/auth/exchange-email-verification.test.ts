import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, uniqueEmail } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';
import { testKeys } from '../integrations/keys.js';
import { hashToken } from '../../src/modules/auth/token.service.js';

/**
 * A verified e-mail is needed to create organizations, invitations and API keys (20270210730100: an identity of the user
 * for the account's current address, verified). An account made by a Hub (or Supabase) exchange has no password
 * identity; the verification link and an invitation's mailed link used to mark only a password identity verified, so for
 * such an account they answered "verified" and changed nothing: the 403 stayed for good. Likewise for a Hub account whose
 * Hub address changed (its identity follows the Hub, the account keeps its address). A link mailed to the account's
 * address now proves it, whatever way the account signs in (core.prove_user_email, 20270210830100): the account's
 * password identity takes the address, verified, made when missing; that identity is no way to sign in.
 */
describe('a link mailed to an account made by a token exchange verifies its e-mail', () => {
  let t: TestApp;
  let smtp: SmtpDouble;

  const hubToken = (claims: Record<string, unknown>) => jwt.sign(claims, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
  const exchange = async (claims: Record<string, unknown>) => {
    const res = await t.http.post('/v1/auth/exchange').send({ token: hubToken(claims) }).expect(200);
    return { id: res.body.user.id as string, auth: { Authorization: `Bearer ${res.body.accessToken}` } };
  };
  const identities = async (userId: string) => (await t.db.admin.query(
    `SELECT provider, subject, email, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1 ORDER BY provider`, [userId])).rows;
  const userEmail = async (userId: string) => (await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [userId])).rows[0].email;
  const businessOrgs = async (userId: string) => (await t.db.admin.query(
    `SELECT name FROM core.organizations WHERE owner_user_id = $1 AND account_type = 'business' ORDER BY name`, [userId])).rows.map((r) => r.name);
  const unverified = { code: 'auth.email_unverified', message: expect.stringMatching(/^creating an organization needs a verified e-mail address/) };

  /** Asks for a verification link (POST /v1/auth/email-verification) and answers the one mailed to `to`. */
  async function mailedVerificationLink(auth: Record<string, string>, to: string): Promise<string> {
    await settle(t);
    const before = smtp.messages.length;
    await t.http.post('/v1/auth/email-verification').set(auth).expect(204);
    await settle(t);
    const mails = smtp.messages.slice(before).filter((m) => m.subject === 'Verify your e-mail address for OmniZen');
    expect(mails.map((m) => m.to)).toEqual([[to]]);
    return linkToken(mails[0].text, '/verify-email').token;
  }

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, RATE_LIMITS_ENABLED: 'false', SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('A: a Hub account without a verified e-mail: the verification link proves it (a password identity of the address, verified) and POST /v1/orgs answers 201', async () => {
    const email = uniqueEmail('hub-unverified');
    const sub = `hub-${randomUUID()}`;
    const hub = await exchange({ sub, email, name: 'Hub' });
    const refused = await t.http.post('/v1/orgs').set(hub.auth).send({ name: 'Hub Co' }).expect(403);
    expect(refused.body.error).toEqual(unverified);

    const token = await mailedVerificationLink(hub.auth, email);
    const verified = await t.http.post('/v1/auth/verify-email').set(hub.auth).send({ token }).expect(200);
    expect(verified.body).toEqual({ email, verified: true });
    expect(await identities(hub.id)).toEqual([
      { provider: 'nextauth', subject: sub, email, verified: false }, // the Hub's word stays the Hub's
      { provider: 'password', subject: hub.id, email, verified: true },
    ]);

    const created = await t.http.post('/v1/orgs').set(hub.auth).send({ name: 'Hub Co' }).expect(201);
    expect(created.body).toMatchObject({ name: 'Hub Co', accountType: 'business' });
    expect(await businessOrgs(hub.id)).toEqual(['Hub Co']);
    // verified now: asking again mails nothing
    await settle(t);
    const before = smtp.messages.length;
    await t.http.post('/v1/auth/email-verification').set(hub.auth).expect(204);
    await settle(t);
    expect(smtp.messages.slice(before)).toEqual([]);
  });

  it('A: the password identity that proves the address is no way to sign in: no password login, not listed, the Hub sign-in stays the last method', async () => {
    const email = uniqueEmail('hub-no-password');
    const sub = `hub-${randomUUID()}`;
    const hub = await exchange({ sub, email });
    await t.http.post('/v1/auth/verify-email').set(hub.auth).send({ token: await mailedVerificationLink(hub.auth, email) }).expect(200);

    const login = await t.http.post('/v1/auth/login').send({ email, password: 'correct horse battery staple' }).expect(401);
    expect(login.body.error.message).toBe('email or password is incorrect');
    const listed = await t.http.get('/v1/auth/identities').set(hub.auth).expect(200);
    expect(listed.body).toEqual([expect.objectContaining({ provider: 'nextauth', email, emailVerified: false })]);
    const unlink = await t.http.delete('/v1/auth/identities/nextauth').set(hub.auth).send({}).expect(409);
    expect(unlink.body.error.code).toBe('auth.last_sign_in_method');
    expect((await identities(hub.id)).map((i) => i.provider)).toEqual(['nextauth', 'password']);
    expect(await t.db.admin.query('SELECT 1 FROM core.user_credentials WHERE user_id = $1', [hub.id])).toMatchObject({ rowCount: 0 });
  });

  it('B: a Hub-verified account whose Hub address changed: the link to the account\'s own address proves it and POST /v1/orgs answers 201', async () => {
    const sub = `hub-${randomUUID()}`;
    const email = uniqueEmail('hub-verified');
    const first = await exchange({ sub, email, email_verified: true });
    await t.http.post('/v1/orgs').set(first.auth).send({ name: 'Hub V Co' }).expect(201);
    const moved = uniqueEmail('hub-moved');
    const hub = await exchange({ sub, email: moved, email_verified: true });
    expect(hub.id).toBe(first.id);
    expect(await userEmail(hub.id)).toBe(email); // the account keeps its address; the Hub identity follows the Hub
    const refused = await t.http.post('/v1/orgs').set(hub.auth).send({ name: 'Hub V Co 2' }).expect(403);
    expect(refused.body.error).toEqual(unverified);

    const token = await mailedVerificationLink(hub.auth, email);
    const verified = await t.http.post('/v1/auth/verify-email').set(hub.auth).send({ token }).expect(200);
    expect(verified.body).toEqual({ email, verified: true });
    expect(await identities(hub.id)).toEqual([
      { provider: 'nextauth', subject: sub, email: moved, verified: true },
      { provider: 'password', subject: hub.id, email, verified: true },
    ]);
    await t.http.post('/v1/orgs').set(hub.auth).send({ name: 'Hub V Co 2' }).expect(201);
    expect(await businessOrgs(hub.id)).toEqual(['Hub V Co', 'Hub V Co 2']);
  });

  it('an invitation accepted with its mailed link proves a Hub account\'s address too', async () => {
    const owner = await registerUser(t, 'inviting-owner');
    const orgId = await createOrg(t, owner, 'Inviting Co');
    await onEnterprisePlan(t, orgId);
    const email = uniqueEmail('hub-invitee');
    const sub = `hub-${randomUUID()}`;
    const hub = await exchange({ sub, email });
    await settle(t);
    const before = smtp.messages.length;
    await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email, role: 'member' }).expect(201);
    await settle(t);
    const [mail] = smtp.messages.slice(before).filter((m) => m.to.includes(email) && m.subject.startsWith('You are invited'));
    const { token } = linkToken(mail.text, '/invitations/accept');

    await t.http.post('/v1/invitations/accept').set(hub.auth).send({ orgId, token }).expect(200);
    expect(await identities(hub.id)).toEqual([
      { provider: 'nextauth', subject: sub, email, verified: false },
      { provider: 'password', subject: hub.id, email, verified: true },
    ]);
    await t.http.post('/v1/orgs').set(hub.auth).send({ name: 'Invitee Co' }).expect(201);
    expect(await businessOrgs(hub.id)).toEqual(['Invitee Co']);
  });

  it('a reset link proves the address too, also of a Hub-verified account: the password it sets is listed, and the proof outlives a move of the Hub address', async () => {
    const email = uniqueEmail('hub-reset');
    const sub = `hub-${randomUUID()}`;
    const hub = await exchange({ sub, email, email_verified: true });
    await settle(t);
    const before = smtp.messages.length;
    await t.http.post('/v1/auth/password-reset').send({ email }).expect(202);
    await settle(t);
    const [mail] = smtp.messages.slice(before).filter((m) => m.to.includes(email) && m.subject === 'Reset your OmniZen password');
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(mail.text, '/reset-password').token, password: 'a fresh long passphrase' }).expect(204);
    expect(await identities(hub.id)).toEqual([
      { provider: 'nextauth', subject: sub, email, verified: true },
      { provider: 'password', subject: hub.id, email, verified: true },
    ]);
    const login = await t.http.post('/v1/auth/login').send({ email, password: 'a fresh long passphrase' }).expect(200);
    const auth = { Authorization: `Bearer ${login.body.accessToken}` };
    expect((await t.http.get('/v1/auth/identities').set(auth).expect(200)).body.map((i: { provider: string }) => i.provider).sort()).toEqual(['nextauth', 'password']);
    // the Hub reports another address later: the account's own address stays proven by the link
    await exchange({ sub, email: uniqueEmail('hub-reset-moved'), email_verified: true });
    expect(await userEmail(hub.id)).toBe(email);
    await t.http.post('/v1/orgs').set(auth).send({ name: 'Reset Co' }).expect(201);
    expect(await businessOrgs(hub.id)).toEqual(['Reset Co']);
  });

  it('a verification link for an address the account no longer has proves nothing (400 auth.verification_invalid)', async () => {
    const email = uniqueEmail('hub-old-link');
    const hub = await exchange({ sub: `hub-${randomUUID()}`, email });
    const stale = `stale-verification-token-${randomUUID()}`;
    await t.db.admin.query(`INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, now() + interval '1 hour')`,
      [hashToken(stale), hub.id, uniqueEmail('no-longer-theirs')]);
    const res = await t.http.post('/v1/auth/verify-email').set(hub.auth).send({ token: stale }).expect(400);
    expect(res.body.error.code).toBe('auth.verification_invalid');
    expect(await identities(hub.id)).toEqual([expect.objectContaining({ provider: 'nextauth', verified: false })]);
    expect((await t.db.admin.query('SELECT used_at FROM core.email_verification_tokens WHERE token_hash = $1', [hashToken(stale)])).rows).toEqual([{ used_at: null }]);
  });
});
