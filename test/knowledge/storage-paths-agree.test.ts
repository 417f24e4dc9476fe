import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

const TOPICS = [
  'Invoices are paid within thirty days of receipt by bank transfer.',
  'Travel expenses need receipts and the approval of a manager.',
  'The office opens at eight and closes at six on weekdays.',
  'Laptops are replaced every three years by the IT department.',
  'Vacation requests go to the team lead two weeks in advance.',
  'Passwords rotate every ninety days and need twelve characters.',
  'Customer data stays in the European Union data centre.',
  'Quarterly reports are due on the tenth day after quarter end.',
];
const QUERIES = ['bank transfer invoices', 'receipts approval', 'opening hours weekdays', 'laptop replacement', 'vacaton requets', 'pasword rules', 'where is customer data', 'quarterly report deadline'];

/** The same documents and queries on the pgvector path and on the real[] path give the same top results. */
describe('knowledge: the pgvector and real[] paths return the same top results', () => {
  const apps: KnowledgeApp[] = [];
  const users: TestUser[] = [];
  const orgs: string[] = [];

  beforeAll(async () => {
    for (const path of ['default', 'array'] as const) {
      // pgvector ranks by its HNSW index here (a small corpus would otherwise be ranked exactly, see the repository)
      const t = await startKnowledgeApp(path, { KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS: '0' });
      const owner = await registerUser(t, 'owner');
      const orgId = await createOrg(t, owner, 'Paths');
      await onEnterprisePlan(t, orgId);
      const collection = (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(owner.auth).send({ name: 'All' }).expect(201)).body.id;
      for (const [i, text] of TOPICS.entries()) {
        await t.http.post(`/v1/orgs/${orgId}/knowledge/documents`).set(owner.auth).send({ collectionId: collection, title: `Topic ${i}`, text }).expect(201);
      }
      await t.ingest();
      const notReady = await t.db.admin.query(`SELECT title, status_reason FROM ai.knowledge_documents WHERE status <> 'ready'`);
      expect(notReady.rows).toEqual([]);
      apps.push(t);
      users.push(owner);
      orgs.push(orgId);
    }
  }, 240_000); // two applications, one of them over a database migrated from scratch
  afterAll(async () => {
    for (const t of apps) await t.close();
  });

  it('runs the two storages (pgvector where the server has it)', () => {
    expect(apps[1].storage).toBe('array');
    // on a server without pgvector both are real[] and the comparison below is trivially equal; CI builds pgvector
    console.info(`knowledge storage paths compared: ${apps[0].storage} vs ${apps[1].storage}`);
  });

  it('gives the same documents in the same order, with the same similarities', async () => {
    for (const query of QUERIES) {
      const [a, b] = await Promise.all(apps.map(async (t, i) =>
        (await t.http.post(`/v1/orgs/${orgs[i]}/knowledge/search`).set(users[i].auth).send({ query, k: 5 }).expect(200)).body.items));
      const shape = (items: any[]) => items.map((h) => `${h.documentTitle}#${h.chunkNo} v${h.vectorRank} t${h.textRank}`);
      expect(shape(a)).toEqual(shape(b));
      a.forEach((h: any, i: number) => expect(h.similarity).toBeCloseTo(b[i].similarity, 5));
    }
  });
});
