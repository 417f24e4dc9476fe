import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, orgWithRoles, registerUser, type TestUser } from '../support/factories.js';

describe('members', () => {
  let t: TestApp;
  let stranger: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    stranger = await registerUser(t, 'stranger');
  });
  afterAll(() => t.close());

  const roleOf = async (orgId: string, userId: string) =>
    (await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, userId])).rows[0]?.role;

  it('lists members with their email, name and role, paginated by cursor', async () => {
    const { orgId, users } = await orgWithRoles(t, 'List Co');
    const first = await t.http.get(`/v1/orgs/${orgId}/members?limit=3`).set(users.viewer.auth).expect(200);
    expect(first.body.items).toHaveLength(3);
    expect(first.body.items[0]).toEqual(expect.objectContaining({ userId: users.owner.id, email: users.owner.email, name: 'owner', role: 'owner' }));
    const second = await t.http.get(`/v1/orgs/${orgId}/members?limit=3&cursor=${first.body.nextCursor}`).set(users.viewer.auth).expect(200);
    expect(second.body.nextCursor).toBeUndefined();
    const all = [...first.body.items, ...second.body.items];
    expect(all.map((m: any) => m.role).sort()).toEqual(['accountant', 'admin', 'member', 'owner', 'viewer']);
    await t.http.get(`/v1/orgs/${orgId}/members?cursor=not-a-cursor`).set(users.viewer.auth).expect(400);
  });

  it('lets an admin change roles, audited, but only an owner grants or takes away owner', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Roles Co');
    const res = await t.http.patch(`/v1/orgs/${orgId}/members/${users.member.id}`).set(users.admin.auth).send({ role: 'accountant' }).expect(200);
    expect(res.body).toMatchObject({ userId: users.member.id, role: 'accountant' });
    const audit = await t.db.admin.query(`SELECT actor_id, before->>'role' AS before, after->>'role' AS after FROM core.audit_logs WHERE org_id = $1 AND action = 'membership.role_changed'`, [orgId]);
    expect(audit.rows).toEqual([{ actor_id: users.admin.id, before: 'member', after: 'accountant' }]);

    const grant = await t.http.patch(`/v1/orgs/${orgId}/members/${users.member.id}`).set(users.admin.auth).send({ role: 'owner' }).expect(403);
    expect(grant.body.error.code).toBe('membership.owner_only');
    const take = await t.http.patch(`/v1/orgs/${orgId}/members/${users.owner.id}`).set(users.admin.auth).send({ role: 'viewer' }).expect(403);
    expect(take.body.error.code).toBe('membership.owner_only');
    expect(await roleOf(orgId, users.owner.id)).toBe('owner');

    await t.http.patch(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(users.owner.auth).send({ role: 'owner' }).expect(200);
    expect(await roleOf(orgId, users.admin.id)).toBe('owner');
  });

  it('enforces the owner rule in the database too (trigger), not only in the service', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Trigger Co');
    const claims = { sub: users.admin.id, role: 'authenticated', org_id: orgId };
    await expect(t.db.as(claims, 'authenticated', `UPDATE core.memberships SET role = 'viewer' WHERE org_id = $1 AND user_id = $2`, [orgId, users.owner.id]))
      .rejects.toThrow(/only an owner can grant or take away the owner role/);
    await expect(t.db.as(claims, 'authenticated', `DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2`, [orgId, users.owner.id]))
      .rejects.toThrow(/only an owner can remove an owner/);
    expect(await roleOf(orgId, users.owner.id)).toBe('owner');
  });

  it('rejects a role that does not exist and a member that does not', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Bad Input Co');
    const res = await t.http.patch(`/v1/orgs/${orgId}/members/${users.member.id}`).set(users.admin.auth).send({ role: 'emperor' }).expect(400);
    expect(res.body.error.details[0].field).toBe('role');
    await t.http.patch(`/v1/orgs/${orgId}/members/${stranger.id}`).set(users.admin.auth).send({ role: 'viewer' }).expect(404);
  });

  it('never leaves an organization without an owner: 409 membership.last_owner', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Last Owner Co');
    const demote = await t.http.patch(`/v1/orgs/${orgId}/members/${users.owner.id}`).set(users.owner.auth).send({ role: 'admin' }).expect(409);
    expect(demote.body.error).toMatchObject({ code: 'membership.last_owner', message: expect.stringMatching(/at least one owner/) });
    const leave = await t.http.delete(`/v1/orgs/${orgId}/members/me`).set(users.owner.auth).expect(409);
    expect(leave.body.error.code).toBe('membership.last_owner');
    expect(await roleOf(orgId, users.owner.id)).toBe('owner');
    // with a second owner, the first may step down
    await t.http.patch(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(users.owner.auth).send({ role: 'owner' }).expect(200);
    await t.http.delete(`/v1/orgs/${orgId}/members/me`).set(users.owner.auth).expect(204);
    await t.http.get(`/v1/orgs/${orgId}`).set(users.owner.auth).expect(404);
  });

  it('lets admins remove members but not owners, and anyone leave; all audited', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Remove Co');
    await t.http.delete(`/v1/orgs/${orgId}/members/${users.member.id}`).set(users.admin.auth).expect(204);
    expect(await roleOf(orgId, users.member.id)).toBeUndefined();
    const owner = await t.http.delete(`/v1/orgs/${orgId}/members/${users.owner.id}`).set(users.admin.auth).expect(403);
    expect(owner.body.error.code).toBe('membership.owner_only');
    await t.http.delete(`/v1/orgs/${orgId}/members/me`).set(users.viewer.auth).expect(204);
    expect(await roleOf(orgId, users.viewer.id)).toBeUndefined();
    const { rows } = await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'membership' ORDER BY id`, [orgId]);
    expect(rows).toEqual([{ action: 'membership.removed', entity_id: users.member.id }, { action: 'membership.left', entity_id: users.viewer.id }]);
  });

  it('forbids non-admins to change roles or remove members', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Viewer Co');
    for (const who of [users.viewer, users.member, users.accountant]) {
      const res = await t.http.patch(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(who.auth).send({ role: 'viewer' }).expect(403);
      expect(res.body.error.code).toBe('forbidden.role');
      await t.http.delete(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(who.auth).expect(403);
    }
    expect(await roleOf(orgId, users.admin.id)).toBe('admin');
  });

  it('hides another organization: a member of A gets 404 on B for read, update and delete; anonymous gets 401', async () => {
    const a = await orgWithRoles(t, 'A');
    const bOwner = await registerUser(t, 'bowner');
    const bOrg = await createOrg(t, bOwner, 'B');
    const bMember = await registerUser(t, 'bmember');
    await addMember(t, bOrg, bMember, 'member');
    await t.http.get(`/v1/orgs/${bOrg}/members`).set(a.users.owner.auth).expect(404);
    await t.http.patch(`/v1/orgs/${bOrg}/members/${bMember.id}`).set(a.users.owner.auth).send({ role: 'admin' }).expect(404);
    await t.http.delete(`/v1/orgs/${bOrg}/members/${bMember.id}`).set(a.users.owner.auth).expect(404);
    await t.http.delete(`/v1/orgs/${bOrg}/members/me`).set(a.users.owner.auth).expect(404);
    await t.http.get(`/v1/orgs/${bOrg}/members`).expect(401);
    await t.http.delete(`/v1/orgs/${bOrg}/members/me`).expect(401);
    expect(await roleOf(bOrg, bMember.id)).toBe('member');
    // an admin of A cannot reach B's member through A's id either
    await t.http.delete(`/v1/orgs/${a.orgId}/members/${bMember.id}`).set(a.users.owner.auth).expect(404);
    expect(await roleOf(bOrg, bMember.id)).toBe('member');
  });
});
