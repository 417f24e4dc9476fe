import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { agentsUrl } from './agents-support.js';

/** Agents: who manages them, validation against the catalog and the tool registry, the plan's ai_agents limit. */
describe('agents', () => {
  let t: TestApp;
  let org: OrgWithRoles;
  const body = (name: string) => ({ name, type: 'analyst', modelId: 'gpt-4o-mini', tools: ['query_semantic'] });

  beforeAll(async () => {
    t = await createTestApp();
    org = await orgWithRoles(t, 'Agents Ltd');
    await onPlan(t, org.orgId, 'professional');
  });
  afterAll(() => t?.close());

  it('lets owner and admin create, change and delete agents, audited; members and viewers read', async () => {
    const created = await t.http.post(agentsUrl(org.orgId)).set(org.users.admin.auth).send({ ...body('Analyst'), instructions: 'Be brief.', temperature: 0.5 }).expect(201);
    expect(created.body).toMatchObject({
      name: 'Analyst', type: 'analyst', modelId: 'gpt-4o-mini', temperature: 0.5, maxOutputTokens: 1024, maxSteps: 8, tools: ['query_semantic'], status: 'active',
      createdBy: org.users.admin.id,
    });
    for (const role of ['member', 'viewer', 'accountant'] as const) {
      await t.http.post(agentsUrl(org.orgId)).set(org.users[role].auth).send(body(`By ${role}`)).expect(403);
    }
    const listed = await t.http.get(agentsUrl(org.orgId)).set(org.users.viewer.auth).expect(200);
    expect(listed.body.map((a: any) => a.name)).toEqual(['Analyst']);
    const patched = await t.http.patch(agentsUrl(org.orgId, `/${created.body.id}`)).set(org.users.owner.auth).send({ status: 'paused', maxSteps: 3 }).expect(200);
    expect(patched.body).toMatchObject({ status: 'paused', maxSteps: 3 });
    // one agent, as a member reads it: what the change left, and the same as the list says
    const read = (await t.http.get(agentsUrl(org.orgId, `/${created.body.id}`)).set(org.users.member.auth).expect(200)).body;
    expect(read).toEqual({ ...created.body, status: 'paused', maxSteps: 3, updatedAt: patched.body.updatedAt });
    expect((await t.http.get(agentsUrl(org.orgId)).set(org.users.member.auth).expect(200)).body).toEqual([read]);
    await t.http.patch(agentsUrl(org.orgId, `/${created.body.id}`)).set(org.users.member.auth).send({ status: 'active' }).expect(403);
    const paused = await t.http.post(agentsUrl(org.orgId, `/${created.body.id}/runs`)).set(org.users.member.auth).send({ messages: [{ role: 'user', content: 'x' }] }).expect(409);
    expect(paused.body.error.code).toBe('ai.agent_paused');
    await t.http.delete(agentsUrl(org.orgId, `/${created.body.id}`)).set(org.users.owner.auth).expect(204);
    await t.http.get(agentsUrl(org.orgId, `/${created.body.id}`)).set(org.users.owner.auth).expect(404);
    const { rows } = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ai.agent%' ORDER BY id`, [org.orgId]);
    expect(rows.map((r) => r.action)).toEqual(['ai.agent_created', 'ai.agent_updated', 'ai.agent_deleted']);
  });

  it('refuses an unknown model, a tool not installed, a duplicate name and unknown fields, writing nothing', async () => {
    const model = await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send({ ...body('X'), modelId: 'gpt-99' }).expect(422);
    expect(model.body.error.code).toBe('ai.unknown_model');
    const embedding = await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send({ ...body('X'), modelId: 'text-embedding-3-small' }).expect(422);
    expect(embedding.body.error.code).toBe('ai.unknown_model');
    // only registered tools (no module registers one that posts or pays)
    const tool = await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send({ ...body('X'), tools: ['list_open_invoices', 'post_payment', 'delete_invoice'] }).expect(422);
    expect(tool.body.error).toMatchObject({ code: 'ai.unknown_tool', details: { tools: ['post_payment', 'delete_invoice'] } });
    await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send(body('Twin')).expect(201);
    const twin = await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send(body('Twin')).expect(409);
    expect(twin.body.error.code).toBe('ai.agent_name_taken');
    await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send({ ...body('Y'), apiKey: 'x' }).expect(400);
    await t.http.post(agentsUrl(org.orgId)).set(org.users.owner.auth).send({ ...body('Y'), temperature: 3 }).expect(400);
    const { rows } = await t.db.admin.query('SELECT name FROM ai.agents WHERE org_id = $1', [org.orgId]);
    expect(rows.map((r) => r.name)).toEqual(['Twin']);
  });

  it('lists the model catalog with dated prices and the tool registry', async () => {
    const models = await t.http.get(`/v1/orgs/${org.orgId}/ai/models`).set(org.users.viewer.auth).expect(200);
    const mini = models.body.find((m: any) => m.id === 'gpt-4o-mini');
    expect(mini.prices[0]).toMatchObject({ input: '0.150000', output: '0.600000', cachedInput: '0.075000', effectiveFrom: '2024-07-18T00:00:00.000Z' });
    // the catalog's reasoning models (max_completion_tokens, no temperature), as the migration flagged them
    expect(models.body.filter((m: any) => m.reasoning).map((m: any) => m.id)).toEqual(['o4-mini']);
    expect(mini.reasoning).toBe(false);
    const tools = await t.http.get(`/v1/orgs/${org.orgId}/ai/tools`).set(org.users.viewer.auth).expect(200);
    expect(tools.body.map((x: any) => x.name)).toEqual(['draft_journal_entry', 'get_profit_and_loss', 'get_trial_balance', 'list_open_bills', 'list_open_invoices', 'query_semantic', 'search_knowledge']);
  });

  it('a new price takes effect from its date without changing what past steps cost', async () => {
    await t.db.admin.query(`INSERT INTO ai.model_prices (model_id, effective_from, input, output, cached_input, cache_write, source)
      VALUES ('gpt-4o-mini', now() + interval '30 days', 9, 9, 9, 9, 'test')`);
    const models = await t.http.get(`/v1/orgs/${org.orgId}/ai/models`).set(org.users.viewer.auth).expect(200);
    expect(models.body.find((m: any) => m.id === 'gpt-4o-mini').prices).toHaveLength(2);
  });

  it('counts agents against the plan: 20 parallel creates with one unit left → exactly one 201', async () => {
    const starter = await orgWithRoles(t, 'Starter Agents');
    await onPlan(t, starter.orgId, 'starter');
    await t.http.post(agentsUrl(starter.orgId)).set(starter.users.owner.auth).send(body('First')).expect(201);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      t.http.post(agentsUrl(starter.orgId)).set(starter.users.owner.auth).send(body(`Parallel ${i}`))));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const refused = results.filter((r) => r.status === 402);
    expect(refused).toHaveLength(19);
    expect(refused[0].body.error).toMatchObject({ code: 'billing.limit_reached', details: { feature: 'ai_agents', limit: 2, upgradeTo: 'professional' } });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM ai.agents WHERE org_id = $1', [starter.orgId]);
    expect(rows[0].n).toBe(2);
  });
});
