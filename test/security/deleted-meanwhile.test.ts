import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { agentsRepository } from '../../src/modules/agents/agents.repository.js';
import { triggersRepository } from '../../src/modules/agents/triggers.repository.js';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { settingRepository } from '../../src/modules/organizations/setting.repository.js';
import { pauseNext, releaseAll } from '../auth/lock-order.js';
import { testKeys } from '../integrations/keys.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';

/**
 * A change or deletion that read its row, then found it deleted by a request that committed in between (the UPDATE or
 * DELETE matched no row): it answered as if it had changed it (a PATCH 200 with no body, a DELETE 204) and audited a
 * change that never happened, as many times as requests raced. It is now a 404 <entity>.not_found, nothing audited.
 * The interleaving is forced: the first request pauses after its read, before its UPDATE or DELETE, while the second
 * deletes the row and commits.
 */
describe('a change or deletion of a row deleted meanwhile by another request is a 404, not audited', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  type Response = { status: number; body: any };
  const send = (req: PromiseLike<Response>): Promise<Response> => Promise.resolve(req).then((r) => ({ status: r.status, body: r.body }));
  const org = (path: string) => `/v1/orgs/${orgId}/${path}`;
  const audits = async (action: string, entityId: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = $2 AND entity_id = $3`, [orgId, action, entityId])).rows[0].n;
  const rows = async (table: string, where: string, id: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1 AND ${where} = $2`, [orgId, id])).rows[0].n;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Deleted Meanwhile Ltd');
    await onEnterprisePlan(t, orgId);
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  const newAgent = async (name: string) => (await t.http.post(org('agents')).set(owner.auth).send({ name, type: 'assistant', modelId: 'gpt-4o' }).expect(201)).body.id as string;
  const newCollection = async (name: string) => (await t.http.post(org('knowledge/collections')).set(owner.auth).send({ name }).expect(201)).body.id as string;

  it('PATCH of an agent or a knowledge collection deleted after it was read: 404, the deletion alone audited', async () => {
    const cases = [
      { path: `agents/${await newAgent('Patched')}`, target: agentsRepository, method: 'updateAgent' as const, body: { instructions: 'late' },
        entity: 'agent', updated: 'ai.agent_updated', deleted: 'ai.agent_deleted', table: 'ai.agents' },
      { path: `knowledge/collections/${await newCollection('Patched')}`, target: knowledgeRepository, method: 'updateCollection' as const, body: { description: 'late' },
        entity: 'knowledge_collection', updated: 'knowledge.collection_updated', deleted: 'knowledge.collection_deleted', table: 'ai.knowledge_collections' },
    ];
    const seen = [];
    for (const c of cases) {
      const id = c.path.split('/').pop()!;
      const paused = pauseNext(c.target as Record<string, any>, c.method);
      const patch = send(t.http.patch(org(c.path)).set(owner.auth).send(c.body));
      await paused.reached; // read, not updated yet
      const deletion = await send(t.http.delete(org(c.path)).set(owner.auth));
      paused.release();
      const res = await patch;
      seen.push({ entity: c.entity, deletion: deletion.status, status: res.status, error: res.body?.error,
        rows: await rows(c.table, 'id', id), updated: await audits(c.updated, id), deleted: await audits(c.deleted, id) });
    }
    expect(seen).toEqual(cases.map((c) => ({ entity: c.entity, deletion: 204, status: 404,
      error: { code: `${c.entity}.not_found`, message: `${c.entity} ${c.path.split('/').pop()} was not found` }, rows: 0, updated: 0, deleted: 1 })));
  });

  it('DELETE twice at once (setting, feature flag, budget, agent, trigger, provider key, collection): one 204, one 404, one audit row', async () => {
    const agentOfTrigger = await newAgent('Triggered');
    const cases: { entity: string; create: () => Promise<{ path: string; id: string; auditId: string }>; target: object; method: string; action: string;
      left: (id: string) => Promise<number> }[] = [
      { entity: 'setting', target: settingRepository, method: 'delete', action: 'setting.deleted',
        create: async () => {
          await t.http.put(org('settings/org/timezone')).set(owner.auth).send({ value: 'Europe/Paris' }).expect(200);
          return { path: 'settings/org/timezone', id: 'org/timezone', auditId: 'org/timezone' };
        },
        left: async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.settings WHERE org_id = $1 AND scope = 'org' AND key = 'timezone'`, [orgId])).rows[0].n },
      { entity: 'feature_flag', target: settingRepository, method: 'deleteFlag', action: 'feature_flag.deleted',
        create: async () => {
          await t.http.put(org('feature-flags/beta.reports')).set(owner.auth).send({ enabled: true }).expect(200);
          return { path: 'feature-flags/beta.reports', id: 'beta.reports', auditId: 'beta.reports' };
        },
        left: (flag) => rows('core.feature_flags', 'flag', flag) },
      { entity: 'budget', target: agentsRepository, method: 'deleteBudget', action: 'ai.budget_deleted',
        create: async () => {
          const id = (await t.http.post(org('ai/budgets')).set(owner.auth).send({ costLimit: '10.0000' }).expect(201)).body.id;
          return { path: `ai/budgets/${id}`, id, auditId: id };
        },
        left: (id) => rows('ai.budgets', 'id', id) },
      // paused before it locks the agent's row (to count its runs in flight): it then finds nothing to delete
      { entity: 'agent', target: agentsRepository, method: 'lockAgentRunsInFlight', action: 'ai.agent_deleted',
        create: async () => {
          const id = await newAgent('Deleted twice');
          return { path: `agents/${id}`, id, auditId: id };
        },
        left: (id) => rows('ai.agents', 'id', id) },
      { entity: 'trigger', target: triggersRepository, method: 'remove', action: 'ai.trigger_deleted',
        create: async () => {
          const id = (await t.http.post(org(`agents/${agentOfTrigger}/triggers`)).set(owner.auth).send({ kind: 'event', eventType: 'bill.submitted', prompt: 'Review.' }).expect(201)).body.id;
          return { path: `agents/${agentOfTrigger}/triggers/${id}`, id, auditId: id };
        },
        left: (id) => rows('ai.agent_triggers', 'id', id) },
      { entity: 'provider_key', target: agentsRepository, method: 'deleteProviderKey', action: 'ai.provider_key_removed',
        create: async () => {
          await t.http.put(org('ai/provider-key')).set(owner.auth).send({ apiKey: 'sk-test-000000000000' }).expect(200);
          return { path: 'ai/provider-key', id: '', auditId: orgId };
        },
        left: () => rows('ai.provider_keys', 'org_id', orgId) },
      // paused before it locks the collection's row: it then locks and deletes nothing
      { entity: 'knowledge_collection', target: knowledgeRepository, method: 'lockCollection', action: 'knowledge.collection_deleted',
        create: async () => {
          const id = await newCollection('Deleted twice');
          return { path: `knowledge/collections/${id}`, id, auditId: id };
        },
        left: (id) => rows('ai.knowledge_collections', 'id', id) },
    ];
    const seen = [];
    const expected = [];
    for (const c of cases) {
      const { path, id, auditId } = await c.create();
      const paused = pauseNext(c.target as Record<string, any>, c.method);
      const first = send(t.http.delete(org(path)).set(owner.auth));
      await paused.reached; // read (found), not deleted yet
      const second = await send(t.http.delete(org(path)).set(owner.auth));
      paused.release();
      const late = await first;
      seen.push({ entity: c.entity, second: second.status, late: late.status, error: late.body?.error, left: await c.left(id), audited: await audits(c.action, auditId) });
      expected.push({ entity: c.entity, second: 204, late: 404,
        error: { code: `${c.entity}.not_found`, message: id ? `${c.entity} ${id} was not found` : `${c.entity} was not found` }, left: 0, audited: 1 });
    }
    expect(seen).toEqual(expected);
  });
});
