import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';
import { testKeys } from '../integrations/keys.js';

const VERIFY_FIRST = /needs a verified e-mail address: open the link mailed to it \(POST \/v1\/auth\/email-verification sends a new one\)$/;

/**
 * Someone can register another person's address (the e-mail stays unverified) and sign in. Such an account used to create
 * business organizations, invite people and create API keys; a later claim by the address's owner revoked the invitations
 * and keys but kept the memberships (test/auth/account-claim.test.ts). Each of the three now needs the caller's e-mail
 * verified (an identity of the user for the account's current address, email_verified_at set): 403 auth.email_unverified,
 * nothing written. The database enforces it (migration 20270210730100: core.create_organization, triggers on
 * core.invitations and core.api_keys), so neither the API's own transaction without the service's checks nor the Supabase
 * REST path goes around it. The personal organization made at registration, and a service's invitations, are unaffected.
 */
describe('an account whose e-mail is not verified creates no organization, invitation or API key', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  let owner: TestUser;
  let unverified: TestUser;
  let orgId: string;

  /** Every base table: row count and content. */
  const snapshot = () => tableContents(t.db.admin);
  async function writesNothing<T>(refuse: () => Promise<T>): Promise<T> {
    await settle(t);
    const before = await snapshot();
    const out = await refuse();
    expect(Object.entries(await snapshot()).filter(([k, v]) => before[k] !== v).map(([k]) => k)).toEqual([]);
    return out;
  }

  const createOrganization = (who: TestUser, name: string) => t.http.post('/v1/orgs').set(who.auth).send({ name });
  const createInvitation = (who: TestUser, email: string) => t.http.post(`/v1/orgs/${orgId}/invitations`).set(who.auth).send({ email, role: 'member' });
  const createApiKey = (who: TestUser, name: string) => t.http.post(`/v1/orgs/${orgId}/api-keys`).set(who.auth).send({ name, scopes: ['org:read'] });
  const refusal = (what: string) => ({ code: 'auth.email_unverified', message: expect.stringMatching(new RegExp(`^${what} ${VERIFY_FIRST.source}`)) });

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, RATE_LIMITS_ENABLED: 'false', SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Team Co'); // verifies the owner first
    await onEnterprisePlan(t, orgId);
    // an admin of a business organization whose e-mail nobody proved (an account made before this rule, say)
    unverified = await registerUser(t, 'unverified');
    await addMember(t, orgId, unverified, 'admin');
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('answers 403 auth.email_unverified to each of the three, naming how to verify, and writes nothing', async () => {
    const invitee = `invitee.${randomUUID()}@example.test`;
    const answers = await writesNothing(async () => [
      await createOrganization(unverified, 'Squatted Co'),
      await createInvitation(unverified, invitee),
      await createApiKey(unverified, 'unverified key'),
    ]);
    expect(answers.map((r) => [r.status, r.body.error])).toEqual([
      [403, refusal('creating an organization')],
      [403, refusal('inviting people')],
      [403, refusal('creating an API key')],
    ]);
    // and explicitly: no organization, invitation or key, and no audit row of one
    const { rows: [state] } = await t.db.admin.query(`
      SELECT (SELECT count(*)::int FROM core.organizations WHERE owner_user_id = $1) AS organizations,
             (SELECT count(*)::int FROM core.memberships WHERE user_id = $1) AS memberships,
             (SELECT count(*)::int FROM core.invitations WHERE email = $2) AS invitations,
             (SELECT count(*)::int FROM core.api_keys WHERE created_by = $1) AS keys,
             (SELECT count(*)::int FROM core.audit_logs WHERE actor_id = $1
                AND action IN ('organization.created', 'invitation.created', 'api_key.created')) AS audits`, [unverified.id, invitee]);
    expect(state).toEqual({ organizations: 1, memberships: 2, invitations: 0, keys: 0, audits: 0 }); // the personal one, and Team Co
    // the personal organization made at registration is theirs as before
    const orgs = await t.http.get('/v1/orgs').set(unverified.auth).expect(200);
    expect(orgs.body.map((o: { id: string; accountType: string; role: string }) => [o.id, o.accountType, o.role]))
      .toEqual([[unverified.personalOrgId, 'personal', 'owner'], [orgId, 'business', 'admin']]);
  });

  it('refuses them in the database too: in a transaction the API opened (begin_request) and on the Supabase REST path', async () => {
    const claims = { sub: unverified.id, email: unverified.email, org_id: orgId };
    const createOrganizationSql = `SELECT id FROM core.create_organization('Around The API Co', 'business')`;
    const insertInvitation = `INSERT INTO core.invitations (org_id, email, role, token_hash, invited_by, expires_at)
      VALUES ($1, 'direct@example.test', 'member', md5(random()::text), $2, now() + interval '1 day') RETURNING id`;
    const insertKey = `INSERT INTO core.api_keys (org_id, id, name, prefix, secret_hash, scopes, created_by)
      VALUES ($1, $3::uuid, 'direct', 'ozk_live_' || replace($3::text, '-', ''), repeat('0', 64), '{org:read}', $2) RETURNING id`;
    const unverifiedHint = { hint: 'auth.email_unverified' };
    await writesNothing(async () => {
      // the API's own transaction, past the policies (an owner or admin of the request's organization, created_by = the caller)
      await expect(t.db.asApi(claims, 'authenticated', createOrganizationSql)).rejects.toMatchObject(unverifiedHint);
      await expect(t.db.asApi(claims, 'authenticated', insertInvitation, [orgId, unverified.id])).rejects.toMatchObject(unverifiedHint);
      await expect(t.db.asApi(claims, 'authenticated', insertKey, [orgId, unverified.id, randomUUID()])).rejects.toMatchObject(unverifiedHint);
      // the REST path (claims not verified by begin_request): the function runs only through the API; the rows are refused
      // by the same check (a row trigger runs before the policies that close the REST path's writes)
      await expect(t.db.as(claims, 'authenticated', createOrganizationSql)).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/only through the API/) });
      await expect(t.db.as(claims, 'authenticated', insertInvitation, [orgId, unverified.id])).rejects.toMatchObject(unverifiedHint);
      await expect(t.db.as(claims, 'authenticated', insertKey, [orgId, unverified.id, randomUUID()])).rejects.toMatchObject(unverifiedHint);
    });
  });

  it('counts only a verification of the account\'s current address: an identity verified for another address does not do', async () => {
    const other = await registerUser(t, 'elsewhere');
    await addMember(t, orgId, other, 'admin');
    await t.db.admin.query(`UPDATE core.user_identities SET email = $2, email_verified_at = now() WHERE user_id = $1`, [other.id, `old.${randomUUID()}@example.test`]);
    const answers = await writesNothing(async () => [await createOrganization(other, 'Elsewhere Co'), await createApiKey(other, 'elsewhere key')]);
    expect(answers.map((r) => [r.status, r.body.error?.code])).toEqual([[403, 'auth.email_unverified'], [403, 'auth.email_unverified']]);
  });

  it('lets a service invite as before (no person sends it)', async () => {
    const serviceKey = jwt.sign({ role: 'service_role', service: 'unverified-actions' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const email = `from.service.${randomUUID()}@example.test`;
    const res = await t.http.post(`/v1/orgs/${orgId}/invitations`).set({ Authorization: `Bearer ${serviceKey}` }).send({ email, role: 'member' }).expect(201);
    expect(res.body).toMatchObject({ orgId, email, invitedBy: null, status: 'pending' });
    expect((await t.db.admin.query('SELECT invited_by FROM core.invitations WHERE id = $1', [res.body.id])).rows).toEqual([{ invited_by: null }]);
  });

  it('once the account verifies its address with the link mailed to it, each of the three succeeds, audited', async () => {
    await settle(t);
    smtp.messages.length = 0;
    await t.http.post('/v1/auth/email-verification').set(unverified.auth).expect(204);
    await settle(t);
    const mail = smtp.messages.find((m) => m.to.includes(unverified.email) && m.subject === 'Verify your e-mail address for OmniZen');
    const { token } = linkToken(mail!.text, '/verify-email');
    expect((await t.http.post('/v1/auth/verify-email').set(unverified.auth).send({ token }).expect(200)).body).toEqual({ email: unverified.email, verified: true });

    const invitee = `invitee.${randomUUID()}@example.test`;
    const org = await createOrganization(unverified, 'Verified Co').expect(201);
    const invitation = await createInvitation(unverified, invitee).expect(201);
    const key = await createApiKey(unverified, 'verified key').expect(201);
    expect(org.body).toMatchObject({ name: 'Verified Co', accountType: 'business', ownerUserId: unverified.id, role: 'owner' });
    expect(invitation.body).toMatchObject({ email: invitee, invitedBy: unverified.id, status: 'pending' });
    expect(key.body).toMatchObject({ name: 'verified key', createdBy: unverified.id });
    const { rows } = await t.db.admin.query(`
      SELECT (SELECT role FROM core.memberships WHERE org_id = $2 AND user_id = $1) AS role,
             (SELECT invited_by FROM core.invitations WHERE id = $3) AS invited_by,
             (SELECT created_by FROM core.api_keys WHERE id = $4) AS created_by,
             (SELECT array_agg(action ORDER BY action) FROM core.audit_logs WHERE actor_id = $1
                AND action IN ('organization.created', 'invitation.created', 'api_key.created')) AS audits`,
    [unverified.id, org.body.id, invitation.body.id, key.body.id]);
    expect(rows).toEqual([{
      role: 'owner', invited_by: unverified.id, created_by: unverified.id, audits: ['api_key.created', 'invitation.created', 'organization.created'],
    }]);
  });
});
