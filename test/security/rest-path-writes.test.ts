import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * What a caller of Supabase's REST API (PostgREST: its own login, switching into anon or authenticated with the
 * token's claims) could do to tables and functions that only the API's own transactions are meant to reach
 * (migration 20270202000200):
 *  * core.outbox and core.audit_logs: a viewer's token inserted a domain event `organization.deleted` (the relay
 *    then canceled the organization's Stripe subscription, fanned it out to webhooks) or audit rows of their choosing;
 *  * core.personal_data_key / personal_data_keys_by_id: an anonymous caller planted the key of any person (an
 *    attacker-known `{"unwrapped": ...}` one, or junk that failed every later audit entry about them) and read keys.
 * The API's flows that write those rows outside the request's organization (creating an organization, accepting an
 * invitation) keep working.
 */
describe('the Supabase REST path cannot write outbox jobs, audit rows or personal data keys', () => {
  let t: TestApp;
  let gateway: pg.Pool;
  const gatewayLogin = `omnizen_t_rest_${randomBytes(4).toString('hex')}`;
  let owner: TestUser;
  let viewer: TestUser;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    // a login like PostgREST's authenticator: no rights of its own, it switches into anon or authenticated per request
    await t.db.admin.query(`CREATE ROLE ${gatewayLogin} LOGIN PASSWORD 'rest-test' NOINHERIT IN ROLE anon, authenticated`);
    const url = new URL(t.db.url);
    url.username = gatewayLogin;
    url.password = 'rest-test';
    gateway = new pg.Pool({ connectionString: url.toString(), max: 2 });
    gateway.on('error', () => undefined);
    owner = await verifyEmailOf(t, await registerUser(t, 'owner'));
    viewer = await registerUser(t, 'viewer');
    orgId = await createOrg(t, owner, 'Targeted Co');
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')`, [orgId, viewer.id]);
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
    const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
    await root.connect();
    await root.query(`DROP ROLE IF EXISTS ${gatewayLogin}`);
    await root.end();
  });

  /** One REST request: the token's claims and role set for the transaction, as PostgREST does; committed if it succeeds. */
  async function rest(role: 'anon' | 'authenticated', claims: Record<string, unknown>, sql: string, params: unknown[] = []) {
    const c = await gateway.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ ...claims, role })]);
      await c.query(`SET LOCAL ROLE ${role}`);
      const result = await c.query(sql, params);
      await c.query('COMMIT');
      return result.rows;
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  }
  // a Supabase access token names the user, not an organization; a custom claim could name one
  const viewerToken = () => ({ sub: viewer.id, email: viewer.email, aud: 'authenticated' });
  const emailSubject = (email: string) => `email:${createHash('sha256').update(email.toLowerCase()).digest('hex')}`;

  it('refuses a member\'s token an outbox row (a forged organization.deleted) and an audit row, with or without an org_id claim', async () => {
    const forgedEvent = JSON.stringify({ id: randomUUID(), type: 'organization.deleted', version: 1, occurredAt: new Date().toISOString(),
      payload: { organizationId: orgId, accountType: 'business', reason: 'deleted' } });
    for (const claims of [viewerToken(), { ...viewerToken(), org_id: orgId }]) {
      await expect(rest('authenticated', claims, `INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'domain_event', $2::jsonb)`, [orgId, forgedEvent]))
        .rejects.toMatchObject({ code: '42501' });
      await expect(rest('authenticated', claims,
        `INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id) VALUES ($1::uuid, $2, 'user', 'organization.deleted', 'organization', $1::text)`,
        [orgId, viewer.id])).rejects.toMatchObject({ code: '42501' });
    }
    const { rows: [written] } = await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'organization.deleted') AS events,
              (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND actor_id = $2) AS audits,
              (SELECT deleted_at FROM core.organizations WHERE id = $1) AS deleted_at`, [orgId, viewer.id]);
    expect(written).toEqual({ events: 0, audits: 0, deleted_at: null });
  });

  it('still audits and emits through the API where the row\'s organization is not yet the request\'s: creating an organization, accepting an invitation', async () => {
    const created = await createOrg(t, viewer, 'Viewer Ventures');
    expect((await t.db.admin.query(`SELECT actor_id FROM core.audit_logs WHERE org_id = $1 AND action = 'organization.created'`, [created])).rows)
      .toEqual([{ actor_id: viewer.id }]);

    await onEnterprisePlan(t, orgId);
    const invitee = await verifyEmailOf(t, await registerUser(t, 'invitee'));
    const { body: invitation } = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: invitee.email, role: 'member' }).expect(201);
    await t.http.post('/v1/invitations/accept').set(invitee.auth).send({ orgId, token: invitation.token }).expect(200);
    const { rows: [joined] } = await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.accepted' AND actor_id = $2) AS audits,
              (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'member.joined' AND payload->'payload'->>'userId' = $2) AS events,
              (SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2) AS role`, [orgId, invitee.id]);
    expect(joined).toEqual({ audits: 1, events: 1, role: 'member' });
  });

  it('refuses anon and a member\'s token the personal data keys: no key planted, none handed out', async () => {
    const target = `target.${randomBytes(3).toString('hex')}@example.test`;
    const subject = emailSubject(target);
    const known = { unwrapped: randomBytes(32).toString('base64') };
    for (const [role, claims] of [['anon', {}], ['authenticated', viewerToken()]] as const) {
      await expect(rest(role, claims, `SELECT * FROM core.personal_data_key($1::uuid, $2, $3::jsonb)`, [randomUUID(), subject, JSON.stringify(known)]))
        .rejects.toMatchObject({ code: '42501' });
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [subject])).rows).toEqual([{ n: 0 }]);

    // the API seals the invitee's e-mail with a key the secret box wraps, and opens it for the owner
    const { body: invitation } = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: target, role: 'viewer' }).expect(201);
    const { rows: [key] } = await t.db.admin.query('SELECT id, wrapped FROM core.personal_data_keys WHERE subject = $1', [subject]);
    expect(key.wrapped).toEqual({ ciphertext: expect.any(String), iv: expect.any(String), tag: expect.any(String), kid: 'k1' });
    const audit = await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=invitation.created&entityId=${invitation.id}`).set(owner.auth).expect(200);
    expect(audit.body.items.map((e: { after: { email: string } }) => e.after.email)).toEqual([target]);

    for (const [role, claims] of [['anon', {}], ['authenticated', viewerToken()]] as const) {
      await expect(rest(role, claims, `SELECT * FROM core.personal_data_keys_by_id($1::uuid[])`, [[key.id]])).rejects.toMatchObject({ code: '42501' });
    }
  });

  it('takes from the API\'s own transactions only a candidate key of the shapes the application writes', async () => {
    const api = new pg.Client({ connectionString: t.db.apiUrl });
    await api.connect();
    const call = async (candidate: unknown) => {
      await api.query('BEGIN');
      try {
        await api.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: owner.id, role: 'authenticated', org_id: orgId })]);
        return (await api.query(`SELECT id FROM core.personal_data_key($1::uuid, $2, $3::jsonb)`, [randomUUID(), `user:${randomUUID()}`, JSON.stringify(candidate)])).rows;
      } finally {
        await api.query('ROLLBACK');
      }
    };
    try {
      for (const junk of [{}, 'a string', { unwrapped: 'not a key' }, { unwrapped: randomBytes(16).toString('base64') },
        { ciphertext: 'x', iv: 'y', tag: 'z' }, { ciphertext: 'x', iv: 'y', tag: 'z', kid: 'k1', extra: 1 }, { ciphertext: 1, iv: 'y', tag: 'z', kid: 'k1' }]) {
        await expect(call(junk)).rejects.toMatchObject({ code: '22023' });
      }
      expect(await call({ unwrapped: randomBytes(32).toString('base64') })).toHaveLength(1);
      expect(await call({ ciphertext: randomBytes(48).toString('base64'), iv: randomBytes(12).toString('base64'), tag: randomBytes(16).toString('base64'), kid: 'k1' })).toHaveLength(1);
    } finally {
      await api.end();
    }
  });
});
