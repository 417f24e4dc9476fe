import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MAX_ENCODE_CHARS } from '../../src/platform/ai/bounded-tokenizer.js';
import { testKeys } from '../integrations/keys.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { spyOnEncoder } from '../agents/encoder-spy.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * Ingestion of what organizations hand it, with private networks not allowed (the production default): a note
 * holding a 100,000-letter run is chunked with bounded tokenizer work, and an organization's own provider endpoint
 * whose name resolves to a non-public address is refused when connecting, for ingestion and search alike. The
 * platform's endpoint (AI_BASE_URL, the embeddings double on 127.0.0.1) is the operator's and is not guarded.
 */
describe('knowledge ingestion of untrusted input', () => {
  let t: KnowledgeApp;
  let owner: TestUser;
  let platformOrg: string;
  let ownEndpointOrg: string;
  const docUrl = (orgId: string, id: string) => `/v1/orgs/${orgId}/knowledge/documents/${id}`;
  const note = async (orgId: string, text: string) => {
    const collectionId = (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(owner.auth).send({ name: `Notes ${text.length}` }).expect(201)).body.id;
    return (await t.http.post(`/v1/orgs/${orgId}/knowledge/documents`).set(owner.auth).send({ collectionId, title: 'Note', text }).expect(201)).body.id as string;
  };
  const chunks = async (documentId: string) =>
    (await t.db.admin.query('SELECT content, token_count FROM ai.knowledge_chunks WHERE document_id = $1 ORDER BY chunk_no', [documentId])).rows;

  beforeAll(async () => {
    t = await startKnowledgeApp('default', { SECRETS_KEYS: testKeys('k1').env, OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'false' });
    owner = await registerUser(t, 'untrusted-owner');
    platformOrg = await createOrg(t, owner, 'Platform key');
    ownEndpointOrg = await createOrg(t, owner, 'Own endpoint');
    for (const org of [platformOrg, ownEndpointOrg]) await onEnterprisePlan(t, org);
  }, 120_000);
  afterAll(() => t?.close());

  it('chunks a note with a 100,000-letter run without handing the tokenizer more than the bound at once', async () => {
    const text = `Scanned receipt: ${'a'.repeat(100_000)} (end of scan)`;
    const id = await note(platformOrg, text);
    const spy = spyOnEncoder(MAX_ENCODE_CHARS);
    try {
      await t.ingest();
    } finally {
      spy.restore();
    }
    expect(spy.sizes.reduce((n, x) => n + x, 0)).toBeGreaterThanOrEqual(100_000); // the note went through the encoder
    expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
    expect((await t.http.get(docUrl(platformOrg, id)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'ready', indexedVersion: 1 });
    const stored = await chunks(id);
    // KNOWLEDGE_CHUNK_TOKENS 64 with an overlap of 8, over the run's 12,500 tokens (8 letters a token)
    expect(stored.length).toBeGreaterThan(12_500 / 56);
    expect(stored.every((c) => c.token_count <= 64)).toBe(true);
    expect(stored[0].content.startsWith('Scanned receipt: aaaa')).toBe(true);
    expect(stored.at(-1).content.endsWith('aaaa (end of scan)')).toBe(true);
  });

  it('refuses an organization\'s endpoint whose name resolves to a non-public address: the version fails, nothing reaches it', async () => {
    const baseUrl = t.embeddings.url.replace('127.0.0.1', 'localhost');
    await t.http.put(`/v1/orgs/${ownEndpointOrg}/ai/provider-key`).set(owner.auth).send({ apiKey: t.embeddings.apiKey, baseUrl }).expect(200);
    const before = t.embeddings.requests.length;
    const id = await note(ownEndpointOrg, 'Invoices are paid within thirty days.');
    await t.ingest();
    const refused = 'the provider endpoint localhost resolves to a non-public address: the connection was refused';
    expect((await t.http.get(docUrl(ownEndpointOrg, id)).set(owner.auth).expect(200)).body)
      .toMatchObject({ status: 'failed', indexedVersion: null, statusReason: `embedding failed: ${refused}` });
    expect(await chunks(id)).toEqual([]);
    const search = await t.http.post(`/v1/orgs/${ownEndpointOrg}/knowledge/search`).set(owner.auth).send({ query: 'invoices' }).expect(503);
    expect(search.body.error).toMatchObject({ code: 'knowledge.embedding_unavailable', message: `the embedding provider did not answer: ${refused}` });
    expect(t.embeddings.requests.length).toBe(before);
  });

  it('refuses to store an endpoint given as a non-public address', async () => {
    const res = await t.http.put(`/v1/orgs/${platformOrg}/ai/provider-key`).set(owner.auth).send({ apiKey: t.embeddings.apiKey, baseUrl: t.embeddings.url }).expect(400);
    expect(res.body.error).toMatchObject({ code: 'ai.base_url_not_public', message: 'baseUrl names 127.0.0.1, which is not a public address' });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.provider_keys WHERE org_id = $1', [platformOrg])).rows[0].n).toBe(0);
  });
});
