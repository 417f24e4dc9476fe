import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { createTestApp, type TestApp } from '../support/app.js';

/** supabase/seed.sql loads into a migrated database, twice without change, and its demo user can log in. */
describe('supabase/seed.sql', () => {
  let t: TestApp;
  const seed = readFileSync(join(projectRoot(), 'supabase', 'seed.sql'), 'utf8');

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('loads, is idempotent, and its demo user logs in and sees both organizations', async () => {
    await t.db.admin.query(seed);
    await t.db.admin.query(seed);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.memberships WHERE user_id = '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001'`);
    expect(rows[0].n).toBe(2);
    const login = await t.http.post('/v1/auth/login').send({ email: 'demo@omnizen.local', password: 'omnizen-demo-password' }).expect(200);
    const orgs = await t.http.get('/v1/orgs').set('Authorization', `Bearer ${login.body.accessToken}`).expect(200);
    expect(orgs.body.map((o: { name: string }) => o.name).sort()).toEqual(['Demo Trading Ltd', 'Demo User']);
  });
});
