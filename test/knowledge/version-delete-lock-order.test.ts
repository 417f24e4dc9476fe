import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * A new version of a document and the deletion of its collection took their locks in opposite orders: the version
 * locked its document, then its insert's key check waited for the collection's row; the deletion locked the
 * collection's row, then waited for the document's to delete it. Each waited for the other and PostgreSQL cancelled
 * one (a 409). The deletion then locked the documents first, which left a window: a document committed between its two
 * locks, then given a new version before its DELETE, deadlocked the same way. Now every writer locks the collection's
 * row first (a new document or version FOR KEY SHARE, the deletion FOR UPDATE), then the document's: whichever comes
 * second waits for the first, then sees what it did.
 */
describe('knowledge: new documents, new versions and the deletion of their collection lock the collection, then the document', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;

  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const setUp = async (name: string) => {
    const owner = org.users.owner.auth;
    const collection = (await t.http.post(url('collections')).set(owner).send({ name, readRoles: ['member'] }).expect(201)).body.id as string;
    const document = (await t.http.post(url('documents')).set(owner).send({ collectionId: collection, title: 'Policy', text: 'Version one.' }).expect(201)).body;
    return { collection, document: document.id as string };
  };
  // by a member: the version needs no admin role, the deletion is the owner's
  const uploadVersion = (documentId: string) => t.http.post(url(`documents/${documentId}/versions`)).set(org.users.member.auth)
    .attach('file', Buffer.from('Version two.'), { filename: 'v2.txt', contentType: 'text/plain' }).then((r) => r);
  const createNote = (collection: string, title: string) => t.http.post(url('documents')).set(org.users.member.auth)
    .send({ collectionId: collection, title, text: `The text of ${title}.` }).then((r) => r);
  const deleteCollection = (collection: string) => t.http.delete(url(`collections/${collection}`)).set(org.users.owner.auth).then((r) => r);
  const stored = async (collection: string, document: string) => (await t.db.admin.query(
    `SELECT (SELECT count(*) FROM ai.knowledge_collections WHERE org_id = $1 AND id = $2)::int AS collections,
            (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1 AND id = $3)::int AS documents,
            (SELECT count(*) FROM ai.knowledge_versions WHERE org_id = $1 AND document_id = $3)::int AS versions,
            (SELECT array_agg((payload->'payload'->>'version')::int) FROM core.outbox
              WHERE org_id = $1 AND payload->>'type' = 'knowledge_document.deleted' AND payload->'payload'->>'documentId' = $3::text) AS "deletedEvents",
            (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action = 'knowledge.version_added' AND entity_id = $3::text)::int AS "versionAudits"`,
    [org.orgId, collection, document])).rows[0];

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Lock Order Ltd');
    await onEnterprisePlan(t, org.orgId);
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  it('a version uploaded while the collection is being deleted waits for the deletion, then is a 404 knowledge_document.not_found', async () => {
    const { collection, document } = await setUp('Deleted first');
    // the deletion holds its locks (the documents, then the collection) and has deleted nothing yet
    const paused = pauseNext(knowledgeRepository, 'deleteDocumentsOf');
    const deletion = deleteCollection(collection);
    await paused.reached;
    const version = uploadVersion(document);
    expect(await waitsForLockOrAnswers(t.db.admin, version, paused)).toBe('waiting');
    paused.release();

    expect((await deletion).status).toBe(204);
    const res = await version;
    expect(res.status).toBe(404);
    expect(res.body.error).toEqual({ code: 'knowledge_document.not_found', message: `knowledge_document ${document} was not found` });
    // the document went with its collection (its event names version 1); no version 2 was added, nor audited
    expect(await stored(collection, document)).toEqual({ collections: 0, documents: 0, versions: 0, deletedEvents: [1], versionAudits: 0 });
  });

  it('a collection deleted while a version is being added waits for the version, then deletes the document with both versions', async () => {
    const { collection, document } = await setUp('Version first');
    // the version holds its document's lock and has not inserted its row yet
    const paused = pauseNext(knowledgeRepository, 'insertVersion');
    const version = uploadVersion(document);
    await paused.reached;
    const deletion = deleteCollection(collection);
    expect(await waitsForLockOrAnswers(t.db.admin, deletion, paused)).toBe('waiting');
    paused.release();

    const res = await version;
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: document, latestVersion: 2 });
    expect((await deletion).status).toBe(204);
    // deleted after the version committed: its event names version 2, and nothing of the document is left
    expect(await stored(collection, document)).toEqual({ collections: 0, documents: 0, versions: 0, deletedEvents: [2], versionAudits: 1 });
  });

  it('a document created while the deletion starts, then given a new version before the DELETE, waits with it: no deadlock', async () => {
    const { collection, document } = await setUp('Created meanwhile');
    // the deletion has read its collection and is at its lock of the collection (the documents-first order had locked
    // the documents there already); a document is created and committed meanwhile
    const locking = pauseNext(knowledgeRepository, 'lockCollection');
    const deleting = pauseNext(knowledgeRepository, 'deleteDocumentsOf');
    const deletion = deleteCollection(collection);
    await locking.reached;
    const created = await createNote(collection, 'Meanwhile');
    expect(created.status).toBe(201);
    locking.release();
    // the deletion holds its locks and has deleted nothing yet; a new version of the new document comes
    await deleting.reached;
    const version = uploadVersion(created.body.id);
    expect(await waitsForLockOrAnswers(t.db.admin, version, deleting)).toBe('waiting');
    deleting.release();

    expect((await deletion).status).toBe(204);
    const res = await version;
    expect(res.status).toBe(404);
    expect(res.body.error).toEqual({ code: 'knowledge_document.not_found', message: `knowledge_document ${created.body.id} was not found` });
    // both documents went with their collection, each with its event; no version 2 was added, nor audited
    expect(await stored(collection, created.body.id)).toEqual({ collections: 0, documents: 0, versions: 0, deletedEvents: [1], versionAudits: 0 });
    expect(await stored(collection, document)).toEqual({ collections: 0, documents: 0, versions: 0, deletedEvents: [1], versionAudits: 0 });
  });

  it('a collection deleted while a document is being created in it waits for the document, then deletes it with its event', async () => {
    const { collection } = await setUp('Document first');
    // the creation holds the collection's lock and has not inserted its document yet
    const paused = pauseNext(knowledgeRepository, 'createDocument');
    const creation = createNote(collection, 'Being created');
    await paused.reached;
    const deletion = deleteCollection(collection);
    expect(await waitsForLockOrAnswers(t.db.admin, deletion, paused)).toBe('waiting');
    paused.release();

    const res = await creation;
    expect(res.status).toBe(201);
    expect((await deletion).status).toBe(204);
    // deleted after the creation committed: with its event, and nothing of it is left
    expect(await stored(collection, res.body.id)).toEqual({ collections: 0, documents: 0, versions: 0, deletedEvents: [1], versionAudits: 0 });
  });
});
