import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * begin_request records the organization and role it verified (omnizen.verified_*), and the policies' auth_org_id()
 * and auth_role() answer from that record instead of looking the membership up per row
 * (20261231000100_claims_verified_once). The record is trusted only for the runtime login and only while the claims
 * are the ones it verified: these tests try every other way to use it.
 */
describe('claims verified once per transaction', () => {
  let db: TestDatabase;
  let api: pg.Client;
  let other: pg.Client;
  const otherLogin = `omnizen_t_gateway_${randomBytes(4).toString('hex')}`;
  const alice = randomUUID();
  const orgA = randomUUID();
  const orgB = randomUUID();
  const claims = (org: string, sub = alice) => JSON.stringify({ sub, role: 'authenticated', org_id: org });

  beforeAll(async () => {
    db = await createTestDatabase();
    const bob = randomUUID();
    for (const u of [alice, bob]) await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [u, `${u}@example.test`]);
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'A', $2), ($3, 'B', $4)`, [orgA, alice, orgB, bob]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($3, $4, 'owner')`, [orgA, alice, orgB, bob]);
    api = new pg.Client({ connectionString: db.apiUrl });
    await api.connect();
    // a login that may become `authenticated` like Supabase's PostgREST gateway (authenticator), but is not the API's
    await db.admin.query(`CREATE ROLE ${otherLogin} LOGIN PASSWORD 'gateway-test' NOINHERIT IN ROLE authenticated`);
    const url = new URL(db.url);
    url.username = otherLogin;
    url.password = 'gateway-test';
    other = new pg.Client({ connectionString: url.toString() });
    await other.connect();
  });
  afterAll(async () => {
    await api?.end();
    await other?.end();
    await db.drop();
    const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
    await root.connect();
    await root.query(`DROP ROLE IF EXISTS ${otherLogin}`);
    await root.end();
  });

  async function inTransaction<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
    await client.query('BEGIN');
    try {
      return await work();
    } finally {
      await client.query('ROLLBACK');
    }
  }

  const whoAmI = async (client: pg.Client) =>
    (await client.query(`SELECT public.auth_org_id()::text AS org, public.auth_role() AS role,
                                (SELECT count(*)::int FROM core.organizations WHERE id = $1) AS sees_b`, [orgB])).rows[0];

  it('answers the organization and role begin_request verified, from the record', async () => {
    await inTransaction(api, async () => {
      const { rows: [begun] } = await api.query(`SELECT org_id::text, role FROM public.begin_request($1, 'authenticated')`, [claims(orgA)]);
      expect(begun).toEqual({ org_id: orgA, role: 'owner' });
      const { rows: [record] } = await api.query(
        `SELECT current_setting('omnizen.verified_org', true) AS org, current_setting('omnizen.verified_role', true) AS role, public.auth_claims_verified() AS verified`);
      expect(record).toEqual({ org: orgA, role: 'owner', verified: true });
      expect(await whoAmI(api)).toEqual({ org: orgA, role: 'owner', sees_b: 0 });
    });
  });

  it('answers false (not NULL) on the runtime login before begin_request, with or without claims set', async () => {
    // 20270202000100: a check written `NOT auth_claims_verified()` must not let such a transaction through
    await inTransaction(api, async () => {
      await api.query(`SELECT set_config('role', 'authenticated', true)`); // what the functions are granted to
      expect((await api.query('SELECT public.auth_claims_verified() AS v')).rows[0].v).toBe(false);
      await api.query(`SELECT set_config('request.jwt.claims', $1, true)`, [claims(orgA)]);
      expect((await api.query('SELECT public.auth_claims_verified() AS v')).rows[0].v).toBe(false);
    });
  });

  it('does not carry the record over to claims replaced after begin_request: another organization is checked in full', async () => {
    await inTransaction(api, async () => {
      await api.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims(orgA)]);
      await api.query(`SELECT set_config('request.jwt.claims', $1, true)`, [claims(orgB)]);
      expect((await api.query('SELECT public.auth_claims_verified() AS v')).rows[0].v).toBe(false);
      // alice is no member of B: the full check refuses, and no row of B is visible
      expect(await whoAmI(api)).toEqual({ org: null, role: null, sees_b: 0 });
    });
  });

  it('ignores a record forged by any login other than the runtime login (e.g. a gateway that can become authenticated)', async () => {
    await inTransaction(other, async () => {
      await other.query(`SELECT set_config('request.jwt.claims', $1, true), set_config('omnizen.verified_claims', $1, true),
                                set_config('omnizen.verified_org', $2, true), set_config('omnizen.verified_role', 'owner', true)`, [claims(orgB), orgB]);
      await other.query('SET LOCAL ROLE authenticated');
      expect((await other.query('SELECT public.auth_claims_verified() AS v')).rows[0].v).toBe(false);
      expect(await whoAmI(other)).toEqual({ org: null, role: null, sees_b: 0 });
    });
  });

  it('ignores the record when the singular request.jwt.claim setting (which auth.jwt() prefers) is set', async () => {
    await inTransaction(api, async () => {
      await api.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims(orgA)]);
      await api.query(`SELECT set_config('request.jwt.claim', $1, true)`, [claims(orgB)]);
      expect(await whoAmI(api)).toEqual({ org: null, role: null, sees_b: 0 });
    });
  });

  it('verifies again in the next transaction: a removed membership is seen at once', async () => {
    const carol = randomUUID();
    await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [carol, `${carol}@example.test`]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, [orgA, carol]);
    await inTransaction(api, async () => {
      await api.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims(orgA, carol)]);
      expect(await whoAmI(api)).toEqual({ org: orgA, role: 'member', sees_b: 0 });
    });
    await db.admin.query(`DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2`, [orgA, carol]);
    await inTransaction(api, async () => {
      const { rows: [begun] } = await api.query(`SELECT org_id, role FROM public.begin_request($1, 'authenticated')`, [claims(orgA, carol)]);
      expect(begun).toEqual({ org_id: null, role: null });
      expect(await whoAmI(api)).toEqual({ org: null, role: null, sees_b: 0 });
    });
  });

  it('decides organization and role in begin_request as the full checks do (one membership read for a user\'s claims)', async () => {
    // 20270115000100: begin_request asks public.auth_org_role_checked(), which reads the membership once for a user's
    // claims through the runtime login; every case must answer what auth_org_id_checked() and auth_role_checked() answer
    const dave = randomUUID();
    const gone = randomUUID();
    await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [dave, `${dave}@example.test`]);
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id, deleted_at) VALUES ($1, 'Gone', $2, now())`, [gone, dave]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'accountant'), ($3, $2, 'owner')`, [orgA, dave, gone]);
    const cases: [string, string | null][] = [
      [claims(orgA), orgA], // owner
      [claims(orgA, dave), orgA], // accountant
      [claims(orgB), null], // not a member
      [claims(gone, dave), null], // a member of a deleted organization
      [JSON.stringify({ sub: alice, role: 'authenticated', org_id: 'not-a-uuid' }), null],
      [JSON.stringify({ sub: alice, role: 'authenticated' }), null], // no organization claimed
      [JSON.stringify({ sub: alice, role: 'service_role', org_id: orgB }), orgB], // service claims: a live organization
      [JSON.stringify({ sub: alice, role: 'service_role', org_id: gone }), null],
    ];
    for (const [c, org] of cases) {
      await inTransaction(api, async () => {
        const { rows: [begun] } = await api.query(`SELECT org_id::text, role FROM public.begin_request($1, 'authenticated')`, [c]);
        const { rows: [full] } = await api.query(`SELECT public.auth_org_id_checked()::text AS org_id, public.auth_role_checked() AS role`);
        expect({ claims: c, ...begun }).toEqual({ claims: c, ...full });
        expect(begun.org_id).toBe(org);
      });
    }
  });

  it('keeps the record inside its transaction', async () => {
    await inTransaction(api, async () => {
      await api.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [claims(orgA)]);
    });
    const { rows: [after] } = await api.query(
      `SELECT coalesce(current_setting('omnizen.verified_org', true), '') AS org, coalesce(current_setting('omnizen.verified_claims', true), '') AS claims`);
    expect(after).toEqual({ org: '', claims: '' });
  });
});
