import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { openTenantTransaction } from '../support/database.js';
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
    await expect(t.db.asApi(claims, 'authenticated', `UPDATE core.memberships SET role = 'viewer' WHERE org_id = $1 AND user_id = $2`, [orgId, users.owner.id]))
      .rejects.toThrow(/only an owner can grant or take away the owner role/);
    await expect(t.db.asApi(claims, 'authenticated', `DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2`, [orgId, users.owner.id]))
      .rejects.toThrow(/only an owner can remove an owner/);
    expect(await roleOf(orgId, users.owner.id)).toBe('owner');
  });

  it('rejects a role that does not exist and a member that does not', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Bad Input Co');
    const res = await t.http.patch(`/v1/orgs/${orgId}/members/${users.member.id}`).set(users.admin.auth).send({ role: 'emperor' }).expect(400);
    expect(res.body.error.details[0].field).toBe('role');
    await t.http.patch(`/v1/orgs/${orgId}/members/${stranger.id}`).set(users.admin.auth).send({ role: 'viewer' }).expect(404);
  });

  it('reaches a member whose user id another app wrote in upper case (core."User".id is text): the path keeps its case', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Upper Case Co');
    const upper = randomUUID().toUpperCase();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [upper, `upper-${upper}@example.test`]);
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, [orgId, upper]);
    const changed = await t.http.patch(`/v1/orgs/${orgId}/members/${upper}`).set(users.admin.auth).send({ role: 'viewer' }).expect(200);
    expect([changed.body.userId, changed.body.role]).toEqual([upper, 'viewer']);
    await t.http.delete(`/v1/orgs/${orgId}/members/${upper}`).set(users.admin.auth).expect(204);
    expect(await roleOf(orgId, upper)).toBeUndefined();
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

  describe('two owners acting at once (migration 20270202000800): the second waits for the first and is refused', () => {
    const clients: pg.Client[] = [];
    afterAll(() => Promise.all(clients.map((c) => c.end().catch(() => undefined))));

    /** An organization with exactly two owners: its creator and the promoted admin. */
    const twoOwners = async (name: string) => {
      const { orgId, users } = await orgWithRoles(t, name);
      await t.http.patch(`/v1/orgs/${orgId}/members/${users.admin.id}`).set(users.owner.auth).send({ role: 'owner' }).expect(200);
      return { orgId, a: users.owner, b: users.admin };
    };
    /** A connection as the API login with an open tenant transaction of `userId` (what begin_request sets up). */
    const tenantTx = (orgId: string, userId: string) => openTenantTransaction(t.db.apiUrl, { sub: userId, org_id: orgId }, clients);
    /**
     * Resolves once a backend of this database other than `holder` waits for a lock (polls pg_stat_activity; no
     * timer), or once `work` has settled without waiting (then the test fails on its outcome).
     */
    const waitsForLock = async (holder: number, work: Promise<unknown>) => {
      let settled = false;
      void work.finally(() => { settled = true; });
      while (!settled) {
        const { rows } = await t.db.admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1 AND wait_event_type = 'Lock'`, [holder]);
        if (rows.length) return;
      }
    };
    const owners = async (orgId: string) => (await t.db.admin.query(
      `SELECT user_id FROM core.memberships WHERE org_id = $1 AND role = 'owner' ORDER BY user_id`, [orgId])).rows.map((r) => r.user_id);

    it('A demotes B while B demotes A: B\'s change is refused once A\'s commits, and A stays owner', async () => {
      const { orgId, a, b } = await twoOwners('Demote Race Co');
      const first = await tenantTx(orgId, a.id);
      await first.c.query(`UPDATE core.memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2`, [orgId, b.id]);
      const second = await tenantTx(orgId, b.id);
      const demoting = second.c.query(`UPDATE core.memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2`, [orgId, a.id])
        .then(() => undefined, (err) => err);
      await waitsForLock(first.pid, demoting);
      await first.c.query('COMMIT');
      expect(await demoting).toMatchObject({ code: '23514', constraint: 'memberships_owner_required', message: 'an organization must keep at least one owner' });
      await second.c.query('ROLLBACK');
      expect(await owners(orgId)).toEqual([a.id]);
    });

    it('both leave at once: the API answers the second 409 membership.last_owner and nothing of its leaving is written', async () => {
      const { orgId, a, b } = await twoOwners('Leave Race Co');
      const first = await tenantTx(orgId, a.id);
      await first.c.query(`DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2`, [orgId, a.id]);
      const leaving = t.http.delete(`/v1/orgs/${orgId}/members/me`).set(b.auth).then((r) => r);
      await waitsForLock(first.pid, leaving);
      await first.c.query('COMMIT');
      const res = await leaving;
      expect(res.status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'membership.last_owner', message: expect.stringMatching(/at least one owner/) });
      expect(await owners(orgId)).toEqual([b.id]);
      const left = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'membership.left' AND entity_id = $2`, [orgId, b.id]);
      expect(left.rows[0].n).toBe(0);
    });
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
