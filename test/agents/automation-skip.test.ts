import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { AutomationService } from '../../src/modules/agents/automation.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';

/**
 * A paused agent, or an organization without a provider key, is a state an owner or admin undoes: a trigger firing
 * then is skipped (recorded, audited), the trigger stays active and runs again once the agent is resumed or a key stored.
 * Only a member who left or lost the role, or a plan without the feature, stops a trigger (automation.test.ts).
 */
describe('agent automation: skipped firings', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agentId: string;
  const clock = new ManualClock();

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    // no platform key: the organization runs agents only once it stores its own
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: '', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env }, { clock });
    owner = await registerUser(t, 'skip-owner');
    orgId = await createOrg(t, owner, 'Skipping Ltd');
    await onPlan(t, orgId, 'professional');
    agentId = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Reviewer', type: 'accountant', modelId: 'gpt-4o-mini' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  async function emit(type: string, payload: Record<string, unknown>): Promise<string> {
    const { rows } = await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'domain_event', $2) RETURNING id::text`,
      [orgId, JSON.stringify({ type, version: 1, occurredAt: new Date(clock.now()).toISOString(), payload })]);
    return rows[0].id;
  }
  const runsOf = async (trigger: string) => (await t.db.admin.query(
    `SELECT id::text, started_by::text, status, input FROM ai.runs WHERE org_id = $1 AND trigger = $2 ORDER BY started_at`, [orgId, trigger])).rows;
  const firings = async (triggerId: string) => (await t.db.admin.query(
    'SELECT fire_key, run_id::text FROM ai.trigger_firings WHERE trigger_id = $1 ORDER BY created_at, fire_key', [triggerId])).rows;
  const skips = async (triggerId: string) => (await t.db.admin.query(
    `SELECT actor_id, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.trigger_skipped' AND entity_id = $2 ORDER BY id`, [orgId, triggerId])).rows;
  const triggerOf = async (id: string) => (await t.http.get(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth).expect(200)).body.find((x: any) => x.id === id);

  it('skips an event while the organization has no provider key, and runs the next one once it stores a key', async () => {
    const trigger = (await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth)
      .send({ kind: 'event', eventType: 'bill.submitted', prompt: 'Review this bill.' }).expect(201)).body;
    const first = await emit('bill.submitted', { billId: 'b-1' });
    await t.app.get(OutboxRelay).drain();
    expect(await runsOf('event')).toEqual([]);
    expect(await triggerOf(trigger.id)).toMatchObject({ status: 'active', lastError: null });
    expect(await firings(trigger.id)).toEqual([{ fire_key: first, run_id: null }]);
    const skipped = await skips(trigger.id);
    expect(skipped).toEqual([{ actor_id: owner.id, after: { fireKey: first, reason: expect.stringMatching(/^ai\.no_provider_key: /) } }]);
    expect(llm.requests).toHaveLength(0);

    await t.http.put(`/v1/orgs/${orgId}/ai/provider-key`).set(owner.auth).send({ apiKey: 'sk-org-own-key-5678' }).expect(200);
    llm.enqueue({ kind: 'text', content: 'The bill looks fine.', usage: { prompt: 20, completion: 5 } });
    const second = await emit('bill.submitted', { billId: 'b-2' });
    await t.app.get(OutboxRelay).drain(); // the event starts the run
    await t.app.get(OutboxRelay).drain(); // the run's job executes it
    const runs = await runsOf('event');
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ started_by: owner.id, status: 'succeeded' });
    expect(runs[0].input.messages[0].content).toContain('"billId":"b-2"');
    expect(llm.requests[0].authorization).toBe('Bearer sk-org-own-key-5678');
    expect(await firings(trigger.id)).toEqual([{ fire_key: first, run_id: null }, { fire_key: second, run_id: runs[0].id }]);
    expect(await triggerOf(trigger.id)).toMatchObject({ status: 'active', lastError: null });
    // the skipped event delivered again (at least once) is not run late
    await t.app.get(AutomationService).onEvent({ id: first, orgId, type: 'bill.submitted', version: 1, occurredAt: new Date(clock.now()).toISOString(), payload: { billId: 'b-1' } });
    expect(await runsOf('event')).toHaveLength(1);
    await t.http.delete(agentsUrl(orgId, `/${agentId}/triggers/${trigger.id}`)).set(owner.auth).expect(204);
  });

  it('skips the slots of a paused agent without stopping its schedule, and runs the next slot once it is resumed', async () => {
    const automation = t.app.get(AutomationService);
    const trigger = (await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth)
      .send({ kind: 'schedule', cron: '*/5 * * * *', prompt: 'Scheduled check.' }).expect(201)).body;
    await t.http.patch(agentsUrl(orgId, `/${agentId}`)).set(owner.auth).send({ status: 'paused' }).expect(200);

    clock.advance(11 * 60_000);
    expect(await automation.tick()).toBe(0);
    expect(await runsOf('schedule')).toEqual([]);
    expect(await triggerOf(trigger.id)).toMatchObject({ status: 'active', lastError: null });
    const [skippedSlot] = await firings(trigger.id);
    expect(skippedSlot).toEqual({ fire_key: expect.any(String), run_id: null });
    expect(await skips(trigger.id)).toEqual([{ actor_id: owner.id, after: { fireKey: skippedSlot.fire_key, reason: expect.stringMatching(/^ai\.agent_paused: /) } }]);
    // the skipped slot is not tried again at the next tick
    expect(await automation.tick()).toBe(0);
    expect(await firings(trigger.id)).toHaveLength(1);
    expect(await skips(trigger.id)).toHaveLength(1);

    await t.http.patch(agentsUrl(orgId, `/${agentId}`)).set(owner.auth).send({ status: 'active' }).expect(200);
    llm.enqueue({ kind: 'text', content: 'All good.', usage: { prompt: 20, completion: 3 } });
    clock.advance(5 * 60_000);
    expect(await automation.tick()).toBe(1);
    await t.app.get(OutboxRelay).drain();
    const runs = await runsOf('schedule');
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ started_by: owner.id, status: 'succeeded' });
    const all = await firings(trigger.id);
    expect(all).toEqual([skippedSlot, { fire_key: expect.any(String), run_id: runs[0].id }]);
    expect(new Date(all[1].fire_key).getTime()).toBeGreaterThan(new Date(skippedSlot.fire_key).getTime());
    expect(await triggerOf(trigger.id)).toMatchObject({ status: 'active', lastError: null });
  });

  it('skips a slot while the subscription is read-only, and stops the schedule once the plan lacks the feature', async () => {
    const automation = t.app.get(AutomationService);
    const trigger = (await t.http.post(agentsUrl(orgId, `/${agentId}/triggers`)).set(owner.auth)
      .send({ kind: 'schedule', cron: '*/5 * * * *', prompt: 'Billing check.' }).expect(201)).body;
    const stateOf = async () => (await t.db.admin.query('SELECT status, last_error FROM ai.agent_triggers WHERE id = $1', [trigger.id])).rows[0];
    try {
      await onPlan(t, orgId, 'professional', 'canceled');
      clock.advance(5 * 60_000);
      expect(await automation.tick()).toBe(0);
      expect(await stateOf()).toEqual({ status: 'active', last_error: null });
      expect(await skips(trigger.id)).toEqual([{ actor_id: owner.id, after: { fireKey: expect.any(String), reason: expect.stringMatching(/^billing\.subscription_inactive: /) } }]);

      await onPlan(t, orgId, 'starter');
      clock.advance(5 * 60_000);
      expect(await automation.tick()).toBe(0);
      expect(await stateOf()).toEqual({ status: 'stopped', last_error: expect.stringMatching(/^billing\.feature_not_in_plan: /) });
      expect(await skips(trigger.id)).toHaveLength(1);
      expect(await runsOf('schedule')).toHaveLength(1); // the previous test's run only
    } finally {
      await onPlan(t, orgId, 'professional');
    }
  });
});
