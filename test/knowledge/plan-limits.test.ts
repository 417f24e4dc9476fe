import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { PdfTextExtractor } from '../../src/modules/knowledge/pdf-text-extraction.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { makePdf, startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The knowledge base had no plan limit: an organization could store any number of documents and any amount of text.
 * The plans now limit its documents (knowledge_documents) and the bytes of text of all their versions
 * (knowledge_storage_bytes), counted over every collection of the organization (those the caller cannot read too),
 * under the counted limits' lock, so concurrent writes never pass a limit together. Past one: 402 billing.limit_reached.
 */
describe('knowledge: the plan limits the documents and the text of the knowledge base', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let shared: string;
  let restricted: string;

  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const note = (collectionId: string, title: string, text: string, as = org.users.member.auth) =>
    t.http.post(url('documents')).set(as).send({ collectionId, title, text }).then((r) => r);
  const upload = (path: string, name: string, text: string) => t.http.post(url(path)).set(org.users.member.auth)
    .attach('file', Buffer.from(text), { filename: name, contentType: 'text/plain' }).then((r) => r);
  /** the professional plan's limits of the knowledge base in this database (NULL: none) */
  const limits = async (documents: number | null, bytes: number | null) => {
    await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = $1 WHERE app_id = 'omnizen' AND plan_code = 'professional' AND feature = 'knowledge_documents'`, [documents]);
    await t.db.admin.query(`UPDATE hub.plan_features SET limit_value = $1 WHERE app_id = 'omnizen' AND plan_code = 'professional' AND feature = 'knowledge_storage_bytes'`, [bytes]);
  };
  const stored = async () => (await t.db.admin.query(
    `SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1)::int AS documents,
            (SELECT count(*) FROM ai.knowledge_versions WHERE org_id = $1)::int AS versions,
            (SELECT coalesce(sum(octet_length(text)), 0) FROM ai.knowledge_versions WHERE org_id = $1)::int AS bytes,
            (SELECT count(*) FROM core.outbox WHERE org_id = $1 AND topic = 'knowledge.index_version')::int AS jobs,
            (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action IN ('knowledge.document_created', 'knowledge.version_added', 'knowledge.version_restored'))::int AS audits`,
    [org.orgId])).rows[0];
  const emptyKnowledgeBase = () => t.db.admin.query('DELETE FROM ai.knowledge_documents WHERE org_id = $1', [org.orgId]);

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Limited Ltd');
    await onPlan(t, org.orgId, 'professional');
    const collection = async (name: string, readRoles: string[]) => (await t.http.post(url('collections')).set(org.users.owner.auth)
      .send({ name, readRoles }).expect(201)).body.id as string;
    shared = await collection('Shared', ['member']);
    restricted = await collection('Restricted', []);
  });
  afterEach(async () => {
    releaseAll();
    jest.restoreAllMocks();
    await emptyKnowledgeBase();
  });
  afterAll(() => t?.close());

  /**
   * An upload to a full knowledge base was read and its text extracted (a slot of the extraction queue, a worker) before
   * the check after extraction refused it. The limits as they stand are now checked before the file is read: the same
   * 402, and the extractor is never called.
   */
  it('refuses an upload to a knowledge base at its documents or text limit before its file is read: the same 402, no extraction', async () => {
    const extractor = t.app.get(PdfTextExtractor);
    const extractions = [jest.spyOn(extractor, 'extract'), jest.spyOn(extractor, 'extractHtml')];
    const extracted = () => extractions.reduce((n, spy) => n + spy.mock.calls.length, 0);
    const uploadFile = (path: string, name: string, bytes: Buffer, contentType: string) => t.http.post(url(path)).set(org.users.member.auth)
      .attach('file', bytes, { filename: name, contentType }).then((r) => r);
    const pdf = makePdf(['A PDF that is never read.']);
    const html = Buffer.from('<html><body><p>An HTML file that is never read.</p></body></html>');

    // at the documents limit: as a note is refused, by the check under the counted limits' lock
    await limits(1, null);
    const first = await note(shared, 'Only one', 'a'.repeat(600));
    expect(first.status).toBe(201);
    const note402 = await note(shared, 'Second', 'One too many.');
    expect([note402.status, note402.body.error.details.feature]).toEqual([402, 'knowledge_documents']);
    const before = await stored();
    for (const [name, bytes, type] of [['second.pdf', pdf, 'application/pdf'], ['second.html', html, 'text/html']] as const) {
      const res = await uploadFile(`collections/${shared}/documents`, name, bytes, type);
      expect(res.status).toBe(402);
      expect(res.body.error).toEqual(note402.body.error);
    }
    // a version takes no document: read and extracted as ever
    expect((await uploadFile(`documents/${first.body.id}/versions`, 'v2.html', html, 'text/html')).status).toBe(201);
    expect(extracted()).toBe(1);
    expect(await stored()).toEqual({ ...before, versions: before.versions + 1, bytes: expect.any(Number), jobs: before.jobs + 1, audits: before.audits + 1 });

    // at the text limit: as a restore is refused, by the check under the lock
    await limits(null, (await stored()).bytes);
    const restore402 = await t.http.post(url(`documents/${first.body.id}/versions/1/restore`)).set(org.users.member.auth);
    expect([restore402.status, restore402.body.error.details.feature]).toEqual([402, 'knowledge_storage_bytes']);
    const full = await stored();
    const version = await uploadFile(`documents/${first.body.id}/versions`, 'v3.pdf', pdf, 'application/pdf');
    expect(version.status).toBe(402);
    expect(version.body.error).toEqual(restore402.body.error);
    const document = await uploadFile(`collections/${shared}/documents`, 'other.html', html, 'text/html');
    expect(document.status).toBe(402);
    expect(document.body.error).toEqual(restore402.body.error);
    // over it (the plan lowered): the same
    await limits(null, full.bytes - 1);
    const over = await uploadFile(`documents/${first.body.id}/versions`, 'v3.html', html, 'text/html');
    expect([over.status, over.body.error.code, over.body.error.details]).toEqual([402, 'billing.limit_reached',
      { app: 'omnizen', feature: 'knowledge_storage_bytes', plan: 'professional', limit: full.bytes - 1, usage: full.bytes, upgradeTo: 'enterprise' }]);

    // no file of a refused upload reached the extractor, nothing was stored
    expect(extracted()).toBe(1);
    expect(extractor.queued()).toBe(0);
    expect(await stored()).toEqual(full);
  });

  it('has defaults per plan in the catalog, and shows the usage in the entitlements', async () => {
    const { rows } = await t.db.admin.query(
      `SELECT plan_code AS plan, feature, limit_value::float8 AS limit FROM hub.plan_features
       WHERE app_id = 'omnizen' AND feature LIKE 'knowledge%' AND plan_code IN ('starter', 'enterprise') ORDER BY 1, 2`);
    expect(rows).toEqual([
      { plan: 'enterprise', feature: 'knowledge_documents', limit: null },
      { plan: 'enterprise', feature: 'knowledge_storage_bytes', limit: null },
      { plan: 'starter', feature: 'knowledge_documents', limit: 1000 },
      { plan: 'starter', feature: 'knowledge_storage_bytes', limit: 104857600 },
    ]);
    await limits(10, 1000);
    expect((await note(restricted, 'Hidden', 'Twelve bytes', org.users.owner.auth)).status).toBe(201);
    const res = await t.http.get(`/v1/orgs/${org.orgId}/entitlements?app=omnizen`).set(org.users.member.auth).expect(200);
    const feature = (name: string) => res.body.features.find((f: { feature: string }) => f.feature === name);
    // counted over the whole organization: the member cannot read the restricted collection
    expect(feature('knowledge_documents')).toMatchObject({ kind: 'limit', unit: 'documents', limit: 10, usage: 1 });
    expect(feature('knowledge_storage_bytes')).toMatchObject({ kind: 'limit', unit: 'bytes', limit: 1000, usage: 12 });
  });

  it('takes documents up to the limit, counting the collections the caller cannot read; one more is a 402 billing.limit_reached, nothing stored', async () => {
    await limits(3, null);
    for (const title of ['Hidden 1', 'Hidden 2']) expect((await note(restricted, title, 'Only for admins.', org.users.owner.auth)).status).toBe(201);
    // the third is at the limit: accepted
    expect((await note(shared, 'Third', 'Visible to members.')).status).toBe(201);
    const before = await stored();
    expect(before).toMatchObject({ documents: 3, versions: 3 });

    const refused = await note(shared, 'Fourth', 'One too many.');
    expect(refused.status).toBe(402);
    expect(refused.body.error).toEqual({
      code: 'billing.limit_reached',
      message: 'the professional plan allows 3 documents; upgrade to enterprise',
      details: { app: 'omnizen', feature: 'knowledge_documents', plan: 'professional', limit: 3, usage: 3, upgradeTo: 'enterprise' },
    });
    const uploaded = await upload(`collections/${shared}/documents`, 'fourth.txt', 'One too many.');
    expect([uploaded.status, uploaded.body.error.code, uploaded.body.error.details.feature]).toEqual([402, 'billing.limit_reached', 'knowledge_documents']);
    expect(await stored()).toEqual(before);
  });

  it('takes text up to the byte limit (a new document, a new version); past it a 402 billing.limit_reached, nothing stored; at it a restore is refused too', async () => {
    await limits(null, 1000);
    const first = await note(shared, 'Policy', 'a'.repeat(600));
    expect(first.status).toBe(201);
    // a version of 400 bytes brings the text to 1,000 bytes: at the limit, accepted
    const version = await upload(`documents/${first.body.id}/versions`, 'v2.txt', 'b'.repeat(400));
    expect([version.status, version.body.latestVersion]).toEqual([201, 2]);
    const before = await stored();
    expect(before).toMatchObject({ documents: 1, versions: 2, bytes: 1000 });

    const refused = await note(shared, 'One byte more', 'c');
    expect(refused.status).toBe(402);
    expect(refused.body.error).toEqual({
      code: 'billing.limit_reached',
      message: 'with this text (1 more) the knowledge base would hold 1001 bytes of text, and the professional plan allows 1000 bytes; upgrade to enterprise, or delete documents',
      details: { app: 'omnizen', feature: 'knowledge_storage_bytes', plan: 'professional', limit: 1000, usage: 1000, upgradeTo: 'enterprise' },
    });
    const restored = await t.http.post(url(`documents/${first.body.id}/versions/1/restore`)).set(org.users.member.auth);
    expect(restored.status).toBe(402);
    expect(restored.body.error.details).toEqual({ app: 'omnizen', feature: 'knowledge_storage_bytes', plan: 'professional', limit: 1000, usage: 1000, upgradeTo: 'enterprise' });
    const bigger = await upload(`documents/${first.body.id}/versions`, 'v3.txt', 'd'.repeat(10));
    expect([bigger.status, bigger.body.error.details.feature]).toEqual([402, 'knowledge_storage_bytes']);
    expect(await stored()).toEqual(before);
    expect((await t.http.get(url(`documents/${first.body.id}`)).set(org.users.member.auth).expect(200)).body.latestVersion).toBe(2);
  });

  it('counts concurrent uploads one after the other: the second waits for the first, then finds the limit reached', async () => {
    await limits(null, 1000);
    expect((await note(shared, 'Policy', 'a'.repeat(400))).status).toBe(201);
    const before = await stored();
    // the first upload has taken the counted limits' lock and is writing its document
    const paused = pauseNext(knowledgeRepository, 'createDocument');
    const first = upload(`collections/${shared}/documents`, 'first.txt', 'f'.repeat(500));
    await paused.reached;
    const second = upload(`collections/${shared}/documents`, 'second.txt', 's'.repeat(500));
    expect(await waitsForLockOrAnswers(t.db.admin, second, paused)).toBe('waiting');
    paused.release();

    expect((await first).status).toBe(201);
    const res = await second;
    expect(res.status).toBe(402);
    expect(res.body.error.details).toEqual({ app: 'omnizen', feature: 'knowledge_storage_bytes', plan: 'professional', limit: 1000, usage: 900, upgradeTo: 'enterprise' });
    expect(await stored()).toEqual({ documents: 2, versions: 2, bytes: 900, jobs: before.jobs + 1, audits: before.audits + 1 });
    const titles = (await t.db.admin.query('SELECT title FROM ai.knowledge_documents WHERE org_id = $1 ORDER BY title', [org.orgId])).rows.map((r) => r.title);
    expect(titles).toEqual(['Policy', 'first.txt']);
  });
});
