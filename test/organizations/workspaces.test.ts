import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type OrgWithRoles, onEnterprisePlan } from '../support/factories.js';

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

  it('refuses to delete a workspace that holds knowledge collections (409 workspace.not_empty, naming how many) or that records refer to (409)', async () => {
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

    const refused = await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.admin.auth).expect(409);
    expect(refused.body.error).toEqual({ code: 'workspace.not_empty',
      message: `workspace ${id} still holds 2 knowledge collections, which would be deleted with it: delete them first` });
    expect(await state()).toEqual({ workspaces: 1, collections: 2, documents: 1, deleted: 0 });

    await t.http.delete(`/v1/orgs/${a.orgId}/knowledge/collections/${collections[1]}`).set(a.users.admin.auth).expect(204);
    const one = await t.http.delete(`${ws(a.orgId)}/${id}`).set(a.users.owner.auth).expect(409);
    expect(one.body.error.message).toBe(`workspace ${id} still holds 1 knowledge collection, which would be deleted with it: delete it first`);
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
