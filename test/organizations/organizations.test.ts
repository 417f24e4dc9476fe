import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';

describe('organizations', () => {
  let t: TestApp;
  let ada: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(() => t.close());

  it('gives every new user a personal organization they own', async () => {
    const res = await t.http.get('/v1/orgs').set(ada.auth).expect(200);
    expect(res.body).toEqual([expect.objectContaining({ id: ada.personalOrgId, accountType: 'personal', role: 'owner' })]);
  });

  it('creates a business organization whose creator is the owner, and audits it', async () => {
    const orgId = await createOrg(t, ada, 'Ada Trading');
    const list = await t.http.get('/v1/orgs').set(ada.auth).expect(200);
    expect(list.body.map((o: any) => o.id)).toContain(orgId);
    const org = await t.http.get(`/v1/orgs/${orgId}`).set(ada.auth).expect(200);
    expect(org.body).toMatchObject({ name: 'Ada Trading', accountType: 'business', role: 'owner' });
    const audit = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).set(ada.auth).expect(200);
    expect(audit.body.items).toEqual([expect.objectContaining({ action: 'organization.created', actorId: ada.id, principalType: 'user' })]);
  });

  it('clears the domain with null, keeps fields left out, and refuses null where a field is not nullable', async () => {
    const orgId = await createOrg(t, ada, 'Domain Ltd');
    await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ domain: 'domain.example' }).expect(200);
    const kept = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: 'Domain GmbH' }).expect(200);
    expect(kept.body).toMatchObject({ name: 'Domain GmbH', domain: 'domain.example' });
    const cleared = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ domain: null }).expect(200);
    expect(cleared.body).toMatchObject({ name: 'Domain GmbH', domain: null });
    const refused = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: null }).expect(400);
    expect(refused.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'name', problems: [expect.stringMatching(/name must not be null/)] }] });
    const nul = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: 'Evil\u0000Corp' }).expect(400);
    expect(nul.body.error.details).toEqual([{ field: 'name', problems: [expect.stringMatching(/NUL/)] }]);
    const { rows } = await t.db.admin.query('SELECT name, domain FROM core.organizations WHERE id = $1', [orgId]);
    expect(rows[0]).toEqual({ name: 'Domain GmbH', domain: null });
  });

  it('hides another organization from a non-member: 404 on read, update and delete', async () => {
    const orgId = await createOrg(t, ada, 'Private');
    await t.http.get(`/v1/orgs/${orgId}`).set(bob.auth).expect(404);
    await t.http.patch(`/v1/orgs/${orgId}`).set(bob.auth).send({ name: 'Hacked' }).expect(404);
    await t.http.delete(`/v1/orgs/${orgId}`).set(bob.auth).expect(404);
    const { rows } = await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [orgId]);
    expect(rows[0].name).toBe('Private');
  });

  it('lets admins update but not viewers, and only owners delete', async () => {
    const orgId = await createOrg(t, ada, 'Roles Inc');
    await addMember(t, orgId, bob, 'viewer');
    const denied = await t.http.patch(`/v1/orgs/${orgId}`).set(bob.auth).send({ name: 'Nope' }).expect(403);
    expect(denied.body.error.code).toBe('forbidden.role');
    await t.db.admin.query(`UPDATE core.memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2`, [orgId, bob.id]);
    const ok = await t.http.patch(`/v1/orgs/${orgId}`).set(bob.auth).send({ name: 'Renamed' }).expect(200);
    expect(ok.body.name).toBe('Renamed');
    await t.http.delete(`/v1/orgs/${orgId}`).set(bob.auth).expect(403);
    await t.http.delete(`/v1/orgs/${orgId}`).set(ada.auth).expect(204);
    await t.http.get(`/v1/orgs/${orgId}`).set(ada.auth).expect(404);
  });

  it('rejects unknown fields and names invalid ones', async () => {
    const res = await t.http.post('/v1/orgs').set(ada.auth).send({ name: '', color: 'red' }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.message).toMatch(/color should not exist/);
    expect(res.body.error.details.map((d: any) => d.field).sort()).toEqual(['color', 'name']);
    expect(res.body.requestId).toEqual(expect.any(String));
  });

  it('answers 401 to anonymous callers', async () => {
    const res = await t.http.get('/v1/orgs').expect(401);
    expect(res.body.error.code).toBe('auth.unauthorized');
    expect(res.headers['x-request-id']).toBe(res.body.requestId);
  });

  it('never deletes a personal organization', async () => {
    const res = await t.http.delete(`/v1/orgs/${ada.personalOrgId}`).set(ada.auth).expect(403);
    expect(res.body.error).toMatchObject({ code: 'organization.personal', message: 'a personal organization cannot be deleted' });
    // nothing changed: the organization is not soft-deleted, its owner is still a member, and no deletion is audited
    const { rows } = await t.db.admin.query(
      `SELECT o.deleted_at, (SELECT count(*)::int FROM core.memberships m WHERE m.org_id = o.id) AS members,
              (SELECT count(*)::int FROM core.audit_logs a WHERE a.org_id = o.id AND a.action = 'organization.deleted') AS audited
       FROM core.organizations o WHERE o.id = $1`, [ada.personalOrgId]);
    expect(rows).toEqual([{ deleted_at: null, members: 1, audited: 0 }]);
  });
});
