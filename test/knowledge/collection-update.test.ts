import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createOrg, onEnterprisePlan, orgWithRoles, registerUser, type OrgWithRoles, type TestUser } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * PATCH /knowledge/collections/{id}: renaming a collection and changing who may read it. The read roles are what the
 * database's policies check, so a change opens (or closes) the collection's documents, versions, chunks and search
 * hits to that role at once, through the API and in SQL alike.
 */
describe('knowledge: changing a collection\'s name and readers', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let owner: TestUser;
  let collectionId: string;
  let documentId: string;
  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const patch = (body: object, who: TestUser = org.users.admin, id = collectionId) => t.http.patch(url(`collections/${id}`)).set(who.auth).send(body);
  const row = async () => (await t.db.admin.query('SELECT name, description, read_roles FROM ai.knowledge_collections WHERE org_id = $1 AND id = $2', [org.orgId, collectionId])).rows[0];
  const audits = async () => (await t.db.admin.query(
    `SELECT actor_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'knowledge.collection_updated' ORDER BY id`, [org.orgId])).rows;
  /** what a member sees of the document: through the API (status of a read, search hits) and in SQL under its claims */
  const memberSees = async () => {
    const member = org.users.member;
    const read = (await t.http.get(url(`documents/${documentId}`)).set(member.auth)).status;
    const hits = (await t.http.post(url('search')).set(member.auth).send({ query: 'receipts reimbursed thirty days', k: 5 }).expect(200)).body.items
      .filter((h: { documentId: string }) => h.documentId === documentId).length;
    const [sql] = await t.db.as({ sub: member.id, org_id: org.orgId, role: 'authenticated' }, 'authenticated',
      'SELECT count(*)::int AS n FROM ai.knowledge_chunks WHERE collection_id = $1', [collectionId]);
    return { read, found: hits > 0, chunks: sql.n > 0 };
  };

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Readers Co');
    owner = org.users.owner;
    await onEnterprisePlan(t, org.orgId);
    collectionId = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Finance policies', readRoles: ['accountant'] }).expect(201)).body.id;
    await t.http.post(url('collections')).set(owner.auth).send({ name: 'Handbook', readRoles: ['member'] }).expect(201);
    documentId = (await t.http.post(url('documents')).set(owner.auth)
      .send({ collectionId, title: 'Travel', text: 'Travel receipts are reimbursed within thirty days of the expense report.' }).expect(201)).body.id;
    await t.ingest();
  });
  afterAll(() => t?.close());

  it('an admin opens the collection to members and closes it again: answer, row, audit, and what a member can read and find', async () => {
    expect(await memberSees()).toEqual({ read: 404, found: false, chunks: false });

    const opened = await patch({ name: 'Finance policies 2027', description: 'Current policies', readRoles: ['accountant', 'member', 'member'] }).expect(200);
    expect(opened.body).toMatchObject({ id: collectionId, name: 'Finance policies 2027', description: 'Current policies', readRoles: ['accountant', 'member'] });
    expect(await row()).toEqual({ name: 'Finance policies 2027', description: 'Current policies', read_roles: ['accountant', 'member'] });
    expect((await t.http.get(url(`collections/${collectionId}`)).set(org.users.member.auth).expect(200)).body).toEqual(opened.body);
    expect(await memberSees()).toEqual({ read: 200, found: true, chunks: true });

    // fields left out keep their value
    const closed = await patch({ readRoles: [] }).expect(200);
    expect(closed.body).toMatchObject({ name: 'Finance policies 2027', description: 'Current policies', readRoles: [] });
    expect(await row()).toEqual({ name: 'Finance policies 2027', description: 'Current policies', read_roles: [] });
    expect(await memberSees()).toEqual({ read: 404, found: false, chunks: false });
    // owner and admin always read it
    expect((await t.http.get(url(`documents/${documentId}`)).set(org.users.admin.auth).expect(200)).body.id).toBe(documentId);

    expect(await audits()).toEqual([
      { actor_id: org.users.admin.id, before: expect.objectContaining({ name: 'Finance policies', readRoles: ['accountant'] }), after: expect.objectContaining({ name: 'Finance policies 2027', readRoles: ['accountant', 'member'] }) },
      { actor_id: org.users.admin.id, before: expect.objectContaining({ readRoles: ['accountant', 'member'] }), after: expect.objectContaining({ readRoles: [] }) },
    ]);
  });

  it('refuses a taken name, an unknown role, an empty name, non-admins and strangers; nothing changes', async () => {
    const before = await row();
    const auditCount = (await audits()).length;

    const taken = await patch({ name: 'Handbook' }).expect(409);
    expect(taken.body.error).toMatchObject({ code: 'knowledge.collection_name_taken', message: expect.stringContaining('Handbook') });
    const role = await patch({ readRoles: ['member', 'superuser'] }).expect(400);
    expect(JSON.stringify(role.body.error)).toContain('readRoles');
    const empty = await patch({ name: '' }).expect(400);
    expect(JSON.stringify(empty.body.error)).toContain('name');
    for (const who of [org.users.accountant, org.users.member, org.users.viewer]) {
      expect((await patch({ readRoles: ['viewer'] }, who).expect(403)).body.error.code).toBe('forbidden.role');
    }
    const stranger = await registerUser(t, 'stranger');
    const strangerOrg = await createOrg(t, stranger, 'Stranger Co');
    await onEnterprisePlan(t, strangerOrg);
    expect((await patch({ readRoles: ['viewer'] }, stranger).expect(404)).body.error.code).toBe('organization.not_found');
    // from the stranger's own organization the collection does not exist
    const elsewhere = await t.http.patch(`/v1/orgs/${strangerOrg}/knowledge/collections/${collectionId}`).set(stranger.auth).send({ readRoles: ['viewer'] }).expect(404);
    expect(elsewhere.body.error.code).toBe('knowledge_collection.not_found');

    expect(await row()).toEqual(before);
    expect(await audits()).toHaveLength(auditCount);
  });
});
