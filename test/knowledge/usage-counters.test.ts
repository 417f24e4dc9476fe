import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The knowledge base's plan limits counted every document and summed the text of every version of the organization
 * (ai.knowledge_usage), twice per write, under the organization's counted limits' lock; GET entitlements paid the same
 * scans. Now one row per organization (ai.knowledge_usage_counters), kept by triggers, is what ai.knowledge_usage()
 * reads, once per write. These check the row against a recount after every kind of write, that the limits read it,
 * and that a write holding the row does not deadlock with a deletion.
 */
describe('knowledge: the usage of the plan limits is kept in a counter row, not counted per write', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let other: OrgWithRoles;

  const url = (o: OrgWithRoles, p: string) => `/v1/orgs/${o.orgId}/knowledge/${p}`;
  const collection = async (o: OrgWithRoles, name: string) => (await t.http.post(url(o, 'collections')).set(o.users.owner.auth)
    .send({ name, readRoles: ['member'] }).expect(201)).body.id as string;
  const note = async (o: OrgWithRoles, collectionId: string, title: string, text: string) =>
    (await t.http.post(url(o, 'documents')).set(o.users.member.auth).send({ collectionId, title, text }).expect(201)).body.id as string;
  const upload = (o: OrgWithRoles, path: string, name: string, text: string) => t.http.post(url(o, path)).set(o.users.member.auth)
    .attach('file', Buffer.from(text), { filename: name, contentType: 'text/plain' }).then((r) => r);
  /** the counter row and a recount of what is stored, per organization */
  const usage = async (o: OrgWithRoles) => (await t.db.admin.query(
    `SELECT (SELECT jsonb_build_object('documents', documents, 'bytes', text_bytes) FROM ai.knowledge_usage_counters WHERE org_id = $1) AS kept,
            jsonb_build_object('documents', (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1),
                               'bytes', (SELECT coalesce(sum(octet_length(text)), 0) FROM ai.knowledge_versions WHERE org_id = $1)) AS counted`,
    [o.orgId])).rows[0] as { kept: { documents: number; bytes: number } | null; counted: { documents: number; bytes: number } };
  const expectKept = async (o: OrgWithRoles, expected: { documents: number; bytes: number }) => {
    const { kept, counted } = await usage(o);
    expect(counted).toEqual(expected);
    expect(kept).toEqual(counted);
  };
  const entitlements = async (o: OrgWithRoles) => {
    const res = await t.http.get(`/v1/orgs/${o.orgId}/entitlements?app=omnizen`).set(o.users.member.auth).expect(200);
    const feature = (name: string) => res.body.features.find((f: { feature: string }) => f.feature === name).usage as number;
    return { documents: feature('knowledge_documents'), bytes: feature('knowledge_storage_bytes') };
  };

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Counted Ltd');
    other = await orgWithRoles(t, 'Other Ltd');
    await onPlan(t, org.orgId, 'professional');
    await onPlan(t, other.orgId, 'professional');
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  it('equals a recount after creates, versions, restores, document deletes and a collection delete (cascade), per organization', async () => {
    const policies = await collection(org, 'Policies');
    const handbook = await collection(org, 'Handbook');
    const elsewhere = await collection(other, 'Elsewhere');
    await note(other, elsewhere, 'Not counted here', 'x'.repeat(70));

    const leave = await note(org, policies, 'Leave', 'Twenty-five days.');
    const travel = (await upload(org, `collections/${policies}/documents`, 'travel.txt', 'Trains, not planes: €12 a day.')).body.id as string;
    const ids = [await note(org, handbook, 'Welcome', 'a'.repeat(300)), await note(org, handbook, 'Tools', 'b'.repeat(200))];
    await expectKept(org, { documents: 4, bytes: 17 + Buffer.byteLength('Trains, not planes: €12 a day.') + 500 });

    expect((await upload(org, `documents/${leave}/versions`, 'leave-v2.txt', 'Thirty days.')).status).toBe(201);
    expect((await upload(org, `documents/${ids[0]}/versions`, 'welcome-v2.txt', 'c'.repeat(50))).status).toBe(201);
    expect((await t.http.post(url(org, `documents/${leave}/versions/1/restore`)).set(org.users.member.auth)).status).toBe(201);
    const afterVersions = { documents: 4, bytes: 17 + Buffer.byteLength('Trains, not planes: €12 a day.') + 500 + 12 + 50 + 17 };
    await expectKept(org, afterVersions);
    // what the plan limits read (ai.knowledge_usage): the row, for the member who reads every collection or not
    expect(await entitlements(org)).toEqual(afterVersions);

    // a document's deletion takes its versions with it
    await t.http.delete(url(org, `documents/${leave}`)).set(org.users.admin.auth).expect(204);
    await expectKept(org, { documents: 3, bytes: afterVersions.bytes - 17 - 12 - 17 });
    // a collection's: its documents, and their versions by cascade
    await t.http.delete(url(org, `collections/${handbook}`)).set(org.users.owner.auth).expect(204);
    await expectKept(org, { documents: 1, bytes: Buffer.byteLength('Trains, not planes: €12 a day.') });
    await t.http.delete(url(org, `documents/${travel}`)).set(org.users.admin.auth).expect(204);
    await expectKept(org, { documents: 0, bytes: 0 });
    expect(await entitlements(org)).toEqual({ documents: 0, bytes: 0 });
    // the other organization's row is its own
    await expectKept(other, { documents: 1, bytes: 70 });
    expect(await entitlements(other)).toEqual({ documents: 1, bytes: 70 });
    // a deletion by the collection's key alone (the owner's tool, a cascade from the collection's row) counts too
    await t.db.admin.query('DELETE FROM ai.knowledge_collections WHERE org_id = $1 AND id = $2', [other.orgId, elsewhere]);
    await expectKept(other, { documents: 0, bytes: 0 });
  });

  it('reads the usage once per write, from the row: a note reads it once, and the limits answer what the row holds', async () => {
    const c = await collection(org, 'Once');
    const reads = jest.spyOn(knowledgeRepository, 'usage');
    await note(org, c, 'One read', 'Read once.');
    expect(reads).toHaveBeenCalledTimes(1);
    // an upload checks the limits as they stand before reading its file, then once under the lock
    reads.mockClear();
    const doc = (await upload(org, `collections/${c}/documents`, 'two.txt', 'Two reads.')).body.id as string;
    expect(reads).toHaveBeenCalledTimes(2);
    reads.mockClear();
    expect((await upload(org, `documents/${doc}/versions`, 'two-v2.txt', 'Two reads again.')).status).toBe(201);
    expect(reads).toHaveBeenCalledTimes(2);

    // the row is what is counted: with the plan's limit at what it holds, a note is refused
    const { kept } = await usage(org);
    await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = $1 WHERE app_id = 'omnizen' AND plan_code = 'professional' AND feature = 'knowledge_documents'`, [kept!.documents]);
    try {
      const refused = await t.http.post(url(org, 'documents')).set(org.users.member.auth).send({ collectionId: c, title: 'One more', text: 'No room.' });
      expect([refused.status, refused.body.error.details]).toEqual([402,
        { app: 'omnizen', feature: 'knowledge_documents', plan: 'professional', limit: kept!.documents, usage: kept!.documents, upgradeTo: 'enterprise' }]);
      await expectKept(org, kept!);
    } finally {
      await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = 20000 WHERE app_id = 'omnizen' AND plan_code = 'professional' AND feature = 'knowledge_documents'`);
    }
    await t.http.delete(url(org, `collections/${c}`)).set(org.users.owner.auth).expect(204);
    await expectKept(org, { documents: 0, bytes: 0 });
  });

  /**
   * A new document updates the row (its insert's trigger) before its version is written; a deletion elsewhere in the
   * organization updates it after locking its collection and documents. The deletion waits for the upload (it holds no
   * lock the upload needs), then both are counted: no deadlock, no 409.
   */
  it('lets a deletion wait for an upload that holds the row, then counts both', async () => {
    const kept = await collection(org, 'Kept');
    const dropped = await collection(org, 'Dropped');
    await note(org, dropped, 'Old', 'o'.repeat(40));
    const paused = pauseNext(knowledgeRepository, 'insertVersion');
    const uploading = upload(org, `collections/${kept}/documents`, 'new.txt', 'n'.repeat(30));
    await paused.reached;
    const deleting = t.http.delete(url(org, `collections/${dropped}`)).set(org.users.owner.auth).then((r) => r);
    expect(await waitsForLockOrAnswers(t.db.admin, deleting, paused)).toBe('waiting');
    paused.release();
    expect((await uploading).status).toBe(201);
    expect((await deleting).status).toBe(204);
    await expectKept(org, { documents: 1, bytes: 30 });
  });
});
