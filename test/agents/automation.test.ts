import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { AutomationService } from '../../src/modules/agents/automation.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * Automation (ai_automation, professional and up): a trigger runs its agent on a domain event from the outbox or on a
 * schedule, with the claims of the member who set it, re-checked at every firing, at most once per event or slot.
 */
describe('agent automation', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let admin: TestUser;
  let viewer: TestUser;
  let orgId: string;
  let agentId: string;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-automation-0000', REDIS_URL: '' });
    owner = await registerUser(t, 'auto-owner');
    admin = await registerUser(t, 'auto-admin');
    viewer = await registerUser(t, 'auto-viewer');
    orgId = await createOrg(t, owner, 'Automation Ltd');
    await onPlan(t, orgId, 'professional');
    await addMember(t, orgId, admin, 'admin');
    await addMember(t, orgId, viewer, 'viewer');
    agentId = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Bill reviewer', type: 'accountant', modelId: 'gpt-4o-mini' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  /** A domain event as another module's business transaction would write it (the payables module is not on this branch). */
  async function emit(type: string, payload: Record<string, unknown>): Promise<string> {
    const { rows } = await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'domain_event', $2) RETURNING id::text`,
      [orgId, JSON.stringify({ type, version: 1, occurredAt: new Date().toISOString(), payload })]);
    return rows[0].id;
  }
  const runJobs = async (runId: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [orgId, runId])).rows[0].n;
  const runsOf = async (trigger: string) => (await t.db.admin.query(
    `SELECT id, trigger, started_by::text, status, input FROM ai.runs WHERE org_id = $1 AND trigger = $2 ORDER BY started_at`, [orgId, trigger])).rows;

  it('runs the agent on a domain event, as the member who set the trigger, once per event', async () => {
    const trigger = await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth)
      .send({ kind: 'event', eventType: 'bill.submitted', prompt: 'Review this bill.' }).expect(201);
    expect(trigger.body).toMatchObject({ kind: 'event', eventType: 'bill.submitted', createdBy: owner.id, status: 'active', cron: null });
    llm.enqueue({ kind: 'text', content: 'The bill looks fine.', usage: { prompt: 50, completion: 5 } });
    const eventId = await emit('bill.submitted', { billId: 'b-1', total: '120.00' });
    await emit('invoice.issued', { invoiceId: 'i-1' }); // no trigger for it
    await t.app.get(OutboxRelay).drain();
    // the event's job only started the run: the model is called by the run's own job (agents.run), not while the event's
    // job (and every job behind it) waits
    const started = await runsOf('event');
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ trigger: 'event', started_by: owner.id, status: 'running' });
    expect(await runJobs(started[0].id)).toBe(1);
    await t.app.get(OutboxRelay).drain();
    const runs = await runsOf('event');
    expect(runs[0]).toMatchObject({ trigger: 'event', started_by: owner.id, status: 'succeeded' });
    expect(runs[0].input.messages[0].content).toContain('"billId":"b-1"');
    // started and finished audited, as the member who set the trigger; the finish with the run's totals
    // (gpt-4o-mini: 50 × 0.15 + 5 × 0.60 per million)
    const { rows: audits } = await t.db.admin.query(`SELECT action, actor_id, before, after FROM core.audit_logs
      WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, runs[0].id]);
    expect(audits).toEqual([expect.objectContaining({ action: 'ai.run_started', actor_id: owner.id }), {
      action: 'ai.run_succeeded', actor_id: owner.id, before: { status: 'running' },
      after: {
        status: 'succeeded', errorClass: null, stopReason: 'answer', cost: '0.00001050', steps: 1,
        usage: { inputTokens: 50, outputTokens: 5, cachedInputTokens: 0, cacheWriteTokens: 0 },
      },
    }]);
    // the same event delivered again (at least once): no second run
    await t.app.get(AutomationService).onEvent({ id: eventId, orgId, type: 'bill.submitted', version: 1, occurredAt: new Date().toISOString(), payload: { billId: 'b-1' } });
    expect(await runsOf('event')).toHaveLength(1);
    const firings = await t.db.admin.query('SELECT fire_key, run_id::text FROM ai.trigger_firings WHERE trigger_id = $1', [trigger.body.id]);
    expect(firings.rows).toEqual([{ fire_key: eventId, run_id: runs[0].id }]);
  });

  it('runs the agent on its schedule, once per slot', async () => {
    await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'schedule', cron: '*/5 * * * *', prompt: 'Daily check.' }).expect(201);
    const automation = t.app.get(AutomationService);
    const later = new Date(Date.now() + 11 * 60_000);
    expect(await automation.tick(later)).toBe(1);
    expect(await automation.tick(later)).toBe(0);
    await t.app.get(OutboxRelay).drain();
    const runs = await runsOf('schedule');
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ started_by: owner.id, status: 'succeeded' });
  });

  it('stops a trigger whose member lost the role, with the reason, and runs nothing', async () => {
    const trigger = await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(admin.auth)
      .send({ kind: 'event', eventType: 'bill.approved', prompt: 'Check the approval.' }).expect(201);
    await t.db.admin.query(`UPDATE core.memberships SET role = 'member' WHERE org_id = $1 AND user_id = $2`, [orgId, admin.id]);
    await emit('bill.approved', { billId: 'b-2' });
    await t.app.get(OutboxRelay).drain();
    const after = await t.http.get(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).expect(200);
    const stopped = after.body.find((x: any) => x.id === trigger.body.id);
    expect(stopped).toMatchObject({ status: 'stopped' });
    expect(stopped.lastError).toMatch(/forbidden\.role/);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM ai.runs WHERE org_id = $1 AND input::text LIKE '%b-2%'`, [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('needs the ai_automation feature and the owner or admin role; refuses bad triggers', async () => {
    await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(viewer.auth).send({ kind: 'event', eventType: 'bill.submitted', prompt: 'x' }).expect(403);
    await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'schedule', cron: 'every day', prompt: 'x' }).expect(400);
    await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'event', prompt: 'x' }).expect(400);
    await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'event', eventType: 'agent.run.completed', prompt: 'x' }).expect(400);
    await onPlan(t, orgId, 'starter');
    const res = await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'event', eventType: 'bill.paid', prompt: 'x' }).expect(402);
    expect(res.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'ai_automation', upgradeTo: 'professional' } });
    await onPlan(t, orgId, 'professional');
  });

  it('refuses a cron with no date that ever comes; one stored anyway stops alone, the tick fires the other organizations\' triggers', async () => {
    const refused = await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'schedule', cron: '0 0 30 2 *', prompt: 'x' }).expect(400);
    expect(refused.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'cron' }] });
    expect(refused.body.error.message).toMatch(/never|no date/);
    // stored before creation refused it (inserted directly): 30 February
    const { rows: [bad] } = await t.db.admin.query(`INSERT INTO ai.agent_triggers (org_id, agent_id, kind, cron, prompt, created_by)
      VALUES ($1, $2, 'schedule', '0 0 30 2 *', 'Never', $3) RETURNING id`, [orgId, agentId, owner.id]);
    const other = await registerUser(t, 'auto-other');
    const otherOrg = await createOrg(t, other, 'Other Automation Ltd');
    await onPlan(t, otherOrg, 'professional');
    const otherAgent = (await t.http.post(agentsUrl(otherOrg)).set(other.auth).send({ name: 'Checker', type: 'assistant', modelId: 'gpt-4o-mini' }).expect(201)).body.id;
    await t.http.post(agentsUrl(otherOrg, `/${otherAgent}/triggers`)).set(other.auth).send({ kind: 'schedule', cron: '* * * * *', prompt: 'Check.' }).expect(201);
    llm.enqueue({ kind: 'text', content: 'Checked.', usage: { prompt: 50, completion: 5 } }, { kind: 'text', content: 'Checked.', usage: { prompt: 50, completion: 5 } });
    await t.app.get(AutomationService).tick(new Date(Date.now() + 10 * 60_000));
    const { rows: otherRuns } = await t.db.admin.query(`SELECT trigger, started_by::text FROM ai.runs WHERE org_id = $1`, [otherOrg]);
    expect(otherRuns).toEqual([{ trigger: 'schedule', started_by: other.id }]);
    const { rows: [stopped] } = await t.db.admin.query(`SELECT status, last_error FROM ai.agent_triggers WHERE id = $1`, [bad.id]);
    expect(stopped.status).toBe('stopped');
    expect(stopped.last_error).toMatch(/0 0 30 2 \*/);
    const { rows: audits } = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2`, [orgId, bad.id]);
    expect(audits).toEqual([{ action: 'ai.trigger_stopped' }]);
    await t.app.get(OutboxRelay).drain();
  });
});
