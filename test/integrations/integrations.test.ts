import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { testKeys } from './keys.js';

const PASSWORD = 'app-specific-pw-7731-zq';

describe('integrations API', () => {
  let t: TestApp;
  let ada: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, SECRETS_ACTIVE_KEY: 'k1' });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(() => t.close());

  const create = (u: TestUser, body: object) => t.http.post('/v1/me/integrations').set(u.auth).send(body);

  it('creates one integration per type and answers 409 to a second of the same type', async () => {
    const res = await create(ada, { integrationType: 'icloud', label: 'Personal iCloud', externalEmail: 'ada@example.com' }).expect(201);
    expect(res.body).toMatchObject({ integrationType: 'icloud', label: 'Personal iCloud', status: 'active', hasSecret: false });
    const dup = await create(ada, { integrationType: 'icloud' }).expect(409);
    expect(dup.body.error.code).toBe('integration.exists');
    await create(bob, { integrationType: 'icloud' }).expect(201); // per user, not global
    const list = await t.http.get('/v1/me/integrations').set(ada.auth).expect(200);
    expect(list.body.map((i: any) => i.integrationType)).toEqual(['icloud']);
  });

  it('updates label and status, rejects unknown statuses and fields, and audits in the personal organization', async () => {
    const { body: i } = await create(ada, { integrationType: 'google' }).expect(201);
    const res = await t.http.patch(`/v1/me/integrations/${i.id}`).set(ada.auth).send({ label: 'Work', status: 'disabled' }).expect(200);
    expect(res.body).toMatchObject({ label: 'Work', status: 'disabled' });
    const cleared = await t.http.patch(`/v1/me/integrations/${i.id}`).set(ada.auth).send({ label: null }).expect(200);
    expect(cleared.body).toMatchObject({ label: null, status: 'disabled' });
    const bad = await t.http.patch(`/v1/me/integrations/${i.id}`).set(ada.auth).send({ status: 'broken', userId: bob.id }).expect(400);
    expect(bad.body.error.details.map((d: any) => d.field).sort()).toEqual(['status', 'userId']);
    const { rows } = await t.db.admin.query(
      `SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [ada.personalOrgId, i.id]);
    expect(rows.map((r) => r.action)).toEqual(['integration.created', 'integration.updated', 'integration.updated']);
  });

  it('keeps secrets write-only: stored sealed, never in a response or the audit log', async () => {
    const { body: i } = await create(ada, { integrationType: 'caldav' }).expect(201);
    const credentials = { username: 'ada@example.com', password: PASSWORD, serverUrl: 'https://caldav.example.com' };
    const put = await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials }).expect(200);
    expect(put.body).toMatchObject({ id: i.id, hasSecret: true });
    const replaced = await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: { ...credentials, password: `${PASSWORD}-2` } }).expect(200);
    const list = await t.http.get('/v1/me/integrations').set(ada.auth).expect(200);
    const one = await t.http.get(`/v1/me/integrations/${i.id}`).set(ada.auth).expect(200);
    expect(one.body.hasSecret).toBe(true);
    const { rows: [row] } = await t.db.admin.query('SELECT secret, user_id FROM public.integration_secrets WHERE integration_id = $1', [i.id]);
    expect(Object.keys(row.secret).sort()).toEqual(['ciphertext', 'iv', 'kid', 'tag']);
    expect(row.secret.kid).toBe('k1');
    expect(row.user_id).toBe(ada.id); // filled by enforce_integration_owner()
    const { rows: audit } = await t.db.admin.query('SELECT action, before, after FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id', [ada.personalOrgId, i.id]);
    expect(audit.map((a) => a.action)).toEqual(['integration.created', 'integration.secret_set', 'integration.secret_replaced']);
    for (const text of [put.text, replaced.text, list.text, one.text, JSON.stringify(row), JSON.stringify(audit)]) {
      expect(text).not.toContain(PASSWORD);
    }
    for (const text of [put.text, replaced.text, list.text, one.text]) expect(text).not.toContain(row.secret.ciphertext);
  });

  it('names bad credentials without echoing them, and needs CalDAV fields', async () => {
    const { body: i } = await create(ada, { integrationType: 'stripe' }).expect(201);
    const { body: cal } = await t.http.get('/v1/me/integrations').set(ada.auth).expect(200);
    const caldav = cal.find((x: any) => x.integrationType === 'caldav');
    const missing = await t.http.put(`/v1/me/integrations/${caldav.id}/secret`).set(ada.auth).send({ credentials: { password: PASSWORD } }).expect(400);
    expect(missing.body.error.message).toMatch(/username/);
    const badUrl = await t.http.put(`/v1/me/integrations/${caldav.id}/secret`).set(ada.auth)
      .send({ credentials: { username: 'a', password: PASSWORD, serverUrl: `https://u:${PASSWORD}@x.example` } }).expect(400);
    const notString = await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: { apiKey: 42 } }).expect(400);
    const notObject = await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: PASSWORD }).expect(400);
    for (const r of [missing, badUrl, notString, notObject]) expect(r.text).not.toContain(PASSWORD);
    await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: { apiKey: 'sk_test_123456' } }).expect(200);
  });

  it('deletes a secret, then the integration with its secret', async () => {
    const { body: i } = await create(ada, { integrationType: 'zoom' }).expect(201);
    await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: { token: PASSWORD } }).expect(200);
    await t.http.delete(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).expect(204);
    expect((await t.http.get(`/v1/me/integrations/${i.id}`).set(ada.auth).expect(200)).body.hasSecret).toBe(false);
    await t.http.delete(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).expect(404);
    await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: { token: PASSWORD } }).expect(200);
    await t.http.delete(`/v1/me/integrations/${i.id}`).set(ada.auth).expect(204);
    const { rows } = await t.db.admin.query('SELECT 1 FROM public.integration_secrets WHERE integration_id = $1', [i.id]);
    expect(rows).toHaveLength(0);
    await t.http.get(`/v1/me/integrations/${i.id}`).set(ada.auth).expect(404);
  });

  it("never lets one user see, change or delete another's integration or secret (API)", async () => {
    const { body: i } = await create(ada, { integrationType: 'outlook', label: 'Ada' }).expect(201);
    await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(ada.auth).send({ credentials: { token: PASSWORD } }).expect(200);
    const bobList = await t.http.get('/v1/me/integrations').set(bob.auth).expect(200);
    expect(bobList.body.map((x: any) => x.id)).not.toContain(i.id);
    await t.http.get(`/v1/me/integrations/${i.id}`).set(bob.auth).expect(404);
    await t.http.patch(`/v1/me/integrations/${i.id}`).set(bob.auth).send({ label: 'Bob' }).expect(404);
    await t.http.put(`/v1/me/integrations/${i.id}/secret`).set(bob.auth).send({ credentials: { token: 'bob' } }).expect(404);
    await t.http.delete(`/v1/me/integrations/${i.id}/secret`).set(bob.auth).expect(404);
    await t.http.delete(`/v1/me/integrations/${i.id}`).set(bob.auth).expect(404);
    const { rows: [after] } = await t.db.admin.query(
      `SELECT i.label, s.secret FROM public.integrations i JOIN public.integration_secrets s ON s.integration_id = i.id WHERE i.id = $1`, [i.id]);
    expect(after.label).toBe('Ada');
    expect(after.secret.kid).toBe('k1');
  });

  it('answers 404 to a malformed id and 401 to anonymous callers', async () => {
    const malformed = await t.http.get('/v1/me/integrations/not-a-uuid').set(ada.auth).expect(404);
    expect(malformed.body.error.code).toBe('integration.not_found');
    const count = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM public.integrations')).rows[0].n;
    const before = await count();
    for (const res of [
      await t.http.get('/v1/me/integrations'),
      await t.http.post('/v1/me/integrations').send({ integrationType: 'icloud' }),
      await t.http.get('/v1/me/provider'),
    ]) {
      expect([res.status, res.body.error]).toEqual([401, { code: 'auth.unauthorized', message: 'a valid access token is required' }]);
    }
    expect(await count()).toBe(before);
  });
});

