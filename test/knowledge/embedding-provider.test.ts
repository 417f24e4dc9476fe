import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { testKeys } from '../integrations/keys.js';
import { featureHashEmbedding } from '../support/doubles/embeddings-double.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The knowledge base embeds through the platform's AI provider with the agents' key handling: the platform's key
 * (here one the embeddings double refuses) or the organization's own, stored sealed through PUT /ai/provider-key.
 * Model and dimension are recorded per chunk; chunks of another model are re-embedded by POST /knowledge/reindex.
 */
describe('knowledge: embeddings through the AI provider, with the organization\'s own key', () => {
  let t: KnowledgeApp;
  let owner: TestUser;
  let withKey: string;
  let withoutKey: string;
  const note = (orgId: string, collectionId: string, text: string) =>
    t.http.post(`/v1/orgs/${orgId}/knowledge/documents`).set(owner.auth).send({ collectionId, title: 'Note', text }).expect(201);
  const collection = async (orgId: string, name = 'All') =>
    (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(owner.auth).send({ name }).expect(201)).body.id as string;

  beforeAll(async () => {
    // the platform's key is one the double answers 401: only an organization's own key embeds
    t = await startKnowledgeApp('default', { AI_API_KEY: 'sk-platform-key-the-double-refuses', SECRETS_KEYS: testKeys('k1').env });
    owner = await registerUser(t, 'owner');
    withKey = await createOrg(t, owner, 'Own key');
    withoutKey = await createOrg(t, owner, 'Platform key');
    for (const org of [withKey, withoutKey]) await onEnterprisePlan(t, org);
    await t.http.put(`/v1/orgs/${withKey}/ai/provider-key`).set(owner.auth).send({ apiKey: t.embeddings.apiKey, baseUrl: t.embeddings.url }).expect(200);
  }, 120_000);
  afterAll(() => t?.close());

  it('embeds with the organization\'s own key, asking for the configured dimension; searches with it too', async () => {
    const doc = (await note(withKey, await collection(withKey), 'Invoices are paid within thirty days by bank transfer.')).body;
    await t.ingest();
    expect((await t.http.get(`/v1/orgs/${withKey}/knowledge/documents/${doc.id}`).set(owner.auth).expect(200)).body).toMatchObject({ status: 'ready', indexedVersion: 1 });
    expect(t.embeddings.requests.at(-1)).toMatchObject({ model: 'double-hash-256', dimensions: 256 });
    const hits = (await t.http.post(`/v1/orgs/${withKey}/knowledge/search`).set(owner.auth).send({ query: 'invoises paid' }).expect(200)).body.items;
    expect(hits[0]).toMatchObject({ documentId: doc.id, vectorRank: 1 });
  });

  it('without a key of its own, the platform key is used: refused, the version fails with the reason and nothing is stored', async () => {
    const doc = (await note(withoutKey, await collection(withoutKey), 'Travel needs approval.')).body;
    await t.ingest();
    const failed = (await t.http.get(`/v1/orgs/${withoutKey}/knowledge/documents/${doc.id}`).set(owner.auth).expect(200)).body;
    expect(failed).toMatchObject({ status: 'failed', indexedVersion: null });
    expect(failed.statusReason).toBe('embedding failed: the provider answered 401');
    expect(failed.statusReason).not.toContain('sk-');
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_chunks WHERE org_id = $1', [withoutKey])).rows[0].n).toBe(0);
    const search = await t.http.post(`/v1/orgs/${withoutKey}/knowledge/search`).set(owner.auth).send({ query: 'travel' }).expect(503);
    expect(search.body.error.code).toBe('knowledge.embedding_unavailable');
  });

  it('chunks embedded by another model are re-embedded by POST /knowledge/reindex, never searched in a mixed space', async () => {
    const doc = (await note(withKey, await collection(withKey, 'Hardware'), 'Laptops are replaced every three years.')).body;
    await t.ingest();
    // as if embedded before the model was changed
    await t.db.admin.query(`UPDATE ai.knowledge_chunks SET embedding_model = 'an-older-model' WHERE document_id = $1`, [doc.id]);
    const before = (await t.http.post(`/v1/orgs/${withKey}/knowledge/search`).set(owner.auth).send({ query: 'laptop replacement' }).expect(200)).body.items;
    expect(before.filter((h: any) => h.documentId === doc.id && h.vectorRank !== null)).toEqual([]);
    expect((await t.http.post(`/v1/orgs/${withKey}/knowledge/reindex`).set(owner.auth).expect(200)).body).toEqual({ queued: 1, more: false });
    await t.ingest();
    const models = await t.db.admin.query('SELECT DISTINCT embedding_model AS m, embedding_dimensions AS d FROM ai.knowledge_chunks WHERE document_id = $1', [doc.id]);
    expect(models.rows).toEqual([{ m: 'double-hash-256', d: 256 }]);
    const after = (await t.http.post(`/v1/orgs/${withKey}/knowledge/search`).set(owner.auth).send({ query: 'laptop replacement' }).expect(200)).body.items;
    expect(after[0]).toMatchObject({ documentId: doc.id, vectorRank: 1 });
  });

  it('POST /knowledge/reindex queues at most `limit` documents per call and says whether more remain; the next call takes the rest', async () => {
    const collectionId = await collection(withKey, 'Batches');
    const ids: string[] = [];
    for (const text of ['Invoices are approved by finance.', 'Receipts are kept ten years.', 'Budgets are set in November.']) ids.push((await note(withKey, collectionId, text)).body.id);
    await t.ingest();
    await t.db.admin.query(`UPDATE ai.knowledge_chunks SET embedding_model = 'an-older-model' WHERE document_id = ANY ($1::uuid[])`, [ids]);
    const reindex = (query = '') => t.http.post(`/v1/orgs/${withKey}/knowledge/reindex${query}`).set(owner.auth);
    const state = async () => (await t.db.admin.query(`
      SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE id = ANY ($1::uuid[]) AND status = 'pending')::int AS pending,
             (SELECT count(*) FROM core.audit_logs WHERE action = 'knowledge.document_reindexed' AND entity_id = ANY ($1::text[]))::int AS audited,
             (SELECT count(*) FROM core.outbox WHERE topic = 'knowledge.index_version' AND processed_at IS NULL AND payload->>'documentId' = ANY ($1::text[]))::int AS jobs`,
    [ids])).rows[0];

    expect((await reindex('?limit=2').expect(200)).body).toEqual({ queued: 2, more: true });
    expect(await state()).toEqual({ pending: 2, audited: 2, jobs: 2 });
    // the documents already queued are not queued again
    expect((await reindex('?limit=2').expect(200)).body).toEqual({ queued: 1, more: false });
    expect(await state()).toEqual({ pending: 3, audited: 3, jobs: 3 });
    expect((await reindex().expect(200)).body).toEqual({ queued: 0, more: false });
    await t.ingest();
    const models = await t.db.admin.query('SELECT DISTINCT embedding_model AS m FROM ai.knowledge_chunks WHERE document_id = ANY ($1::uuid[])', [ids]);
    expect(models.rows).toEqual([{ m: 'double-hash-256' }]);

    for (const limit of ['0', '201', 'many']) {
      const bad = await reindex(`?limit=${limit}`).expect(400);
      expect(bad.body.error.details.map((d: any) => d.field)).toEqual(['limit']);
    }
    expect(await state()).toMatchObject({ pending: 0, audited: 3, jobs: 0 });
  });

  /** The document's status, reason and chunks; its ingestion job's state (processed, attempts, last error). */
  const ingestion = async (orgId: string, documentId: string) => {
    const doc = (await t.http.get(`/v1/orgs/${orgId}/knowledge/documents/${documentId}`).set(owner.auth).expect(200)).body;
    const { rows: [state] } = await t.db.admin.query(`SELECT
        (SELECT count(*)::int FROM ai.knowledge_chunks WHERE document_id = $1) AS chunks,
        (SELECT json_agg(json_build_object('done', processed_at IS NOT NULL, 'attempts', attempts, 'error', last_error) ORDER BY id) FROM core.outbox
          WHERE topic = 'knowledge.index_version' AND payload->>'documentId' = $1::text) AS jobs`, [documentId]);
    return { status: doc.status, reason: doc.statusReason, ...state };
  };
  const sentences = (n: number, about: string) => Array.from({ length: n }, (_, i) => `Sentence number ${i} about ${about}.`).join(' ');

  it('a provider answering fewer or more vectors than inputs, misnumbered ones (an index repeated) or values that are not numbers: the version fails with the reason, its job ends, nothing is stored; search answers 503; a re-index then indexes it', async () => {
    const collectionId = await collection(withKey, 'Miscounted');
    type Data = Parameters<NonNullable<typeof t.embeddings.alterData>>[0];
    const cases: [string, (d: Data) => unknown[], RegExp][] = [
      ['fewer', (d) => d.slice(0, -1), /^embedding failed: the embedding model answered (\d+) vectors for (\d+) inputs$/],
      ['more', (d) => [...d, { ...d[0], index: d.length }], /^embedding failed: the embedding model answered (\d+) vectors for (\d+) inputs$/],
      ['not numbers', (d) => d.map((e, i) => (i === 1 ? { ...e, embedding: (e.embedding as number[]).map((x, j) => (j === 7 ? null : x)) } : e)),
        /^embedding failed: the embedding model answered a vector that is not all finite numbers$/],
      // the right count, but the last vector numbered 0 again: sorted by index, every chunk after the first took another's vector
      ['index repeated', (d) => d.map((e, i) => (i === d.length - 1 ? { ...e, index: 0 } : e)),
        /^embedding failed: the embedding model answered vectors whose indices are not 0 to \d+, each once$/],
    ];
    for (const [name, alter, reason] of cases) {
      const doc = (await note(withKey, collectionId, sentences(60, `travel expenses (${name})`))).body;
      const requests = t.embeddings.requests.length;
      t.embeddings.alterData = alter;
      try {
        await t.ingest();
      } finally {
        t.embeddings.alterData = undefined;
      }
      const failed = await ingestion(withKey, doc.id);
      expect([name, failed]).toEqual([name, { status: 'failed', reason: expect.stringMatching(reason), chunks: 0, jobs: [{ done: true, attempts: 1, error: null }] }]);
      const [, answered, asked] = reason.exec(failed.reason)!;
      if (answered) expect([name, Number(answered) - Number(asked)]).toEqual([name, name === 'fewer' ? -1 : 1]);
      expect(t.embeddings.requests.length - requests).toBe(1); // one call: no retry, no second job
      const versions = (await t.http.get(`/v1/orgs/${withKey}/knowledge/documents/${doc.id}/versions`).set(owner.auth).expect(200)).body;
      expect(versions.items ?? versions).toEqual([expect.objectContaining({ versionNo: 1, status: 'failed', statusReason: failed.reason, chunkCount: null })]);

      // re-indexed once the provider answers right: every chunk carries its own text's vector
      expect((await t.http.post(`/v1/orgs/${withKey}/knowledge/documents/${doc.id}/reindex`).set(owner.auth).expect(200)).body.status).toBe('pending');
      await t.ingest();
      expect(await ingestion(withKey, doc.id)).toMatchObject({ status: 'ready', reason: null, jobs: [{ done: true }, { done: true, attempts: 1, error: null }] });
      const chunks = (await t.db.admin.query(`SELECT content, embedding::text AS e FROM ai.knowledge_chunks WHERE document_id = $1 ORDER BY chunk_no`, [doc.id])).rows;
      expect(chunks.length).toBeGreaterThan(2);
      for (const c of chunks) {
        const e = c.e.replace(/[[\]{}]/g, '').split(',').map(Number);
        const own = featureHashEmbedding(c.content, 256);
        expect(e.reduce((sum: number, x: number, i: number) => sum + x * own[i], 0)).toBeCloseTo(1, 4);
      }
    }

    // the query's vector missing: 503, named, not a 500
    t.embeddings.alterData = (d) => d.slice(0, -1);
    try {
      const res = await t.http.post(`/v1/orgs/${withKey}/knowledge/search`).set(owner.auth).send({ query: 'travel' }).expect(503);
      expect(res.body.error).toMatchObject({ code: 'knowledge.embedding_unavailable', message: 'the embedding provider did not answer: the embedding model answered 0 vectors for 1 inputs' });
    } finally {
      t.embeddings.alterData = undefined;
    }
  });

  it('a write the database would refuse again fails the version (its job ends); a transient failure (a serialization failure) is retried and then indexes', async () => {
    const collectionId = await collection(withKey, 'Refused writes');
    // real refusals of the chunks' insert, by content: a rule (23514), a lost conflict (40001)
    await t.db.admin.query(`CREATE FUNCTION ai.test_refuse_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.content LIKE '%poison%' THEN RAISE EXCEPTION 'this chunk breaks a rule' USING ERRCODE = '23514'; END IF;
        IF NEW.content LIKE '%flaky%' THEN RAISE EXCEPTION 'could not serialize access due to concurrent update' USING ERRCODE = '40001'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_chunk BEFORE INSERT ON ai.knowledge_chunks FOR EACH ROW EXECUTE FUNCTION ai.test_refuse_chunk()`);
    const poisoned = (await note(withKey, collectionId, 'A poison clause nobody can store.')).body;
    const flaky = (await note(withKey, collectionId, 'A flaky clause stored on the second try.')).body;
    try {
      await t.ingest();
      expect(await ingestion(withKey, poisoned.id)).toEqual({
        status: 'failed', reason: 'indexing failed: this chunk breaks a rule', chunks: 0, jobs: [{ done: true, attempts: 1, error: null }] });
      expect(await ingestion(withKey, flaky.id)).toEqual({
        status: 'pending', reason: null, chunks: 0, jobs: [{ done: false, attempts: 1, error: 'could not serialize access due to concurrent update' }] });
      const audited = await t.db.admin.query(`SELECT entity_id, after->>'reason' AS reason FROM core.audit_logs WHERE action = 'knowledge.document_index_failed' AND entity_id = ANY($1)`,
        [[poisoned.id, flaky.id]]);
      expect(audited.rows).toEqual([{ entity_id: poisoned.id, reason: 'indexing failed: this chunk breaks a rule' }]);
    } finally {
      await t.db.admin.query('DROP TRIGGER test_refuse_chunk ON ai.knowledge_chunks; DROP FUNCTION ai.test_refuse_chunk()');
    }
    // its retry is due (no waiting out the backoff): it indexes
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'knowledge.index_version' AND processed_at IS NULL AND org_id = $1`, [withKey]);
    await t.ingest();
    expect(await ingestion(withKey, flaky.id)).toEqual({ status: 'ready', reason: null, chunks: 1, jobs: [{ done: true, attempts: 2, error: null }] });
    expect(await ingestion(withKey, poisoned.id)).toMatchObject({ status: 'failed', chunks: 0 });
  });

  it('a deleted organization\'s ingestion ends at once: no provider call, nothing written, audited or emitted into it', async () => {
    const doomed = await createOrg(t, owner, 'Doomed');
    await onEnterprisePlan(t, doomed);
    await t.http.put(`/v1/orgs/${doomed}/ai/provider-key`).set(owner.auth).send({ apiKey: t.embeddings.apiKey, baseUrl: t.embeddings.url }).expect(200);
    const doc = (await note(doomed, await collection(doomed), 'Doomed organization policy text.')).body;
    await t.http.delete(`/v1/orgs/${doomed}`).set(owner.auth).expect(204);
    const requests = t.embeddings.requests.length;
    await t.ingest();
    expect(t.embeddings.requests.length).toBe(requests);
    const { rows: [state] } = await t.db.admin.query(`SELECT
        (SELECT status FROM ai.knowledge_documents WHERE id = $2) AS status,
        (SELECT count(*)::int FROM ai.knowledge_chunks WHERE org_id = $1) AS chunks,
        (SELECT json_agg(processed_at IS NOT NULL) FROM core.outbox WHERE org_id = $1 AND topic = 'knowledge.index_version') AS jobs,
        (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'knowledge.document_index%') AS audited,
        (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND payload->>'type' LIKE 'knowledge_document.%') AS events`,
    [doomed, doc.id]);
    expect(state).toEqual({ status: 'pending', chunks: 0, jobs: [true], audited: 0, events: 0 });
  });
});
