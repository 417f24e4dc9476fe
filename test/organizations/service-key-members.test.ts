import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';

/**
 * The Supabase service-role key acting for an organization manages its members (the routes and the membership policies
 * let it, owner-level). The members' users are read through core."User", whose policy showed a user only to themselves
 * and co-members: a service has no user, so it listed no member (200 {"items":[]}) and changed or removed none (404
 * member.not_found). It now reads the users who are members of the organization it acts for, and only those.
 */
describe('a service key on the member routes', () => {
  let t: TestApp;
  let serviceAuth: { Authorization: string };
  let orgId: string;
  let users: RoleUsers;
  let outsider: TestUser;
  let otherOrg: string;

  const roleOf = async (userId: string) =>
    (await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, userId])).rows[0]?.role;
  const audited = async () => (await t.db.admin.query(
    `SELECT action, entity_id, principal_type, actor_id FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'membership.%' AND actor_id = 'service:members-sync' ORDER BY occurred_at`,
    [orgId])).rows;

  beforeAll(async () => {
    t = await createTestApp();
    const key = jwt.sign({ role: 'service_role', service: 'members-sync' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    serviceAuth = { Authorization: `Bearer ${key}` };
    ({ orgId, users } = await orgWithRoles(t, 'Service Members Co'));
    outsider = await registerUser(t, 'svc-outsider');
    otherOrg = await createOrg(t, outsider, 'Elsewhere');
    await addMember(t, otherOrg, users.viewer, 'member');
  });
  afterAll(() => t.close());

  it('lists the organization\'s members with their email, and no one else', async () => {
    const res = await t.http.get(`/v1/orgs/${orgId}/members`).set(serviceAuth).expect(200);
    expect(res.body.items.map((m: any) => [m.userId, m.email, m.role]).sort()).toEqual(
      (['owner', 'admin', 'accountant', 'member', 'viewer'] as const).map((r) => [users[r].id, users[r].email, r]).sort());
    expect(JSON.stringify(res.body)).not.toContain(outsider.email);
    const other = await t.http.get(`/v1/orgs/${otherOrg}/members`).set(serviceAuth).expect(200);
    expect(other.body.items.map((m: any) => m.userId).sort()).toEqual([outsider.id, users.viewer.id].sort());
  });

  it('changes a role and grants and takes away owner (owner-level), audited as the service; another organization\'s member: 404', async () => {
    const changed = await t.http.patch(`/v1/orgs/${orgId}/members/${users.member.id}`).set(serviceAuth).send({ role: 'accountant' });
    expect([changed.status, changed.body.error?.code]).toEqual([200, undefined]);
    expect(changed.body).toMatchObject({ userId: users.member.id, email: users.member.email, role: 'accountant' });
    expect(await roleOf(users.member.id)).toBe('accountant');

    expect((await t.http.patch(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(serviceAuth).send({ role: 'owner' }).expect(200)).body.role).toBe('owner');
    expect((await t.http.patch(`/v1/orgs/${orgId}/members/${users.owner.id}`).set(serviceAuth).send({ role: 'admin' }).expect(200)).body.role).toBe('admin');
    expect([await roleOf(users.admin.id), await roleOf(users.owner.id)]).toEqual(['owner', 'admin']);
    // never the last owner
    const last = await t.http.patch(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(serviceAuth).send({ role: 'member' }).expect(409);
    expect(last.body.error.code).toBe('membership.last_owner');
    expect(await roleOf(users.admin.id)).toBe('owner');

    const elsewhere = await t.http.patch(`/v1/orgs/${orgId}/members/${outsider.id}`).set(serviceAuth).send({ role: 'viewer' }).expect(404);
    expect(elsewhere.body.error.code).toBe('member.not_found');
    expect((await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [otherOrg, outsider.id])).rows).toEqual([{ role: 'owner' }]);
    expect((await audited()).map((a: any) => [a.action, a.entity_id, a.principal_type])).toEqual([
      ['membership.role_changed', users.member.id, 'service'], ['membership.role_changed', users.admin.id, 'service'], ['membership.role_changed', users.owner.id, 'service'],
    ]);
  });

  it('removes a member, audited as the service', async () => {
    await t.http.delete(`/v1/orgs/${orgId}/members/${users.viewer.id}`).set(serviceAuth).expect(204);
    expect(await roleOf(users.viewer.id)).toBeUndefined();
    // their membership elsewhere stays
    expect((await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [otherOrg, users.viewer.id])).rows).toEqual([{ role: 'member' }]);
    expect((await audited()).at(-1)).toMatchObject({ action: 'membership.removed', entity_id: users.viewer.id, principal_type: 'service' });
    expect((await t.http.delete(`/v1/orgs/${orgId}/members/${outsider.id}`).set(serviceAuth).expect(404)).body.error.code).toBe('member.not_found');
  });

  it('decides it in the database: a service acting for the organization reads its members\' users only', async () => {
    const asService = (org: string) => t.db.asApi({ role: 'service_role', service: 'members-sync', org_id: org }, 'authenticated', 'SELECT id FROM core."User" ORDER BY id');
    const members = (await t.db.admin.query('SELECT user_id AS id FROM core.memberships WHERE org_id = $1 ORDER BY user_id', [orgId])).rows;
    expect(await asService(orgId)).toEqual(members);
    expect((await asService(otherOrg)).map((r: any) => r.id).sort()).toEqual([outsider.id, users.viewer.id].sort());
  });

  it('takes the service from the role the request was verified with, not from request.jwt.claim.role set after it', async () => {
    // auth.role() prefers request.jwt.claim.role, which is no part of the claims begin_request verified (review rk)
    const c = new pg.Client({ connectionString: t.db.apiUrl });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: users.member.id, role: 'authenticated', org_id: orgId })]);
      await c.query(`SELECT set_config('request.jwt.claim.role', 'service_role', true)`);
      const { rows } = await c.query(`SELECT public.auth_role() AS role, core.member_of_service_org($1) AS service_reads`, [users.owner.id]);
      expect(rows).toEqual([{ role: await roleOf(users.member.id), service_reads: false }]);
    } finally {
      await c.query('ROLLBACK');
      await c.end();
    }
  });
});
