import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';

/** The list of an organization's API keys: the keys not revoked by default, revoked ones on request; revoking deletes nothing. */
describe('listing API keys', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'keylister');
    orgId = await createOrg(t, owner, 'Listed Keys');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(async () => {
    await t?.close();
  });

  const list = (query = '') => t.http.get(`/v1/orgs/${orgId}/api-keys${query}`).set(owner.auth);

  it('lists the keys not revoked by default; ?status=revoked the revoked ones, ?status=all both, newest first', async () => {
    const ids: string[] = [];
    for (const name of ['first', 'second', 'third']) {
      ids.push((await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name, scopes: ['ledger:read'] }).expect(201)).body.id);
    }
    // created in one second: newest first is made explicit
    await t.db.admin.query(`UPDATE core.api_keys SET created_at = now() - make_interval(secs => 3 - array_position($2::uuid[], id)) WHERE org_id = $1`, [orgId, ids]);
    const [first, second, third] = ids;
    const revoked = await t.http.post(`/v1/orgs/${orgId}/api-keys/${second}/revoke`).set(owner.auth).expect(200);

    const active = await list().expect(200);
    expect(active.body.map((k: { id: string; name: string; revokedAt: string | null }) => [k.id, k.name, k.revokedAt])).toEqual([[third, 'third', null], [first, 'first', null]]);
    expect((await list('?status=active').expect(200)).body).toEqual(active.body);
    const onlyRevoked = await list('?status=revoked').expect(200);
    expect(onlyRevoked.body).toEqual([revoked.body]);
    expect(onlyRevoked.body[0]).toMatchObject({ id: second, name: 'second', revokedAt: expect.any(String) });
    const all = await list('?status=all').expect(200);
    expect(all.body.map((k: { id: string }) => k.id)).toEqual([third, second, first]);

    // the revoked key is still there, revoked by the owner
    const { rows } = await t.db.admin.query('SELECT id, revoked_by, revoked_at IS NOT NULL AS revoked FROM core.api_keys WHERE org_id = $1 ORDER BY created_at', [orgId]);
    expect(rows).toEqual([
      { id: first, revoked_by: null, revoked: false },
      { id: second, revoked_by: owner.id, revoked: true },
      { id: third, revoked_by: null, revoked: false },
    ]);
  });

  it('refuses an unknown status with a 400 naming the field', async () => {
    const res = await list('?status=expired').expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { field: string }) => d.field)).toEqual(['status']);
  });
});
