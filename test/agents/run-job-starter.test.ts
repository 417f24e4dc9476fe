import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * The agents.run job's payload names its run's starter by ids (kept in the outbox row and in Redis). The job trusted
 * it: a payload rewritten there ran a viewer's run as the organization's owner, or as any service. The job now checks
 * it against the starter the run records (started_by, api_key_id, or the service its ai.run_started audit names) and
 * fails a run whose payload names another (or none), nothing executed as the principal it names.
 */
describe('the agents.run job\'s starter checked against its run', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let viewer: TestUser;
  let other: TestUser;
  let org: string;
  let agent: string;
  let ownKey: { id: string };
  let otherKey: { id: string };

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '' });
    owner = await registerUser(t, 'starter-owner');
    viewer = await registerUser(t, 'starter-viewer');
    other = await registerUser(t, 'starter-other');
    org = await createOrg(t, owner, 'Starter Ltd');
    await onEnterprisePlan(t, org);
    await addMember(t, org, viewer, 'viewer');
    const org2 = await createOrg(t, other, 'Other Starter Ltd');
    await onEnterprisePlan(t, org2);
    agent = (await t.http.post(agentsUrl(org)).set(owner.auth).send({ name: 'J', type: 'assistant', modelId: 'gpt-4o', maxSteps: 1 }).expect(201)).body.id;
    ownKey = (await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth).send({ name: 'own', scopes: ['agents:run'] }).expect(201)).body;
    otherKey = (await t.http.post(`/v1/orgs/${org2}/api-keys`).set(other.auth).send({ name: 'other', scopes: ['agents:run'] }).expect(201)).body;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  /** A run started ?async=true as `auth`, its job's payload replaced by `payload(runId)` (when given), the job relayed. */
  const runAsJob = async (auth: Record<string, string>, payload?: (runId: string) => unknown) => {
    llm.enqueue({ kind: 'text', content: 'done', usage: { prompt: 10, completion: 1 } });
    const calls = llm.requests.length;
    const runId = (await t.http.post(agentsUrl(org, `/${agent}/runs?async=true`)).set(auth).send({ messages: [{ role: 'user', content: 'hi' }] }).expect(202)).body.id as string;
    if (payload) {
      await t.db.admin.query(`UPDATE core.outbox SET payload = $3::jsonb WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`,
        [org, runId, JSON.stringify(payload(runId))]);
    }
    await t.app.get(OutboxRelay).drain();
    const { rows: [run] } = await t.db.admin.query('SELECT status, error_class, error_message, steps, started_by FROM ai.runs WHERE id = $1', [runId]);
    const { rows: audits } = await t.db.admin.query(
      `SELECT action, actor_id FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'ai_run' AND entity_id = $2 ORDER BY id`, [org, runId]);
    const { rows: [job] } = await t.db.admin.query(`SELECT processed_at IS NOT NULL AS done FROM core.outbox WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [org, runId]);
    const llmCalls = llm.requests.length - calls;
    if (!llmCalls) llm.clear(); // the scripted answer nobody took
    return { runId, run, audits, job, llmCalls };
  };

  const expectRefused = (r: Awaited<ReturnType<typeof runAsJob>>, startedBy: string | null) => {
    expect(r.run).toEqual({
      status: 'failed', error_class: 'internal', steps: 0, started_by: startedBy,
      error_message: 'the run failed before it started: the job does not name the starter its run records: auth.unauthorized: the job\'s starter is not the run\'s',
    });
    expect(r.llmCalls).toBe(0);
    expect(r.job).toEqual({ done: true });
    // started by its starter, failed by the runs' service: nothing audited as the principal the payload named
    expect(r.audits).toEqual([
      { action: 'ai.run_started', actor_id: startedBy ?? expect.any(String) },
      { action: 'ai.run_internal', actor_id: 'service:agents-runs' },
    ]);
  };

  it('fails a viewer\'s run whose payload names the owner, another organization\'s person or key, this organization\'s key, or a service', async () => {
    const forged = [
      { kind: 'user', userId: owner.id, personalOrgId: org },
      { kind: 'user', userId: other.id, personalOrgId: org },
      { kind: 'apiKey', keyId: ownKey.id },
      { kind: 'apiKey', keyId: otherKey.id },
      { kind: 'service', name: 'forged' },
    ];
    for (const starter of forged) expectRefused(await runAsJob(viewer.auth, (runId) => ({ runId, agentId: agent, starter })), viewer.id);
  });

  it('fails a run whose old-format payload (the principal whole) names another principal, or whose payload names none', async () => {
    expectRefused(await runAsJob(viewer.auth, (runId) => ({ runId, agentId: agent, principal: { kind: 'service', name: 'forged-old' } })), viewer.id);
    expectRefused(await runAsJob(viewer.auth, (runId) => ({ runId, agentId: agent, principal: { kind: 'user', userId: owner.id, email: owner.email, personalOrgId: org } })), viewer.id);
    expectRefused(await runAsJob(viewer.auth, (runId) => ({ runId, agentId: agent })), viewer.id);
  });

  it('a service\'s run whose payload names another service is failed', async () => {
    const service = { Authorization: `Bearer ${jwt.sign({ role: 'service_role', service: 'run-starter' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 })}` };
    const r = await runAsJob(service, (runId) => ({ runId, agentId: agent, starter: { kind: 'service', name: 'other-service' } }));
    expectRefused(r, null);
    expect(r.audits[0].actor_id).toBe('service:run-starter');
  });

  it('runs the jobs whose payload names the run\'s starter: a person, a key, a service, an old-format principal', async () => {
    const expectRan = (r: Awaited<ReturnType<typeof runAsJob>>) => {
      expect(r.run).toMatchObject({ status: 'succeeded', error_class: null, steps: 1 });
      expect(r.llmCalls).toBe(1);
    };
    expectRan(await runAsJob(viewer.auth));
    const key = (await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth).send({ name: 'runner', scopes: ['agents:run'] }).expect(201)).body;
    expectRan(await runAsJob({ Authorization: `Bearer ${key.secret}` }));
    const service = { Authorization: `Bearer ${jwt.sign({ role: 'service_role', service: 'run-starter' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 })}` };
    const byService = await runAsJob(service);
    expectRan(byService);
    expect(byService.audits.map((a: { actor_id: string }) => a.actor_id)).toEqual(['service:run-starter', 'service:run-starter']);
    // a job queued before payloads held ids only, by the run's starter
    const old = await runAsJob(viewer.auth, (runId) => ({ runId, agentId: agent, principal: { kind: 'user', userId: viewer.id, email: viewer.email, personalOrgId: org } }));
    expectRan(old);
    expect(old.audits.map((a: { actor_id: string }) => a.actor_id)).toEqual([viewer.id, viewer.id]);
  });
});
