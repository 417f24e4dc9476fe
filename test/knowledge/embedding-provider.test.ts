import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { testKeys } from '../integrations/keys.js';
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
});
