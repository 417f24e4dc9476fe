import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { openTenantTransaction } from '../support/database.js';
import { orgWithRoles, type OrgWithRoles, onEnterprisePlan } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';

describe('workspaces', () => {
  let t: TestApp;
  let a: OrgWithRoles;
  let b: typeof a;

  beforeAll(async () => {
    t = await createTestApp();
    a = await orgWithRoles(t, 'A');
    b = await orgWithRoles(t, 'B');
    await onEnterprisePlan(t, a.orgId);
    await onEnterprisePlan(t, b.orgId);
  });
  afterAll(() => t.close());

  const ws = (org: string) => `/v1/orgs/${org}/workspaces`;

  it('lets admins create, rename and delete; members read; every change audited', async () => {
    const created = await t.http.post(ws(a.orgId)).set(a.users.admin.auth).send({ name: '  EU  ' }).expect(201);
    expect(created.body).toMatchObject({ orgId: a.orgId, name: 'EU' });
    const id = created.body.id;
    const list = await t.http.get(ws(a.orgId)).set(a.users.viewer.auth).expect(200);
    expect(list.body.map((w: any) => w.id)).toContain(id);
    await t.http.get(`${ws(a.orgId)}/${id}`).set(a.users.member.auth).expect(200);
    const renamed = await t.http.put(`${ws(a.orgId)}/${id}`).set(a.users.owner.auth).send({ name: 'Europe' }).expect(200);
    expect(renamed.body.name).toBe('Europe');
    const dup = await t.http.post(ws(a.orgId)).set(a.users.owner.auth).send({ name: 'Europe' }).expect(409);
    expect(dup.body.error.code).toBe('workspace.name_taken');
    await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).expect(204);
    await t.http.get(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).expect(404);
    const { rows } = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [a.orgId, id]);
    expect(rows.map((r) => r.action)).toEqual(['workspace.created', 'workspace.updated', 'workspace.deleted']);
  });

  it('refuses to delete a workspace that holds knowledge collections (409 workspace.not_empty) or that records refer to (409)', async () => {
    const id = (await t.http.post(ws(a.orgId)).set(a.users.admin.auth).send({ name: 'Knowledge' }).expect(201)).body.id;
    const collections: string[] = [];
    for (const name of ['Handbook', 'Policies']) {
      collections.push((await t.http.post(`/v1/orgs/${a.orgId}/knowledge/collections`).set(a.users.admin.auth)
        .send({ name, workspaceId: id, readRoles: name === 'Policies' ? ['accountant'] : [] }).expect(201)).body.id);
    }
    await t.http.post(`/v1/orgs/${a.orgId}/knowledge/documents`).set(a.users.admin.auth).send({ collectionId: collections[0], title: 'Leave', text: 'Twenty-five days.' }).expect(201);
    const state = async () => (await t.db.admin.query(`
      SELECT (SELECT count(*) FROM core.workspaces WHERE id = $1)::int AS workspaces,
             (SELECT count(*) FROM ai.knowledge_collections WHERE workspace_id = $1)::int AS collections,
             (SELECT count(*) FROM ai.knowledge_documents WHERE collection_id = ANY ($2::uuid[]))::int AS documents,
             (SELECT count(*) FROM core.audit_logs WHERE org_id = $3 AND action = 'workspace.deleted' AND entity_id = $1::text)::int AS deleted`,
    [id, collections, a.orgId])).rows[0];
    const notEmpty = { code: 'workspace.not_empty', message: `workspace ${id} still holds knowledge collections: delete them first` };

    const refused = await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).expect(409);
    expect(refused.body.error).toEqual(notEmpty);
    expect(await state()).toEqual({ workspaces: 1, collections: 2, documents: 1, deleted: 0 });
    // the database refuses it, whoever deletes (the collections' foreign key)
    await expect(t.db.admin.query('DELETE FROM core.workspaces WHERE id = $1', [id]))
      .rejects.toMatchObject({ code: '23503', constraint: 'knowledge_collections_org_id_workspace_id_fkey' });
    expect(await state()).toEqual({ workspaces: 1, collections: 2, documents: 1, deleted: 0 });

    await t.http.delete(`/v1/orgs/${a.orgId}/knowledge/collections/${collections[1]}`).set(a.users.admin.auth).expect(204);
    const one = await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.owner.auth).expect(409);
    expect(one.body.error).toEqual(notEmpty);
    await t.http.delete(`/v1/orgs/${a.orgId}/knowledge/collections/${collections[0]}`).set(a.users.admin.auth).expect(204);

    // an agent of the workspace: its foreign key refuses the deletion
    const { rows: [agent] } = await t.db.admin.query(
      `INSERT INTO ai.agents (org_id, name, type, model_id, workspace_id) VALUES ($1, 'Bookkeeper', 'assistant', 'gpt-4o-mini', $2) RETURNING id`, [a.orgId, id]);
    const referred = await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).expect(409);
    expect(referred.body.error).toEqual({ code: 'conflict.reference',
      message: `workspace ${id} is still referred to by other records (journal lines or AI agents), so it cannot be deleted` });
    expect(await state()).toEqual({ workspaces: 1, collections: 0, documents: 0, deleted: 0 });

    await t.db.admin.query('DELETE FROM ai.agents WHERE id = $1', [agent.id]);
    await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).expect(204);
    expect(await state()).toEqual({ workspaces: 0, collections: 0, documents: 0, deleted: 1 });
  });

  describe('a collection created while its workspace is deleted: never an orphan, never a 500', () => {
    const clients: pg.Client[] = [];
    afterAll(async () => { for (const c of clients) await c.end(); });
    /** The admin's tenant transaction on a connection of the API login, held open by the test. */
    const tenantTx = () => openTenantTransaction(t.db.apiUrl, { sub: a.users.admin.id, org_id: a.orgId }, clients);
    /** Resolves once a backend of the API login other than `holder` waits for a lock. */
    const requestWaits = (holder: number) => until('the request waits for the open transaction', async () => (await t.db.admin.query(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND usename = 'omnizen_api' AND pid <> $1 AND wait_event_type = 'Lock'`,
      [holder])).rows.length > 0);
    const state = async (id: string) => (await t.db.admin.query(`
      SELECT (SELECT count(*) FROM core.workspaces WHERE id = $1)::int AS workspaces,
             (SELECT count(*) FROM ai.knowledge_collections WHERE org_id = $2 AND name = 'Raced')::int AS collections,
             (SELECT count(*) FROM ai.knowledge_collections c WHERE c.workspace_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM core.workspaces w WHERE w.org_id = c.org_id AND w.id = c.workspace_id))::int AS orphans,
             (SELECT count(*) FROM core.audit_logs WHERE org_id = $2 AND action = 'workspace.deleted' AND entity_id = $1::text)::int AS deleted`,
    [id, a.orgId])).rows[0];

    it('created first: the deletion waits for it, then answers 409 workspace.not_empty and deletes nothing', async () => {
      const id = (await t.http.post(ws(a.orgId)).set(a.users.admin.auth).send({ name: 'Race first' }).expect(201)).body.id;
      const creating = await tenantTx();
      const { rows: [c] } = await creating.c.query(
        `INSERT INTO ai.knowledge_collections (org_id, name, workspace_id) VALUES ($1, 'Raced', $2) RETURNING id`, [a.orgId, id]);
      const deleting = t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).then((r) => r);
      await requestWaits(creating.pid);
      await creating.c.query('COMMIT');
      const res = await deleting;
      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({ code: 'workspace.not_empty', message: `workspace ${id} still holds knowledge collections: delete them first` });
      expect(await state(id)).toEqual({ workspaces: 1, collections: 1, orphans: 0, deleted: 0 });
      await t.db.admin.query('DELETE FROM ai.knowledge_collections WHERE id = $1', [c.id]);
    });

    it('deleted first: the creation waits for the deletion, then answers 404 workspace.not_found and writes nothing', async () => {
      const id = (await t.http.post(ws(a.orgId)).set(a.users.admin.auth).send({ name: 'Race second' }).expect(201)).body.id;
      const deleting = await tenantTx();
      expect((await deleting.c.query('DELETE FROM core.workspaces WHERE org_id = $1 AND id = $2', [a.orgId, id])).rowCount).toBe(1);
      const creating = t.http.post(`/v1/orgs/${a.orgId}/knowledge/collections`).set(a.users.admin.auth).send({ name: 'Raced', workspaceId: id }).then((r) => r);
      await requestWaits(deleting.pid);
      await deleting.c.query('COMMIT');
      const res = await creating;
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('workspace.not_found');
      expect(await state(id)).toEqual({ workspaces: 0, collections: 0, orphans: 0, deleted: 0 });
      expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'knowledge.collection_created'
        AND after->>'name' = 'Raced'`, [a.orgId])).rows[0].n).toBe(0);
    });
  });

  it('forbids non-admins to write (403) and rejects bad input (400)', async () => {
    const { body } = await t.http.post(ws(a.orgId)).set(a.users.owner.auth).send({ name: 'Fixed' }).expect(201);
    for (const who of [a.users.accountant, a.users.member, a.users.viewer]) {
      await t.http.post(ws(a.orgId)).set(who.auth).send({ name: 'Nope' }).expect(403);
      await t.http.put(`${ws(a.orgId)}/${body.id}`).set(who.auth).send({ name: 'Nope' }).expect(403);
      await t.http.delete(`${ws(a.orgId)}/${body.id}`).set(who.auth).expect(403);
    }
    const bad = await t.http.post(ws(a.orgId)).set(a.users.owner.auth).send({ name: '', extra: 1 }).expect(400);
    expect(bad.body.error.details.map((d: any) => d.field).sort()).toEqual(['extra', 'name']);
    expect((await t.http.get(`${ws(a.orgId)}/not-a-uuid`).set(a.users.owner.auth).expect(404)).body.error.code).toBe('workspace.not_found');
    expect((await t.db.admin.query('SELECT name FROM core.workspaces WHERE id = $1', [body.id])).rows[0].name).toBe('Fixed');
  });

  it('X-Workspace-Id makes auth_workspace_id() return that workspace; another organization\'s workspace is 404', async () => {
    const mine = (await t.http.post(ws(a.orgId)).set(a.users.owner.auth).send({ name: 'Scoped' }).expect(201)).body;
    const theirs = (await t.http.post(ws(b.orgId)).set(b.users.owner.auth).send({ name: 'Theirs' }).expect(201)).body;
    const current = await t.http.get(`${ws(a.orgId)}/current`).set(a.users.viewer.auth).set('X-Workspace-Id', mine.id).expect(200);
    expect(current.body.id).toBe(mine.id);
    // without the header the request acts in no workspace
    await t.http.get(`${ws(a.orgId)}/current`).set(a.users.viewer.auth).expect(404);
    const foreign = await t.http.get(`${ws(a.orgId)}/current`).set(a.users.viewer.auth).set('X-Workspace-Id', theirs.id).expect(404);
    expect(foreign.body.error.code).toBe('workspace.not_found');
    await t.http.get(ws(a.orgId)).set(a.users.viewer.auth).set('X-Workspace-Id', 'nope').expect(400);
    // and at the SQL level, as the API runs it
    const claims = (workspace: string) => ({ sub: a.users.viewer.id, role: 'authenticated', org_id: a.orgId, workspace_id: workspace });
    expect((await t.db.as(claims(mine.id), 'authenticated', 'SELECT public.auth_workspace_id() AS w'))[0].w).toBe(mine.id);
    expect((await t.db.as(claims(theirs.id), 'authenticated', 'SELECT public.auth_workspace_id() AS w'))[0].w).toBeNull();
  });

  it('hides another organization: a member of A gets 404 on B for read, update and delete; anonymous 401', async () => {
    const theirs = (await t.http.post(ws(b.orgId)).set(b.users.owner.auth).send({ name: 'Private' }).expect(201)).body;
    await t.http.get(ws(b.orgId)).set(a.users.owner.auth).expect(404);
    await t.http.get(`${ws(b.orgId)}/${theirs.id}`).set(a.users.owner.auth).expect(404);
    await t.http.put(`${ws(b.orgId)}/${theirs.id}`).set(a.users.owner.auth).send({ name: 'Hacked' }).expect(404);
    await t.http.delete(`${ws(b.orgId)}/${theirs.id}`).set(a.users.owner.auth).expect(404);
    // B's id through A's organization
    await t.http.get(`${ws(a.orgId)}/${theirs.id}`).set(a.users.owner.auth).expect(404);
    await t.http.put(`${ws(a.orgId)}/${theirs.id}`).set(a.users.owner.auth).send({ name: 'Hacked' }).expect(404);
    await t.http.delete(`${ws(a.orgId)}/${theirs.id}`).set(a.users.owner.auth).expect(404);
    await t.http.get(ws(b.orgId)).expect(401);
    await t.http.post(ws(b.orgId)).send({ name: 'x' }).expect(401);
    expect((await t.db.admin.query('SELECT name FROM core.workspaces WHERE id = $1', [theirs.id])).rows[0].name).toBe('Private');
  });
});
