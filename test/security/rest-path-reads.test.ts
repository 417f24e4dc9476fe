import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, orgWithRoles, registerUser, verifyEmailOf, type RoleUsers, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * What a caller of Supabase's REST path (PostgREST: `anon`, or `authenticated` with the token's claims, never through
 * begin_request) read beyond what the API shows the same caller (migration 20270210020100): every member, a viewer too,
 * the organization's sealed AI provider key with its hint and endpoint (ai.provider_keys); owners and admins the sealed
 * webhook signing secrets (core.webhook_endpoints) and the invitations' token hashes (core.invitations); anyone, over
 * rpc/public_provider_profile, a provider's WhatsApp number while WhatsApp booking is off. Each is now closed, and the
 * API's routes that read them go on. Members of a deleted organization no longer read each other's profiles (20270210060100).
 */
describe('the Supabase REST path reads no sealed secret, token hash or hidden phone number', () => {
  let t: TestApp;
  let gateway: RestGateway;
  let orgId: string;
  let users: RoleUsers;
  let endpointId: string;
  let invitationId: string;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    gateway = await restGateway(t.db);
    ({ orgId, users } = await orgWithRoles(t, 'Sealed Secrets Ltd'));
    await onPlan(t, orgId, 'professional');
    const { owner } = users;
    await t.http.put(`/v1/orgs/${orgId}/ai/provider-key`).set(owner.auth).send({ apiKey: 'sk-org-secret-4242' }).expect(200);
    endpointId = (await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'https://hooks.example.com/rest-path' }).expect(201)).body.id;
    invitationId = (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: 'invitee-rest-path@example.com', role: 'member' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
  });

  const rest = (user: TestUser, sql: string) =>
    gateway.rest('authenticated', { sub: user.id, email: user.email, aud: 'authenticated', org_id: orgId }, sql);

  it('a viewer\'s, an admin\'s or an owner\'s token reads no provider key, webhook secret or invitation; other rows stay readable', async () => {
    for (const user of [users.viewer, users.admin, users.owner]) {
      expect(await rest(user, 'SELECT key_hint, base_url, secret FROM ai.provider_keys')).toEqual([]);
      expect(await rest(user, 'SELECT id, url, secret, previous_secret FROM core.webhook_endpoints')).toEqual([]);
      expect(await rest(user, 'SELECT id, email, token_hash, mailed_token_hash FROM core.invitations')).toEqual([]);
      // the organization's members: read over REST as designed
      expect(await rest(user, 'SELECT count(*)::int AS n FROM core.memberships WHERE org_id = auth_org_id()')).toEqual([{ n: 5 }]);
    }
    // the rows are there (the owner connection reads them)
    const { rows } = await t.db.admin.query(
      `SELECT (SELECT key_hint FROM ai.provider_keys WHERE org_id = $1) AS hint,
              (SELECT secret ? 'ciphertext' FROM core.webhook_endpoints WHERE org_id = $1 AND id = $2) AS sealed,
              (SELECT token_hash IS NOT NULL FROM core.invitations WHERE org_id = $1 AND id = $3) AS hashed`, [orgId, endpointId, invitationId]);
    expect(rows).toEqual([{ hint: '4242', sealed: true, hashed: true }]);
  });

  it('the API\'s routes still read them: the provider key\'s hint, the endpoints and a rotation, the invitations and an acceptance', async () => {
    const { owner, admin, viewer } = users;
    expect((await t.http.get(`/v1/orgs/${orgId}/ai/provider-key`).set(admin.auth).expect(200)).body).toMatchObject({ keyHint: '4242', baseUrl: null });
    expect((await t.http.get(`/v1/orgs/${orgId}/ai/provider-key`).set(viewer.auth)).status).toBe(403);

    const endpoints = await t.http.get(`/v1/orgs/${orgId}/webhooks/endpoints`).set(admin.auth).expect(200);
    expect(endpoints.body).toEqual([expect.objectContaining({ id: endpointId, url: 'https://hooks.example.com/rest-path' })]);
    const rotated = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints/${endpointId}/rotate-secret`).set(admin.auth).send({}).expect(201);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    const { rows: [endpoint] } = await t.db.admin.query('SELECT previous_secret IS NOT NULL AS kept FROM core.webhook_endpoints WHERE id = $1', [endpointId]);
    expect(endpoint).toEqual({ kept: true });

    const listed = await t.http.get(`/v1/orgs/${orgId}/invitations`).set(admin.auth).expect(200);
    expect(listed.body.items.map((i: { id: string }) => i.id)).toContain(invitationId);
    const ann = await verifyEmailOf(t, await registerUser(t, 'ann'));
    const invitation = (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: ann.email, role: 'viewer' }).expect(201)).body as { id: string; token: string };
    const accepted = await t.http.post('/v1/invitations/accept').set(ann.auth).send({ orgId, token: invitation.token }).expect(200);
    expect(accepted.body).toMatchObject({ orgId, userId: ann.id, role: 'viewer' });
    const { rows: [row] } = await t.db.admin.query('SELECT accepted_by FROM core.invitations WHERE id = $1', [invitation.id]);
    expect(row).toEqual({ accepted_by: ann.id });
    await t.http.delete(`/v1/orgs/${orgId}/invitations/${invitationId}`).set(admin.auth).expect(204);
    const { rows: [revoked] } = await t.db.admin.query('SELECT revoked_at IS NOT NULL AS revoked FROM core.invitations WHERE id = $1', [invitationId]);
    expect(revoked).toEqual({ revoked: true });
  });

  it('the members of a deleted organization read no profile of each other, only their own (core.shares_org_with, 20270210060100)', async () => {
    const [ada, bob] = [await registerUser(t, 'ada'), await registerUser(t, 'bob')];
    const shared = await createOrg(t, ada, 'Wound Down Ltd');
    await addMember(t, shared, bob, 'member');
    const profiles = () => gateway.rest('authenticated', { sub: ada.id, email: ada.email, aud: 'authenticated' },
      'SELECT id, email FROM core."User" WHERE id = any($1) ORDER BY email', [[ada.id, bob.id]]);
    expect(await profiles()).toEqual([{ id: ada.id, email: ada.email }, { id: bob.id, email: bob.email }]);

    await t.http.delete(`/v1/orgs/${shared}`).set(ada.auth).expect(204);
    expect((await t.http.get(`/v1/orgs/${shared}/members`).set(ada.auth)).status).toBe(404);
    expect(await profiles()).toEqual([{ id: ada.id, email: ada.email }]);
    // bob's row and both memberships are still there; only the deleted organization no longer counts
    const { rows } = await t.db.admin.query(
      `SELECT (SELECT deleted_at IS NOT NULL FROM core.organizations WHERE id = $1) AS deleted,
              (SELECT count(*)::int FROM core.memberships WHERE org_id = $1) AS members,
              (SELECT email FROM core."User" WHERE id = $2) AS email`, [shared, bob.id]);
    expect(rows).toEqual([{ deleted: true, members: 2, email: bob.email }]);
  });

  it('rpc/public_provider_profile answers anyone a WhatsApp number only while WhatsApp booking is on, as the public page does', async () => {
    const coach = await registerUser(t, 'coach');
    const whatsapp = { phoneE164: '+971500000042', messageTemplate: 'Hi! Can I book {date} at {time}?' };
    await t.http.patch('/v1/me/provider').set(coach.auth)
      .send({ publicSlug: 'rest-path-coach', isPublic: true, settings: { whatsapp: { enabled: false, ...whatsapp } } }).expect(200);
    const rpc = () => gateway.rest('anon', {}, `SELECT whatsapp FROM public.public_provider_profile('rest-path-coach')`);

    expect(await rpc()).toEqual([{ whatsapp: { enabled: false } }]);
    expect((await t.http.get('/v1/public/providers/rest-path-coach').expect(200)).body.whatsapp).toEqual({ enabled: false });

    await t.http.patch('/v1/me/provider').set(coach.auth).send({ settings: { whatsapp: { enabled: true, ...whatsapp } } }).expect(200);
    expect(await rpc()).toEqual([{ whatsapp: { enabled: true, ...whatsapp } }]);
    expect((await t.http.get('/v1/public/providers/rest-path-coach').expect(200)).body.whatsapp).toEqual({ enabled: true, phoneE164: whatsapp.phoneE164 });
    // the stored settings are unchanged (only the function's answer is narrowed)
    const { rows: [stored] } = await t.db.admin.query(`SELECT settings -> 'whatsapp' AS w FROM public.providers WHERE public_slug = 'rest-path-coach'`);
    expect(stored.w).toEqual({ enabled: true, ...whatsapp });
  });
});