describe('integrations in SQL, under the caller\'s claims', () => {
  let t: TestApp;
  let ada: TestUser;
  let bob: TestUser;
  let adaIntegration: string;
  const as = (u: TestUser, sql: string, params: unknown[] = []) => t.db.as({ sub: u.id, role: 'authenticated' }, 'authenticated', sql, params);

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
    const { body } = await t.http.post('/v1/me/integrations').set(ada.auth).send({ integrationType: 'icloud', label: 'Ada' }).expect(201);
    adaIntegration = body.id;
    await t.http.put(`/v1/me/integrations/${adaIntegration}/secret`).set(ada.auth).send({ credentials: { username: 'ada', password: PASSWORD } }).expect(200);
    await t.http.patch('/v1/me/provider').set(ada.auth).send({ publicSlug: 'ada-sql', isPublic: true }).expect(200);
  });
  afterAll(() => t.close());

  it('shows each user only their own rows', async () => {
    expect(await as(ada, 'SELECT id FROM public.integrations')).toEqual([{ id: adaIntegration }]);
    expect(await as(ada, 'SELECT integration_id FROM public.integration_secrets')).toHaveLength(1);
    expect(await as(ada, 'SELECT owner_user_id FROM public.providers')).toEqual([{ owner_user_id: ada.id }]);
    expect(await as(bob, 'SELECT id FROM public.integrations')).toEqual([]);
    expect(await as(bob, 'SELECT integration_id FROM public.integration_secrets')).toEqual([]);
    expect(await as(bob, 'SELECT id FROM public.providers')).toEqual([]);
  });

  it("lets nobody update or delete another user's rows", async () => {
    await as(bob, `UPDATE public.integrations SET label = 'Bob' WHERE id = $1`, [adaIntegration]);
    await as(bob, `UPDATE public.integration_secrets SET secret = '{}'::jsonb WHERE integration_id = $1`, [adaIntegration]);
    await as(bob, `UPDATE public.providers SET is_public = false, public_slug = 'bob-took-it'`);
    await as(bob, 'DELETE FROM public.integration_secrets');
    await as(bob, 'DELETE FROM public.integrations');
    await as(bob, 'DELETE FROM public.providers');
    const { rows: [r] } = await t.db.admin.query(
      `SELECT i.label, s.secret ->> 'kid' AS kid, p.public_slug, p.is_public
       FROM public.integrations i JOIN public.integration_secrets s ON s.integration_id = i.id JOIN public.providers p ON p.owner_user_id = i.user_id
       WHERE i.id = $1`, [adaIntegration]);
    expect(r).toEqual({ label: 'Ada', kid: 'k1', public_slug: 'ada-sql', is_public: true });
  });

  it("refuses rows written in another user's name", async () => {
    await expect(as(bob, `INSERT INTO public.integrations (user_id, integration_type) VALUES ($1, 'google')`, [ada.id])).rejects.toThrow(/row-level security/);
    await expect(as(bob, `INSERT INTO public.providers (owner_user_id) VALUES ($1)`, [ada.id])).rejects.toThrow(/row-level security/);
    // a secret for Ada's integration: Bob cannot see it, so the owner trigger refuses it
    await expect(as(bob, `INSERT INTO public.integration_secrets (integration_id, secret) VALUES ($1, '{}')`, [adaIntegration])).rejects.toThrow(/was not found/);
    await expect(as(bob, `INSERT INTO public.integration_secrets (integration_id, user_id, secret) VALUES ($1, $2, '{}')`, [adaIntegration, bob.id])).rejects.toThrow(/was not found/);
    // Bob's own integration, with Ada named as the secret's user
    const [own] = await as(bob, `INSERT INTO public.integrations (user_id, integration_type) VALUES ($1, 'google') RETURNING id`, [bob.id]);
    await expect(as(bob, `INSERT INTO public.integration_secrets (integration_id, user_id, secret) VALUES ($1, $2, '{}')`, [own.id, ada.id])).rejects.toThrow(/must be the owner/);
  });

  it('refuses over REST (as Supabase\'s REST API writes, the owner\'s claims) a status outside the enum GET documents: active, disabled, error', async () => {
    const gateway: RestGateway = await restGateway(t.db);
    try {
      const claims = { sub: ada.id };
      await expect(gateway.rest('authenticated', claims, `UPDATE public.integrations SET status = 'paused' WHERE id = $1 RETURNING id`, [adaIntegration]))
        .rejects.toMatchObject({ code: '23514', constraint: 'integrations_status_check' });
      await expect(gateway.rest('authenticated', claims, `INSERT INTO public.integrations (user_id, integration_type, status) VALUES ($1, 'paused-type', 'paused')`, [ada.id]))
        .rejects.toMatchObject({ code: '23514', constraint: 'integrations_status_check' });
      const stored = async () => (await t.db.admin.query(`SELECT integration_type, status FROM public.integrations WHERE user_id = $1 ORDER BY 1`, [ada.id])).rows;
      expect(await stored()).toEqual([{ integration_type: 'icloud', status: 'active' }]);
      // the documented ones pass, and GET answers them
      expect(await gateway.rest('authenticated', claims, `UPDATE public.integrations SET status = 'error' WHERE id = $1 RETURNING status`, [adaIntegration])).toEqual([{ status: 'error' }]);
      expect((await t.http.get(`/v1/me/integrations/${adaIntegration}`).set(ada.auth).expect(200)).body.status).toBe('error');
      await gateway.rest('authenticated', claims, `UPDATE public.integrations SET status = 'active' WHERE id = $1`, [adaIntegration]);
    } finally {
      await gateway.end();
    }
  });

  it('gives anon no table access, only the public profile function', async () => {
    for (const table of ['integrations', 'integration_secrets', 'providers']) {
      await expect(t.db.as({ role: 'anon' }, 'anon', `SELECT * FROM public.${table}`)).rejects.toThrow(/permission denied/);
    }
    const rows = await t.db.as({ role: 'anon' }, 'anon', `SELECT * FROM public.public_provider_profile('ada-sql')`);
    expect(rows).toEqual([{ public_slug: 'ada-sql', timezone: 'Asia/Dubai', working_hours: null, whatsapp: null }]);
    const { rows: [fn] } = await t.db.admin.query(`SELECT prosecdef, proconfig FROM pg_proc WHERE proname = 'public_provider_profile'`);
    expect(fn).toEqual({ prosecdef: true, proconfig: ['search_path=""'] });
  });
});
