import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * An analyst's real database login (a new connection, not SET ROLE): granted omnizen_analyst and
 * mapped to one organization, it resolves auth_org_id() from session_user. The SQL test
 * supabase/tests/003_analyst_login.sql covers the same with SET SESSION AUTHORIZATION.
 */
describe('analyst database login', () => {
  let db: TestDatabase;
  const login = `omnizen_t_analyst_${randomBytes(4).toString('hex')}`;
  const orgId = randomUUID();
  let userId: string;
  let analyst: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    userId = randomUUID();
    await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Analysed', $2)`, [orgId, userId]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [orgId, userId]);
    await db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'analyst-test' IN ROLE omnizen_analyst`);
    await db.admin.query(`INSERT INTO core.analyst_logins (login, org_id) VALUES ($1, $2)`, [login, orgId]);
    const url = new URL(db.url);
    url.username = login;
    url.password = 'analyst-test';
    analyst = new pg.Client({ connectionString: url.toString() });
    await analyst.connect();
  });
  afterAll(async () => {
    await analyst?.end();
    await db.drop();
    const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
    await root.connect();
    await root.query(`DROP ROLE IF EXISTS ${login}`);
    await root.end();
  });

  it('is in its mapped organization, as analyst', async () => {
    const { rows: [r] } = await analyst.query('SELECT session_user::text AS who, public.auth_org_id()::text AS org, public.auth_role() AS role');
    expect(r).toEqual({ who: login, org: orgId, role: 'analyst' });
  });

  it('cannot claim another, existing organization through request.jwt.claims', async () => {
    const otherOrg = randomUUID();
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Other', $2)`, [otherOrg, userId]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [otherOrg, userId]);
    for (const claims of [{ org_id: otherOrg, role: 'service_role' }, { org_id: otherOrg, sub: userId, role: 'authenticated' }]) {
      await analyst.query('BEGIN');
      try {
        await analyst.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify(claims)]);
        const { rows: [r] } = await analyst.query('SELECT public.auth_org_id()::text AS org, public.auth_role() AS role');
        expect(r).toEqual({ org: orgId, role: 'analyst' });
      } finally {
        await analyst.query('ROLLBACK');
      }
    }
  });

  it('cannot read base tables or become a request role', async () => {
    await expect(analyst.query('SELECT count(*) FROM core.memberships')).rejects.toMatchObject({ code: '42501' });
    await expect(analyst.query('SET ROLE authenticated')).rejects.toMatchObject({ code: '42501' });
    await expect(analyst.query('SET ROLE service_role')).rejects.toMatchObject({ code: '42501' });
  });

  it('is in no organization once unmapped', async () => {
    await db.admin.query('DELETE FROM core.analyst_logins WHERE login = $1', [login]);
    const { rows: [r] } = await analyst.query('SELECT public.auth_org_id() AS org, public.auth_role() AS role');
    expect(r).toEqual({ org: null, role: null });
  });
});
