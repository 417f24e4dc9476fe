import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { beforeVerificationWasNeeded, createOrg, onEnterprisePlan, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';
import { testKeys } from '../integrations/keys.js';
import { sessionRepository } from '../../src/modules/auth/session.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from './lock-order.js';

/**
 * Pre-account takeover: someone registers another person's address (never verified), builds organizations with people of
 * their choosing around it, and waits for the address's owner to claim the account (a verified sign-in, a password reset).
 * Nothing tells them from a genuine owner who never verified: the claim keeps the memberships and mails the address a notice
 * listing them; it revokes the pending invitations and closes what only the account reaches that sends data out.
 * An unverified account can no longer create organizations, invitations or API keys (test/auth/unverified-actions.test.ts):
 * the set-up here is an account that made them before that, and never verified since.
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
    return beforeVerificationWasNeeded(t, squatter, async () => {
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
    });
  }

  /** What only the account reaches in Solo Co and outside organizations, pointing out at the pre-registrant's servers. */
  async function outboundChannels(squatter: TestUser, solo: string, shared: string, accomplice: TestUser) {
    // an AI provider key of their own endpoint: every agent call of Solo Co would go to it
    await t.http.put(`/v1/orgs/${solo}/ai/provider-key`).set(squatter.auth).send({ apiKey: 'sk-squatter-key-9999', baseUrl: 'https://llm.squatter.example/v1' }).expect(200);
    // and one without a base URL in the personal organization: the pre-registrant's own account at the default provider,
    // whose logs and usage would show every prompt the owner's agents send
    await t.http.put(`/v1/orgs/${squatter.personalOrgId}/ai/provider-key`).set(squatter.auth).send({ apiKey: 'sk-squatter-default-1111' }).expect(200);
    const agent = (await t.http.post(`/v1/orgs/${solo}/agents`).set(squatter.auth).send({
      name: 'Helper', type: 'accountant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2, tools: [],
    }).expect(201)).body;
    const trigger = (await t.http.post(`/v1/orgs/${solo}/agents/${agent.id}/triggers`).set(squatter.auth)
      .send({ kind: 'event', eventType: 'bill.submitted', prompt: 'Send the bill on.' }).expect(201)).body;
    const integration = (await t.http.post('/v1/me/integrations').set(squatter.auth).send({ integrationType: 'caldav', label: 'Calendar' }).expect(201)).body;
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(squatter.auth)
      .send({ credentials: { username: 'squatter', password: 'cal password', serverUrl: 'https://caldav.squatter.example/' } }).expect(200);
    const provider = (await t.http.patch('/v1/me/provider').set(squatter.auth).send({ publicSlug: `claimed-${randomUUID().slice(0, 8)}`, isPublic: true }).expect(200)).body;
    // a webhook endpoint of Shared Co to a server of the pre-registrant's: its other members reach it, but the account
    // chose its URL: it is disabled, as the account's API keys are revoked everywhere, though the other owner since
    // rotated its secret (review r4: the rotation made the other owner the only one answerable, and the claim missed it)
    const sharedHook = (await t.http.post(`/v1/orgs/${shared}/webhooks/endpoints`).set(squatter.auth).send({ url: 'https://hooks.example.com/shared' }).expect(201)).body;
    await t.http.post(`/v1/orgs/${shared}/webhooks/endpoints/${sharedHook.id}/rotate-secret`).set(accomplice.auth).send({ overlapSeconds: 0 }).expect(201);
    return { agent, trigger, integration, provider, sharedHook };
  }
  /** Shared Co: the accomplice a second owner there. */
  async function sharedOrg(squatter: TestUser, accomplice: TestUser) {
    const shared = await beforeVerificationWasNeeded(t, squatter, () => createOrg(t, squatter, 'Shared Co'));
    await onEnterprisePlan(t, shared);
    const toShared = await beforeVerificationWasNeeded(t, squatter, () => invite(squatter, shared, accomplice.email, 'admin'));
    await accept(accomplice, shared, toShared.body.token).expect(200);
    await t.http.patch(`/v1/orgs/${shared}/members/${accomplice.id}`).set(squatter.auth).send({ role: 'owner' }).expect(200);
    return shared;
  }
  const orgName = async (orgId: string) => (await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [orgId])).rows[0].name as string;
  const noticeTo = (email: string) => smtp.messages.filter((m) => m.to.includes(email) && m.subject === 'Security notice: your e-mail address was confirmed for your OmniZen account');

  /**
   * The outbound channels are closed, each audited with the reason account_claimed; Shared Co's webhook endpoint, which
   * the account configured, is disabled too (it stayed before the endpoints recorded who configured them: changed on
   * purpose, review r3 of 20270211000400).
   */
  async function expectChannelsClosed(squatter: TestUser, solo: string, shared: string, c: Awaited<ReturnType<typeof outboundChannels>>, accomplice: TestUser) {
    expect((await t.db.admin.query('SELECT org_id FROM ai.provider_keys WHERE org_id = ANY($1::uuid[])', [[solo, squatter.personalOrgId]])).rows).toEqual([]);
    expect(await auditOf(solo, 'ai.provider_key_removed')).toEqual([
      expect.objectContaining({ entity_id: solo, principal_type: 'system', after: { reason: 'account_claimed' } }),
    ]);
    const keyRemoved = await t.db.admin.query(
      `SELECT entity_id, principal_type, before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.provider_key_removed'`, [squatter.personalOrgId]);
    expect(keyRemoved.rows).toEqual([
      { entity_id: squatter.personalOrgId, principal_type: 'system', before: { keyHint: '1111', baseUrl: null }, after: { reason: 'account_claimed' } },
    ]);
    expect((await t.db.admin.query('SELECT status, last_error FROM ai.agent_triggers WHERE id = $1', [c.trigger.id])).rows)
      .toEqual([{ status: 'stopped', last_error: 'account_claimed' }]);
    expect(await auditOf(solo, 'ai.trigger_stopped')).toEqual([
      expect.objectContaining({ entity_id: c.trigger.id, principal_type: 'system', after: expect.objectContaining({ status: 'stopped', reason: 'account_claimed' }) }),
    ]);
    expect((await t.db.admin.query('SELECT status FROM public.integrations WHERE id = $1', [c.integration.id])).rows).toEqual([{ status: 'disabled' }]);
    expect((await t.db.admin.query('SELECT is_public FROM public.providers WHERE id = $1', [c.provider.id])).rows).toEqual([{ is_public: false }]);
    expect(await auditOf(squatter.personalOrgId, 'integration.updated')).toEqual([
      expect.objectContaining({ entity_id: c.integration.id, principal_type: 'system', after: { status: 'disabled', reason: 'account_claimed' } }),
    ]);
    expect(await auditOf(squatter.personalOrgId, 'provider.updated')).toEqual(expect.arrayContaining([
      expect.objectContaining({ entity_id: c.provider.id, principal_type: 'system', after: { isPublic: false, reason: 'account_claimed' } }),
    ]));
    expect((await t.db.admin.query('SELECT enabled, disabled_reason, url_set_by, secret_set_by FROM core.webhook_endpoints WHERE id = $1', [c.sharedHook.id])).rows)
      // the account is named no more (review rx 3: a service could enable it again at the pre-registrant's URL); the audit row keeps it
      .toEqual([{ enabled: false, disabled_reason: 'account_claimed', url_set_by: null, secret_set_by: accomplice.id }]);
    expect(await auditOf(shared, 'webhooks.endpoint_disabled')).toEqual([
      expect.objectContaining({
        entity_id: c.sharedHook.id, principal_type: 'system', after: { enabled: false, reason: 'account_claimed', urlSetBy: squatter.id, secretSetBy: accomplice.id },
      }),
    ]);
  }

  it('a verified sign-in claims it: its memberships stay (the address is mailed them), its pending invitations are revoked, the outbound channels of what only it reaches closed, all audited', async () => {
    const victimEmail = uniqueEmail('victim');
    const { squatter, accomplice, lurker, squatted, solo, pending, soloPending, hook } = await preRegister(victimEmail);
    const shared = await sharedOrg(squatter, accomplice);
    const channels = await outboundChannels(squatter, solo, shared, accomplice);

    // the address's owner signs in through the Hub, which verified the address
    const hubToken = jwt.sign({ sub: `hub-${randomUUID()}`, email: victimEmail, email_verified: true }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
    const victim = await t.http.post('/v1/auth/exchange').send({ token: hubToken }).expect(200);
    expect(victim.body.user.id).toBe(squatter.id);
    const victimAuth = { Authorization: `Bearer ${victim.body.accessToken}` };

    // a genuine owner who never verified keeps their company's organizations: every membership stays
    const organizations = [
      { orgId: squatter.personalOrgId, role: 'owner' }, { orgId: squatted, role: 'owner' }, { orgId: solo, role: 'owner' }, { orgId: shared, role: 'owner' },
    ].sort(byOrg);
    const orgs = await t.http.get('/v1/orgs').set(victimAuth).expect(200);
    expect(orgs.body.map((o: { id: string; role: string }) => ({ orgId: o.id, role: o.role })).sort(byOrg)).toEqual(organizations);
    const byUser = (a: { user_id: string }, b: { user_id: string }) => (a.user_id < b.user_id ? -1 : 1);
    expect(await membersOf(squatted)).toEqual([{ user_id: squatter.id, role: 'owner' }, { user_id: accomplice.id, role: 'admin' }].sort(byUser));
    expect(await membersOf(shared)).toEqual([{ user_id: squatter.id, role: 'owner' }, { user_id: accomplice.id, role: 'owner' }].sort(byUser));
    for (const orgId of [squatted, shared]) {
      expect(await auditOf(orgId, 'membership.removed')).toEqual([]);
      expect(await auditOf(orgId, 'membership.role_changed')).toEqual(orgId === shared ? [expect.objectContaining({ principal_type: 'user' })] : []);
    }

    // the invitations it sent are dead: the lurker can no longer come in
    for (const [orgId, invitation] of [[squatted, pending], [solo, soloPending]] as const) {
      const dead = await accept(lurker, orgId, invitation.token).expect(404);
      expect(dead.body.error.code).toBe('invitation.not_found');
      expect(await auditOf(orgId, 'invitation.revoked')).toEqual([
        expect.objectContaining({ entity_id: invitation.id, principal_type: 'system', after: expect.objectContaining({ status: 'revoked', reason: 'inviter_account_claimed' }) }),
      ]);
    }
    // the webhook endpoint the pre-registrant set up in Solo Co sends nothing more; the owner sees why
    const endpoint = await t.http.get(`/v1/orgs/${solo}/webhooks/endpoints/${hook.id}`).set(victimAuth).expect(200);
    expect(endpoint.body).toMatchObject({ id: hook.id, enabled: false, disabledReason: 'account_claimed' });
    expect((await t.db.admin.query('SELECT enabled, disabled_reason FROM core.webhook_endpoints WHERE id = $1', [hook.id])).rows)
      .toEqual([{ enabled: false, disabled_reason: 'account_claimed' }]);
    expect(await auditOf(solo, 'webhooks.endpoint_disabled')).toEqual([
      expect.objectContaining({ entity_id: hook.id, principal_type: 'system', after: { enabled: false, reason: 'account_claimed', urlSetBy: squatter.id, secretSetBy: squatter.id } }),
    ]);
    await expectChannelsClosed(squatter, solo, shared, channels, accomplice);
    const provider = await t.http.get('/v1/me/provider').set(victimAuth).expect(200);
    expect(provider.body).toMatchObject({ id: channels.provider.id, isPublic: false });

    const [claim] = (await t.db.admin.query(`SELECT before FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.unverified_account_claimed'`, [squatter.personalOrgId])).rows;
    expect(claim.before).toMatchObject({
      invitationsRevoked: 2, webhookEndpointsDisabled: 2, providerKeysRemoved: 2, triggersStopped: 1, integrationsDisabled: 1, providerPageUnpublished: true, organizations,
    });
    expect(claim.before).not.toHaveProperty('organizationsLeft');

    // the address is told: its organizations with the role, and what was cleared
    await settle(t);
    const [notice] = noticeTo(victimEmail);
    expect(notice.text).toContain('a Hub sign-in');
    for (const name of ['Squatted Co (owner)', 'Shared Co (owner)', 'Solo Co (owner)', '(owner, your personal organization)']) expect(notice.text).toContain(name);
    for (const line of [
      '- Sign-in methods removed: password', '- The password set before was removed', '- 2 pending invitations sent from the account revoked', '- 2 webhook endpoints disabled',
      '- The AI provider key of Solo Co, which sent the agents\' calls to a server of its own (llm.squatter.example), removed', '- 1 AI agent trigger stopped',
      `- The AI provider key of ${await orgName(squatter.personalOrgId)}, which sent the agents' calls to the provider account it belongs to, removed`,
      '- The caldav integration disabled', '- Your public provider page was taken offline', 'If you do not recognise one of them, leave it',
    ]) expect(notice.text).toContain(line);
    expect(notice.html).toContain('<strong>Shared Co</strong> (owner)');
  });

  it('a password reset through the mailed link claims it the same way, and mails the notice', async () => {
    const victimEmail = uniqueEmail('reset-victim');
    const { squatter, accomplice, lurker, squatted, solo, pending } = await preRegister(victimEmail);
    const shared = await sharedOrg(squatter, accomplice);
    const channels = await outboundChannels(squatter, solo, shared, accomplice);

    await t.http.post('/v1/auth/password-reset').send({ email: victimEmail }).expect(202);
    await settle(t);
    const [mail] = smtp.messages.filter((m) => m.to.includes(victimEmail) && m.subject === 'Reset your OmniZen password');
    const reset = await t.http.post('/v1/auth/password-reset/confirm').send({ token: linkToken(mail.text, '/reset-password').token, password: 'the owner password' }).expect(204);
    expect(reset.body).toEqual({});
    const owner = await t.http.post('/v1/auth/login').send({ email: victimEmail, password: 'the owner password' }).expect(200);

    const orgs = await t.http.get('/v1/orgs').set('Authorization', `Bearer ${owner.body.accessToken}`).expect(200);
    expect(orgs.body.map((o: { id: string }) => o.id).sort()).toEqual([squatter.personalOrgId, solo, squatted, shared].sort());
    expect((await membersOf(squatted)).map((m: { user_id: string }) => m.user_id).sort()).toEqual([squatter.id, accomplice.id].sort());
    expect((await accept(lurker, squatted, pending.token).expect(404)).body.error.code).toBe('invitation.not_found');
    await expectChannelsClosed(squatter, solo, shared, channels, accomplice);
    const [audit] = (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.password_reset'`, [squatter.personalOrgId])).rows;
    expect(audit.after).toMatchObject({
      emailVerified: true, invitationsRevoked: 2, webhookEndpointsDisabled: 2, providerKeysRemoved: 2, triggersStopped: 1, integrationsDisabled: 1, providerPageUnpublished: true,
      organizations: [
        { orgId: squatter.personalOrgId, role: 'owner' }, { orgId: squatted, role: 'owner' }, { orgId: solo, role: 'owner' }, { orgId: shared, role: 'owner' },
      ].sort(byOrg),
    });
    await settle(t);
    const notices = noticeTo(victimEmail);
    expect(notices).toHaveLength(1);
    expect(notices[0].text).toContain('(a password reset)');
    for (const name of ['Squatted Co (owner)', 'Shared Co (owner)', 'Solo Co (owner)']) expect(notices[0].text).toContain(name);
    expect(notices[0].text).toContain(`- The AI provider key of ${await orgName(squatter.personalOrgId)}, which sent the agents' calls to the provider account it belongs to, removed`);
    expect(notices[0].text).not.toContain('The password set before was removed');
  });

  it('the claim names the account no more as the person of an endpoint (a service may not enable it again: 403 webhooks.person_required; a person takes it on), and ends the overlap of a previous secret it holds, audited (review rx 1, 3)', async () => {
    const victimEmail = uniqueEmail('hook-victim');
    const squatter = await registerUser(t, 'squatter', 'squatter password', victimEmail);
    const coOwner = await verified('hook-co-owner');
    const shared = await sharedOrg(squatter, coOwner);
    const hooks = `/v1/orgs/${shared}/webhooks/endpoints`;
    // the account chose its URL, the co-owner rotated its secret
    const squatterHook = (await t.http.post(hooks).set(squatter.auth).send({ url: 'https://hooks.example.com/squatter-url' }).expect(201)).body;
    await t.http.post(`${hooks}/${squatterHook.id}/rotate-secret`).set(coOwner.auth).send({ overlapSeconds: 0 }).expect(201);
    // the account's, already disabled by the delivery worker
    const failingHook = (await t.http.post(hooks).set(squatter.auth).send({ url: 'https://hooks.example.com/squatter-failing' }).expect(201)).body;
    await t.db.admin.query(`UPDATE core.webhook_endpoints SET enabled = false, disabled_reason = 'failing', disabled_at = now() WHERE id = $1`, [failingHook.id]);
    // the co-owner's: the account rotated it (received S), then the co-owner rotated keeping the default overlap: S still signs
    const overlapHook = (await t.http.post(hooks).set(coOwner.auth).send({ url: 'https://hooks.example.com/co-owner' }).expect(201)).body;
    await t.http.post(`${hooks}/${overlapHook.id}/rotate-secret`).set(squatter.auth).send({ overlapSeconds: 0 }).expect(201);
    const rotated = await t.http.post(`${hooks}/${overlapHook.id}/rotate-secret`).set(coOwner.auth).send({}).expect(201);
    expect(rotated.body).toMatchObject({ urlSetBy: coOwner.id, secretSetBy: coOwner.id, previousSecretExpiresAt: expect.any(String) });

    const hubToken = jwt.sign({ sub: `hub-${randomUUID()}`, email: victimEmail, email_verified: true }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
    expect((await t.http.post('/v1/auth/exchange').send({ token: hubToken }).expect(200)).body.user.id).toBe(squatter.id);

    const endpoints = async () => (await t.db.admin.query(
      `SELECT id, enabled, disabled_reason, url_set_by, secret_set_by, previous_secret IS NOT NULL AS previous_secret, previous_secret_set_by
       FROM core.webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id`, [shared])).rows;
    const claimed = [
      { id: squatterHook.id, enabled: false, disabled_reason: 'account_claimed', url_set_by: null, secret_set_by: coOwner.id, previous_secret: false, previous_secret_set_by: null },
      { id: failingHook.id, enabled: false, disabled_reason: 'failing', url_set_by: null, secret_set_by: null, previous_secret: false, previous_secret_set_by: null },
      { id: overlapHook.id, enabled: true, disabled_reason: null, url_set_by: coOwner.id, secret_set_by: coOwner.id, previous_secret: false, previous_secret_set_by: null },
    ];
    expect(await endpoints()).toEqual(claimed);
    const order = [squatterHook.id, failingHook.id, overlapHook.id];
    const audit = (await t.db.admin.query(
      `SELECT entity_id, action, principal_type, before, after FROM core.audit_logs
       WHERE org_id = $1 AND principal_type = 'system' AND action IN ('webhooks.endpoint_disabled', 'webhooks.endpoint_updated', 'webhooks.previous_secret_cleared')
       ORDER BY id`, [shared])).rows.sort((a, b) => order.indexOf(a.entity_id) - order.indexOf(b.entity_id));
    expect(audit).toEqual([
      { entity_id: squatterHook.id, action: 'webhooks.endpoint_disabled', principal_type: 'system',
        before: { enabled: true }, after: { enabled: false, reason: 'account_claimed', urlSetBy: squatter.id, secretSetBy: coOwner.id } },
      { entity_id: failingHook.id, action: 'webhooks.endpoint_updated', principal_type: 'system',
        before: { urlSetBy: squatter.id, secretSetBy: squatter.id }, after: { urlSetBy: null, secretSetBy: null, reason: 'account_claimed' } },
      { entity_id: overlapHook.id, action: 'webhooks.previous_secret_cleared', principal_type: 'system',
        before: { previousSecretExpiresAt: expect.any(String), previousSecretSetBy: squatter.id }, after: { previousSecretExpiresAt: null, reason: 'account_claimed' } },
    ]);

    // a service may not send the events again where the account chose: no person answers for the URL
    const service = { Authorization: `Bearer ${jwt.sign({ role: 'service_role', service: 'hook-ops' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 })}` };
    for (const id of [squatterHook.id, failingHook.id]) {
      const refused = await t.http.patch(`${hooks}/${id}`).set(service).send({ enabled: true });
      expect([refused.status, refused.body.error?.code]).toEqual([403, 'webhooks.person_required']);
    }
    expect(await endpoints()).toEqual(claimed);
    // a person enabling it takes it on
    const taken = await t.http.patch(`${hooks}/${squatterHook.id}`).set(coOwner.auth).send({ enabled: true }).expect(200);
    expect(taken.body).toMatchObject({ enabled: true, urlSetBy: coOwner.id, secretSetBy: coOwner.id });
  });

  it('the account\'s webhook writes racing its claim wait for it and are refused (401: their session ended), nothing written (review rx 2)', async () => {
    const victimEmail = uniqueEmail('race-victim');
    const squatter = await registerUser(t, 'squatter', 'squatter password', victimEmail);
    const coOwner = await verified('race-co-owner');
    const shared = await sharedOrg(squatter, coOwner);
    const hooks = `/v1/orgs/${shared}/webhooks/endpoints`;
    // the account's endpoint, disabled (it would enable it again); the co-owner's (it would re-point it)
    const squatterHook = (await t.http.post(hooks).set(squatter.auth).send({ url: 'https://hooks.example.com/race-squatter' }).expect(201)).body;
    await t.http.patch(`${hooks}/${squatterHook.id}`).set(squatter.auth).send({ enabled: false }).expect(200);
    const coHook = (await t.http.post(hooks).set(coOwner.auth).send({ url: 'https://hooks.example.com/race-co-owner' }).expect(201)).body;

    // the claim, paused once it changed the endpoints and before it ends the account's sessions (its user row locked)
    const paused = pauseNext(sessionRepository, 'revokeAllForUser');
    let outcome: unknown[];
    try {
      const hubToken = jwt.sign({ sub: `hub-${randomUUID()}`, email: victimEmail, email_verified: true }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
      const claiming = t.http.post('/v1/auth/exchange').send({ token: hubToken }).then((r) => r);
      await paused.reached;
      const repointing = t.http.patch(`${hooks}/${coHook.id}`).set(squatter.auth).send({ url: 'https://hooks.example.com/squatter-late' }).then((r) => r);
      const repointWaits = await waitsForLockOrAnswers(t.db.admin, repointing, paused);
      const enabling = t.http.patch(`${hooks}/${squatterHook.id}`).set(squatter.auth).send({ enabled: true }).then((r) => r);
      const enableWaits = await waitsForLockOrAnswers(t.db.admin, enabling, paused);
      paused.release();
      const [claim, repoint, enable] = await Promise.all([claiming, repointing, enabling]);
      outcome = [repointWaits, enableWaits, claim.status, [repoint.status, repoint.body.error?.message], [enable.status, enable.body.error?.message]];
    } finally {
      releaseAll();
    }
    const ended = 'the session of this access token has ended; log in again';
    expect(outcome).toEqual(['waiting', 'waiting', 200, [401, ended], [401, ended]]);
    expect((await t.db.admin.query(
      'SELECT id, url, enabled, disabled_reason, url_set_by, secret_set_by FROM core.webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id', [shared])).rows).toEqual([
      { id: squatterHook.id, url: 'https://hooks.example.com/race-squatter', enabled: false, disabled_reason: null, url_set_by: null, secret_set_by: null },
      { id: coHook.id, url: 'https://hooks.example.com/race-co-owner', enabled: true, disabled_reason: null, url_set_by: coOwner.id, secret_set_by: coOwner.id },
    ]);
    expect((await t.db.admin.query(
      `SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'webhooks.endpoint_updated' AND actor_id = $2
         AND after ->> 'url' = 'https://hooks.example.com/squatter-late'`, [shared, squatter.id])).rows).toEqual([{ n: 0 }]);
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
    // the identity joined the account without a word from its owner: the address is told, as an explicit link is
    expect((await t.db.admin.query('SELECT provider FROM core.user_identities WHERE user_id = $1 ORDER BY provider', [owner.id])).rows)
      .toEqual([{ provider: 'nextauth' }, { provider: 'password' }]);
    await settle(t);
    const added = smtp.messages.filter((m) => m.to.includes(owner.email) && m.subject === 'A new way to sign in to your OmniZen account');
    expect(added).toHaveLength(1);
    expect(added[0].text).toContain(`A Hub sign-in (${owner.email}) was added to your OmniZen account`);
    expect(noticeTo(owner.email)).toEqual([]);
  });
});
