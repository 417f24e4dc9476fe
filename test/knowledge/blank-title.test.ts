import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { tableContents } from '../support/database.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * A document's title holds a character other than white space (the database's knowledge_documents_title_check:
 * length(btrim(title)) BETWEEN 1 AND 300). A note titled "   " reached that check and was answered 422 `invalid` naming
 * the constraint, a code the route does not declare; an upload whose file name is blank (and no title field) did the same.
 * Now: a blank note title is 400 validation_failed naming `title`, writing nothing; a blank file name falls back to
 * 'Untitled' like a missing one.
 */
describe('knowledge: blank document titles', () => {
  let t: KnowledgeApp;
  let owner: TestUser;
  let orgId: string;
  let collectionId: string;
  const url = (p: string) => `/v1/orgs/${orgId}/knowledge/${p}`;
  const documents = async () => (await t.db.admin.query('SELECT title FROM ai.knowledge_documents WHERE org_id = $1 ORDER BY created_at, title', [orgId])).rows;

  beforeAll(async () => {
    t = await startKnowledgeApp('default', { RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'blank-title-owner');
    orgId = await createOrg(t, owner, 'Blank Titles Ltd');
    await onEnterprisePlan(t, orgId);
    collectionId = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Handbook' }).expect(201)).body.id;
  });
  afterAll(() => t?.close());

  it('refuses a note whose title is blank with 400 validation_failed naming title, writing nothing', async () => {
    const problem = 'title must not be blank (it needs a character other than white space)';
    for (const title of ['   ', '\t\n', '\u00a0']) {
      const before = await tableContents(t.db.admin);
      const res = await t.http.post(url('documents')).set(owner.auth).send({ collectionId, title, text: 'x' });
      expect([res.status, res.body.error]).toEqual([400, expect.objectContaining({ code: 'validation_failed', details: [{ field: 'title', problems: [problem] }] })]);
      expect(res.body.error.message).toContain(problem);
      const after = await tableContents(t.db.admin);
      expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
    }
    expect(await documents()).toEqual([]);
    // a title with spaces around a word is a title
    const ok = await t.http.post(url('documents')).set(owner.auth).send({ collectionId, title: '  Travel  ', text: 'Travel is reimbursed.' }).expect(201);
    expect(ok.body.title).toBe('  Travel  ');
    expect(await documents()).toEqual([{ title: '  Travel  ' }]);
  });

  it('titles an upload whose file name is blank (and no title field) Untitled, as one without a file name', async () => {
    const upload = () => t.http.post(url(`collections/${collectionId}/documents`)).set(owner.auth);
    const blankName = await upload().attach('file', Buffer.from('Receipts go to finance.'), { filename: '   ', contentType: 'text/plain' });
    expect([blankName.status, blankName.body.title, blankName.body.error]).toEqual([201, 'Untitled', undefined]);
    // a blank title field falls back to the file name, trimmed
    const blankTitle = await upload().field('title', '  ').attach('file', Buffer.from('Invoices are paid within thirty days.'), { filename: ' invoices.txt ', contentType: 'text/plain' });
    expect([blankTitle.status, blankTitle.body.title]).toEqual([201, 'invoices.txt']);
    const rows = (await t.db.admin.query(`SELECT d.title, v.filename FROM ai.knowledge_documents d JOIN ai.knowledge_versions v ON v.document_id = d.id
      WHERE d.org_id = $1 AND d.id = ANY($2) ORDER BY d.title`, [orgId, [blankName.body.id, blankTitle.body.id]])).rows;
    expect(rows).toEqual([{ title: 'Untitled', filename: '   ' }, { title: 'invoices.txt', filename: ' invoices.txt ' }]);
  });
});
