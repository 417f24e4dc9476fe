import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';
import { testKeys } from '../integrations/keys.js';

/**
 * Pre-account takeover: someone registers another person's address (never verified), builds organizations with people of
 * their choosing around it, and waits for the address's owner to claim the account (a verified sign-in, a password reset).
 * The claim must not leave the owner inside what the pre-registrant built with others, nor let it grow afterwards.
 */
describe('claiming a pre-registered account', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  const byOrg = (a: { orgId: string }, b: { orgId: string }) => (a.orgId < b.orgId ? -1 : 1);

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, SECRETS_KEYS: testKeys('k1').env, REDIS_URL: undefined, APP_URL: 'https://app.omnizen.test' });
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  const verified = async (prefix: string) => verifyEmailOf(t, await registerUser(t, prefix));
  const invite = (who: TestUser, orgId: string, email: string, role: string) =>
    t.http.post(`/v1/orgs/${orgId}/invitations`).set(who.auth).send({ email, role }).expect(201);
  const accept = (who: TestUser, orgId: string, token: string) => t.http.post('/v1/invitations/accept').set(who.auth).send({ orgId, token });
  const membersOf = async (orgId: string) =>
    (await t.db.admin.query('SELECT user_id, role FROM core.memberships WHERE org_id = $1 ORDER BY user_id', [orgId])).rows;
  const auditOf = async (orgId: string, action: string) => (await t.db.admin.query(
    'SELECT entity_id, principal_type, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id', [orgId, action])).rows;

  /** The pre-registrant's set-up: returns the account (signed in with the pre-registered password) and its organizations. */
  async function preRegister(victimEmail: string) {
    const squatter = await registerUser(t, 'squatter', 'squatter password', victimEmail);
    const accomplice = await verified('accomplice');
    const lurker = await verified('lurker');
    // Squatted Co: the account its only owner, the pre-registrant's other account an admin, one more invitation pending
    const squatted = await createOrg(t, squatter, 'Squatted Co');
    await onEnterprisePlan(t, squatted);
    const toAccomplice = await invite(squatter, squatted, accomplice.email, 'admin');
    await accept(accomplice, squatted, toAccomplice.body.token).expect(200);
    const pending = await invite(squatter, squatted, lurker.email, 'member');
    // Solo Co: nobody else in it yet, but an invitation waits for the pre-registrant's other address
    const solo = await createOrg(t, squatter, 'Solo Co');
    await onEnterprisePlan(t, solo);
    const soloPending = await invite(squatter, solo, lurker.email, 'admin');
    // and a webhook endpoint there, to a server of the pre-registrant's: it would receive the owner's work in Solo Co
    const hook = (await t.http.post(`/v1/orgs/${solo}/webhooks/endpoints`).set(squatter.auth).send({ url: 'https://hooks.example.com/squatter' }).expect(201)).body;
    return { hook, squatter, accomplice, lurker, squatted, solo, pending: pending.body, soloPending: soloPending.body };
  }

  it('a verified sign-in claims it: the account leaves the organizations it shared (the senior member takes over), its pending invitations are revoked, the webhook endpoints of what it keeps disabled, all audited', async () => {
    const victimEmail = uniqueEmail('victim');
    const { squatter, accomplice, lurker, squatted, solo, pending, soloPending, hook } = await preRegister(victimEmail);
    // Shared Co: the accomplice was made a second owner there: the account just leaves
    const shared = await createOrg(t, squatter, 'Shared Co');
    await onEnterprisePlan(t, shared);
    const toShared = await invite(squatter, shared, accomplice.email, 'admin');
    await accept(accomplice, shared, toShared.body.token).expect(200);
    await t.http.patch(`/v1/orgs/${shared}/members/${accomplice.id}`).set(squatter.auth).send({ role: 'owner' }).expect(200);

    // the address's owner signs in through the Hub, which verified the address
    const hubToken = jwt.sign({ sub: `hub-${randomUUID()}`, email: victimEmail, email_verified: true }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
    const victim = await t.http.post('/v1/auth/exchange').send({ token: hubToken }).expect(200);
    expect(victim.body.user.id).toBe(squatter.id);
    const victimAuth = { Authorization: `Bearer ${victim.body.accessToken}` };

    // the owner is in their personal organization and in Solo Co (nobody else's) only
    const orgs = await t.http.get('/v1/orgs').set(victimAuth).expect(200);
    expect(orgs.body.map((o: { id: string; role: string }) => ({ orgId: o.id, role: o.role })).sort(byOrg))
      .toEqual([{ orgId: squatter.personalOrgId, role: 'owner' }, { orgId: solo, role: 'owner' }].sort(byOrg));
    const refused = await t.http.get(`/v1/orgs/${squatted}`).set(victimAuth);
    expect(refused.status).toBeGreaterThanOrEqual(403);
    // Squatted Co is the accomplice's now (the only owner left: the account's membership could not just end); Shared Co had one
    expect(await membersOf(squatted)).toEqual([{ user_id: accomplice.id, role: 'owner' }]);
    expect(await membersOf(shared)).toEqual([{ user_id: accomplice.id, role: 'owner' }]);
    expect(await membersOf(solo)).toEqual([{ user_id: squatter.id, role: 'owner' }]);
    const members = await t.http.get(`/v1/orgs/${squatted}/members`).set(accomplice.auth).expect(200);
    expect(members.body.items).toEqual([expect.objectContaining({ userId: accomplice.id, role: 'owner' })]);

    // the invitations it sent are dead: the lurker can no longer come in next to the owner (Solo Co) or at all
    for (const [orgId, invitation] of [[squatted, pending], [solo, soloPending]] as const) {
      const dead = await accept(lurker, orgId, invitation.token).expect(404);
      expect(dead.body.error.code).toBe('invitation.not_found');
      expect(await auditOf(orgId, 'invitation.revoked')).toEqual([
        expect.objectContaining({ entity_id: invitation.id, principal_type: 'system', after: expect.objectContaining({ status: 'revoked', reason: 'inviter_account_claimed' }) }),
      ]);
    }
    const { rows: invitations } = await t.db.admin.query(
      'SELECT id, revoked_at IS NOT NULL AS revoked, accepted_at IS NOT NULL AS accepted FROM core.invitations WHERE invited_by = $1 ORDER BY created_at', [squatter.id]);
    expect(invitations).toEqual([
      { id: expect.any(String), revoked: false, accepted: true }, { id: pending.id, revoked: true, accepted: false },
      { id: soloPending.id, revoked: true, accepted: false }, { id: expect.any(String), revoked: false, accepted: true },
    ]);
    expect(await membersOf(solo)).toEqual([{ user_id: squatter.id, role: 'owner' }]);
    // the webhook endpoint the pre-registrant set up in Solo Co sends nothing more; the owner sees why
    const endpoint = await t.http.get(`/v1/orgs/${solo}/webhooks/endpoints/${hook.id}`).set(victimAuth).expect(200);
    expect(endpoint.body).toMatchObject({ id: hook.id, enabled: false, disabledReason: 'account_claimed' });
    expect((await t.db.admin.query('SELECT enabled, disabled_reason FROM core.webhook_endpoints WHERE id = $1', [hook.id])).rows)
      .toEqual([{ enabled: false, disabled_reason: 'account_claimed' }]);
    expect(await auditOf(solo, 'webhooks.endpoint_disabled')).toEqual([
      expect.objectContaining({ entity_id: hook.id, principal_type: 'system', after: { enabled: false, reason: 'account_claimed' } }),
    ]);

    // audited in each organization, and in the claim's own row
    expect(await auditOf(squatted, 'membership.role_changed')).toEqual([
      expect.objectContaining({ entity_id: accomplice.id, principal_type: 'system', after: expect.objectContaining({ role: 'owner', reason: 'only_owner_account_claimed' }) }),
    ]);
    for (const orgId of [squatted, shared]) {
      expect(await auditOf(orgId, 'membership.removed')).toEqual([
        expect.objectContaining({ entity_id: squatter.id, principal_type: 'system', after: { reason: 'account_claimed' } }),
      ]);
    }
    const [claim] = (await t.db.admin.query(`SELECT before FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.unverified_account_claimed'`, [squatter.personalOrgId])).rows;
    expect(claim.before).toMatchObject({
      invitationsRevoked: 2, webhookEndpointsDisabled: 1,
      organizationsLeft: [{ orgId: squatted, role: 'owner', newOwner: accomplice.id }, { orgId: shared, role: 'owner' }].sort(byOrg),
      organizations: [{ orgId: squatter.personalOrgId, role: 'owner' }, { orgId: solo, role: 'owner' }].sort(byOrg),
    });
    // and told, as the API's changes are
    const { rows: events } = await t.db.admin.query(
      `SELECT org_id, payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox
       WHERE org_id = ANY($1::uuid[]) AND payload->>'type' IN ('member.removed', 'member.role_changed') ORDER BY id`, [[squatted, shared]]);
    expect(events.filter((e) => e.payload.userId === squatter.id || e.payload.changedBy === null).map((e) => ({ orgId: e.org_id, type: e.type, payload: e.payload })).sort(byOrg)).toEqual([
      { orgId: squatted, type: 'member.role_changed', payload: { userId: accomplice.id, previousRole: 'admin', role: 'owner', changedBy: null } },
      { orgId: squatted, type: 'member.removed', payload: { userId: squatter.id, role: 'owner', left: false } },
      { orgId: shared, type: 'member.removed', payload: { userId: squatter.id, role: 'owner', left: false } },
    ].sort(byOrg));
  });

  it('a password reset through the mailed link claims it the same way', async () => {
    const victimEmail = uniqueEmail('reset-victim');
    const { squatter, accomplice, lurker, squatted, solo, pending } = await preRegister(victimEmail);

    await t.http.post('/v1/auth/password-reset').send({ email: victimEmail }).expect(202);
    await settle(t);
    const [mail] = smtp.messages.filter((m) => m.to.includes(victimEmail) && m.subject === 'Reset your OmniZen password');
    await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(mail.text, '/reset-password').token, password: 'the owner password' }).expect(204);
    const owner = await t.http.post('/v1/auth/login').send({ email: victimEmail, password: 'the owner password' }).expect(200);

    const orgs = await t.http.get('/v1/orgs').set('Authorization', `Bearer ${owner.body.accessToken}`).expect(200);
    expect(orgs.body.map((o: { id: string }) => o.id).sort()).toEqual([squatter.personalOrgId, solo].sort());
    expect(await membersOf(squatted)).toEqual([{ user_id: accomplice.id, role: 'owner' }]);
    expect((await accept(lurker, squatted, pending.token).expect(404)).body.error.code).toBe('invitation.not_found');
    const [reset] = (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.password_reset'`, [squatter.personalOrgId])).rows;
    expect(reset.after).toMatchObject({
      emailVerified: true, invitationsRevoked: 2, webhookEndpointsDisabled: 1, organizationsLeft: [{ orgId: squatted, role: 'owner', newOwner: accomplice.id }],
      organizations: [{ orgId: squatter.personalOrgId, role: 'owner' }, { orgId: solo, role: 'owner' }].sort(byOrg),
    });
  });

  it('a verified account\'s sign-in claims nothing: its organizations and invitations stay', async () => {
    const owner = await verified('verified-owner');
    const colleague = await verified('colleague');
    const org = await createOrg(t, owner, 'Real Co');
    await onEnterprisePlan(t, org);
    const toColleague = await invite(owner, org, colleague.email, 'member');
    await accept(colleague, org, toColleague.body.token).expect(200);
    const waiting = await invite(owner, org, uniqueEmail('later'), 'member');
    const hubToken = jwt.sign({ sub: `hub-${randomUUID()}`, email: owner.email, email_verified: true }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
    const linked = await t.http.post('/v1/auth/exchange').send({ token: hubToken }).expect(200);
    expect(linked.body.user.id).toBe(owner.id);
    expect(await membersOf(org)).toEqual([{ user_id: owner.id, role: 'owner' }, { user_id: colleague.id, role: 'member' }].sort((a, b) => (a.user_id < b.user_id ? -1 : 1)));
    expect((await t.db.admin.query('SELECT revoked_at FROM core.invitations WHERE id = $1', [waiting.body.id])).rows).toEqual([{ revoked_at: null }]);
  });
});
