import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PDF_LIMITS, PdfTextExtractor } from '../../src/modules/knowledge/pdf-text-extraction.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { tableContents } from '../support/database.js';
import { makePdf, startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The error codes the OpenAPI document declares for uploading a new version of a document (and the upload's and the
 * note's no_text and invalid_field), over real HTTP (the coverage recorder had never seen them on these operations).
 * Every refusal answers its status, code and message, and writes nothing (every table, count and content, as before).
 */
describe('knowledge: documented upload codes, as answered', () => {
  let t: KnowledgeApp;
  let owner: TestUser;
  let orgId: string;
  let collectionId: string;
  let documentId: string;
  const url = (p: string) => `/v1/orgs/${orgId}/knowledge/${p}`;
  const version = () => t.http.post(url(`documents/${documentId}/versions`)).set(owner.auth);
  const attach = (name: string, type: string, content: string | Buffer) => version().attach('file', Buffer.from(content), { filename: name, contentType: type });

  const snapshot = () => tableContents(t.db.admin);

  async function writesNothing<T>(refuse: () => Promise<T>): Promise<T> {
    const before = await snapshot();
    const out = await refuse();
    const after = await snapshot();
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
    return out;
  }

  const errorOf = (res: { status: number; body: { error?: { code: string; message: string } } }) => [res.status, res.body.error?.code, res.body.error?.message];

  beforeAll(async () => {
    t = await startKnowledgeApp('default', { KNOWLEDGE_MAX_UPLOAD_BYTES: '2000', RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'upload-owner');
    orgId = await createOrg(t, owner, 'Uploads Ltd');
    await onEnterprisePlan(t, orgId);
    collectionId = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Handbook' }).expect(201)).body.id;
    documentId = (await t.http.post(url('documents')).set(owner.auth).send({ collectionId, title: 'Travel', text: 'Travel is reimbursed within thirty days.' }).expect(201)).body.id;
    await t.ingest();
  });
  afterAll(() => t?.close());

  it('a new version: file_missing, file_empty, file_too_large, unsupported_type, unreadable_file, no_text and invalid_field', async () => {
    const answers = await writesNothing(async () => [
      await version().send({ text: 'not a file' }),
      await version(),
      await version().field('title', 'No file'),
      await attach('empty.txt', 'text/plain', ''),
      await attach('big.txt', 'text/plain', 'a'.repeat(2001)),
      await attach('report.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'PK\u0003\u0004...'),
      await attach('fake.pdf', 'application/pdf', 'hello'),
      await attach('blank.txt', 'text/plain', '  \n\t \n'),
      await version().field('tags', 'Not A Tag!').attach('file', Buffer.from('Travel is reimbursed within ten days.'), { filename: 'v2.txt', contentType: 'text/plain' }),
    ]);
    expect(answers.map(errorOf)).toEqual([
      [415, 'unsupported_media_type', 'send the body as multipart/form-data'],
      [400, 'knowledge.file_missing', 'send the file as multipart/form-data with a part named "file"'],
      [400, 'knowledge.file_missing', 'the request has no part named "file"'],
      [400, 'knowledge.file_empty', 'the file empty.txt is empty (0 bytes)'],
      [413, 'knowledge.file_too_large', 'the file is larger than the limit of 2000 bytes (2000 bytes)'],
      [415, 'knowledge.unsupported_type', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document is not supported: upload plain text, Markdown, HTML or PDF (.txt, .md, .html, .pdf)'],
      [422, 'knowledge.unreadable_file', 'the file is not a PDF (it does not start with %PDF-)'],
      [422, 'knowledge.no_text', 'no text could be extracted from the file'],
      [400, 'knowledge.invalid_field', 'tags: up to 20, comma-separated, each 1-50 characters of a-z, 0-9, _ . -'],
    ]);
    expect(answers[4].body.error.details).toEqual({ limitBytes: 2000 });
    expect((await t.db.admin.query('SELECT latest_version_no FROM ai.knowledge_documents WHERE id = $1', [documentId])).rows).toEqual([{ latest_version_no: 1 }]);
  });

  it('a new version: extraction_limit when the PDF has more pages than the extractor reads', async () => {
    const extractor = t.app.get(PdfTextExtractor);
    extractor.limits.maxPages = 0;
    try {
      const res = await writesNothing(() => attach('report.pdf', 'application/pdf', makePdf(['Travel is reimbursed within ten days.'])));
      expect(errorOf(res)).toEqual([422, 'knowledge.extraction_limit', 'the PDF\'s text could not be extracted within the limits: it has 1 pages, more than 0']);
      expect(res.body.error.details).toEqual({ maxPages: 0, memoryMb: PDF_LIMITS.memoryMb, timeoutMs: PDF_LIMITS.timeoutMs });
    } finally {
      extractor.limits.maxPages = PDF_LIMITS.maxPages;
    }
  });

  it('a first upload: no_text for a file of blanks, invalid_field for bad tags; a note of blanks: no_text', async () => {
    const upload = () => t.http.post(url(`collections/${collectionId}/documents`)).set(owner.auth);
    const answers = await writesNothing(async () => [
      await upload().attach('file', Buffer.from(' \n \n'), { filename: 'blank.md', contentType: 'text/markdown' }),
      await upload().field('tags', 'ok,Not OK').attach('file', Buffer.from('Receipts go to finance.'), { filename: 'receipts.txt', contentType: 'text/plain' }),
      await t.http.post(url('documents')).set(owner.auth).send({ collectionId, title: 'Blank', text: '  \n  ' }),
    ]);
    expect(answers.map(errorOf)).toEqual([
      [422, 'knowledge.no_text', 'no text could be extracted from the file'],
      [400, 'knowledge.invalid_field', 'tags: up to 20, comma-separated, each 1-50 characters of a-z, 0-9, _ . -'],
      [422, 'knowledge.no_text', 'text is empty'],
    ]);
  });
});
