import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { INDEX_VERSION_JOB } from '../../src/modules/knowledge/knowledge.service.js';
import { HTML_MAX_DEPTH, PdfTextExtractor } from '../../src/modules/knowledge/pdf-text-extraction.js';
import { MAX_DOCUMENT_TEXT_CHARS } from '../../src/modules/knowledge/text-extraction.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * What one member could do to the API through the knowledge base, and its other loose ends: an HTML upload converted
 * on the event loop (9 s for 10 MB), deeply nested HTML overflowing the stack (a 500), a document re-indexed without
 * limit (each call embedding it whole again), a collection deleted without its documents' events, undeclared or
 * missing validation answers.
 */
describe('knowledge: uploads and re-indexing a member cannot abuse', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let collection: string;
  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const member = () => org.users.member.auth;
  const upload = (name: string, type: string, content: Buffer | string, fields: Record<string, string> = {}) => {
    let req = t.http.post(url(`collections/${collection}/documents`)).set(member());
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req.attach('file', Buffer.from(content), { filename: name, contentType: type });
  };
  const stored = async () => (await t.db.admin.query(
    'SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1)::int AS documents, (SELECT count(*) FROM ai.knowledge_versions WHERE org_id = $1)::int AS versions',
    [org.orgId])).rows[0];
  const note = async (title: string, text: string, collectionId = collection) =>
    (await t.http.post(url('documents')).set(member()).send({ collectionId, title, text }).expect(201)).body;
  const indexJobs = async (documentId: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND topic = $2 AND payload->>'documentId' = $3`, [org.orgId, INDEX_VERSION_JOB, documentId])).rows[0].n;

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Abuse Co');
    await onEnterprisePlan(t, org.orgId);
    collection = (await t.http.post(url('collections')).set(org.users.owner.auth).send({ name: 'Handbook', readRoles: ['member'] }).expect(201)).body.id;
  });
  afterAll(() => t?.close());

  it('converts an HTML upload in a worker thread: a 9 MB page whose text is above the limit is refused, converted off the event loop', async () => {
    // 9 MB of paragraphs: about 7 million characters of text, converted in seconds
    const html = `<html><body>${'<p>Hello <b>world</b> of text and more words here.</p>\n'.repeat(160_000)}</body></html>`;
    const before = await stored();
    const extractor = t.app.get(PdfTextExtractor);
    const converted = jest.spyOn(extractor, 'extractHtml');
    let res;
    let calls: number;
    try {
      res = await upload('big.html', 'text/html', html);
    } finally {
      calls = converted.mock.calls.length;
      converted.mockRestore();
    }
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'knowledge.text_too_large', details: { limitChars: MAX_DOCUMENT_TEXT_CHARS } });
    expect(res.body.error.message).toMatch(/^the text extracted from the file is \d+ characters long, above the limit of 1000000 characters/);
    // converted by the worker-thread path (on the event loop it had blocked the API for 6-9 s: bench, not test, territory)
    expect(calls).toBe(1);
    expect(extractor.running).toBe(0);
    expect(await stored()).toEqual(before);
  }, 120_000);

  it(`refuses HTML whose elements nest more than ${HTML_MAX_DEPTH} levels deep with a 422, storing nothing (it overflowed the stack: a 500)`, async () => {
    const before = await stored();
    const deep = `<html><body>${'<div>'.repeat(5000)}deep${'</div>'.repeat(5000)}</body></html>`;
    const res = await upload('deep.html', 'text/html', deep);
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({
      code: 'knowledge.unreadable_file',
      message: `the HTML could not be read: its elements are nested more than ${HTML_MAX_DEPTH} levels deep`,
      details: { maxDepth: HTML_MAX_DEPTH },
    });
    expect(await stored()).toEqual(before);
    // a page nested a few hundred levels is read, all of its text
    const nested = `<html><body>${'<div>'.repeat(300)}<p>Deep but fine.</p>${'</div>'.repeat(300)}<p>After.</p></body></html>`;
    const ok = await upload('nested.html', 'text/html', nested).expect(201);
    const v = (await t.http.get(url(`documents/${ok.body.id}/versions/1`)).set(member()).expect(200)).body;
    expect(v.text).toBe('Deep but fine.\n\nAfter.');
  }, 60_000);

  it('queues one ingestion however often a pending document is re-indexed, and embeds it once', async () => {
    const doc = await note('Reindexed', 'Expense reports are due on the fifth working day of the month.');
    await t.ingest();
    expect((await t.http.get(url(`documents/${doc.id}`)).set(member()).expect(200)).body.status).toBe('ready');
    // embedded by another model (a model change): a re-index embeds it again (one of a document indexed as configured queues nothing)
    const staled = () => t.db.admin.query(`UPDATE ai.knowledge_chunks SET embedding_model = 'an-older-model' WHERE org_id = $1 AND document_id = $2`, [org.orgId, doc.id]);
    await staled();
    const jobsBefore = await indexJobs(doc.id);
    const answers = await Promise.all(Array.from({ length: 5 }, () => t.http.post(url(`documents/${doc.id}/reindex`)).set(member())));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body).toMatchObject({ id: doc.id, status: 'pending', latestVersion: 1, indexedVersion: 1 });
    }
    expect(await indexJobs(doc.id)).toBe(jobsBefore + 1);
    const audited = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'knowledge.document_reindexed' AND entity_id = $2`, [org.orgId, doc.id]);
    expect(audited.rows[0].n).toBe(1);
    const requests = t.embeddings.requests.length;
    await t.ingest();
    expect(t.embeddings.requests.length).toBe(requests + 1);
    expect((await t.http.get(url(`documents/${doc.id}`)).set(member()).expect(200)).body).toMatchObject({ status: 'ready', indexedVersion: 1 });
    // once ingested with the configured model, a re-index queues nothing; stale again, it queues again
    expect((await t.http.post(url(`documents/${doc.id}/reindex`)).set(member()).expect(200)).body).toMatchObject({ status: 'ready' });
    expect(await indexJobs(doc.id)).toBe(jobsBefore + 1);
    await staled();
    await t.http.post(url(`documents/${doc.id}/reindex`)).set(member()).expect(200);
    expect(await indexJobs(doc.id)).toBe(jobsBefore + 2);
    await t.ingest();
  });

  it('emits knowledge_document.deleted for each document of a deleted collection', async () => {
    const doomed = (await t.http.post(url('collections')).set(org.users.owner.auth).send({ name: 'Doomed', readRoles: ['member'] }).expect(201)).body.id;
    const a = await note('First', 'Alpha text.', doomed);
    const b = await note('Second', 'Beta text.', doomed);
    await t.http.post(url(`documents/${b.id}/versions/1/restore`)).set(member()).expect(201); // b's latest version is 2
    await t.http.delete(url(`collections/${doomed}`)).set(org.users.owner.auth).expect(204);
    const events = (await t.db.admin.query(
      `SELECT payload->'payload' AS payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'knowledge_document.deleted' AND payload->'payload'->>'collectionId' = $2`,
      [org.orgId, doomed])).rows.map((r) => r.payload);
    expect(events.sort((x, y) => (x.documentId < y.documentId ? -1 : 1))).toEqual([
      { documentId: a.id, collectionId: doomed, version: 1 },
      { documentId: b.id, collectionId: doomed, version: 2 },
    ].sort((x, y) => (x.documentId < y.documentId ? -1 : 1)));
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_documents WHERE collection_id = $1', [doomed])).rows[0].n).toBe(0);
  });

  it('answers a search filtered by an unknown document with the 404 the operation declares', async () => {
    const violations = t.contract.violations.length;
    const missing = '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d';
    const res = await t.http.post(url('search')).set(member()).send({ query: 'expenses', documentIds: [missing] }).expect(404);
    expect(res.body.error).toMatchObject({ code: 'knowledge_document.not_found' });
    expect(t.contract.violations.slice(violations)).toEqual([]);
  });

  it('refuses an unknown upload field with 400 validation_failed naming it, storing nothing', async () => {
    const before = await stored();
    const res = await upload('policy.txt', 'text/plain', 'Travel is reimbursed.', { titel: 'Travel' }).expect(400);
    expect(res.body.error).toMatchObject({
      code: 'validation_failed',
      message: 'property titel should not exist: send the part file and the fields title and tags',
      details: [{ field: 'titel', problems: ['property titel should not exist'] }],
    });
    expect(await stored()).toEqual(before);
    await upload('policy.txt', 'text/plain', 'Travel is reimbursed.', { title: 'Travel', tags: 'travel' }).expect(201);
  });

  it('answers a version number that is not a positive integer with 400 validation_failed naming versionNo', async () => {
    const doc = await note('Versioned', 'Version one.');
    const violations = t.contract.violations.length;
    const problem = 'versionNo must be an integer from 1 to 2147483647';
    for (const bad of ['abc', '0', '1.5', '-1', '99999999999']) {
      const res = await t.http.get(url(`documents/${doc.id}/versions/${bad}`)).set(member()).expect(400);
      expect(res.body.error).toMatchObject({ code: 'validation_failed', message: problem, details: [{ field: 'versionNo', problems: [problem] }] });
    }
    const restore = await t.http.post(url(`documents/${doc.id}/versions/abc/restore`)).set(member()).expect(400);
    expect(restore.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'versionNo', problems: [problem] }] });
    expect((await t.http.get(url(`documents/${doc.id}/versions/7`)).set(member()).expect(404)).body.error)
      .toMatchObject({ code: 'knowledge.version_not_found', message: `document ${doc.id} has no version 7` });
    expect((await t.http.get(url(`documents/${doc.id}/versions/1`)).set(member()).expect(200)).body).toMatchObject({ versionNo: 1, text: 'Version one.' });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_versions WHERE document_id = $1', [doc.id])).rows[0].n).toBe(1);
    expect(t.contract.violations.slice(violations)).toEqual([]);
  });

  it('requires sourceUrl with source url and refuses it on a note', async () => {
    const before = await stored();
    const body = { collectionId: collection, title: 'Page', text: 'Text of the page.' };
    const noUrl = await t.http.post(url('documents')).set(member()).send({ ...body, source: 'url' }).expect(400);
    expect(noUrl.body.error).toMatchObject({ code: 'validation_failed' });
    expect(noUrl.body.error.details).toEqual([expect.objectContaining({ field: 'sourceUrl', problems: expect.arrayContaining(['sourceUrl must be an http(s) URL (required with source url)']) })]);
    for (const source of ['note', undefined]) {
      const onNote = await t.http.post(url('documents')).set(member()).send({ ...body, source, sourceUrl: 'https://example.com/page' }).expect(400);
      expect(onNote.body.error.details).toEqual([{ field: 'sourceUrl', problems: ['sourceUrl is only for source url (a note has none)'] }]);
    }
    expect(await stored()).toEqual(before);
    const ok = await t.http.post(url('documents')).set(member()).send({ ...body, source: 'url', sourceUrl: 'https://example.com/page' }).expect(201);
    expect(ok.body).toMatchObject({ source: 'url', sourceUrl: 'https://example.com/page' });
    expect((await t.http.post(url('documents')).set(member()).send(body).expect(201)).body).toMatchObject({ source: 'note', sourceUrl: null });
  });
});
