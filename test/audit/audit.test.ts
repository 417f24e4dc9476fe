import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type TestUser, type OrgWithRoles } from '../support/factories.js';

type Org = OrgWithRoles;

describe('audit log', () => {
  let t: TestApp;
  let a: Org;
  let b: Org;

  beforeAll(async () => {
    t = await createTestApp();
    a = await orgWithRoles(t, 'A');
    b = await orgWithRoles(t, 'B');
    // a known history in A: 6 flag changes by two actors
    for (let i = 0; i < 3; i++) {
      await t.http.put(`/v1/orgs/${a.orgId}/feature-flags/f${i}`).set(a.users.owner.auth).send({ enabled: true }).expect(200);
      await t.http.put(`/v1/orgs/${a.orgId}/feature-flags/f${i}`).set(a.users.admin.auth).send({ enabled: false }).expect(200);
    }
    await t.http.put(`/v1/orgs/${b.orgId}/feature-flags/b_only`).set(b.users.owner.auth).send({ enabled: true }).expect(200);
  });
  afterAll(() => t.close());

  const logs = (org: string, who: TestUser, query: Record<string, string | number> = {}) =>
    t.http.get(`/v1/orgs/${org}/audit-logs`).query(query).set(who.auth);

  it('records actor, principal type, entity, before/after, request id and IP for each mutation', async () => {
    const res = await t.http.put(`/v1/orgs/${a.orgId}/feature-flags/traced`).set(a.users.admin.auth).set('X-Request-Id', 'req-audit-1').send({ enabled: true }).expect(200);
    const page = await logs(a.orgId, a.users.owner, { entityId: 'traced' }).expect(200);
    expect(page.body.items).toEqual([expect.objectContaining({
      actorId: a.users.admin.id, principalType: 'user', action: 'feature_flag.set', entityType: 'feature_flag', entityId: 'traced',
      before: null, after: expect.objectContaining({ flag: 'traced', enabled: true }), requestId: 'req-audit-1', ip: expect.stringMatching(/127\.0\.0\.1/),
    })]);
    expect(res.headers['x-request-id']).toBe('req-audit-1');
  });

  it('filters by action, entity, actor and time', async () => {
    const byActor = await logs(a.orgId, a.users.owner, { actorId: a.users.admin.id, entityType: 'feature_flag', action: 'feature_flag.set' }).expect(200);
    expect(byActor.body.items.every((i: any) => i.actorId === a.users.admin.id)).toBe(true);
    expect(byActor.body.items.filter((i: any) => i.entityId !== 'traced').map((i: any) => i.after.enabled)).toEqual([false, false, false]);
    const one = await logs(a.orgId, a.users.owner, { entityType: 'feature_flag', entityId: 'f1' }).expect(200);
    expect(one.body.items.map((i: any) => [i.actorId, i.after.enabled])).toEqual([[a.users.admin.id, false], [a.users.owner.id, true]]);
    expect((await logs(a.orgId, a.users.owner, { action: 'nothing.happened' }).expect(200)).body.items).toEqual([]);
    expect((await logs(a.orgId, a.users.owner, { from: new Date(Date.now() + 3_600_000).toISOString() }).expect(200)).body.items).toEqual([]);
    expect((await logs(a.orgId, a.users.owner, { to: '2000-01-01T00:00:00Z' }).expect(200)).body.items).toEqual([]);
    const all = await logs(a.orgId, a.users.owner, { from: '2000-01-01T00:00:00Z', entityType: 'feature_flag' }).expect(200);
    expect(all.body.items.length).toBe(7);
    const bad = await logs(a.orgId, a.users.owner, { from: 'yesterday', limit: 0 }).expect(400);
    expect(bad.body.error.details.map((d: any) => d.field).sort()).toEqual(['from', 'limit']);
  });

  it('pages newest first with an opaque cursor, without gaps or repeats; a forged cursor is 400', async () => {
    const { rows } = await t.db.admin.query('SELECT a.id::text FROM core.audit_logs a WHERE a.org_id = $1 ORDER BY a.id DESC', [a.orgId]);
    expect(rows.length).toBeGreaterThan(4);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await logs(a.orgId, a.users.admin, { limit: 2, ...(cursor ? { cursor } : {}) }).expect(200);
      seen.push(...res.body.items.map((i: any) => i.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(rows.map((r) => r.id));
    expect(pages).toBe(Math.ceil(rows.length / 2));
    await logs(a.orgId, a.users.admin, { cursor: Buffer.from(JSON.stringify({ id: 1 })).toString('base64url') }).expect(400);
    await logs(a.orgId, a.users.admin, { cursor: Buffer.from(JSON.stringify('1; DROP')).toString('base64url') }).expect(400);
  });

  it('is for admins only: accountant, member and viewer get 403', async () => {
    await logs(a.orgId, a.users.admin).expect(200);
    for (const who of [a.users.accountant, a.users.member, a.users.viewer]) {
      const res = await logs(a.orgId, who).expect(403);
      expect(res.body.error.code).toBe('forbidden.role');
    }
    // and the policy agrees at the SQL level
    const rows = await t.db.as({ sub: a.users.member.id, role: 'authenticated', org_id: a.orgId }, 'authenticated', 'SELECT count(*)::int AS n FROM core.audit_logs');
    expect(rows[0].n).toBe(0);
  });

  it('hides another organization\'s log: 404 for a member of A, nothing of B in A\'s log; anonymous 401', async () => {
    await logs(b.orgId, a.users.owner).expect(404);
    const mine = await logs(a.orgId, a.users.owner, { limit: 200 }).expect(200);
    expect(mine.body.items.some((i: any) => i.entityId === 'b_only')).toBe(false);
    await t.http.get(`/v1/orgs/${b.orgId}/audit-logs`).expect(401);
  });

  describe('append-only', () => {
    const ownerClaims = () => ({ sub: a.users.owner.id, role: 'authenticated', org_id: a.orgId });
    const count = async () => (await t.db.admin.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE action = 'tampered')::int AS tampered FROM core.audit_logs WHERE org_id = $1`, [a.orgId])).rows[0];

    /** Runs `sql` on the owner connection, optionally under SET LOCAL ROLE, and rolls back. */
    async function onOwnerConnection(role: string | null, sql: string): Promise<void> {
      const c = await t.db.admin.connect();
      try {
        await c.query('BEGIN');
        if (role) await c.query(`SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, [role, JSON.stringify({ role, org_id: a.orgId })]);
        await c.query(sql);
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    }

    it('refuses UPDATE, DELETE and TRUNCATE as authenticated (an owner of the organization)', async () => {
      const before = await count();
      await expect(t.db.as(ownerClaims(), 'authenticated', `UPDATE core.audit_logs SET action = 'tampered' WHERE org_id = $1`, [a.orgId])).rejects.toMatchObject({ code: '42501' });
      await expect(t.db.as(ownerClaims(), 'authenticated', 'DELETE FROM core.audit_logs WHERE org_id = $1', [a.orgId])).rejects.toMatchObject({ code: '42501' });
      await expect(t.db.as(ownerClaims(), 'authenticated', 'TRUNCATE core.audit_logs')).rejects.toMatchObject({ code: '42501' });
      expect(await count()).toEqual(before);
    });

    it('refuses UPDATE, DELETE and TRUNCATE as service_role', async () => {
      const before = await count();
      await expect(onOwnerConnection('service_role', `UPDATE core.audit_logs SET action = 'tampered'`)).rejects.toMatchObject({ code: '42501' });
      await expect(onOwnerConnection('service_role', 'DELETE FROM core.audit_logs')).rejects.toMatchObject({ code: '42501' });
      await expect(onOwnerConnection('service_role', 'TRUNCATE core.audit_logs')).rejects.toMatchObject({ code: '42501' });
      expect(await count()).toEqual(before);
    });

    it('refuses UPDATE, DELETE and TRUNCATE even on the owner connection (triggers)', async () => {
      const before = await count();
      await expect(onOwnerConnection(null, `UPDATE core.audit_logs SET action = 'tampered'`)).rejects.toThrow(/append-only: UPDATE is not allowed/);
      await expect(onOwnerConnection(null, 'DELETE FROM core.audit_logs')).rejects.toThrow(/append-only: DELETE is not allowed/);
      await expect(onOwnerConnection(null, 'TRUNCATE core.audit_logs')).rejects.toThrow(/append-only: TRUNCATE is not allowed/);
      expect(await count()).toEqual(before);
    });

    it('keeps an organization with audit rows from being deleted; an organization deleted takes its outbox rows and analytics events along', async () => {
      const before = await count();
      // what the foreign keys to core.organizations did until migrations 20270112000100 and 20270118000100 (trigger
      // organizations_delete_cascade)
      await expect(onOwnerConnection('service_role', `DELETE FROM core.organizations WHERE id = '${a.orgId}'`)).rejects.toThrow(/has audit rows and cannot be deleted/);
      expect(await count()).toEqual(before);
      const c = await t.db.admin.connect();
      try {
        await c.query('BEGIN');
        const { rows: [o] } = await c.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('No history', $1) RETURNING id`, [a.users.owner.id]);
        await c.query(`INSERT INTO core.outbox (org_id, topic) VALUES ($1, 'domain_event')`, [o.id]);
        await c.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, source) VALUES ($1, now(), 'org.created', 'server')`, [o.id]);
        await c.query(`SELECT set_config('role', 'service_role', true)`);
        expect((await c.query('DELETE FROM core.organizations WHERE id = $1', [o.id])).rowCount).toBe(1);
        await c.query('RESET role');
        expect((await c.query('SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1', [o.id])).rows[0].n).toBe(0);
        expect((await c.query('SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1', [o.id])).rows[0].n).toBe(0);
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    });

    it('rolls an audit row back with the change it describes (same transaction)', async () => {
      const before = await count();
      // leaving writes its audit row first, then the last-owner trigger rejects the removal
      await t.http.delete(`/v1/orgs/${a.orgId}/members/me`).set(a.users.owner.auth).expect(409);
      expect(await count()).toEqual(before);
    });
  });

  it('cannot be forged: a member writes audit rows only as themselves, and never as a service', async () => {
    const member = a.users.member;
    const claims = { sub: member.id, role: 'authenticated', org_id: a.orgId };
    const sql = `INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type) VALUES ($1, $2, $3, 'forged', 'x')`;
    // in a transaction begun as the API begins one (begin_request verifies the claims), rolled back
    const insert = async (actor: string, type: string) => {
      const c = new pg.Client({ connectionString: t.db.apiUrl });
      await c.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify(claims)]);
        return (await c.query(sql, [a.orgId, actor, type])).rows;
      } finally {
        await c.query('ROLLBACK').catch(() => undefined);
        await c.end();
      }
    };
    await expect(insert(a.users.owner.id, 'user')).rejects.toThrow(/row-level security/);
    await expect(insert('service:billing', 'service')).rejects.toThrow(/row-level security/);
    await expect(insert(member.id, 'user')).resolves.toEqual([]);
    // the same claims set without begin_request (as Supabase's REST API sets a token's): no audit row at all (20270202000200)
    await expect(t.db.as(claims, 'authenticated', sql, [a.orgId, member.id, 'user'])).rejects.toThrow(/row-level security/);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE action = 'forged'`)).rows).toEqual([{ n: 0 }]);
  });
});
