import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { onEnterprisePlan, orgWithRoles, registerUser, createOrg, type OrgWithRoles, type TestUser } from '../support/factories.js';
import { makePdf, startKnowledgeApp, type KnowledgeApp, type StoragePath } from './knowledge-support.js';

/**
 * The knowledge base end to end on one storage path: ingestion of every file type, search by keyword and by
 * meaning, versions, deletion, access by role (API and SQL under the claims), another organization, bad input.
 * Run by ingest-search.test.ts (the server's default path) and ingest-search-array.test.ts (real[] forced).
 */
export function describeKnowledge(path: StoragePath): void {
  describe(`knowledge base (${path} storage path)`, () => {
    let t: KnowledgeApp;
    let org: OrgWithRoles;
    let owner: TestUser;
    let policies: string;
    let finance: string;
    const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
    const search = (who: TestUser, body: Record<string, unknown>) => t.http.post(url('search')).set(who.auth).send(body);
    const upload = (collectionId: string, name: string, type: string, content: Buffer | string, fields: Record<string, string> = {}) => {
      let req = t.http.post(url(`collections/${collectionId}/documents`)).set(owner.auth);
      for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
      return req.attach('file', Buffer.from(content), { filename: name, contentType: type });
    };
    const chunksOf = async (documentId: string) =>
      (await t.db.admin.query('SELECT version_no, chunk_no, content FROM ai.knowledge_chunks WHERE document_id = $1 ORDER BY chunk_no', [documentId])).rows;
    const docs: Record<string, string> = {};

    beforeAll(async () => {
      t = await startKnowledgeApp(path, { KNOWLEDGE_MAX_UPLOAD_BYTES: '2000000' });
      if (path === 'array') expect(t.storage).toBe('array');
      org = await orgWithRoles(t, 'Knowledge Co');
      owner = org.users.owner;
      await onEnterprisePlan(t, org.orgId);
      policies = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Company handbook', readRoles: ['accountant', 'member', 'viewer'] }).expect(201)).body.id;
      finance = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Finance policies', readRoles: ['accountant'] }).expect(201)).body.id;

      const text = await upload(policies, 'onboarding.txt', 'text/plain',
        'New employees receive a laptop on their first day. The onboarding buddy explains the coffee machine.').expect(201);
      const md = await upload(policies, 'holidays.md', 'application/octet-stream',
        '# Holidays\n\nEvery employee has **twenty-five** vacation days per year. Unused vacation expires in March.', { tags: 'hr,leave' }).expect(201);
      const html = await upload(policies, 'security.html', 'text/html',
        '<html><body><h1>Security</h1><p>Passwords rotate every ninety days.</p><script>ignored()</script></body></html>', { title: 'Security rules' }).expect(201);
      const pdf = await upload(finance, 'travel.pdf', 'application/pdf',
        makePdf(['Travel reimbursement policy.', 'Receipts are reimbursed within thirty days of the expense report.'])).expect(201);
      Object.assign(docs, { text: text.body.id, md: md.body.id, html: html.body.id, pdf: pdf.body.id });
      expect(text.body).toMatchObject({ status: 'pending', latestVersion: 1, indexedVersion: null, source: 'upload', title: 'onboarding.txt' });
      expect(md.body.tags).toEqual(['hr', 'leave']);
      expect(html.body.title).toBe('Security rules');
      await t.ingest();
    }, 180_000); // the real[] path migrates a database from scratch
    afterAll(() => t?.close());

    it('ingests plain text, Markdown, HTML and PDF: every document ready, its chunks stored with model and dimension', async () => {
      for (const id of Object.values(docs)) {
        const d = (await t.http.get(url(`documents/${id}`)).set(owner.auth).expect(200)).body;
        expect(d).toMatchObject({ status: 'ready', statusReason: null, latestVersion: 1, indexedVersion: 1 });
        const v = (await t.http.get(url(`documents/${id}/versions/1`)).set(owner.auth).expect(200)).body;
        expect(v).toMatchObject({ status: 'ready', embeddingModel: 'double-hash-256', embeddingDimensions: 256 });
        expect(v.chunkCount).toBeGreaterThan(0);
        const rows = await t.db.admin.query('SELECT count(*)::int AS n, min(embedding_dimensions) AS d, min(embedding_model) AS m FROM ai.knowledge_chunks WHERE document_id = $1', [id]);
        expect(rows.rows[0]).toEqual({ n: v.chunkCount, d: 256, m: 'double-hash-256' });
      }
      // HTML: the text, not the markup or the script; PDF: the page's text
      expect((await t.http.get(url(`documents/${docs.html}/versions/1`)).set(owner.auth)).body.text).not.toMatch(/<p>|ignored\(\)/);
      expect((await chunksOf(docs.pdf)).map((c) => c.content).join(' ')).toContain('reimbursed within thirty days');
      const audit = await t.db.admin.query(`SELECT action, count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'knowledge.%' GROUP BY 1 ORDER BY 1`, [org.orgId]);
      expect(audit.rows).toEqual(expect.arrayContaining([{ action: 'knowledge.document_created', n: 4 }, { action: 'knowledge.document_indexed', n: 4 }]));
    });

    it('finds the right chunk by keyword (full text) and by meaning (a misspelt query no word of which matches)', async () => {
      const byWord = (await search(owner, { query: 'vacation days', k: 3 }).expect(200)).body.items;
      expect(byWord[0]).toMatchObject({ documentId: docs.md, version: 1, textRank: 1, tags: ['hr', 'leave'] });
      expect(byWord[0].text).toContain('twenty-five');
      // "pasword rotaton" matches no lexeme: only the vector ranking (trigrams in the double) can find it
      const byMeaning = (await search(owner, { query: 'pasword rotaton', k: 3 }).expect(200)).body.items;
      expect(byMeaning[0]).toMatchObject({ documentId: docs.html, textRank: null, vectorRank: 1 });
      expect(byMeaning[0].similarity).toBeGreaterThan(0.2);
    });

    it('filters by collection, document, tags and date', async () => {
      const q = { query: 'employees vacation laptop passwords receipts', k: 10 };
      const inFinance = (await search(owner, { ...q, collectionIds: [finance] }).expect(200)).body.items;
      expect(new Set(inFinance.map((h: any) => h.documentId))).toEqual(new Set([docs.pdf]));
      const oneDoc = (await search(owner, { ...q, documentIds: [docs.text] }).expect(200)).body.items;
      expect(new Set(oneDoc.map((h: any) => h.documentId))).toEqual(new Set([docs.text]));
      const tagged = (await search(owner, { ...q, tags: ['hr'] }).expect(200)).body.items;
      expect(new Set(tagged.map((h: any) => h.documentId))).toEqual(new Set([docs.md]));
      expect((await search(owner, { ...q, to: '2000-01-01T00:00:00Z' }).expect(200)).body.items).toEqual([]);
      expect((await search(owner, { ...q, from: '2000-01-01T00:00:00Z' }).expect(200)).body.items.length).toBeGreaterThan(3);
    });

    it('role-restricted collection: an accountant finds its chunks, a member does not — through the API and in SQL under their claims', async () => {
      const q = { query: 'receipts reimbursed', k: 5 };
      const accountant = (await search(org.users.accountant, q).expect(200)).body.items;
      expect(accountant[0]).toMatchObject({ documentId: docs.pdf, collectionId: finance });
      const member = (await search(org.users.member, q).expect(200)).body.items;
      expect(member.every((h: any) => h.collectionId !== finance)).toBe(true);
      // a filter naming the collection answers exactly as for a collection that does not exist
      const hidden = (await search(org.users.member, { ...q, collectionIds: [finance] }).expect(404)).body.error;
      const missing = (await search(org.users.member, { ...q, collectionIds: ['00000000-0000-4000-8000-000000000000'] }).expect(404)).body.error;
      expect(hidden.code).toBe('knowledge_collection.not_found');
      expect(hidden.message.replace(finance, 'ID')).toBe(missing.message.replace('00000000-0000-4000-8000-000000000000', 'ID'));
      expect((await t.http.get(url(`collections/${finance}`)).set(org.users.member.auth).expect(404)).body.error.code).toBe('knowledge_collection.not_found');
      expect((await t.http.get(url(`documents/${docs.pdf}`)).set(org.users.member.auth).expect(404)).body.error.code).toBe('knowledge_document.not_found');
      const memberDocs = (await t.http.get(url('documents')).set(org.users.member.auth).expect(200)).body.items;
      expect(memberDocs.map((d: any) => d.id)).not.toContain(docs.pdf);
      const sqlCount = async (u: TestUser) => {
        const claims = { sub: u.id, org_id: org.orgId, role: 'authenticated' };
        const [chunks] = await t.db.as(claims, 'authenticated', 'SELECT count(*)::int AS n FROM ai.knowledge_chunks WHERE collection_id = $1', [finance]);
        const [versions] = await t.db.as(claims, 'authenticated', 'SELECT count(*)::int AS n FROM ai.knowledge_versions WHERE collection_id = $1', [finance]);
        return chunks.n + versions.n;
      };
      expect(await sqlCount(org.users.accountant)).toBeGreaterThan(1);
      expect(await sqlCount(org.users.member)).toBe(0);
      expect(await sqlCount(org.users.viewer)).toBe(0);
      // a member cannot write chunks directly either
      await expect(t.db.as({ sub: org.users.accountant.id, org_id: org.orgId, role: 'authenticated' }, 'authenticated',
        'DELETE FROM ai.knowledge_chunks')).rejects.toThrow(/permission denied/);
    });

    it('an API key with knowledge:read lists, reads and searches what a viewer may; without the scope 403; it writes nothing', async () => {
      const key = async (scopes: string[]) => ({ Authorization: `Bearer ${(await t.http.post(`/v1/orgs/${org.orgId}/api-keys`).set(owner.auth)
        .send({ name: scopes.join(' '), scopes }).expect(201)).body.secret}` });
      const reader = await key(['knowledge:read']);
      const q = { query: 'receipts reimbursed vacation days', k: 10 };
      // the finance collection names no viewer: the key neither lists, reads nor finds it (the owner does)
      expect((await t.http.get(url('collections')).set(reader).expect(200)).body.map((c: any) => c.id)).toEqual([policies]);
      expect((await t.http.get(url(`collections/${policies}`)).set(reader).expect(200)).body.name).toBe('Company handbook');
      expect((await t.http.get(url(`collections/${finance}`)).set(reader).expect(404)).body.error.code).toBe('knowledge_collection.not_found');
      const listed = (await t.http.get(url('documents')).set(reader).expect(200)).body.items.map((d: any) => d.id);
      expect(listed).toEqual(expect.arrayContaining([docs.text, docs.md, docs.html]));
      expect(listed).not.toContain(docs.pdf);
      expect((await t.http.get(url(`documents/${docs.md}`)).set(reader).expect(200)).body.id).toBe(docs.md);
      expect((await t.http.get(url(`documents/${docs.pdf}`)).set(reader).expect(404)).body.error.code).toBe('knowledge_document.not_found');
      expect((await t.http.get(url(`documents/${docs.pdf}/versions/1`)).set(reader).expect(404)).body.error.code).toBe('knowledge_document.not_found');
      const found = (await t.http.post(url('search')).set(reader).send(q).expect(200)).body.items;
      expect(found[0]).toMatchObject({ documentId: docs.md, collectionId: policies });
      expect(found.every((h: any) => h.collectionId === policies)).toBe(true);
      expect((await search(owner, q).expect(200)).body.items.map((h: any) => h.documentId)).toContain(docs.pdf);
      const hidden = (await t.http.post(url('search')).set(reader).send({ ...q, collectionIds: [finance] }).expect(404)).body.error;
      expect(hidden.code).toBe('knowledge_collection.not_found');
      // no scope: refused before anything is read
      const other = await key(['ledger:read']);
      for (const res of [await t.http.get(url('collections')).set(other).expect(403), await t.http.get(url(`documents/${docs.md}`)).set(other).expect(403),
        await t.http.post(url('search')).set(other).send(q).expect(403)]) {
        expect(res.body.error).toMatchObject({ code: 'api_keys.scope_missing', details: { scope: 'knowledge:read' } });
      }
      // no key writes the knowledge base
      const before = (await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_collections WHERE org_id = $1', [org.orgId])).rows[0].n;
      expect((await t.http.post(url('collections')).set(reader).send({ name: 'By key' }).expect(403)).body.error.code).toBe('api_keys.route_closed');
      expect((await t.http.delete(url(`documents/${docs.md}`)).set(reader).expect(403)).body.error.code).toBe('api_keys.route_closed');
      expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_collections WHERE org_id = $1', [org.orgId])).rows[0].n).toBe(before);
      expect((await t.http.get(url(`documents/${docs.md}`)).set(owner.auth).expect(200)).body.id).toBe(docs.md);
    });

    it('a user of another organization never sees anything: 404 on the organization, nothing in SQL', async () => {
      const stranger = await registerUser(t, 'stranger');
      const otherOrg = await createOrg(t, stranger, 'Other');
      await search(stranger, { query: 'receipts' }).expect(404);
      const own = (await t.http.post(`/v1/orgs/${otherOrg}/knowledge/search`).set(stranger.auth).send({ query: 'receipts reimbursed vacation' }).expect(200)).body;
      expect(own).toEqual({ items: [] });
      const [row] = await t.db.as({ sub: stranger.id, org_id: org.orgId, role: 'authenticated' }, 'authenticated', 'SELECT count(*)::int AS n FROM ai.knowledge_chunks');
      expect(row.n).toBe(0);
    });

    it('a new version replaces the old in results once ingested; earlier versions stay readable and restorable', async () => {
      await t.http.post(url(`documents/${docs.text}/versions`)).set(owner.auth)
        .attach('file', Buffer.from('New employees receive a tablet on their first day and a plant for the desk.'), { filename: 'onboarding-v2.txt', contentType: 'text/plain' })
        .expect(201).expect((r) => expect(r.body).toMatchObject({ latestVersion: 2, indexedVersion: 1, status: 'pending' }));
      // until ingested, version 1 is what search finds (never a mix)
      expect((await search(owner, { query: 'laptop', documentIds: [docs.text] }).expect(200)).body.items[0]).toMatchObject({ version: 1 });
      await t.ingest();
      expect(new Set((await chunksOf(docs.text)).map((c) => c.version_no))).toEqual(new Set([2]));
      const hits = (await search(owner, { query: 'tablet plant laptop', documentIds: [docs.text] }).expect(200)).body.items;
      expect(hits.every((h: any) => h.version === 2 && !h.text.includes('laptop'))).toBe(true);
      const versions = (await t.http.get(url(`documents/${docs.text}/versions`)).set(owner.auth).expect(200)).body;
      expect(versions.map((v: any) => [v.versionNo, v.status])).toEqual([[2, 'ready'], [1, 'ready']]);
      expect((await t.http.get(url(`documents/${docs.text}/versions/1`)).set(owner.auth).expect(200)).body.text).toContain('laptop');
      const restored = (await t.http.post(url(`documents/${docs.text}/versions/1/restore`)).set(owner.auth).expect(201)).body;
      expect(restored).toMatchObject({ latestVersion: 3 });
      await t.ingest();
      const after = (await search(owner, { query: 'laptop', documentIds: [docs.text] }).expect(200)).body.items;
      expect(after[0]).toMatchObject({ version: 3 });
      const [v3] = (await t.db.admin.query('SELECT restored_from_version_no, status FROM ai.knowledge_versions WHERE document_id = $1 AND version_no = 3', [docs.text])).rows;
      expect(v3).toEqual({ restored_from_version_no: 1, status: 'ready' });
    });

    it('deleting a document removes its chunks from results and the database, audited', async () => {
      expect((await search(owner, { query: 'passwords rotate' }).expect(200)).body.items.some((h: any) => h.documentId === docs.html)).toBe(true);
      await t.http.delete(url(`documents/${docs.html}`)).set(org.users.member.auth).expect(204);
      expect((await search(owner, { query: 'passwords rotate' }).expect(200)).body.items.some((h: any) => h.documentId === docs.html)).toBe(false);
      const left = await t.db.admin.query('SELECT (SELECT count(*) FROM ai.knowledge_chunks WHERE document_id = $1)::int AS chunks, (SELECT count(*) FROM ai.knowledge_versions WHERE document_id = $1)::int AS versions', [docs.html]);
      expect(left.rows[0]).toEqual({ chunks: 0, versions: 0 });
      const audit = await t.db.admin.query(`SELECT actor_id FROM core.audit_logs WHERE action = 'knowledge.document_deleted' AND entity_id = $1`, [docs.html]);
      expect(audit.rows).toEqual([{ actor_id: org.users.member.id }]);
    });

    it('an embedding outage marks the version failed with the reason; re-index makes it ready', async () => {
      const note = (await t.http.post(url('documents')).set(owner.auth).send({ collectionId: policies, title: 'Parking', text: 'Parking spaces are assigned by the office manager.' }).expect(201)).body;
      t.embeddings.failWith = 500;
      await t.ingest();
      t.embeddings.failWith = undefined;
      const failed = (await t.http.get(url(`documents/${note.id}`)).set(owner.auth).expect(200)).body;
      expect(failed).toMatchObject({ status: 'failed', indexedVersion: null });
      expect(failed.statusReason).toMatch(/^embedding failed: /);
      expect((await chunksOf(note.id))).toEqual([]);
      await t.http.post(url(`documents/${note.id}/reindex`)).set(owner.auth).expect(200).expect((r) => expect(r.body.status).toBe('pending'));
      await t.ingest();
      expect((await t.http.get(url(`documents/${note.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'ready', indexedVersion: 1 });
    });

    it('bad input is a 4xx naming the problem, and nothing is written', async () => {
      const count = async () => (await t.db.admin.query('SELECT (SELECT count(*) FROM ai.knowledge_documents)::int + (SELECT count(*) FROM ai.knowledge_versions)::int AS n')).rows[0].n;
      const before = await count();
      const empty = await upload(policies, 'empty.txt', 'text/plain', '').expect(400);
      expect(empty.body.error).toMatchObject({ code: 'knowledge.file_empty' });
      const docx = await upload(policies, 'report.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'PK\u0003\u0004...').expect(415);
      expect(docx.body.error.code).toBe('knowledge.unsupported_type');
      expect(docx.body.error.message).toMatch(/plain text, Markdown, HTML or PDF/);
      const corrupt = await upload(policies, 'broken.pdf', 'application/pdf', '%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage').expect(422);
      expect(corrupt.body.error).toMatchObject({ code: 'knowledge.unreadable_file' });
      expect(corrupt.body.error.message).toMatch(/PDF/);
      const notPdf = await upload(policies, 'fake.pdf', 'application/pdf', 'hello').expect(422);
      expect(notPdf.body.error.code).toBe('knowledge.unreadable_file');
      const big = await upload(policies, 'big.txt', 'text/plain', 'a'.repeat(2_000_001)).expect(413);
      expect(big.body.error).toMatchObject({ code: 'knowledge.file_too_large', details: { limitBytes: 2_000_000 } });
      expect(big.body.error.message).toContain('limit of 1.9 MB (2000000 bytes)');
      // under the file's limit, but its text is longer than a document may hold (as a note's)
      const long = await upload(policies, 'long.md', 'text/markdown', `# Minutes\n\n${'word '.repeat(200_000)}`).expect(413);
      expect(long.body.error).toEqual({ code: 'knowledge.text_too_large', details: { limitChars: 1_000_000 },
        message: 'the text extracted from the file is 1000010 characters long, above the limit of 1000000 characters (as for a note): split it into several documents' });
      const longVersion = await t.http.post(url(`documents/${docs.md}/versions`)).set(owner.auth)
        .attach('file', Buffer.from('x'.repeat(1_000_001)), { filename: 'long.txt', contentType: 'text/plain' }).expect(413);
      expect(longVersion.body.error.code).toBe('knowledge.text_too_large');
      // under the limit but above the JSON body limit (1 MB): the upload's own limit is the one that applies
      expect((await upload(policies, 'big.docx', 'application/msword', Buffer.alloc(1_500_000, 1)).expect(415)).body.error.code).toBe('knowledge.unsupported_type');
      const json = await t.http.post(url(`collections/${policies}/documents`)).set(owner.auth).send({ title: 'x' }).expect(415);
      expect(json.body.error).toEqual({ code: 'unsupported_media_type', message: 'send the body as multipart/form-data' });
      const noFile = await t.http.post(url(`collections/${policies}/documents`)).set(owner.auth).expect(400);
      expect(noFile.body.error.code).toBe('knowledge.file_missing');
      expect((await search(owner, { query: '   ' }).expect(400)).body.error).toMatchObject({ code: 'knowledge.query_empty' });
      expect((await search(owner, { query: '' }).expect(400)).body.error.code).toBe('knowledge.query_empty');
      const tooMany = await search(owner, { query: 'vacation', k: 51 }).expect(400);
      expect(tooMany.body.error).toMatchObject({ code: 'knowledge.k_too_large' });
      expect(tooMany.body.error.message).toContain('50');
      expect((await t.http.post(url('collections')).set(owner.auth).send({ name: 'Finance policies' }).expect(409)).body.error.code).toBe('knowledge.collection_name_taken');
      expect((await t.http.get(url(`documents/${docs.pdf}/versions/9`)).set(owner.auth).expect(404)).body.error.code).toBe('knowledge.version_not_found');
      expect(await count()).toBe(before);
    });

    it('viewers read but do not write; only owner and admin manage collections', async () => {
      await upload(policies, 'x.txt', 'text/plain', 'x').set(org.users.viewer.auth).expect(403);
      await t.http.post(url('collections')).set(org.users.accountant.auth).send({ name: 'Mine' }).expect(403);
      const hits = (await search(org.users.viewer, { query: 'vacation days' }).expect(200)).body.items;
      expect(hits[0].documentId).toBe(docs.md);
    });

    it('pages documents created within one millisecond without skipping any (cursors keep microseconds)', async () => {
      const paging = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Paging' }).expect(201)).body.id;
      const ids: string[] = [];
      for (const n of ['a', 'b', 'c']) ids.push((await upload(paging, `${n}.txt`, 'text/plain', `document ${n}`).expect(201)).body.id);
      for (const [i, at] of ['2026-02-02T10:00:00.123789Z', '2026-02-02T10:00:00.123456Z', '2026-02-02T10:00:00.123001Z'].entries()) {
        await t.db.admin.query('UPDATE ai.knowledge_documents SET created_at = $2 WHERE id = $1', [ids[i], at]);
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await t.http.get(url(`documents?collectionId=${paging}&limit=1${cursor ? `&cursor=${cursor}` : ''}`)).set(owner.auth).expect(200);
        seen.push(...res.body.items.map((d: any) => d.id));
        cursor = res.body.nextCursor;
      } while (cursor && seen.length < 10);
      expect(seen).toEqual(ids);
    });
  });
}
