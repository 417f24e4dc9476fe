import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The knowledge base's embedding calls (ingestion, re-index, search) are AI usage of the organization: each is reserved
 * against its AI budget before the provider is called, refused (402 ai.budget_exceeded; an ingestion job fails its
 * version with that reason) when the budget cannot take it, and recorded in GET /ai/usage and the budget's spent. A
 * re-index of a document its latest version is indexed for, with the configured model and dimensions, embeds nothing.
 */
describe('knowledge embeddings and the AI budget', () => {
  let t: KnowledgeApp;
  let owner: TestUser;
  let member: TestUser;
  let orgId: string;
  let collection: string;
  const url = (p: string) => `/v1/orgs/${orgId}/${p}`;
  const requests = () => t.embeddings.requests.length;
  const reportedTokens = (from: number) => t.embeddings.requests.slice(from).reduce((n, r) => n + r.tokens, 0);
  // the catalog's price of the double's model: USD 0.02 per million input tokens (text-embedding-3-small's)
  const costOf = (tokens: number) => (tokens * 0.02 / 1e6).toFixed(8);
  const note = async (title: string, text: string) =>
    (await t.http.post(url('knowledge/documents')).set(member.auth).send({ collectionId: collection, title, text }).expect(201)).body;
  const doc = async (id: string) => (await t.http.get(url(`knowledge/documents/${id}`)).set(member.auth).expect(200)).body;

  beforeAll(async () => {
    t = await startKnowledgeApp('default', { RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'spend');
    member = await registerUser(t, 'spendmember');
    orgId = await createOrg(t, owner, 'Spend Ltd');
    await onEnterprisePlan(t, orgId);
    await addMember(t, orgId, member, 'member');
    collection = (await t.http.post(url('knowledge/collections')).set(owner.auth).send({ name: 'Team', readRoles: ['member'] }).expect(201)).body.id;
    // the double's model priced in the catalog, as an embedding model (setup through the owner connection)
    await t.db.admin.query(`INSERT INTO ai.models (id, provider, display_name, kind, context_window, max_output_tokens)
      VALUES ('double-hash-256', 'other', 'Embeddings double', 'embedding', 8191, 1) ON CONFLICT DO NOTHING`);
    await t.db.admin.query(`INSERT INTO ai.model_prices (model_id, effective_from, input, output, cached_input, cache_write, source)
      VALUES ('double-hash-256', '2020-01-01', 0.02, 0, 0, 0, 'test') ON CONFLICT DO NOTHING`);
  });
  afterAll(async () => { await t?.close(); });
  beforeEach(async () => {
    await t.db.admin.query('DELETE FROM ai.budgets WHERE org_id = $1', [orgId]);
  });

  it('a member past a 1-token organization budget: ingestion, 5 re-indexes and 5 searches call no provider and spend nothing', async () => {
    await t.http.post(url('ai/budgets')).set(owner.auth).send({ tokenLimit: 1, costLimit: '0.01' }).expect(201);
    const text = Array.from({ length: 20000 }, (_, i) => `word${i} policy clause`).join(' '); // ~100k tokens
    const before = requests();
    const { id } = await note('Big', text);
    await t.ingest();
    // the ingestion job was refused by the budget: the document failed with the reason, nothing indexed, no provider call
    expect(await doc(id)).toMatchObject({ status: 'failed', indexedVersion: null, statusReason: expect.stringMatching(/^ai\.budget_exceeded: .*does not fit in budget/) });
    for (let i = 0; i < 5; i++) {
      const r = await t.http.post(url(`knowledge/documents/${id}/reindex`)).set(member.auth).send({}).expect(200);
      expect(r.body).toMatchObject({ id, status: 'pending' });
      await t.ingest();
      expect(await doc(id)).toMatchObject({ status: 'failed', statusReason: expect.stringMatching(/^ai\.budget_exceeded: /) });
    }
    for (let i = 0; i < 5; i++) {
      const r = await t.http.post(url('knowledge/search')).set(member.auth).send({ query: `policy clause ${i}` });
      expect(r.status).toBe(402);
      expect(r.body.error).toMatchObject({ code: 'ai.budget_exceeded', details: { budgetId: expect.any(String), tokensLeft: 1 } });
    }
    expect(requests()).toBe(before);
    const usage = (await t.http.get(url('ai/usage')).set(owner.auth).expect(200)).body;
    expect(usage.embeddings).toEqual([]);
    const [budget] = (await t.http.get(url('ai/budgets')).set(owner.auth).expect(200)).body;
    expect(budget).toMatchObject({ spentTokens: 0, reservedTokens: 0, spentCost: '0.00000000', reservedCost: '0.00000000' });
  }, 120_000);

  it('records ingestion and search as the organization\'s AI usage of the member, spends them on its budget, and refuses them past it', async () => {
    const created = (await t.http.post(url('ai/budgets')).set(owner.auth).send({ tokenLimit: 1_000_000 }).expect(201)).body;
    const start = requests();
    const { id } = await note('Travel', 'Travel is reimbursed within 30 days of the expense report. Hotels up to 150 EUR a night.');
    await t.ingest();
    expect(await doc(id)).toMatchObject({ status: 'ready', indexedVersion: 1 });
    const ingested = reportedTokens(start);
    expect(ingested).toBeGreaterThan(0);
    const searchedFrom = requests();
    await t.http.post(url('knowledge/search')).set(member.auth).send({ query: 'how fast is travel reimbursed' }).expect(200);
    const searched = reportedTokens(searchedFrom);
    expect(searched).toBe('how fast is travel reimbursed'.length);

    // the usage report (owner: every row), tokens as the provider reported them, cost at the catalog's price, on the UTC day of the calls
    const [{ day }] = (await t.db.admin.query(`SELECT max((at AT TIME ZONE 'UTC')::date)::text AS day FROM ai.embedding_usage WHERE org_id = $1`, [orgId])).rows;
    const report = (await t.http.get(url('ai/usage')).set(owner.auth).expect(200)).body;
    expect(report.embeddings).toEqual([
      { day, purpose: 'knowledge_ingestion', modelId: 'double-hash-256', calls: 1, inputTokens: ingested, cost: costOf(ingested) },
      { day, purpose: 'knowledge_search', modelId: 'double-hash-256', calls: 1, inputTokens: searched, cost: costOf(searched) },
    ]);
    expect(report.usage.inputTokens).toBe(ingested + searched);
    expect(report.cost).toBe(costOf(ingested + searched));
    // the member sees the calls made for them (they added the document and searched)
    expect((await t.http.get(url('ai/usage')).set(member.auth).expect(200)).body.embeddings).toHaveLength(2);
    const rows = (await t.db.admin.query('SELECT purpose, user_id, document_id, input_tokens::int AS tokens, tokens_counted FROM ai.embedding_usage WHERE org_id = $1 ORDER BY at', [orgId])).rows;
    expect(rows).toEqual([
      { purpose: 'knowledge_ingestion', user_id: member.id, document_id: id, tokens: ingested, tokens_counted: false },
      { purpose: 'knowledge_search', user_id: member.id, document_id: null, tokens: searched, tokens_counted: false },
    ]);
    let budget = (await t.http.get(url(`ai/budgets/${created.id}`)).set(owner.auth).expect(200)).body;
    expect(budget).toMatchObject({ spentTokens: ingested + searched, reservedTokens: 0, spentCost: costOf(ingested + searched), reservedCost: '0.00000000' });

    // the budget lowered to what is spent plus one token: the next search is refused before the provider is called
    await t.http.patch(url(`ai/budgets/${created.id}`)).set(owner.auth).send({ tokenLimit: ingested + searched + 1 }).expect(200);
    const refusedFrom = requests();
    const refused = await t.http.post(url('knowledge/search')).set(member.auth).send({ query: 'hotel night price' }).expect(402);
    expect(refused.body.error).toMatchObject({ code: 'ai.budget_exceeded', details: { budgetId: created.id, tokensLeft: 1 } });
    // a new version (a restore of version 1) is refused by the job: failed with the reason, version 1 stays indexed
    await t.http.post(url(`knowledge/documents/${id}/versions/1/restore`)).set(member.auth).expect(201);
    await t.ingest();
    expect(await doc(id)).toMatchObject({ status: 'failed', latestVersion: 2, indexedVersion: 1, statusReason: expect.stringMatching(/^ai\.budget_exceeded: /) });
    expect(requests()).toBe(refusedFrom);
    budget = (await t.http.get(url(`ai/budgets/${created.id}`)).set(owner.auth).expect(200)).body;
    expect(budget).toMatchObject({ spentTokens: ingested + searched, reservedTokens: 0 });

    // room again: the re-index embeds version 2 and records it
    await t.http.patch(url(`ai/budgets/${created.id}`)).set(owner.auth).send({ tokenLimit: 1_000_000 }).expect(200);
    await t.http.post(url(`knowledge/documents/${id}/reindex`)).set(member.auth).send({}).expect(200);
    await t.ingest();
    expect(await doc(id)).toMatchObject({ status: 'ready', indexedVersion: 2, statusReason: null });
    const reindexed = reportedTokens(refusedFrom);
    budget = (await t.http.get(url(`ai/budgets/${created.id}`)).set(owner.auth).expect(200)).body;
    expect(budget).toMatchObject({ spentTokens: ingested + searched + reindexed, reservedTokens: 0 });
  }, 120_000);

  it('an API key\'s search (its transaction read-only with only :read scopes) is reserved and recorded as that key\'s usage', async () => {
    const created = (await t.http.post(url('ai/budgets')).set(owner.auth).send({ tokenLimit: 1_000_000 }).expect(201)).body;
    const key = async (scopes: string[]) => {
      const k = (await t.http.post(url('api-keys')).set(owner.auth).send({ name: scopes.join(' '), scopes }).expect(201)).body;
      return { id: k.id as string, auth: { Authorization: `Bearer ${k.secret}` } };
    };
    const reader = await key(['knowledge:read']);
    const runner = await key(['knowledge:read', 'agents:run']);
    const from = requests();
    await t.http.post(url('knowledge/search')).set(reader.auth).send({ query: 'annual leave days' }).expect(200);
    await t.http.post(url('knowledge/search')).set(runner.auth).send({ query: 'carry over' }).expect(200);
    const rows = (await t.db.admin.query(`SELECT user_id, api_key_id, input_tokens::int AS tokens FROM ai.embedding_usage WHERE org_id = $1 AND api_key_id IS NOT NULL ORDER BY at`, [orgId])).rows;
    expect(rows).toEqual([
      { user_id: null, api_key_id: reader.id, tokens: 'annual leave days'.length },
      { user_id: null, api_key_id: runner.id, tokens: 'carry over'.length },
    ]);
    expect(reportedTokens(from)).toBe('annual leave days'.length + 'carry over'.length);
    // a key's usage report shows its own calls only
    const own = (await t.http.get(url('ai/usage')).set(runner.auth).expect(200)).body;
    expect(own.embeddings).toEqual([expect.objectContaining({ purpose: 'knowledge_search', calls: 1, inputTokens: 'carry over'.length })]);
    expect((await t.http.get(url(`ai/budgets/${created.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ spentTokens: reportedTokens(from), reservedTokens: 0 });
  }, 60_000);

  it('a provider failure releases the reservation: nothing stays reserved, nothing is spent or reported', async () => {
    const created = (await t.http.post(url('ai/budgets')).set(owner.auth).send({ tokenLimit: 1_000_000 }).expect(201)).body;
    const rowsBefore = (await t.db.admin.query('SELECT count(*)::int AS n FROM ai.embedding_usage WHERE org_id = $1', [orgId])).rows[0].n;
    t.embeddings.failWith = 500;
    try {
      const r = await t.http.post(url('knowledge/search')).set(member.auth).send({ query: 'anything at all' }).expect(503);
      expect(r.body.error.code).toBe('knowledge.embedding_unavailable');
      const { id } = await note('Outage', 'Written while the provider is down.');
      await t.ingest();
      expect(await doc(id)).toMatchObject({ status: 'failed', statusReason: expect.stringMatching(/^embedding failed: /) });
    } finally {
      t.embeddings.failWith = undefined;
    }
    expect((await t.http.get(url(`ai/budgets/${created.id}`)).set(owner.auth).expect(200)).body)
      .toMatchObject({ spentTokens: 0, reservedTokens: 0, spentCost: '0.00000000', reservedCost: '0.00000000' });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations WHERE org_id = $1', [orgId])).rows[0].n).toBe(0);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.embedding_usage WHERE org_id = $1', [orgId])).rows[0].n).toBe(rowsBefore);
  }, 60_000);

  it('a re-index of a document indexed for its latest version with the configured model is answered as it is: no job, no provider call', async () => {
    const { id } = await note('Leave', 'Annual leave is 25 days. Carry over up to 5 days into the next year.');
    await t.ingest();
    const ready = await doc(id);
    expect(ready).toMatchObject({ status: 'ready', indexedVersion: 1, latestVersion: 1 });
    const before = requests();
    for (let i = 0; i < 5; i++) {
      const r = await t.http.post(url(`knowledge/documents/${id}/reindex`)).set(member.auth).send({}).expect(200);
      expect(r.body).toEqual(ready);
      await t.ingest();
    }
    expect(requests()).toBe(before);
    const jobs = (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND topic = 'knowledge.index_version' AND payload->>'documentId' = $2`, [orgId, id])).rows[0].n;
    expect(jobs).toBe(1);
    // embedded by another model: stale, so the re-index queues it again
    await t.db.admin.query(`UPDATE ai.knowledge_chunks SET embedding_model = 'text-embedding-3-small' WHERE org_id = $1 AND document_id = $2`, [orgId, id]);
    expect((await t.http.post(url(`knowledge/documents/${id}/reindex`)).set(member.auth).send({}).expect(200)).body).toMatchObject({ status: 'pending' });
    await t.ingest();
    expect(requests()).toBe(before + 1);
    expect(await doc(id)).toMatchObject({ status: 'ready', indexedVersion: 1 });
  }, 60_000);
});
